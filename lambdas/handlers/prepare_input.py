"""Prepare step: validate the upload and stage the service input.

One function serves the three Prepare states, which need the same grants: PrepareInput (a whole file, or the
plan of shards for a large one), each child of the PrepareShards Map (``"step": "shard"``) and MergeShards
(``"step": "merge"``).
"""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from batchline.clients import AwsClients
from batchline.config import Deployment, pipelines_from_env
from batchline.state import PreparingRun, RunFacts, RunStart
from batchline.steps.prepare import merge_prepared_shards, prepare_one_shard, prepare_run

logger = Logger()
tracer = Tracer()
clients = AwsClients()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = event.get("step", "prepare")
    run = event.get("run", event)
    logger.append_keys(run_id=run["runId"], pipeline=run["pipeline"], step=step)
    common: dict[str, Any] = {
        "pipelines": pipelines_from_env(),
        "deployment": Deployment.from_env(),
        "clients": clients,
    }

    def time_left() -> float:
        return context.get_remaining_time_in_millis() / 1000

    if step == "shard":
        summary = prepare_one_shard(PreparingRun.model_validate(run), event["shard"], **common, time_left=time_left)
        logger.info("shard prepared", extra={"summary": summary})
        return summary
    if step == "merge":
        facts = merge_prepared_shards(PreparingRun.model_validate(run), **common)
    else:
        facts = prepare_run(RunStart.model_validate(event), **common, time_left=time_left)
    if isinstance(facts, RunFacts):
        logger.info("input staged", extra={"counts": facts.counts.dump(), "parts": facts.staging["parts"]})
    else:
        logger.info("input cut into shards", extra={"fanOut": facts.fan_out.dump()})
    return facts.dump()
