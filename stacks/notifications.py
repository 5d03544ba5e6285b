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
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
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


def keep_failed_invocations(function: lambda_.IFunction, queue: sqs.IQueue) -> None:
    """Lambda's on-failure destination: an event whose invocations all failed is kept in ``queue`` (with the
    error), where the target's dead-letter queue only keeps events EventBridge could not deliver."""
    function.configure_async_invoke(
        on_failure=destinations.SqsDestination(queue), retry_attempts=ASYNC_RETRIES, max_event_age=ASYNC_MAX_AGE
    )


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
        self.failed_invocations, self.failed_invocations_alarm = dead_letter_queue(
            self,
            "FailedInvocations",
            key,
            "uploads or execution ends whose function (StartRun, ExecutionEnded) failed after its retries",
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
        failed_invocations: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        handler = functions[WAKE_HANDLER]
        keep_failed_invocations(handler, failed_invocations)
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
