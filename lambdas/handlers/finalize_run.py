"""Finalize step: reconcile counts, write errors.csv and manifest.json, return the event to publish."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from batchline.clients import AwsClients
from batchline.config import Deployment, pipelines_from_env
from batchline.metrics import outcome_measures, publish
from batchline.state import RunFacts
from batchline.steps.finalize import finalize_run, summary_seconds

logger = Logger()
tracer = Tracer()
metrics = Metrics()
clients = AwsClients()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    run = RunFacts.model_validate(event["run"])
    logger.append_keys(run_id=run.run_id, pipeline=run.pipeline)
    result = finalize_run(
        run,
        event["collected"],
        pipelines=pipelines_from_env(),
        deployment=Deployment.from_env(),
        clients=clients,
        summary_seconds=summary_seconds(context.get_remaining_time_in_millis()),
    )
    detail = result["detail"]
    publish(metrics, pipeline=run.pipeline, run_id=run.run_id, measures=outcome_measures(detail))
    logger.info("run finalized", extra={"status": detail["status"], "counts": detail["counts"]})
    return result
