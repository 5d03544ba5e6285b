"""The app: built from cdk.json once, refuses bad pipeline configs by name, explains every acknowledgment."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from aws_cdk.assertions import Match, Template
from batchline.functions import CATALOGUE

from stacks.app_factory import ROOT, ConfigError, build_app, cdk_json_context
from stacks.batchline_stack import BatchlineStack
from tests.stacks.conftest import resources, synth_with_pipelines

BROKEN = {"broken": {"keyColumn": "id", "service": {"provider": "sagemaker"}}}  # no modelName


def test_a_bad_pipeline_config_fails_the_build_naming_pipeline_and_field() -> None:
    context = cdk_json_context()
    context["batchline"] = {"pipelines": BROKEN}
    with pytest.raises(ConfigError, match=r"pipeline 'broken': field 'service.modelName'"):
        build_app(context, bundle=False)


def test_synth_of_a_bad_config_exits_with_the_message_not_a_traceback(tmp_path: os.PathLike[str]) -> None:
    # As the cdk CLI runs the app: context in CDK_CONTEXT_JSON, output directory in CDK_OUTDIR.
    env = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps({"batchline": {"pipelines": BROKEN}}),
        "CDK_OUTDIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 1
    assert "pipeline 'broken': field 'service.modelName'" in done.stderr
    assert "Traceback" not in done.stderr


def test_context_from_the_cdk_cli_is_not_merged_with_cdk_json_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDK_CONTEXT_JSON", "{}")  # the CLI has already passed cdk.json's context
    context = {
        "batchline": {
            "stackName": "FromCli",
            "pipelines": {"p": {"keyColumn": "id", "service": {"provider": "sagemaker", "modelName": "m"}}},
        }
    }
    app, stack = build_app(context, bundle=False)
    assert stack.stack_name == "FromCli"
    assert app.node.try_get_context("@aws-cdk/aws-iam:minimizePolicies") is None  # cdk.json not read here


def test_cdk_json_feature_flags_apply_outside_the_cli(stack: BatchlineStack) -> None:
    assert stack.node.try_get_context("@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy") is True


def test_stack_outputs_name_the_buckets_bus_and_state_machine(template: Template) -> None:
    for name in ("InboxBucketName", "WorkBucketName", "ResultsBucketName", "EventBusName", "StateMachineArn"):
        assert template.find_outputs(name), name


def test_stack_outputs_list_the_pipeline_names_for_the_cli(template: Template) -> None:
    outputs = template.find_outputs("PipelineNames")
    assert outputs["PipelineNames"]["Value"] == (
        "demo-amazonml,demo-bedrock,demo-personalize,demo-sagemaker,demo-vertex"
    )


def test_vertex_pipelines_export_the_roles_to_bind_in_google_cloud(template: Template) -> None:
    outputs = template.find_outputs("GoogleFederatedRoleArns")
    assert outputs, "cdk.json has a Vertex pipeline, so the federated role ARNs are an output"
    assert "Fn::Join" in outputs["GoogleFederatedRoleArns"]["Value"]


def test_every_function_that_calls_vertex_is_among_the_roles_to_bind_in_google_cloud(template: Template) -> None:
    # ExecutionEnded stops a stopped run's Vertex jobs: unbound, its token exchange is refused and the job runs on.
    joined = template.find_outputs("GoogleFederatedRoleArns")["GoogleFederatedRoleArns"]["Value"]["Fn::Join"]
    bound = {role["Fn::GetAtt"][0].removeprefix("Functions").split("Role")[0] for role in joined[1]}
    assert bound == {
        "SubmitJob",  # stages the input to Cloud Storage, creates the job
        "PollJob",
        "PlanCollect",  # lists the job's result files
        "CollectUnit",
        "AssembleOutput",  # deletes the staged input
        "ReportFailure",  # cancels the jobs of a failed run
        "ExecutionEnded",  # cancels the jobs of a run stopped, timed out or failed uncaught
    }
    # "release" deletes what a service keeps of ended jobs: Amazon ML's objects; Vertex AI keeps none to release.
    from batchline.adapters.base import ReleasesServiceObjects
    from batchline.adapters.vertex import VertexAdapter

    assert not issubclass(VertexAdapter, ReleasesServiceObjects)
    assert {spec.name for spec in CATALOGUE if spec.jobs - {"encode", "release"}} <= bound


def test_every_cdk_nag_acknowledgment_names_a_rule_and_gives_a_reason(stack: BatchlineStack) -> None:
    acknowledged = {}
    for construct in stack.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == "aws:cdk:acknowledged-rules":
                acknowledged.update({(construct.node.path, rule): reason for rule, reason in entry.data.items()})
    assert acknowledged
    for (path, rule), reason in acknowledged.items():
        assert rule.startswith("AwsSolutions::AwsSolutions-"), (path, rule)
        assert len(reason) >= 40, (path, rule, reason)
    # Nothing is acknowledged stack-wide: each one sits on the construct it concerns.
    assert not [path for path, _ in acknowledged if path == stack.node.path]


def test_customer_managed_key_encrypts_data_queues_logs_state_and_environment() -> None:
    template = synth_with_pipelines(cdk_json_context()["batchline"]["pipelines"], customerManagedKey=True)
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    algorithms = sorted(
        b["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"][
            "SSEAlgorithm"
        ]
        for b in resources(template, "AWS::S3::Bucket").values()
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
