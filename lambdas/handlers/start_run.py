"""EventBridge S3 "Object Created" -> one state machine execution per object version."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from batchline.clients import AwsClients
from batchline.config import pipelines_from_env, require_env
from batchline.flow import Deployment
from batchline.starter import start_run

logger = Logger()
tracer = Tracer()
clients = AwsClients()


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = start_run(
        event,
        pipelines=pipelines_from_env(),
        deployment=Deployment.from_env(),
        state_machine_arn=require_env("STATE_MACHINE_ARN"),
        clients=clients,
    )
    logger.info("start decision", extra=result)
    return result
