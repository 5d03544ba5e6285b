"""Execution stopped by hand or timed out: stop its jobs and publish its failure event."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from batchline.aborts import report_ended_execution
from batchline.clients import AwsClients
from batchline.config import pipelines_from_env
from batchline.flow import Deployment

logger = Logger()
tracer = Tracer()
clients = AwsClients()


@logger.inject_lambda_context(correlation_id_path="detail.name", log_event=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = report_ended_execution(
        event, pipelines=pipelines_from_env(), deployment=Deployment.from_env(), clients=clients
    )
    logger.info("execution end handled", extra=result)
    return result
