"""Example subscribers: off by default; from config, a failure email and a success queue on the project's bus."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from stacks.app_factory import ROOT, cdk_json_context
from tests.stacks.conftest import actions_of, logical_id, policy_statements, resources, synth_with_pipelines

PIPELINES = cdk_json_context()["batchline"]["pipelines"]
EMAIL = "ml-ops@example.com"
FAILED = {"source": ["batchline"], "detail-type": ["Batch Prediction Failed"]}
WITH_PREDICTIONS = {
    "source": ["batchline"],
    "detail-type": ["Batch Prediction Succeeded", "Batch Prediction Partially Succeeded"],
}


@pytest.fixture(scope="module")
def subscribed() -> Template:
    return synth_with_pipelines(PIPELINES, subscriptions={"failureEmail": EMAIL, "successQueue": True})


def rules_on_the_bus(template: Template) -> dict[str, dict[str, Any]]:
    return {
        name: rule["Properties"]
        for name, rule in resources(template, "AWS::Events::Rule").items()
        if "EventBusName" in rule["Properties"]
    }


def documented_patterns() -> list[dict[str, Any]]:
    """The event patterns docs/events.md shows: its JSON blocks that are patterns (not events or config excerpts)."""
    text = (ROOT / "docs" / "events.md").read_text()
    patterns = []
    for block in re.findall(r"```json\n(.*?)\n```", text, re.DOTALL):
        if block.startswith('{"source"'):
            patterns.append(json.loads(block))
    return patterns


def test_without_subscriptions_nothing_listens_on_the_bus(template: Template) -> None:
    assert rules_on_the_bus(template) == {}
    assert resources(template, "AWS::SNS::Topic") == {}
    assert len(resources(template, "AWS::SQS::Queue")) == 4  # only the stack's own dead-letter queues
    assert not template.find_outputs("FailureTopicArn") and not template.find_outputs("SuccessQueueUrl")


def test_failure_events_reach_the_email_as_one_readable_line(subscribed: Template) -> None:
    topic = logical_id(subscribed, "AWS::SNS::Topic", "FailureTopic")
    subscribed.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": EMAIL, "TopicArn": {"Ref": topic}}
    )
    [rule] = [r for r in rules_on_the_bus(subscribed).values() if r["EventPattern"] == FAILED]
    [target] = rule["Targets"]
    assert target["Arn"] == {"Ref": topic}
    transformer = target["InputTransformer"]
    assert set(transformer["InputPathsMap"].values()) == {
        "$.detail.runId",
        "$.detail.pipeline",
        "$.detail.error.error",
        "$.detail.error.cause",
        "$.detail.input.bucket",
        "$.detail.input.key",
    }
    assert transformer["InputTemplate"].startswith('"Batchline run <detail-runId> of pipeline <detail-pipeline> failed')
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 21600}
    # Published through a role only this rule uses (sns:Publish on this topic), not a topic policy for any rule.
    publisher = logical_id(subscribed, "AWS::IAM::Role", "FailurePublisher")
    assert target["RoleArn"] == {"Fn::GetAtt": [publisher, "Arn"]}
    statements = policy_statements(subscribed, "FailurePublisher")
    assert actions_of(statements) == {"sns:Publish"} and statements[0]["Resource"] == {"Ref": topic}
    [topic_policy] = resources(subscribed, "AWS::SNS::TopicPolicy").values()
    [deny] = topic_policy["Properties"]["PolicyDocument"]["Statement"]  # TLS only, no allow for EventBridge
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_runs_with_predictions_reach_an_encrypted_tls_only_queue_with_a_dead_letter_queue(
    subscribed: Template,
) -> None:
    queue = logical_id(subscribed, "AWS::SQS::Queue", "SuccessQueue")
    dead_letters = logical_id(subscribed, "AWS::SQS::Queue", "SubscriptionsDeadLetters")
    props = resources(subscribed, "AWS::SQS::Queue")[queue]["Properties"]
    assert props["SqsManagedSseEnabled"] is True
    assert props["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dead_letters, "Arn"]},
        "maxReceiveCount": 5,
    }
    [rule] = [r for r in rules_on_the_bus(subscribed).values() if r["EventPattern"] == WITH_PREDICTIONS]
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [queue, "Arn"]}
    assert "InputTransformer" not in target  # the whole event, as a downstream job needs it
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [dead_letters, "Arn"]}}
    subscribed.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "Queues": [{"Ref": queue}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}),
                        Match.object_like(
                            {"Action": Match.any_value(), "Principal": {"Service": "events.amazonaws.com"}}
                        ),
                    ]
                )
            },
        },
    )
    assert subscribed.find_outputs("SuccessQueueUrl") and subscribed.find_outputs("FailureTopicArn")


def test_the_subscribers_dead_letter_queue_is_alarmed_and_on_the_dashboard(subscribed: Template) -> None:
    dead_letters = logical_id(subscribed, "AWS::SQS::Queue", "SubscriptionsDeadLetters")
    alarms = [
        alarm
        for alarm in resources(subscribed, "AWS::CloudWatch::Alarm").values()
        if dead_letters in json.dumps(alarm["Properties"].get("Dimensions", []))
    ]
    assert len(alarms) == 1
    [dashboard] = resources(subscribed, "AWS::CloudWatch::Dashboard").values()
    assert dead_letters in json.dumps(dashboard["Properties"]["DashboardBody"])


def test_the_documented_example_patterns_are_the_ones_the_stack_deploys(subscribed: Template) -> None:
    def canonical(patterns: list[dict[str, Any]]) -> list[str]:
        return sorted(json.dumps(pattern, sort_keys=True) for pattern in patterns)

    deployed = [rule["EventPattern"] for rule in rules_on_the_bus(subscribed).values()]
    assert canonical(deployed) == canonical([FAILED, WITH_PREDICTIONS])
    assert canonical(documented_patterns()) == canonical(deployed)


def test_with_the_stacks_key_the_topic_and_queues_are_encrypted_with_it() -> None:
    template = synth_with_pipelines(
        PIPELINES, customerManagedKey=True, subscriptions={"failureEmail": EMAIL, "successQueue": True}
    )
    key = logical_id(template, "AWS::KMS::Key", "Encryption")
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": {"Fn::GetAtt": [key, "Arn"]}})
    for queue in resources(template, "AWS::SQS::Queue").values():
        assert queue["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key, "Arn"]}


def test_a_success_queue_alone_adds_no_topic() -> None:
    template = synth_with_pipelines(PIPELINES, subscriptions={"successQueue": True})
    assert resources(template, "AWS::SNS::Topic") == {}
    assert [rule["EventPattern"] for rule in rules_on_the_bus(template).values()] == [WITH_PREDICTIONS]
