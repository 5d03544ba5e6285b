"""The Batchline stack: storage, functions, orchestration and events, wired with least privilege.

Construct attributes others may need: ``storage`` (``inbox``, ``work``, ``results``, ``access_logs``),
``bus`` (``bus``, ``undelivered``), ``functions`` (``by_name``, ``log_groups``), ``orchestration``
(``state_machine``, ``log_group``, ``role``), ``uploads`` (``rule``, ``dead_letters``), ``roles``,
``monitoring`` (``dashboard``, ``alarms``), ``event_schema`` (``registry``, ``schema``), ``subscriptions``
(``failure_topic``, ``success_queue``, ``dead_letters``; None unless configured).
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import CfnOutput, Fn, Stack
from aws_cdk import aws_iam as iam
from batchline.config import PIPELINES_FILE_ENV, SERVICE_ROLES_ENV, Pipelines, StackSettings, VertexSettings
from constructs import Construct

from stacks.encryption import Encryption
from stacks.event_schema import EventSchema
from stacks.functions import CONFIG_LAYER_DIR, Functions
from stacks.monitoring import Monitoring
from stacks.nag import acknowledge
from stacks.notifications import EventBus, ExecutionEndWatcher, UploadTrigger
from stacks.orchestration import Orchestration
from stacks.provider_permissions import job_permissions, model_lookup_permissions
from stacks.service_roles import ServiceRoles
from stacks.storage import Storage, grant_discard_staged_parts, grant_job_state, grant_objects
from stacks.subscriptions import Subscriptions

# Functions that call Google APIs for Vertex pipelines (staging, job create/poll/cancel, reading results).
GOOGLE_CALLERS = ("SubmitJob", "PollJob", "PlanCollect", "CollectUnit", "AssembleOutput", "ReportFailure")
# Functions that create, poll or stop service jobs.
JOB_CALLERS = ("SubmitJob", "PollJob", "ReportFailure", "ExecutionEnded")
# A role ARN the stack creates is at most this long (CloudFormation role names are capped at 64 characters).
ROLE_ARN_MAX = len("arn:aws-us-gov:iam::123456789012:role/") + 64


class BatchlineStack(Stack):
    """Uploads in, one keyed CSV and one event out, per run."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        pipelines: Pipelines,
        settings: StackSettings | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        settings = settings or StackSettings()
        key = Encryption(self, "Encryption", customer_managed=settings.customer_managed_key).key
        self.storage = storage = Storage(self, "Storage", pipelines=pipelines, key=key)
        self.bus = bus = EventBus(self, "Events", bus_name=f"{self.stack_name}-events", key=key)
        self.event_schema = event_schema = EventSchema(self, "EventSchema", registry_name=f"{self.stack_name}-events")
        self.roles = roles = ServiceRoles(self, "ServiceRoles", pipelines=pipelines, work=storage.work)

        # The variables every function has (same names everywhere); each function's grants follow below.
        environment = {
            PIPELINES_FILE_ENV: f"/opt/{CONFIG_LAYER_DIR}/pipelines.json",
            SERVICE_ROLES_ENV: self.to_json_string(roles.created),
            "INBOX_BUCKET": storage.inbox.bucket_name,
            "WORK_BUCKET": storage.work.bucket_name,
            "RESULTS_BUCKET": storage.results.bucket_name,
            "EVENT_BUS_NAME": bus.bus.event_bus_name,
            "BATCHLINE_RUNTIME": "aws",
        }
        roles_json_size = len(json.dumps({name: "x" * ROLE_ARN_MAX for name in roles.created}))
        self.functions = functions = Functions(
            self,
            "Functions",
            environment=environment,
            size_estimates={SERVICE_ROLES_ENV: roles_json_size},
            pipelines_json=pipelines.to_env_json(),
            key=key,
        )
        self.orchestration = orchestration = Orchestration(
            self,
            "Orchestration",
            functions=functions.by_name,
            bus=bus.bus,
            undelivered=bus.undelivered,
            work=storage.work,
            key=key,
        )
        state_machine = orchestration.state_machine
        self.uploads = uploads = UploadTrigger(
            self, "Uploads", inbox=storage.inbox, starter=functions["StartRun"], key=key
        )

        # StartRun is outside the state machine, so it may depend on it (no cycle).
        starter = functions["StartRun"]
        functions.add_environment("StartRun", "STATE_MACHINE_ARN", state_machine.state_machine_arn)
        state_machine.grant_start_execution(starter)
        grant_objects(starter, storage.inbox, read=True)  # HEAD of the uploaded version (size, ETag, decoded key)
        bus.bus.grant_put_events_to(starter)  # uploads under an unknown prefix still get a failure event

        grant_objects(functions["PrepareInput"], storage.inbox, read=True)
        grant_objects(functions["PrepareInput"], storage.work, read=True, write=True)
        grant_discard_staged_parts(functions["PrepareInput"], storage.work)  # a discarded read's parts
        model_lookup_permissions(self, pipelines).apply_to(functions["PrepareInput"])

        jobs = job_permissions(self, pipelines, roles.role_arns, roles.passed_to)
        for name in JOB_CALLERS:
            jobs.apply_to(functions[name])
        for name in ("SubmitJob", "PollJob"):
            grant_objects(functions[name], storage.work, read=True)
            grant_job_state(functions[name], storage.work)  # each job's execution records its looks in S3
        # Collect: raw output and the staged index in, units' parts and summaries out (work bucket); Assemble
        # copies the parts into predictions.csv (results bucket) and aborts a multipart upload it cannot finish.
        for name in ("PlanCollect", "CollectUnit", "AssembleOutput"):
            grant_objects(functions[name], storage.work, read=True, write=True)
        grant_objects(functions["AssembleOutput"], storage.results, write=True)
        functions["AssembleOutput"].add_to_role_policy(
            iam.PolicyStatement(actions=["s3:AbortMultipartUpload"], resources=[storage.results.arn_for_objects("*")])
        )
        for name in ("FinalizeRun", "ReportFailure", "ExecutionEnded"):
            grant_objects(functions[name], storage.work, read=True, write=True)
            grant_objects(functions[name], storage.results, read=True, write=True)

        ended = functions["ExecutionEnded"]
        ExecutionEndWatcher(
            self,
            "ExecutionEnds",
            state_machine_arn=state_machine.state_machine_arn,
            handler=ended,
            dead_letters=uploads.dead_letters,
        )
        ended.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:GetExecutionHistory"],
                resources=[
                    f"arn:{self.partition}:states:{self.region}:{self.account}:execution:"
                    f"{state_machine.state_machine_name}:*"
                ],
            )
        )
        acknowledge(
            ended.role,  # type: ignore[arg-type]  # always set: Functions gives every function a role
            "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:"
            f"execution:<{self._logical(state_machine)}.Name>:*]",
            "History of this state machine's executions only; execution names are the run IDs, known at run time.",
        )
        bus.bus.grant_put_events_to(ended)

        if key is not None:
            # Everything that reads or writes the encrypted buckets, queues and bus uses the key.
            kms_reason = "CDK's grant_encrypt_decrypt on this stack's one key: the wildcards are action variants."
            holders: list[iam.IRole] = [
                *(function.role for function in functions.by_name.values() if function.role),
                state_machine.role,
                *roles.created_roles,
            ]
            for role in holders:
                key.grant_encrypt_decrypt(role)
                for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
                    acknowledge(role, f"AwsSolutions::AwsSolutions-IAM5[Action::{action}]", kms_reason)

        self.subscriptions = subscriptions = Subscriptions(
            self, "Subscriptions", bus=bus.bus, settings=settings.subscriptions, key=key
        )
        dead_letter_queues = {
            "Undelivered outcome events": (bus.undelivered, bus.undelivered_alarm),
            "Unhandled uploads and execution ends": (uploads.dead_letters, uploads.dead_letters_alarm),
        }
        if subscriptions.dead_letters and subscriptions.dead_letters_alarm:
            dead_letter_queues["Subscribers' undelivered events"] = (
                subscriptions.dead_letters,
                subscriptions.dead_letters_alarm,
            )
        self.monitoring = monitoring = Monitoring(
            self,
            "Monitoring",
            pipelines=pipelines,
            settings=settings,
            state_machine=state_machine,
            functions=functions.by_name,
            dead_letter_queues=dead_letter_queues,
        )

        CfnOutput(self, "InboxBucketName", value=storage.inbox.bucket_name)
        CfnOutput(self, "WorkBucketName", value=storage.work.bucket_name)
        CfnOutput(self, "ResultsBucketName", value=storage.results.bucket_name)
        CfnOutput(self, "EventBusName", value=bus.bus.event_bus_name)
        CfnOutput(self, "StateMachineArn", value=state_machine.state_machine_arn)
        CfnOutput(self, "StartDeadLetterQueueUrl", value=uploads.dead_letters.queue_url)
        CfnOutput(self, "UndeliveredEventsQueueUrl", value=bus.undelivered.queue_url)
        # The `batchline` CLI checks a pipeline name against this before it uploads anything.
        CfnOutput(self, "PipelineNames", value=",".join(sorted(pipelines.pipelines)))
        CfnOutput(self, "DashboardName", value=monitoring.dashboard.dashboard_name)
        CfnOutput(self, "EventSchemaRegistryName", value=event_schema.registry.attr_registry_name)
        CfnOutput(self, "EventSchemaName", value=event_schema.schema.attr_schema_name)
        if subscriptions.failure_topic:
            CfnOutput(self, "FailureTopicArn", value=subscriptions.failure_topic.topic_arn)
        if subscriptions.success_queue:
            CfnOutput(self, "SuccessQueueUrl", value=subscriptions.success_queue.queue_url)
        if any(isinstance(p.service, VertexSettings) for p in pipelines.pipelines.values()):
            # The roles that exchange AWS credentials for Google tokens: bind these in the GCP provider.
            google_callers = [functions[name].role.role_arn for name in GOOGLE_CALLERS]  # type: ignore[union-attr]
            CfnOutput(self, "GoogleFederatedRoleArns", value=Fn.join(",", google_callers))

    def _logical(self, construct: Any) -> str:
        return str(self.resolve(self.get_logical_id(construct.node.default_child)))
