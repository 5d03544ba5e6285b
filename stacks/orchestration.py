"""The Standard state machine, defined by the ASL file and filled in with definition_substitutions."""

from __future__ import annotations

import re
from pathlib import Path

from aws_cdk import RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

ASL_FILE = Path(__file__).resolve().parent.parent / "statemachine" / "batch_prediction.asl.json"
# Placeholder -> the function whose ARN fills it (the rest: EventBusName).
FUNCTION_PLACEHOLDERS = {
    "PrepareInputFunctionArn": "PrepareInput",
    "SubmitJobFunctionArn": "SubmitJob",
    "PollJobFunctionArn": "PollJob",
    "CollectOutputFunctionArn": "CollectOutput",
    "FinalizeRunFunctionArn": "FinalizeRun",
    "ReportFailureFunctionArn": "ReportFailure",
}
SUBSTITUTION_KEYS = frozenset({*FUNCTION_PLACEHOLDERS, "EventBusName", "EventDeadLetterQueueUrl"})


def placeholders_in(asl_text: str) -> set[str]:
    return set(re.findall(r"\$\{(\w+)\}", asl_text))


class Orchestration(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: dict[str, lambda_.IFunction],
        bus: events.IEventBus,
        undelivered: sqs.IQueue,
        key: kms.IKey | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        substitutions = {key: functions[name].function_arn for key, name in FUNCTION_PLACEHOLDERS.items()}
        substitutions["EventBusName"] = bus.event_bus_name
        substitutions["EventDeadLetterQueueUrl"] = undelivered.queue_url
        log_group = logs.LogGroup(
            self,
            "ExecutionLogs",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=RemovalPolicy.RETAIN,
            encryption_key=key,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "BatchPrediction",
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_file(str(ASL_FILE)),
            definition_substitutions=substitutions,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            tracing_enabled=True,
            encryption_configuration=sfn.CustomerManagedEncryptionConfiguration(key) if key else None,
        )
        # CDK cannot see inside the file: grant exactly what it calls.
        for name in FUNCTION_PLACEHOLDERS.values():
            functions[name].grant_invoke(self.state_machine)
        bus.grant_put_events_to(self.state_machine)
        undelivered.grant_send_messages(self.state_machine)
        self.role: iam.IRole = self.state_machine.role
