"""Monitoring: the pipelines' dashboard reads the metrics the handlers write; alarms notify the configured topic."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, Environment
from aws_cdk.assertions import Template
from batchline.config import parse_pipelines
from batchline.functions import CATALOGUE

from stacks.app_factory import ConfigError, build_app, cdk_json_context
from stacks.batchline_stack import BatchlineStack
from stacks.monitoring import stale_run_evaluation_hours
from stacks.settings import DeploymentSettings
from tests.stacks.conftest import logical_id, resources, synth_with_pipelines

PIPELINES = cdk_json_context()["batchline"]["pipelines"]
TOPIC = "arn:aws:sns:us-east-1:123456789012:batchline-alarms"


def dashboard_body(template: Template) -> dict[str, Any]:
    """The dashboard JSON, with each deploy-time value (region, ARNs) replaced by a placeholder."""
    [dashboard] = resources(template, "AWS::CloudWatch::Dashboard").values()
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    return dict(json.loads("".join(part if isinstance(part, str) else "TOKEN" for part in parts)))


def widget(body: dict[str, Any], title: str) -> dict[str, Any]:
    [found] = [w["properties"] for w in body["widgets"] if w["properties"].get("title") == title]
    return found


def alarm_named(template: Template, part: str) -> dict[str, Any]:
    return dict(resources(template, "AWS::CloudWatch::Alarm")[logical_id(template, "AWS::CloudWatch::Alarm", part)])


def test_dashboard_graphs_each_pipelines_records_from_the_emf_metrics(template: Template) -> None:
    body = dashboard_body(template)
    for title, metric in (
        ("Records in", "RecordsIn"),
        ("Records predicted", "RecordsPredicted"),
        ("Records failed at the service", "RecordsFailed"),
        ("Records rejected before sending", "RecordsRejected"),
    ):
        # [namespace, name, dimension, value, ..., {options}]: exactly the dimensions the EMF documents carry.
        lines = [
            (line[0], line[1], dict(zip(line[2:-1:2], line[3:-1:2], strict=True)))
            for line in widget(body, title)["metrics"]
        ]
        assert lines == [
            ("Batchline", metric, {"pipeline": name, "service": "batchline"}) for name in sorted(PIPELINES)
        ]
    assert {line[1] for line in widget(body, "Run duration (s, longest)")["metrics"]} == {"RunDuration"}
    assert {line[1] for line in widget(body, "Job status polls")["metrics"]} == {"Polls"}


def test_dashboard_shows_executions_lambda_errors_and_dead_letter_queue_depth(template: Template) -> None:
    body = dashboard_body(template)
    executions = {line[1] for line in widget(body, "Executions")["metrics"]}
    assert {"ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut"} <= executions
    errors = widget(body, "Lambda errors")["metrics"]
    assert len(errors) == len(CATALOGUE) and {line[1] for line in errors} == {"Errors"}
    depth = widget(body, "Dead-letter queues (messages waiting)")["metrics"]
    assert len(depth) == 4 and {line[1] for line in depth} == {"ApproximateNumberOfMessagesVisible"}
    assert len(widget(body, "Alarms")["alarms"]) == 6


def test_failed_or_timed_out_executions_raise_an_alarm(template: Template) -> None:
    machine = logical_id(template, "AWS::StepFunctions::StateMachine", "BatchPrediction")
    alarm = alarm_named(template, "FailedRuns")["Properties"]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert alarm["TreatMissingData"] == "notBreaching"
    stats = {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert {stat["Metric"]["MetricName"] for stat in stats.values()} == {"ExecutionsFailed", "ExecutionsTimedOut"}
    for stat in stats.values():
        assert stat["Metric"]["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": machine}}]
        assert (stat["Stat"], stat["Period"]) == ("Sum", 300)
    [expression] = [m["Expression"] for m in alarm["Metrics"] if "Expression" in m]
    assert expression == "FILL(failed, 0) + FILL(timedOut, 0)"


def test_runs_older_than_the_threshold_raise_an_alarm_between_polls_too(template: Template) -> None:
    alarm = alarm_named(template, "StaleRuns")["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == ("Batchline", "RunAge", "Maximum")
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "batchline"}]  # every pipeline at once
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (24 * 3600, "GreaterThanThreshold")
    # cdk.json's pipelines poll at most hourly: two hourly periods always hold a poll, one is enough to alarm.
    assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (3600, 2, 1)


@pytest.mark.parametrize(("max_poll_seconds", "hours"), [(3600, 2), (5400, 3), (60, 2), (86400, 24)])
def test_stale_run_window_spans_the_longest_wait_between_polls(max_poll_seconds: int, hours: int) -> None:
    pipelines = parse_pipelines(
        {
            "fast": {"keyColumn": "id", "service": {"provider": "sagemaker", "modelName": "m"}, "maxPollSeconds": 60},
            "slow": {
                "keyColumn": "id",
                "service": {"provider": "sagemaker", "modelName": "m"},
                "minPollSeconds": 1,
                "maxPollSeconds": max_poll_seconds,
            },
        }
    )
    assert stale_run_evaluation_hours(pipelines) == hours


def test_alarms_only_show_on_the_dashboard_without_a_topic(template: Template) -> None:
    for alarm in resources(template, "AWS::CloudWatch::Alarm").values():
        assert "AlarmActions" not in alarm["Properties"] and "OKActions" not in alarm["Properties"]


def test_every_alarm_including_the_dead_letter_queues_notifies_the_configured_topic() -> None:
    template = synth_with_pipelines(PIPELINES, alarmTopicArn=TOPIC, runAgeAlarmHours=6)
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    assert len(alarms) == 6  # failed runs, stale runs and the four dead-letter queues' own alarms, reused
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [TOPIC]
        assert alarm["Properties"]["OKActions"] == [TOPIC]
    assert alarm_named(template, "StaleRuns")["Properties"]["Threshold"] == 6 * 3600


def test_a_malformed_alarm_topic_fails_the_build_naming_the_field() -> None:
    context = cdk_json_context()
    context["batchline"] = {**context["batchline"], "alarmTopicArn": "batchline-alarms"}
    with pytest.raises(ConfigError, match=r"field 'alarmTopicArn': must be the ARN of a standard SNS topic"):
        build_app(context, bundle=False)


def test_an_alarm_topic_in_another_region_is_refused_when_the_stack_region_is_known() -> None:
    settings = DeploymentSettings.model_validate({"alarmTopicArn": TOPIC.replace("us-east-1", "eu-west-1")})
    with pytest.raises(ConfigError, match="alarmTopicArn is in eu-west-1, but the stack deploys to us-east-1"):
        BatchlineStack(
            App(context={**cdk_json_context(), "aws:cdk:bundling-stacks": []}),
            "Pinned",
            pipelines=parse_pipelines(PIPELINES),
            settings=settings,
            env=Environment(account="123456789012", region="us-east-1"),
        )
