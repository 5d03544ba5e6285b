"""The CLI's target: stack outputs found by name (moto's CloudFormation), clear errors, history read incrementally."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from batchline_local.cli import main
from batchline_local.target import (
    TargetError,
    aws_session,
    default_stack_name,
    explain,
    run_id_of,
    stack_target,
)

REGION = "eu-west-1"
RUN_ID = "demo-sagemaker-" + "ab" * 16
OUTPUTS = {
    "InboxBucketName": "batchline-inbox-1",
    "WorkBucketName": "batchline-work-1",
    "ResultsBucketName": "batchline-results-1",
    "StateMachineArn": f"arn:aws:states:{REGION}:123456789012:stateMachine:Batchline-Orchestration",
    "PipelineNames": "demo-bedrock,demo-sagemaker",
}


def create_stack(name: str, outputs: dict[str, str]) -> None:
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(StackName=name, TemplateBody=json.dumps(template))


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def test_stack_outputs_name_the_buckets_state_machine_and_pipelines(aws: None) -> None:
    create_stack("Batchline", OUTPUTS)

    target = stack_target("Batchline", aws_session(None, REGION))

    assert (target.inbox_bucket, target.work_bucket, target.results_bucket) == (
        "batchline-inbox-1",
        "batchline-work-1",
        "batchline-results-1",
    )
    assert target.pipelines == ("demo-bedrock", "demo-sagemaker")
    assert target.execution_arn(RUN_ID) == (
        f"arn:aws:states:{REGION}:123456789012:execution:Batchline-Orchestration:{RUN_ID}"
    )
    assert target.layout("demo-sagemaker", RUN_ID).predictions.uri == (
        f"s3://batchline-results-1/demo-sagemaker/{RUN_ID}/predictions.csv"
    )
    with pytest.raises(TargetError, match=r"no pipeline named 'nope' in stack Batchline \(eu-west-1\) \(configured: "):
        target.check_pipeline("nope")


def test_a_stack_deployed_before_the_pipeline_names_output_lets_any_pipeline_through(aws: None) -> None:
    create_stack("Older", {k: v for k, v in OUTPUTS.items() if k != "PipelineNames"})

    target = stack_target("Older", aws_session(None, REGION))

    assert target.pipelines is None
    target.check_pipeline("anything")  # StartRun still refuses it with a failure event


def test_a_stack_without_batchline_outputs_is_refused_by_name(aws: None) -> None:
    create_stack("SomethingElse", {"InboxBucketName": "b"})

    with pytest.raises(TargetError) as refused:
        stack_target("SomethingElse", aws_session(None, REGION))

    assert "stack SomethingElse (eu-west-1) is not a Batchline stack" in str(refused.value)
    assert "WorkBucketName, ResultsBucketName, StateMachineArn" in str(refused.value)


def test_an_unknown_stack_is_one_line_naming_stack_region_and_fix(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["runs", "--stack", "Nope", "--region", REGION])

    assert code == 2
    assert capsys.readouterr().err == (
        "batchline: no stack named 'Nope' in eu-west-1; deploy it with `npx cdk deploy`, "
        "or pass --stack NAME / --region REGION\n"
    )


def test_commands_on_a_deployed_stack_use_its_outputs(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a "deployed" stack whose outputs name a real (moto) bucket and state machine with one running run
    sfn = boto3.client("stepfunctions", region_name=REGION)
    definition = json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Pass", "End": True}}})
    machine = sfn.create_state_machine(
        name="Batchline-Orchestration", definition=definition, roleArn="arn:aws:iam::123456789012:role/r"
    )["stateMachineArn"]
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket=OUTPUTS["ResultsBucketName"], CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    create_stack("Batchline", {**OUTPUTS, "StateMachineArn": machine})
    sfn.start_execution(stateMachineArn=machine, name=RUN_ID, input=json.dumps({"pipeline": "demo-sagemaker"}))

    # WHEN runs and results are asked of it by stack name
    listed_code = main(["runs", "--region", REGION, "--json"])  # stack name from cdk.json: Batchline
    listed = json.loads(capsys.readouterr().out)
    results_code = main(["results", RUN_ID, "--region", REGION])
    err = capsys.readouterr().err

    # THEN they read the stack's state machine and results bucket
    assert listed_code == 0
    assert [(r["runId"], r["pipeline"], r["status"]) for r in listed["runs"]] == [(RUN_ID, "demo-sagemaker", "RUNNING")]
    assert results_code == 1 and f"run {RUN_ID} is still running" in err


def test_missing_credentials_name_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN no credentials anywhere botocore looks (and no instance metadata to ask)
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    code = main(["status", RUN_ID, "--region", REGION, "--json"])

    assert code == 2
    captured = capsys.readouterr()
    assert captured.err == (
        "batchline: no AWS credentials found; run `aws configure` or `aws sso login`, pass --profile NAME, "
        "or use --local for the local runtime\n"
    )
    assert json.loads(captured.out)["error"].startswith("no AWS credentials found")


def test_an_unknown_profile_names_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    assert main(["runs", "--profile", "nobody"]) == 2
    err = capsys.readouterr().err
    assert "nobody" in err and "aws configure list-profiles" in err and err.count("\n") == 1


def test_local_takes_no_stack_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "--local", "--stack", "Batchline"]) == 2
    assert "--local takes no --stack" in capsys.readouterr().err


def test_refused_and_denied_credentials_are_explained() -> None:
    expired = ClientError({"Error": {"Code": "ExpiredTokenException", "Message": "expired"}}, "DescribeStacks")
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "not allowed"}}, "GetObject")

    assert "AWS refused the credentials (ExpiredTokenException)" in str(explain(expired))
    assert "access denied to GetObject (not allowed)" in str(explain(denied))
    assert explain(ClientError({"Error": {"Code": "Throttling"}}, "ListExecutions")) is None


def test_default_stack_name_comes_from_cdk_json(tmp_path: Path) -> None:
    custom = tmp_path / "cdk.json"
    custom.write_text(json.dumps({"context": {"batchline": {"stackName": "Mine", "pipelines": {}}}}))

    assert default_stack_name(custom) == "Mine"
    assert default_stack_name(tmp_path / "missing.json") == "Batchline"
    assert default_stack_name() == "Batchline"  # the repository's cdk.json


def test_run_ids_and_execution_arns_are_accepted_and_anything_else_refused() -> None:
    assert run_id_of(RUN_ID) == RUN_ID
    assert run_id_of(f"arn:aws:states:{REGION}:123456789012:execution:Batchline-Orchestration:{RUN_ID}") == RUN_ID
    for bad in ("latest", "demo-sagemaker-123", RUN_ID.upper()):
        with pytest.raises(TargetError, match="is not a run ID"):
            run_id_of(bad)
