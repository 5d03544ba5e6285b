"""Finalize step: reconcile counts, write errors.csv and manifest.json, return the event to publish."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from batchline.clients import AwsClients
from batchline.config import pipelines_from_env
from batchline.flow import Deployment, finalize_run

logger = Logger()
tracer = Tracer()
clients = AwsClients()


@logger.inject_lambda_context(correlation_id_path="run.runId")
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(pipeline=event["run"]["pipeline"])
    result = finalize_run(
        event["run"],
        event["jobs"],
        event["collected"],
        pipelines=pipelines_from_env(),
        deployment=Deployment.from_env(),
        clients=clients,
    )
    logger.info("run finalized", extra={"status": result["detail"]["status"], "counts": result["detail"]["counts"]})
    return result
