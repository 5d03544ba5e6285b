"""Example subscribers on the project's bus, from context ``batchline.subscriptions`` (all off by default).

``failureEmail``: each Batch Prediction Failed event, as a few readable lines, to an address through an SNS
topic. ``successQueue``: Succeeded and Partially Succeeded events into an SQS queue for downstream jobs.
docs/events.md shows the same event patterns for subscribers who write their own rules.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as sns_subscriptions
from aws_cdk import aws_sqs as sqs
from batchline.config import SubscriptionSettings
from batchline.events import DETAIL_TYPES, SOURCE
from constructs import Construct

from stacks.nag import acknowledge
from stacks.notifications import dead_letter_queue

FAILED_RUNS = {"source": [SOURCE], "detail-type": [DETAIL_TYPES["FAILED"]]}
RUNS_WITH_PREDICTIONS = {
    "source": [SOURCE],
    "detail-type": [DETAIL_TYPES["SUCCEEDED"], DETAIL_TYPES["PARTIALLY_SUCCEEDED"]],
}
# A consumer that fails a message this many times leaves it in the dead-letter queue for a person to look at.
MAX_RECEIVES = 5


def _pattern(pattern: dict[str, list[str]]) -> events.EventPattern:
    return events.EventPattern(source=pattern["source"], detail_type=pattern["detail-type"])


def _field(path: str) -> str:
    return events.EventField.from_path(f"$.detail.{path}")


class Subscriptions(Construct):
    """``failure_topic`` and ``success_queue`` when configured (else None), and their ``dead_letters`` queue."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bus: events.IEventBus,
        settings: SubscriptionSettings,
        key: kms.IKey | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.failure_topic: sns.Topic | None = None
        self.success_queue: sqs.Queue | None = None
        self.dead_letters: sqs.Queue | None = None
        self.dead_letters_alarm: cloudwatch.Alarm | None = None
        if not (settings.failure_email or settings.success_queue):
            return
        # Events EventBridge could not deliver to a subscriber, and messages the downstream consumer gave up on.
        self.dead_letters, self.dead_letters_alarm = dead_letter_queue(
            self, "DeadLetters", key, "outcome events an example subscriber could not receive or process"
        )
        if settings.failure_email:
            self.failure_topic = self._failure_email(bus, settings.failure_email, key, self.dead_letters)
        if settings.success_queue:
            self.success_queue = self._success_queue(bus, key, self.dead_letters)

    def _failure_email(
        self, bus: events.IEventBus, address: str, key: kms.IKey | None, dead_letters: sqs.IQueue
    ) -> sns.Topic:
        topic = sns.Topic(self, "FailureTopic", display_name="Batchline run failures", master_key=key, enforce_ssl=True)
        if key is None:
            acknowledge(
                topic,
                "AwsSolutions::AwsSolutions-SNS2",
                "EventBridge cannot publish to a topic under the AWS-managed SNS key, and SNS has no other "
                "encryption at rest; customerManagedKey: true encrypts this topic with the stack's own key.",
            )
        topic.add_subscription(sns_subscriptions.EmailSubscription(address))
        # A role only this rule uses, rather than a topic policy letting any EventBridge rule publish.
        publisher = iam.Role(
            self,
            "FailurePublisher",
            description="Batchline failure events rule: publish to the failure email topic",
            assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
        )
        topic.grant_publish(publisher)  # and, with the stack's key, GenerateDataKey*/Decrypt on it
        if key is not None:
            acknowledge(
                publisher,
                "AwsSolutions::AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
                "Publishing to the topic encrypted with this stack's one key: the wildcard covers the "
                "GenerateDataKey variants SNS may call.",
            )
        message = events.RuleTargetInput.from_text(
            f"Batchline run {_field('runId')} of pipeline {_field('pipeline')} failed: {_field('error.error')}. "
            f"{_field('error.cause')} (upload s3://{_field('input.bucket')}/{_field('input.key')})"
        )
        events.Rule(
            self,
            "FailedRuns",
            description="Batchline failure events to the failure email topic",
            event_bus=bus,
            event_pattern=_pattern(FAILED_RUNS),
            targets=[
                targets.SnsTopic(
                    topic,
                    message=message,
                    role=publisher,
                    retry_attempts=8,
                    max_event_age=Duration.hours(6),
                    dead_letter_queue=dead_letters,
                )
            ],
        )
        return topic

    def _success_queue(self, bus: events.IEventBus, key: kms.IKey | None, dead_letters: sqs.IQueue) -> sqs.Queue:
        queue = sqs.Queue(
            self,
            "SuccessQueue",
            encryption=sqs.QueueEncryption.KMS if key else sqs.QueueEncryption.SQS_MANAGED,
            encryption_master_key=key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=MAX_RECEIVES, queue=dead_letters),
        )
        events.Rule(
            self,
            "RunsWithPredictions",
            description="Batchline success and partial-success events to the downstream queue",
            event_bus=bus,
            event_pattern=_pattern(RUNS_WITH_PREDICTIONS),
            targets=[
                targets.SqsQueue(
                    queue, retry_attempts=8, max_event_age=Duration.hours(6), dead_letter_queue=dead_letters
                )
            ],
        )
        return queue
