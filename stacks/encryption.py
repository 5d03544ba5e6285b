"""The optional customer-managed KMS key (context ``batchline.customerManagedKey: true``).

When on, one rotating key encrypts the inbox, work and results buckets, the queues, the event bus, the
log groups, the state machine's data and the functions' environment. The access-log bucket stays on
SSE-S3: S3 server access logging cannot write to a KMS-encrypted bucket.
"""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.nag import acknowledge


class Encryption(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, customer_managed: bool) -> None:
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
            removal_policy=RemovalPolicy.RETAIN,
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
