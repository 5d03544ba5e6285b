"""Uploads start runs through a rule with retries and a dead-letter queue; outcomes go to the project's bus."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match, Template

from tests.conftest import EVENT_SCHEMA
from tests.stacks.conftest import as_list, function_statements, logical_id, resources


def test_inbox_uploads_reach_start_run_with_retries_and_a_dead_letter_queue(template: Template) -> None:
    inbox = logical_id(template, "AWS::S3::Bucket", "StorageInbox")
    start_run = logical_id(template, "AWS::Lambda::Function", "FunctionsStartRun")
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {"bucket": {"name": [{"Ref": inbox}]}},
            },
            "Targets": [
                Match.object_like(
                    {
                        "Arn": {"Fn::GetAtt": [start_run, "Arn"]},
                        "RetryPolicy": {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 21600},
                        "DeadLetterConfig": {"Arn": Match.any_value()},
                    }
                )
            ],
        },
    )
    rules = resources(template, "AWS::Events::Rule").values()
    upload_rule = next(r for r in rules if r["Properties"]["EventPattern"]["source"] == ["aws.s3"])
    assert "EventBusName" not in upload_rule["Properties"]  # S3 sends to the default bus


def test_dead_letter_queues_are_encrypted_tls_only_and_alarmed(template: Template) -> None:
    queues = resources(template, "AWS::SQS::Queue")
    # undelivered outcome events, undeliverable triggers, failed async invocations, failures left unreported
    assert len(queues) == 4
    for queue in queues.values():
        assert queue["Properties"].get("SqsManagedSseEnabled") or queue["Properties"].get("KmsMasterKeyId")
    for policy in resources(template, "AWS::SQS::QueuePolicy").values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )
    watched = [
        json.dumps(alarm["Properties"].get("Dimensions", []))
        for alarm in resources(template, "AWS::CloudWatch::Alarm").values()
    ]
    for name in queues:
        assert sum(name in dimensions for dimensions in watched) == 1, name  # one alarm each, not duplicated


@pytest.mark.parametrize("function", ["StartRun", "ExecutionEnded"])
def test_an_asynchronous_function_that_fails_after_its_retries_keeps_the_event_in_an_alarmed_queue(
    template: Template, function: str
) -> None:
    # A rule's dead-letter queue catches delivery failures only: a function error is retried, then dropped
    # unless the function has an on-failure destination.
    target = logical_id(template, "AWS::Lambda::Function", f"Functions{function}")
    queue = logical_id(template, "AWS::SQS::Queue", "FailedInvocations")
    configs = [
        c["Properties"]
        for c in resources(template, "AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": target}
    ]
    assert configs == [
        {
            "FunctionName": {"Ref": target},
            "Qualifier": "$LATEST",
            "MaximumRetryAttempts": 2,
            "MaximumEventAgeInSeconds": 21600,
            "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [queue, "Arn"]}}},
        }
    ]
    sends = [
        s
        for s in function_statements(template, function)
        if "sqs:SendMessage" in as_list(s["Action"]) and s["Resource"] == {"Fn::GetAtt": [queue, "Arn"]}
    ]
    assert sends


def test_failed_invocations_are_read_by_the_reporter_and_what_it_cannot_report_goes_to_an_alarmed_queue(
    template: Template,
) -> None:
    reporter = logical_id(template, "AWS::Lambda::Function", "FunctionsReportFailedInvocation")
    queue = logical_id(template, "AWS::SQS::Queue", "FailedInvocations")
    unreported = logical_id(template, "AWS::SQS::Queue", "UnreportedFailures")
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [queue, "Arn"]},
            "FunctionName": {"Ref": reporter},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],  # one bad record does not send back the batch
        },
    )
    props = resources(template, "AWS::SQS::Queue")[queue]["Properties"]
    assert props["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [unreported, "Arn"]}, "maxReceiveCount": 5}
    timeout = resources(template, "AWS::Lambda::Function")[reporter]["Properties"]["Timeout"]
    assert props["VisibilityTimeout"] >= 6 * timeout  # a record being reported is not handed out twice
    # The operator still hears of every failed invocation: the queue's alarm counts what arrives, not what waits.
    [alarm] = [
        a["Properties"]
        for a in resources(template, "AWS::CloudWatch::Alarm").values()
        if queue in json.dumps(a["Properties"].get("Dimensions", []))
    ]
    assert (alarm["MetricName"], alarm["Statistic"], alarm["Threshold"]) == ("NumberOfMessagesSent", "Sum", 1)


def test_the_failed_invocation_reporter_may_publish_look_up_executions_and_write_only_the_ended_marker(
    template: Template,
) -> None:
    statements = function_statements(template, "ReportFailedInvocation")
    actions = {action for s in statements for action in as_list(s["Action"])}
    assert {"events:PutEvents", "states:DescribeExecution", "states:GetExecutionHistory"} <= actions
    assert "states:StartExecution" not in actions
    writes = [s for s in statements if "s3:PutObject" in as_list(s["Action"])]
    work = logical_id(template, "AWS::S3::Bucket", "StorageWork")
    assert [json.dumps(s["Resource"]) for s in writes] == [
        json.dumps({"Fn::Join": ["", [{"Fn::GetAtt": [work, "Arn"]}, "/*/state/ended.json"]]})
    ]


def test_project_bus_is_named_after_the_stack(template: Template) -> None:
    template.has_resource_properties("AWS::Events::EventBus", {"Name": "Batchline-events"})


def test_executions_stopped_timed_out_or_failed_uncaught_reach_the_execution_ended_function(template: Template) -> None:
    machine = logical_id(template, "AWS::StepFunctions::StateMachine", "BatchPrediction")
    ended = logical_id(template, "AWS::Lambda::Function", "FunctionsExecutionEnded")
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.states"],
                "detail-type": ["Step Functions Execution Status Change"],
                "detail": {"status": ["ABORTED", "TIMED_OUT", "FAILED"], "stateMachineArn": [{"Ref": machine}]},
            },
            "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [ended, "Arn"]}})],
        },
    )


def test_the_event_schema_is_published_from_the_file_the_tests_validate_against(template: Template) -> None:
    registry = logical_id(template, "AWS::EventSchemas::Registry", "EventSchema")
    template.has_resource_properties("AWS::EventSchemas::Registry", {"RegistryName": "Batchline-events"})
    [schema] = resources(template, "AWS::EventSchemas::Schema").values()
    props = schema["Properties"]
    assert props["Type"] == "JSONSchemaDraft4"  # the registry takes draft 4 or OpenAPI 3 only
    assert props["RegistryName"] == {"Fn::GetAtt": [registry, "RegistryName"]}
    assert props["SchemaName"] == "batchline@BatchPredictionEvent-v1"  # the v1 of the file name
    content = json.loads(props["Content"])
    on_disk = json.loads(EVENT_SCHEMA.read_text())
    # The whole event as the registry describes events: the envelope, and the file as its detail.
    assert content["$schema"] == on_disk["$schema"] == "http://json-schema.org/draft-04/schema#"
    assert content["properties"]["detail"] == {key: value for key, value in on_disk.items() if key != "$schema"}
    assert content["properties"]["source"] == {"enum": ["batchline"]}
    assert template.find_outputs("EventSchemaRegistryName") and template.find_outputs("EventSchemaName")


def test_job_end_events_of_batchline_jobs_wake_the_waiting_job(template: Template) -> None:
    """SageMaker's and Bedrock's job end events, for Batchline's job names only, go to WakeJob from the default
    bus; WakeJob may read and write only the waiting jobs' objects (wake/*) and resume a task."""
    from batchline.job_events import SOURCES

    rules = [
        rule["Properties"]
        for rule in resources(template, "AWS::Events::Rule").values()
        if rule["Properties"]["EventPattern"].get("source", [None])[0] in {s.source for s in SOURCES}
    ]
    assert sorted(r["EventPattern"]["source"][0] for r in rules) == ["aws.bedrock", "aws.sagemaker"]
    for rule in rules:
        assert "EventBusName" not in rule  # the default bus, where AWS services publish
        (name_filter,) = [v for k, v in rule["EventPattern"]["detail"].items() if k.endswith("Name")]
        assert name_filter == [{"prefix": "bl-"}]
        (target,) = rule["Targets"]
        assert "WakeJob" in json.dumps(target["Arn"])
        assert "DeadLetterConfig" in target
