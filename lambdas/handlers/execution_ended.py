"""Execution stopped by hand, timed out or failed uncaught: stop its jobs and publish its failure event."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from batchline.clients import AwsClients
from batchline.config import Deployment, pipelines_from_env
from batchline.metrics import outcome_measures, publish
from batchline.steps.ended import ended_run_keys, report_ended_execution

logger = Logger()
tracer = Tracer()
metrics = Metrics()
clients = AwsClients()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(**ended_run_keys(event))
    logger.info("execution ended", extra={"event": event})
    result, failure = report_ended_execution(
        event, pipelines=pipelines_from_env(), deployment=Deployment.from_env(), clients=clients
    )
    if failure is not None:
        publish(metrics, pipeline=failure["pipeline"], run_id=failure["runId"], measures=outcome_measures(failure))
    logger.info("execution end handled", extra=result)
    return result
