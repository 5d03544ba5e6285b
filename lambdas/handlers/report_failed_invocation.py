"""FailedInvocations queue -> the failure event of an upload StartRun could not start, or of a run ExecutionEnded
could not report; a record it cannot handle goes back to the queue (and, after a few tries, to its dead letters)."""

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from batchline.clients import AwsClients
from batchline.config import Deployment, pipelines_from_env, require_env
from batchline.metrics import outcome_measures, publish
from batchline.steps.failed_invocation import report_failed_invocation

logger = Logger()
tracer = Tracer()
metrics = Metrics()
clients = AwsClients()
processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> dict[str, Any]:
    destination_record = json.loads(record.body)
    logger.error("invocation failed after its retries", extra={"record": destination_record})
    result, failure = report_failed_invocation(
        destination_record,
        pipelines=pipelines_from_env(),
        deployment=Deployment.from_env(),
        clients=clients,
        state_machine_arn=require_env("STATE_MACHINE_ARN"),
    )
    if failure is not None and failure["provider"] is not None:
        publish(metrics, pipeline=failure["pipeline"], run_id=failure["runId"], measures=outcome_measures(failure))
    logger.info("failed invocation handled", extra=result)
    return result


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
