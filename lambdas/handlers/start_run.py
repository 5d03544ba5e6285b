"""EventBridge S3 "Object Created" -> one state machine execution per object version."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from batchline.clients import AwsClients
from batchline.config import Deployment, pipelines_from_env, require_env
from batchline.steps.start import pipeline_of, start_run

logger = Logger()
tracer = Tracer()
clients = AwsClients()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(pipeline=pipeline_of(event["detail"]["object"]["key"]))
    logger.info("upload received", extra={"event": event})  # the run ID needs the object's HEAD: below
    result = start_run(
        event,
        pipelines=pipelines_from_env(),
        deployment=Deployment.from_env(),
        state_machine_arn=require_env("STATE_MACHINE_ARN"),
        clients=clients,
    )
    logger.append_keys(run_id=result["runId"])  # derived from the object version, known once it was found
    logger.info("start decision", extra=result)
    return result
