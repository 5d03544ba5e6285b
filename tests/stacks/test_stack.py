"""The synthesized template keeps the promises: encryption, TLS, least privilege, the ASL file wired in.

One module-scoped synth of the real app (cdk.json context, cdk-nag AwsSolutions on: an unacknowledged
finding fails the fixture). Bundling is skipped; `make synth` exercises it.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk.assertions import Match, Template  # noqa: E402
from batchline.errors import ConfigError  # noqa: E402

from stacks.app_factory import build_app, cdk_json_context  # noqa: E402
from stacks.orchestration import ASL_FILE, SUBSTITUTION_KEYS, placeholders_in  # noqa: E402

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def template() -> Template:
    _, stack = build_app(bundle=False)
    return Template.from_stack(stack)


def resources(template: Template, kind: str) -> dict[str, Any]:
    return dict(template.find_resources(kind))


def statements(template: Template) -> list[dict[str, Any]]:
    found = []
    for policy in resources(template, "AWS::IAM::Policy").values():
        found.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_data_buckets_are_encrypted_versioned_private_and_logged(template: Template) -> None:
    buckets = resources(template, "AWS::S3::Bucket")
    logged = [b for b in buckets.values() if "LoggingConfiguration" in b["Properties"]]
    assert len(buckets) == 4 and len(logged) == 3  # inbox, work, results log to the access-log bucket
    for bucket in buckets.values():
        props = bucket["Properties"]
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert bucket["DeletionPolicy"] == "Retain"


def test_every_bucket_refuses_requests_without_tls(template: Template) -> None:
    policies = resources(template, "AWS::S3::BucketPolicy")
    assert len(policies) == 4
    for policy in policies.values():
        denies = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
        assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)


def test_inbox_sends_object_events_to_eventbridge_and_a_rule_starts_runs(template: Template) -> None:
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {"NotificationConfiguration": {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}},
    )
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {"bucket": {"name": [Match.any_value()]}},
            },
            "Targets": [
                Match.object_like(
                    {
                        "RetryPolicy": {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 21600},
                        "DeadLetterConfig": Match.any_value(),
                    }
                )
            ],
        },
    )


def test_functions_run_python_313_on_arm64_with_tracing_and_their_configuration(template: Template) -> None:
    functions = resources(template, "AWS::Lambda::Function")
    assert len(functions) == 8
    for function in functions.values():
        props = function["Properties"]
        assert props["Runtime"] == "python3.13" and props["Architectures"] == ["arm64"]
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert len(props["Layers"]) == 2  # dependencies, pipelines configuration
        variables = props["Environment"]["Variables"]
        for name in (
            "BATCHLINE_PIPELINES_FILE",
            "BATCHLINE_SERVICE_ROLES",
            "INBOX_BUCKET",
            "WORK_BUCKET",
            "RESULTS_BUCKET",
            "EVENT_BUS_NAME",
        ):
            assert name in variables
        assert variables["BATCHLINE_RUNTIME"] == "aws"
        assert "LoggingConfig" in props  # its own log group, with retention
    starters = [f for f in functions.values() if f["Properties"]["Handler"] == "handlers.start_run.handler"]
    assert "STATE_MACHINE_ARN" in starters[0]["Properties"]["Environment"]["Variables"]
    for group in resources(template, "AWS::Logs::LogGroup").values():
        assert group["Properties"]["RetentionInDays"] > 0


def test_no_statement_allows_every_action_or_deletes_data(template: Template) -> None:
    for statement in statements(template):
        for action in as_list(statement["Action"]):
            assert action != "*" and not action.endswith(":*"), statement
            assert not action.startswith("s3:Delete"), statement


def test_only_actions_without_resource_level_permissions_get_resource_star(template: Template) -> None:
    allowed = {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "bedrock:ListModelInvocationJobs",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
    }
    # The state machine's log delivery (CDK's LogOptions): CloudWatch Logs offers no resource scoping for it.
    allowed |= {
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
    }
    for statement in statements(template):
        if "*" in as_list(statement["Resource"]):
            assert set(as_list(statement["Action"])) <= allowed, statement


def test_job_actions_are_scoped_to_batchline_job_names(template: Template) -> None:
    rendered = json.dumps(statements(template))
    assert "transform-job/bl-*" in rendered
    assert "batch-inference-job/bl-*" in rendered
    assert "datasource/ds-*" in rendered and "batchprediction/bp-*" in rendered
    for statement in statements(template):
        if "sagemaker:CreateTransformJob" in as_list(statement["Action"]):
            assert all("transform-job/bl-*" in json.dumps(r) for r in as_list(statement["Resource"]))


def test_pass_role_names_the_role_and_the_service(template: Template) -> None:
    passes = [s for s in statements(template) if "iam:PassRole" in as_list(s["Action"])]
    assert passes
    services = set()
    for statement in passes:
        assert as_list(statement["Action"]) == ["iam:PassRole"]
        assert "*" not in json.dumps(statement["Resource"])
        services.add(statement["Condition"]["StringEquals"]["iam:PassedToService"])
    assert services == {"personalize.amazonaws.com", "bedrock.amazonaws.com"}


def test_service_roles_trust_only_their_service_from_this_account(template: Template) -> None:
    trusting = [
        role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
        for role in resources(template, "AWS::IAM::Role").values()
        if role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"].get("Service")
        in ("bedrock.amazonaws.com", "personalize.amazonaws.com")
    ]
    # The demo Bedrock and Personalize pipelines name their own roles: nothing created for them.
    for statement in trusting:
        assert "aws:SourceAccount" in statement["Condition"]["StringEquals"]
        assert "aws:SourceArn" in statement["Condition"]["ArnLike"]


def test_state_machine_runs_the_asl_file_with_logging_and_tracing(template: Template) -> None:
    machine = next(iter(resources(template, "AWS::StepFunctions::StateMachine").values()))["Properties"]
    assert machine["StateMachineType"] == "STANDARD"
    assert machine["LoggingConfiguration"]["Level"] == "ALL"
    assert machine["LoggingConfiguration"]["IncludeExecutionData"] is True
    assert machine["TracingConfiguration"] == {"Enabled": True}
    assert set(machine["DefinitionSubstitutions"]) == SUBSTITUTION_KEYS
    assert placeholders_in(ASL_FILE.read_text()) == SUBSTITUTION_KEYS


def test_state_machine_may_invoke_its_functions_and_publish_events(template: Template) -> None:
    rendered = json.dumps(statements(template))
    assert '"lambda:InvokeFunction"' in rendered
    assert '"events:PutEvents"' in rendered


def test_bad_pipeline_config_fails_synth_naming_pipeline_and_field() -> None:
    context = cdk_json_context()
    context["batchline"] = {"pipelines": {"broken": {"keyColumn": "id", "service": {"provider": "sagemaker"}}}}
    with pytest.raises(ConfigError, match=r"pipeline 'broken': field 'service.modelName'"):
        build_app(context, bundle=False)


def test_model_role_and_amazon_ml_get_work_bucket_access_only_when_configured() -> None:
    context = cdk_json_context()
    context["batchline"] = {
        "pipelines": {
            "churn": {
                "keyColumn": "id",
                "service": {
                    "provider": "sagemaker",
                    "modelName": "m",
                    "modelExecutionRoleArn": "arn:aws:iam::111122223333:role/model",
                },
            }
        }
    }
    _, stack = build_app(context, bundle=False)
    rendered = json.dumps(Template.from_stack(stack).to_json())
    assert "arn:aws:iam::111122223333:role/model" in rendered
    assert "machinelearning.amazonaws.com" not in rendered
    assert "iam:PassRole" not in rendered


def test_stack_creates_a_conditioned_role_when_a_pipeline_names_none() -> None:
    context = cdk_json_context()
    context["batchline"] = {
        "pipelines": {
            "gen": {
                "keyColumn": "id",
                "service": {"provider": "bedrock", "modelId": "amazon.nova-lite-v1:0", "promptColumn": "q"},
            }
        }
    }
    _, stack = build_app(context, bundle=False)
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [
                    {
                        "Action": "sts:AssumeRole",
                        "Effect": "Allow",
                        "Principal": {"Service": "bedrock.amazonaws.com"},
                        "Condition": {
                            "StringEquals": {"aws:SourceAccount": Match.any_value()},
                            "ArnLike": {"aws:SourceArn": Match.any_value()},
                        },
                    }
                ]
            }
        },
    )
    assert "foundation-model/amazon.nova-lite-v1:0" in json.dumps(template.to_json())


def test_vertex_pipelines_export_the_roles_to_bind_in_google_cloud(template: Template) -> None:
    outputs = template.find_outputs("GoogleFederatedRoleArns")
    assert outputs, "cdk.json has a Vertex pipeline, so the federated role ARNs are an output"
    assert "Fn::Join" in outputs["GoogleFederatedRoleArns"]["Value"]


def test_every_dead_letter_queue_has_an_alarm(template: Template) -> None:
    queues = resources(template, "AWS::SQS::Queue")
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    watched = {json.dumps(alarm["Properties"]["Dimensions"]) for alarm in alarms.values()}
    assert len(queues) == 2
    for name in queues:
        assert any(name in dimensions for dimensions in watched), name


def test_undelivered_outcome_events_have_a_queue_and_an_alarm(template: Template) -> None:
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        },
    )
    rendered = json.dumps(statements(template))
    assert '"sqs:SendMessage"' in rendered


def test_executions_stopped_by_hand_or_timed_out_reach_the_execution_ended_function(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.states"],
                "detail-type": ["Step Functions Execution Status Change"],
                "detail": {"status": ["ABORTED", "TIMED_OUT"], "stateMachineArn": [Match.any_value()]},
            },
        },
    )
    rendered = json.dumps(statements(template))
    assert '"states:GetExecutionHistory"' in rendered


def test_customer_managed_key_encrypts_data_queues_logs_and_state() -> None:
    context = cdk_json_context()
    context["batchline"] = {**context["batchline"], "customerManagedKey": True}
    _, stack = build_app(context, bundle=False)
    template = Template.from_stack(stack)
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    buckets = resources(template, "AWS::S3::Bucket").values()
    algorithms = sorted(
        b["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"][
            "SSEAlgorithm"
        ]
        for b in buckets
    )
    assert algorithms == ["AES256", "aws:kms", "aws:kms", "aws:kms"]  # access logs must stay SSE-S3
    for queue in resources(template, "AWS::SQS::Queue").values():
        assert "KmsMasterKeyId" in queue["Properties"]
    for group in resources(template, "AWS::Logs::LogGroup").values():
        assert "KmsKeyId" in group["Properties"]
    for function in resources(template, "AWS::Lambda::Function").values():
        assert "KmsKeyArn" in function["Properties"]
    machine = next(iter(resources(template, "AWS::StepFunctions::StateMachine").values()))["Properties"]
    assert machine["EncryptionConfiguration"]["Type"] == "CUSTOMER_MANAGED_KMS_KEY"
    template.has_resource_properties("AWS::Events::EventBus", {"KmsKeyIdentifier": Match.any_value()})
