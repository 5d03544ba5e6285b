"""Collect step: stream the raw service output into the keyed predictions.csv."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from batchline.clients import AwsClients
from batchline.config import pipelines_from_env
from batchline.flow import Deployment, collect_results

logger = Logger()
tracer = Tracer()
clients = AwsClients()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(run_id=event["run"]["runId"], pipeline=event["run"]["pipeline"])
    collected = collect_results(
        event["run"],
        event["jobs"],
        pipelines=pipelines_from_env(),
        deployment=Deployment.from_env(),
        clients=clients,
    )
    logger.info("output collected", extra={"counts": collected["counts"]})
    return collected
