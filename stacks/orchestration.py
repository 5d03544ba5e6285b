"""The Standard state machine, defined by the ASL file and filled in with definition_substitutions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from batchline.functions import placeholders
from constructs import Construct

from stacks.nag import acknowledge

ASL_FILE = Path(__file__).resolve().parent.parent / "statemachine" / "batch_prediction.asl.json"
# Placeholder -> the function whose ARN fills it, from the catalogue (the others: the bus name, the dead-letter
# queue URL and the work bucket).
FUNCTION_PLACEHOLDERS = placeholders()
SUBSTITUTION_KEYS = frozenset({*FUNCTION_PLACEHOLDERS, "EventBusName", "EventDeadLetterQueueUrl", "WorkBucketName"})


def placeholders_in(asl_text: str) -> set[str]:
    """The ``${Name}`` placeholders of an ASL text: what definition_substitutions must fill, no more, no less."""
    return set(re.findall(r"\$\{(\w+)\}", asl_text))


class Orchestration(Construct):
    """The state machine (``state_machine``), its execution log group (``log_group``) and role (``role``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Mapping[str, lambda_.IFunction],
        bus: events.IEventBus,
        undelivered: sqs.IQueue,
        work: s3.IBucket,
        key: kms.IKey | None = None,
        remove_on_destroy: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # A fixed name: the Distributed Map's grants name this state machine, and a generated name would make
        # the role's policy depend on the state machine that depends on it.
        name = f"{stack.stack_name}-batch-prediction"
        substitutions = {key: functions[name].function_arn for key, name in FUNCTION_PLACEHOLDERS.items()}
        substitutions["EventBusName"] = bus.event_bus_name
        substitutions["EventDeadLetterQueueUrl"] = undelivered.queue_url
        substitutions["WorkBucketName"] = work.bucket_name  # the Distributed Maps' ResultWriter
        # Under /aws/vendedlogs/: CloudWatch Logs' resource policy for vended logs (the state machine's delivery)
        # has a size limit, and log groups under this prefix are covered by one entry instead of one each.
        self.log_group = log_group = logs.LogGroup(
            self,
            "ExecutionLogs",
            log_group_name=f"/aws/vendedlogs/states/{name}",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=RemovalPolicy.DESTROY if remove_on_destroy else RemovalPolicy.RETAIN,
            encryption_key=key,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "BatchPrediction",
            state_machine_name=name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_file(str(ASL_FILE)),
            definition_substitutions=substitutions,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            tracing_enabled=True,
            encryption_configuration=sfn.CustomerManagedEncryptionConfiguration(key) if key else None,
        )
        # CDK cannot see inside the file: grant exactly what it calls. Its Task states invoke the functions by
        # their unqualified ARNs, so no version or alias (function:*) is granted.
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"],
                resources=[functions[name].function_arn for name in FUNCTION_PLACEHOLDERS.values()],
            )
        )
        # The Distributed Map (CollectUnits) runs its children as executions of this state machine and reads its
        # items from the plan PlanCollect writes to the work bucket.
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:StartExecution"],
                resources=[
                    stack.format_arn(
                        service="states",
                        resource="stateMachine",
                        resource_name=name,
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        child_executions = stack.format_arn(
            service="states", resource="execution", resource_name=f"{name}/*", arn_format=ArnFormat.COLON_RESOURCE_NAME
        )
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution", "states:StopExecution"], resources=[child_executions]
            )
        )
        # The Distributed Maps read their plans, one object per run under <pipeline>/<run-id>/.
        plans = {
            "collect/units.json": "Collect's plan",
            "state/jobs.json": "the run's jobs",
            "prepare/shards.json": "Prepare's plan of shards",
            "prepare/redo.json": "the shards Prepare reads again",
        }
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[work.arn_for_objects(f"*/{plan}") for plan in plans]
            )
        )
        # Their children's results go to S3 (ResultWriter) under map-runs/, so no Map's result grows the state.
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"],
                resources=[work.arn_for_objects("map-runs/*")],
            )
        )
        work_arn = stack.resolve(work.bucket_arn)["Fn::GetAtt"][0]
        acknowledge(
            self.state_machine,
            f"AwsSolutions::AwsSolutions-IAM5[Resource::<{work_arn}.Arn>/map-runs/*]",
            "The Distributed Maps' ResultWriter writes one folder per Map Run, named by Step Functions.",
        )
        for plan, what in plans.items():
            acknowledge(
                self.state_machine,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::<{work_arn}.Arn>/*/{plan}]",
                f"A Distributed Map reads {what}, one object per run under <pipeline>/<run-id>/.",
            )
        acknowledge(
            self.state_machine,
            f"AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:"
            f"execution:{name}/*]",
            "The Distributed Map's child executions of this state machine, named by Step Functions at run time.",
        )
        bus.grant_put_events_to(self.state_machine)  # events:putEvents tasks (the run's outcome event)
        undelivered.grant_send_messages(self.state_machine)  # sqs:sendMessage tasks (events the bus refused)
        acknowledge(
            self.state_machine,
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            "Execution logging and tracing: CloudWatch Logs delivery (logs:CreateLogDelivery and friends) and "
            "X-Ray (xray:PutTraceSegments, GetSamplingRules) have no resource-level permissions.",
        )
        self.role: iam.IRole = self.state_machine.role
