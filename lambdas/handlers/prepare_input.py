"""Prepare step: validate the upload and stage the service input."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from batchline.clients import AwsClients
from batchline.config import pipelines_from_env
from batchline.flow import Deployment, prepare_run

logger = Logger()
tracer = Tracer()
clients = AwsClients()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(run_id=event["runId"], pipeline=event["pipeline"])
    prepared = prepare_run(
        event,
        pipelines=pipelines_from_env(),
        deployment=Deployment.from_env(),
        clients=clients,
        time_left=lambda: context.get_remaining_time_in_millis() / 1000,
    )
    logger.info("input staged", extra={"counts": prepared["counts"], "parts": prepared["staging"]["parts"]})
    return prepared
