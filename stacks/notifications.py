"""Events in and out: the S3 upload rule that starts runs, the rule that reports executions ended outside the
flow, and the project's bus for outcomes. Each rule's construct grants its target function what it needs."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from batchline.functions import function
from batchline.job_events import SOURCES
from constructs import Construct

from stacks.functions import Functions
from stacks.nag import acknowledge

# The functions these rules invoke (entries of batchline.functions.CATALOGUE).
STARTER = "StartRun"
ENDED_HANDLER = "ExecutionEnded"
WAKE_HANDLER = "WakeJob"
# EventBridge invokes both asynchronously: a function error is retried by Lambda this many times (2, the most
# it allows: both are idempotent, StartRun by its deterministic execution name and ExecutionEnded by its report
# marker), then the invocation record goes to the on-failure destination instead of being dropped.
ASYNC_RETRIES = 2
ASYNC_MAX_AGE = Duration.hours(6)
# ReportFailedInvocation reads the FailedInvocations queue; a record it failed on this many times moves to the
# UnreportedFailures queue (and its alarm) instead of being retried for the queue's 14 days.
FAILED_REPORTER = "ReportFailedInvocation"
FAILED_REPORT_RECEIVES = 5


def keep_failed_invocations(function: lambda_.IFunction, queue: sqs.IQueue) -> None:
    """Lambda's on-failure destination: an event whose invocations all failed is kept in ``queue`` (with the
    error), where the target's dead-letter queue only keeps events EventBridge could not deliver."""
    function.configure_async_invoke(
        on_failure=destinations.SqsDestination(queue), retry_attempts=ASYNC_RETRIES, max_event_age=ASYNC_MAX_AGE
    )


def dead_letter_queue(
    scope: Construct,
    construct_id: str,
    key: kms.IKey | None,
    holds: str,
    *,
    consumed_by: Duration | None = None,
    redrive_to: sqs.IQueue | None = None,
) -> tuple[sqs.Queue, cloudwatch.Alarm]:
    """A queue keeping what could not be delivered for 14 days, with an alarm as soon as anything lands in it.

    ``consumed_by`` (the consuming function's timeout) makes it a queue a function reads: messages stay invisible
    six times that long while read (AWS's advice for Lambda event sources), go to ``redrive_to`` after
    FAILED_REPORT_RECEIVES reads that failed, and the alarm counts messages sent, since a consumed queue's
    visible messages would not show them.
    """
    queue = sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.KMS if key else sqs.QueueEncryption.SQS_MANAGED,
        encryption_master_key=key,
        enforce_ssl=True,
        retention_period=Duration.days(14),
        visibility_timeout=Duration.seconds(6 * consumed_by.to_seconds()) if consumed_by else None,
        dead_letter_queue=(
            sqs.DeadLetterQueue(queue=redrive_to, max_receive_count=FAILED_REPORT_RECEIVES) if redrive_to else None
        ),
    )
    if redrive_to is None:
        acknowledge(queue, "AwsSolutions::AwsSolutions-SQS3", f"This queue is itself a dead-letter queue: {holds}.")
    metric = (
        queue.metric_number_of_messages_sent(period=Duration.minutes(5), statistic="Sum")
        if consumed_by
        else queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(5))
    )
    alarm = cloudwatch.Alarm(
        scope,
        f"{construct_id}Alarm",
        alarm_description=f"Batchline dead-letter queue received {holds}",
        metric=metric,
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
    """S3 "Object Created" in the inbox -> StartRun, with retries, a dead-letter queue for what EventBridge could
    not deliver and a queue for what StartRun failed on (``failed_invocations``, also ExecutionEnded's).

    StartRun starts the state machine (its ARN in STATE_MACHINE_ARN, granted here) and publishes the failure
    event of an upload under an unknown prefix itself.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        inbox: s3.IBucket,
        functions: Functions,
        state_machine: sfn.IStateMachine,
        bus: events.IEventBus,
        key: kms.IKey | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        # StartRun is outside the state machine, so it may depend on it (no cycle).
        starter = functions[STARTER]
        functions.add_environment(STARTER, "STATE_MACHINE_ARN", state_machine.state_machine_arn)
        state_machine.grant_start_execution(starter)
        bus.grant_put_events_to(starter)  # uploads under an unknown prefix still get a failure event
        self.dead_letters, self.dead_letters_alarm = dead_letter_queue(
            self, "StartDeadLetters", key, "upload or execution-end events no function could handle"
        )
        # What ReportFailedInvocation could not turn into a failure event, after FAILED_REPORT_RECEIVES tries.
        self.unreported, self.unreported_alarm = dead_letter_queue(
            self,
            "UnreportedFailures",
            key,
            "failed StartRun or ExecutionEnded invocations whose failure event could not be published",
        )
        self.failed_invocations, self.failed_invocations_alarm = dead_letter_queue(
            self,
            "FailedInvocations",
            key,
            "uploads or execution ends whose function (StartRun, ExecutionEnded) failed after its retries "
            "(each also got a failure event on the bus from ReportFailedInvocation)",
            consumed_by=Duration.seconds(function(FAILED_REPORTER).timeout_seconds),
            redrive_to=self.unreported,
        )
        keep_failed_invocations(starter, self.failed_invocations)
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
    FAILED executions whose own reporting steps ran. It reads the execution's history to find the run, stops its
    jobs, and publishes the failure event: both granted here."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        state_machine: sfn.StateMachine,
        functions: Functions,
        bus: events.IEventBus,
        dead_letters: sqs.IQueue,
        failed_invocations: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        handler = functions[ENDED_HANDLER]
        keep_failed_invocations(handler, failed_invocations)
        stack = Stack.of(self)
        handler.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:GetExecutionHistory"],
                resources=[
                    f"arn:{stack.partition}:states:{stack.region}:{stack.account}:execution:"
                    f"{state_machine.state_machine_name}:*"
                ],
            )
        )
        machine_id = stack.resolve(stack.get_logical_id(state_machine.node.default_child))  # type: ignore[arg-type]
        acknowledge(
            handler.role,  # type: ignore[arg-type]  # always set: Functions gives every function a role
            "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:"
            f"execution:<{machine_id}.Name>:*]",
            "History of this state machine's executions only; execution names are the run IDs, known at run time.",
        )
        bus.grant_put_events_to(handler)
        self.rule = events.Rule(
            self,
            "StoppedExecutions",
            description="Stops the jobs of Batchline runs stopped, timed out or failed uncaught, and reports them",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={
                    "status": ["ABORTED", "TIMED_OUT", "FAILED"],
                    "stateMachineArn": [state_machine.state_machine_arn],
                },
            ),
            targets=[
                targets.LambdaFunction(
                    handler, retry_attempts=8, max_event_age=Duration.hours(6), dead_letter_queue=dead_letters
                )
            ],
        )


class FailedInvocationReporter(Construct):
    """The FailedInvocations queue -> ReportFailedInvocation, which publishes the failure event of an upload
    StartRun could not start, or of a run ExecutionEnded could not report (batchline.steps.failed_invocation).

    Granted here: reading the queue (partial batch failures: a record it cannot handle is received again, then
    moves to the UnreportedFailures queue), the state machine's ARN to look for the upload's execution and the
    history of a FAILED one, the bus, and the reported-run marker (``<pipeline>/<run-id>/state/ended.json``,
    shared with ExecutionEnded) in the work bucket. Reading the upload is its catalogue entry's (inbox).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        queue: sqs.IQueue,
        functions: Functions,
        state_machine: sfn.StateMachine,
        bus: events.IEventBus,
        work: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        reporter = functions[FAILED_REPORTER]
        reporter.add_event_source(event_sources.SqsEventSource(queue, batch_size=10, report_batch_item_failures=True))
        functions.add_environment(FAILED_REPORTER, "STATE_MACHINE_ARN", state_machine.state_machine_arn)
        stack = Stack.of(self)
        executions = (
            f"arn:{stack.partition}:states:{stack.region}:{stack.account}:execution:"
            f"{state_machine.state_machine_name}:*"
        )
        reporter.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution", "states:GetExecutionHistory"], resources=[executions]
            )
        )
        machine_id = stack.resolve(stack.get_logical_id(state_machine.node.default_child))  # type: ignore[arg-type]
        acknowledge(
            reporter.role,  # type: ignore[arg-type]  # always set: Functions gives every function a role
            "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:"
            f"execution:<{machine_id}.Name>:*]",
            "This state machine's executions only; execution names are the run IDs, known at run time.",
        )
        bus.grant_put_events_to(reporter)
        # The marker only: HEAD (a 404 needs ListBucket) and write it once the event is published.
        reporter.add_to_role_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[work.bucket_arn]))
        reporter.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject"], resources=[work.arn_for_objects("*/state/ended.json")]
            )
        )
        work_id = stack.resolve(stack.get_logical_id(work.node.default_child))  # type: ignore[arg-type]
        acknowledge(
            reporter.role,  # type: ignore[arg-type]
            f"AwsSolutions::AwsSolutions-IAM5[Resource::<{work_id}.Arn>/*/state/ended.json]",
            "Each run's reported-run marker, one object per run under <pipeline>/<run-id>/state/.",
        )


