"""Failure path: stop what still runs, keep rejected rows, and build the failure event."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from batchline.clients import AwsClients
from batchline.config import pipelines_from_env
from batchline.flow import Deployment, report_failure

logger = Logger()
tracer = Tracer()
clients = AwsClients()


@logger.inject_lambda_context(correlation_id_path="runId")
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(pipeline=event["pipeline"])
    result = report_failure(event, pipelines=pipelines_from_env(), deployment=Deployment.from_env(), clients=clients)
    logger.error("run failed", extra={"error": result["detail"]["error"]})
    return result
