"""Events in and out: the S3 upload rule that starts runs, and the project's bus for outcomes."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.nag import acknowledge


def dead_letter_queue(
    scope: Construct, construct_id: str, key: kms.IKey | None, holds: str
) -> tuple[sqs.Queue, cloudwatch.Alarm]:
    """A queue keeping what could not be delivered for 14 days, with an alarm as soon as anything lands in it."""
    queue = sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.KMS if key else sqs.QueueEncryption.SQS_MANAGED,
        encryption_master_key=key,
        enforce_ssl=True,
        retention_period=Duration.days(14),
    )
    acknowledge(queue, "AwsSolutions::AwsSolutions-SQS3", f"This queue is itself a dead-letter queue: {holds}.")
    alarm = cloudwatch.Alarm(
        scope,
        f"{construct_id}Alarm",
        alarm_description=f"Batchline dead-letter queue received {holds}",
        metric=queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(5)),
        threshold=1,
        evaluation_periods=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
    return queue, alarm


class EventBus(Construct):
    """The bus every run publishes its one outcome event to (source "batchline"), and where undelivered ones go."""

    def __init__(self, scope: Construct, construct_id: str, *, bus_name: str, key: kms.IKey | None = None) -> None:
        super().__init__(scope, construct_id)
        self.bus = events.EventBus(self, "Bus", event_bus_name=bus_name, kms_key=key)
        # Outcome events EventBridge refused even after retries: kept 14 days, and an alarm says so.
        self.undelivered, self.undelivered_alarm = dead_letter_queue(
            self, "UndeliveredEvents", key, "outcome events Batchline could not publish"
        )


class UploadTrigger(Construct):
    """S3 "Object Created" in the inbox -> StartRun, with retries and a dead-letter queue for what fails."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        inbox: s3.IBucket,
        starter: lambda_.IFunction,
        key: kms.IKey | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letters, self.dead_letters_alarm = dead_letter_queue(
            self, "StartDeadLetters", key, "upload or execution-end events no function could handle"
        )
        self.rule = events.Rule(
            self,
            "InboxUploads",
            description="Starts a Batchline run for each new object version in the inbox",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={"bucket": {"name": [inbox.bucket_name]}},
            ),
            targets=[
                targets.LambdaFunction(
                    starter,
                    retry_attempts=8,
                    max_event_age=Duration.hours(6),
                    dead_letter_queue=self.dead_letters,
                )
            ],
        )


class ExecutionEndWatcher(Construct):
    """Executions that end ABORTED (stopped by hand), TIMED_OUT, or FAILED by an error no Catch handles
    (States.DataLimitExceeded...) never reach ReportFailure: this rule does. The function leaves alone the
    FAILED executions whose own reporting steps ran."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        state_machine_arn: str,
        handler: lambda_.IFunction,
        dead_letters: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        self.rule = events.Rule(
            self,
            "StoppedExecutions",
            description="Stops the jobs of Batchline runs stopped, timed out or failed uncaught, and reports them",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={"status": ["ABORTED", "TIMED_OUT", "FAILED"], "stateMachineArn": [state_machine_arn]},
            ),
            targets=[
                targets.LambdaFunction(
                    handler, retry_attempts=8, max_event_age=Duration.hours(6), dead_letter_queue=dead_letters
                )
            ],
        )
