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
from batchline.config import PIPELINES_FILE_ENV, SERVICE_ROLES_ENV, Pipelines, VertexSettings
from batchline.functions import CATALOGUE
from constructs import Construct

from stacks.encryption import Encryption
from stacks.event_schema import EventSchema
from stacks.functions import CONFIG_LAYER_DIR, Functions
from stacks.monitoring import Monitoring
from stacks.notifications import (
    EventBus,
    ExecutionEndWatcher,
    FailedInvocationReporter,
    JobEndWake,
    UploadTrigger,
)
from stacks.orchestration import Orchestration
from stacks.provider_permissions import grant_service_calls
from stacks.service_regions import require_service_regions
from stacks.service_roles import ServiceRoles
from stacks.settings import DeploymentSettings
from stacks.storage import Storage
from stacks.subscriptions import Subscriptions

# Functions that call Google APIs for Vertex pipelines (staging, job create/poll/cancel, reading results).
GOOGLE_CALLERS = tuple(spec.name for spec in CATALOGUE if spec.calls_google)
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
        settings: DeploymentSettings | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        settings = settings or DeploymentSettings()
        require_service_regions(self, pipelines)
        sandbox = settings.remove_on_destroy
        encryption = Encryption(
            self, "Encryption", customer_managed=settings.customer_managed_key, remove_on_destroy=sandbox
        )
        key = encryption.key
        self.storage = storage = Storage(self, "Storage", pipelines=pipelines, key=key, remove_on_destroy=sandbox)
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
            reserved_concurrency=settings.reserved_concurrency,
            remove_on_destroy=sandbox,
        )
        self.orchestration = orchestration = Orchestration(
            self,
            "Orchestration",
            functions=functions.by_name,
            bus=bus.bus,
            undelivered=bus.undelivered,
            work=storage.work,
            key=key,
            remove_on_destroy=sandbox,
        )
        state_machine = orchestration.state_machine
        # Each construct grants the functions what their catalogue entries declare for its concern.
        storage.grant_declared_access(functions.by_name)
        grant_service_calls(functions.by_name, pipelines, roles.role_arns, roles.passed_to)
        self.uploads = uploads = UploadTrigger(
            self,
            "Uploads",
            inbox=storage.inbox,
            functions=functions,
            state_machine=state_machine,
            bus=bus.bus,
            key=key,
        )
        ExecutionEndWatcher(
            self,
            "ExecutionEnds",
            state_machine=state_machine,
            functions=functions,
            bus=bus.bus,
            dead_letters=uploads.dead_letters,
            failed_invocations=uploads.failed_invocations,
        )
        JobEndWake(
            self,
            "JobEndWake",
            functions=functions,
            dead_letters=uploads.dead_letters,
        )
        FailedInvocationReporter(
            self,
            "FailedInvocationReports",
            queue=uploads.failed_invocations,
            functions=functions,
            state_machine=state_machine,
            bus=bus.bus,
            work=storage.work,
        )
        # Everything that reads or writes the encrypted buckets, queues and bus uses the key, and so do the roles
        # and services outside the stack that read and write the work bucket for the pipelines.
        encryption.grant_pipeline_principals(pipelines)
        encryption.grant_use(
            [
                *(function.role for function in functions.by_name.values() if function.role),
                state_machine.role,
                *roles.created_roles,
            ]
        )

        self.subscriptions = subscriptions = Subscriptions(
            self, "Subscriptions", bus=bus.bus, settings=settings.subscriptions, key=key
        )
        dead_letter_queues = {
            "Undelivered outcome events": (bus.undelivered, bus.undelivered_alarm),
            "Unhandled uploads and execution ends": (uploads.dead_letters, uploads.dead_letters_alarm),
            "Failed StartRun and ExecutionEnded invocations": (
                uploads.failed_invocations,
                uploads.failed_invocations_alarm,
            ),
            "Failed invocations left unreported": (uploads.unreported, uploads.unreported_alarm),
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
        CfnOutput(self, "FailedInvocationsQueueUrl", value=uploads.failed_invocations.queue_url)
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
