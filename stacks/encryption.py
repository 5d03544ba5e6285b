"""The optional customer-managed KMS key (context ``batchline.customerManagedKey: true``).

When on, one rotating key encrypts the inbox, work and results buckets, the queues, the event bus, the
log groups, the state machine's data and the functions' environment. The access-log bucket stays on
SSE-S3: S3 server access logging cannot write to a KMS-encrypted bucket.
"""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from batchline.config import AmazonMLSettings, BedrockSettings, PersonalizeSettings, Pipelines, SageMakerSettings
from constructs import Construct

from stacks.nag import acknowledge


class Encryption(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, customer_managed: bool, remove_on_destroy: bool = False
    ) -> None:
        super().__init__(scope, construct_id)
        self.key: kms.Key | None = None
        if not customer_managed:
            return
        stack = Stack.of(self)
        self.key = kms.Key(
            self,
            "Key",
            description="Batchline data, queues, events and logs",
            enable_key_rotation=True,
            # A sandbox's key is scheduled for deletion with its data; otherwise it outlives the stack with it.
            removal_policy=RemovalPolicy.DESTROY if remove_on_destroy else RemovalPolicy.RETAIN,
            pending_window=Duration.days(7) if remove_on_destroy else None,
        )
        # CloudWatch Logs encrypts log groups with the key only when its service principal may use it.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:*"
                        )
                    }
                },
            )
        )
        # EventBridge and S3 (EventBridge notifications) deliver to encrypted targets through the key.
        self.key.grant_encrypt_decrypt(iam.ServicePrincipal("events.amazonaws.com"))

    def grant_use(self, roles: Iterable[iam.IRole]) -> None:
        """Encrypt and decrypt with the key (nothing when there is none): every role that reads or writes the
        encrypted buckets, queues, bus, logs or state machine data."""
        if self.key is None:
            return
        reason = "CDK's grant_encrypt_decrypt on this stack's one key: the wildcards are action variants."
        for role in roles:
            self.key.grant_encrypt_decrypt(role)
            for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
                acknowledge(role, f"AwsSolutions::AwsSolutions-IAM5[Action::{action}]", reason)

    def grant_pipeline_principals(self, pipelines: Pipelines) -> None:
        """The principals outside the stack that read the staged input and write the output in the encrypted work
        bucket: the roles the pipelines name (a SageMaker model's role, Personalize and Bedrock roles) and the
        services that act as themselves (Personalize, Amazon ML). Nothing when there is no key."""
        if self.key is None:
            return
        stack = Stack.of(self)
        # The roles and Amazon ML reach the key only through S3 (the buckets' default encryption).
        via_s3 = {"StringEquals": {"kms:ViaService": f"s3.{stack.region}.amazonaws.com"}}
        data_key = ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
        # "Giving Amazon Personalize permission to use your AWS KMS key": the key policy must let Personalize
        # and its role Decrypt, GenerateDataKey, DescribeKey, CreateGrant and ListGrants
        # (https://docs.aws.amazon.com/personalize/latest/dg/granting-personalize-key-access.html).
        personalize_actions = [*data_key, "kms:CreateGrant", "kms:ListGrants"]
        roles: dict[str, list[str]] = {}
        services: set[str] = set()
        for pipeline in pipelines.pipelines.values():
            settings = pipeline.service
            if isinstance(settings, SageMakerSettings) and settings.model_execution_role_arn:
                roles.setdefault(settings.model_execution_role_arn, data_key)
            elif isinstance(settings, BedrockSettings) and settings.role_arn:
                roles.setdefault(settings.role_arn, data_key)
            elif isinstance(settings, PersonalizeSettings):
                services.add("personalize")
                if settings.role_arn:
                    roles[settings.role_arn] = personalize_actions
            elif isinstance(settings, AmazonMLSettings):
                services.add("machinelearning")
        for arn, actions in sorted(roles.items()):
            self.key.add_to_resource_policy(
                iam.PolicyStatement(
                    principals=[iam.ArnPrincipal(arn)],
                    actions=actions,
                    resources=["*"],  # in a key policy, "*" is this key
                    conditions=None if actions is personalize_actions else via_s3,
                )
            )
        if "personalize" in services:
            self.key.add_to_resource_policy(
                iam.PolicyStatement(
                    principals=[iam.ServicePrincipal("personalize.amazonaws.com")],
                    actions=personalize_actions,
                    resources=["*"],
                    # Against the confused deputy: Personalize acting for this account only.
                    conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
                )
            )
        if "machinelearning" in services:
            # Amazon ML may not send aws:SourceAccount (as in its bucket policy): scoped to S3 on its behalf.
            self.key.add_to_resource_policy(
                iam.PolicyStatement(
                    principals=[iam.ServicePrincipal("machinelearning.amazonaws.com")],
                    actions=data_key,
                    resources=["*"],
                    conditions=via_s3,
                )
            )
