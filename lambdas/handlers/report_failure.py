"""Failure path: stop what still runs, keep rejected rows, and build the failure event."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from batchline.clients import AwsClients
from batchline.config import Deployment, pipelines_from_env
from batchline.metrics import outcome_measures, publish
from batchline.steps.finalize import report_failure, summary_seconds

logger = Logger()
tracer = Tracer()
metrics = Metrics()
clients = AwsClients()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(run_id=event["runId"], pipeline=event["pipeline"])
    result = report_failure(
        event,
        pipelines=pipelines_from_env(),
        deployment=Deployment.from_env(),
        clients=clients,
        summary_seconds=summary_seconds(context.get_remaining_time_in_millis()),
    )
    detail = result["detail"]
    publish(metrics, pipeline=event["pipeline"], run_id=event["runId"], measures=outcome_measures(detail))
    logger.error("run failed", extra={"error": detail["error"], "counts": detail["counts"]})
    return result
