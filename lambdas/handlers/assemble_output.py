"""AssembleOutput step: predictions.csv from the units' parts, failed.csv, and the run's counts."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from batchline.clients import AwsClients
from batchline.config import Deployment, pipelines_from_env
from batchline.state import CollectPlan, RunFacts
from batchline.steps.collect import assemble_output

logger = Logger()
tracer = Tracer()
clients = AwsClients()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    run = RunFacts.model_validate(event["run"])
    logger.append_keys(run_id=run.run_id, pipeline=run.pipeline)
    collected = assemble_output(
        run,
        CollectPlan.model_validate(event["plan"]),
        pipelines=pipelines_from_env(),
        deployment=Deployment.from_env(),
        clients=clients,
    )
    logger.info("output assembled", extra={"counts": collected["counts"]})
    return collected