class JobEndWake(Construct):
    """The services' job end events wake the job's waiting execution (batchline.steps.wake): one rule per service
    that announces its jobs (SageMaker, Bedrock) on the account's default bus (where AWS services publish), for
    Batchline's job names only, targeting WakeJob, which resumes the wait with SendTaskSuccess (granted here).

    An event is only a wake-up: a lost one (Bedrock's are best effort) or a failed invocation costs at most one
    poll interval, so failed deliveries go to the dead-letter queues for the record, not for a retry by hand.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Functions,
        dead_letters: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        handler = functions[WAKE_HANDLER]
        # A wake that failed after its retries costs one poll interval: kept with the failed deliveries for the
        # record, not in FailedInvocations, whose reader publishes failure events for uploads and runs.
        keep_failed_invocations(handler, dead_letters)
        # SendTaskSuccess has no resource-level permission: the task token is the capability.
        handler.add_to_role_policy(iam.PolicyStatement(actions=["states:SendTaskSuccess"], resources=["*"]))
        acknowledge(
            handler.role,  # type: ignore[arg-type]  # always set: Functions gives every function a role
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            "states:SendTaskSuccess has no resource-level permissions (the task token names the task); X-Ray "
            "tracing likewise.",
        )
        self.rules: dict[str, events.Rule] = {}
        for known in SOURCES:
            pattern = known.pattern()
            self.rules[known.provider] = events.Rule(
                self,
                f"{known.provider.capitalize()}JobEnds",
                description=f"Wakes the Batchline job waiting for this {known.detail_type} (its next poll reads it)",
                event_pattern=events.EventPattern(
                    source=pattern["source"], detail_type=pattern["detail-type"], detail=pattern["detail"]
                ),
                targets=[
                    targets.LambdaFunction(
                        handler, retry_attempts=4, max_event_age=Duration.hours(1), dead_letter_queue=dead_letters
                    )
                ],
            )
