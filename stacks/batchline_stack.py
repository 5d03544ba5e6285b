"""The Batchline stack: storage, functions, orchestration and events, wired with least privilege."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Fn, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from batchline.config import PIPELINES_FILE_ENV, SERVICE_ROLES_ENV, Pipelines, VertexSettings
from constructs import Construct

from stacks.encryption import Encryption
from stacks.functions import CONFIG_LAYER_DIR, Functions
from stacks.nag import acknowledge
from stacks.notifications import EventBus, ExecutionEndWatcher, UploadTrigger
from stacks.orchestration import Orchestration
from stacks.provider_permissions import model_lookup_statements, provider_statements
from stacks.service_roles import ServiceRoles
from stacks.storage import Storage

# Functions that call Google APIs for Vertex pipelines (staging, job create/poll/cancel, reading results).
GOOGLE_CALLERS = ("SubmitJob", "PollJob", "CollectOutput", "ReportFailure")
# A deployed role ARN is about this long; used to size the environment before tokens resolve.
_ROLE_ARN_ESTIMATE = 96


def allow_objects(function: lambda_.Function, bucket: s3.IBucket, *, read: bool = False, write: bool = False) -> None:
    """Object-level access without deletes: reads (with ListBucket, so a missing key is a 404) and/or writes."""
    actions = []
    if read:
        actions += ["s3:GetObject", "s3:GetObjectVersion"]
        function.add_to_role_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn]))
    if write:
        actions += ["s3:PutObject", "s3:AbortMultipartUpload"]
    function.add_to_role_policy(iam.PolicyStatement(actions=actions, resources=[bucket.arn_for_objects("*")]))


class BatchlineStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        pipelines: Pipelines,
        customer_managed_key: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        key = Encryption(self, "Encryption", customer_managed=customer_managed_key).key
        storage = Storage(self, "Storage", pipelines=pipelines, key=key)
        bus = EventBus(self, "Events", bus_name=f"{self.stack_name}-events", key=key)
        roles = ServiceRoles(self, "ServiceRoles", pipelines=pipelines, work=storage.work)

        environment = {
            PIPELINES_FILE_ENV: f"/opt/{CONFIG_LAYER_DIR}/pipelines.json",
            SERVICE_ROLES_ENV: self.to_json_string(roles.created),
            "INBOX_BUCKET": storage.inbox.bucket_name,
            "WORK_BUCKET": storage.work.bucket_name,
            "RESULTS_BUCKET": storage.results.bucket_name,
            "EVENT_BUS_NAME": bus.bus.event_bus_name,
            "BATCHLINE_RUNTIME": "aws",
            "POWERTOOLS_SERVICE_NAME": "batchline",
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }
        size = _ROLE_ARN_ESTIMATE * len(roles.created) + 700
        functions = Functions(
            self,
            "Functions",
            environment=environment,
            environment_size=size,
            pipelines_json=pipelines.to_env_json(),
            key=key,
        )
        orchestration = Orchestration(
            self, "Orchestration", functions=functions.by_name, bus=bus.bus, undelivered=bus.undelivered, key=key
        )
        trigger = UploadTrigger(self, "Uploads", inbox=storage.inbox, starter=functions["StartRun"], key=key)

        # Each function gets what its step does, next to the environment that names the resource.
        starter = functions["StartRun"]
        starter.add_environment("STATE_MACHINE_ARN", orchestration.state_machine.state_machine_arn)
        orchestration.state_machine.grant_start_execution(starter)
        allow_objects(starter, storage.inbox, read=True)  # HEAD of the uploaded version (size, ETag, decoded key)
        bus.bus.grant_put_events_to(starter)  # uploads under an unknown prefix still get a failure event

        allow_objects(functions["PrepareInput"], storage.inbox, read=True)
        allow_objects(functions["PrepareInput"], storage.work, read=True, write=True)
        for statement in model_lookup_statements(self, pipelines):
            functions["PrepareInput"].add_to_role_policy(statement)
        for name in ("SubmitJob", "PollJob", "ReportFailure"):
            allow_objects(functions[name], storage.work, read=True)
            for statement in provider_statements(self, pipelines, roles.role_arns, roles.passed_to):
                functions[name].add_to_role_policy(statement)
        allow_objects(functions["CollectOutput"], storage.work, read=True, write=True)
        allow_objects(functions["CollectOutput"], storage.results, write=True)
        for name in ("FinalizeRun", "ReportFailure", "ExecutionEnded"):
            allow_objects(functions[name], storage.work, read=True, write=True)
            allow_objects(functions[name], storage.results, read=True, write=True)

        ended = functions["ExecutionEnded"]
        ExecutionEndWatcher(
            self,
            "ExecutionEnds",
            state_machine_arn=orchestration.state_machine.state_machine_arn,
            handler=ended,
            dead_letters=trigger.dead_letters,
        )
        ended.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:GetExecutionHistory"],
                resources=[
                    f"arn:{self.partition}:states:{self.region}:{self.account}:execution:"
                    f"{orchestration.state_machine.state_machine_name}:*"
                ],
            )
        )
        acknowledge(
            ended,
            "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:"
            f"execution:<{self._logical(orchestration.state_machine)}.Name>:*]",
            "History of this state machine's executions only; execution names are the run IDs, known at run time.",
        )
        bus.bus.grant_put_events_to(ended)
        for statement in provider_statements(self, pipelines, roles.role_arns, roles.passed_to):
            ended.add_to_role_policy(statement)

        if key is not None:
            # Everything that reads or writes the encrypted buckets, queues and bus uses the key.
            for function in functions.by_name.values():
                key.grant_encrypt_decrypt(function)
            key.grant_encrypt_decrypt(orchestration.state_machine)
            for role in roles.created_roles:
                key.grant_encrypt_decrypt(role)
            kms_reason = "CDK's grant_encrypt_decrypt on this stack's one key: the wildcards are action variants."
            for holder in [*functions.by_name.values(), orchestration.state_machine, *roles.created_roles]:
                for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
                    acknowledge(holder, f"AwsSolutions::AwsSolutions-IAM5[Action::{action}]", kms_reason)
        self._acknowledge(functions, orchestration, storage)
        CfnOutput(self, "InboxBucketName", value=storage.inbox.bucket_name)
        CfnOutput(self, "WorkBucketName", value=storage.work.bucket_name)
        CfnOutput(self, "ResultsBucketName", value=storage.results.bucket_name)
        CfnOutput(self, "EventBusName", value=bus.bus.event_bus_name)
        CfnOutput(self, "StateMachineArn", value=orchestration.state_machine.state_machine_arn)
        CfnOutput(self, "StartDeadLetterQueueUrl", value=trigger.dead_letters.queue_url)
        CfnOutput(self, "UndeliveredEventsQueueUrl", value=bus.undelivered.queue_url)
        if any(isinstance(p.service, VertexSettings) for p in pipelines.pipelines.values()):
            # The roles that exchange AWS credentials for Google tokens: bind these in the GCP provider.
            google_callers = [functions[name].role.role_arn for name in GOOGLE_CALLERS]  # type: ignore[union-attr]
            CfnOutput(self, "GoogleFederatedRoleArns", value=Fn.join(",", google_callers))

    def _acknowledge(self, functions: Functions, orchestration: Orchestration, storage: Storage) -> None:
        """Name each wildcard finding cdk-nag reports and say why it is the narrowest grant available."""
        bucket_objects = (
            "Objects of this stack's bucket: runs write keys they choose at run time (<pipeline>/<run-id>/...)."
        )
        job_prefix = "Jobs are named at run time from the run ID; every name starts with this fixed prefix."
        findings = {
            "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSLambdaBasicExecutionRole]": "The basic execution role only lets a function write its own logs.",
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]": (
                "X-Ray PutTraceSegments/PutTelemetryRecords and Bedrock ListModelInvocationJobs have no "
                "resource-level permissions."
            ),
            **{
                f"AwsSolutions::AwsSolutions-IAM5[Resource::<{self._logical(bucket)}.Arn>/*]": bucket_objects
                for bucket in (storage.inbox, storage.work, storage.results)
            },
            **{
                f"AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:{service}:<AWS::Region>:"
                f"<AWS::AccountId>:{resource}]": job_prefix
                for service, resource in (
                    ("sagemaker", "transform-job/bl-*"),
                    ("personalize", "batch-inference-job/bl-*"),
                    ("personalize", "batch-segment-job/bl-*"),
                    ("machinelearning", "datasource/ds-*"),
                    ("machinelearning", "batchprediction/bp-*"),
                )
            },
            "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:bedrock:<AWS::Region>:<AWS::AccountId>:"
            "model-invocation-job/*]": "Bedrock generates job IDs, so job ARNs are not known before creation.",
        }
        for function in functions.by_name.values():
            for finding, reason in findings.items():
                acknowledge(function, finding, reason)
        for function in functions.by_name.values():
            acknowledge(
                orchestration.state_machine,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::<{self._logical(function)}.Arn>:*]",
                "CDK's grant_invoke also covers the function's versions and aliases (function:*).",
            )
        acknowledge(
            orchestration.state_machine,
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            "X-Ray and CloudWatch Logs delivery for the state machine have no resource-level permissions.",
        )

    def _logical(self, construct: Any) -> str:
        return str(self.resolve(self.get_logical_id(construct.node.default_child)))
