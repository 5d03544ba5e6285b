"""`batchline cancel RUN` on a deployed stack: StopExecution on the execution the stack's outputs name; the
stack's ExecutionEnded function (on EventBridge's status-change event) then stops the jobs and reports."""

from __future__ import annotations

import json

import boto3
import pytest

from batchline_local.cli import main
from tests.unit.test_cli_target import OUTPUTS, REGION, RUN_ID, aws, create_stack

__all__ = ["aws"]


def deployed_with_a_running_run() -> str:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    definition = json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Pass", "End": True}}})
    machine = sfn.create_state_machine(
        name="Batchline-Orchestration", definition=definition, roleArn="arn:aws:iam::123456789012:role/r"
    )["stateMachineArn"]
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket=OUTPUTS["ResultsBucketName"], CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    create_stack("Batchline", {**OUTPUTS, "StateMachineArn": machine})
    return str(
        sfn.start_execution(stateMachineArn=machine, name=RUN_ID, input=json.dumps({"pipeline": "demo-sagemaker"}))[
            "executionArn"
        ]
    )


def test_cancel_stops_the_execution_the_stack_names_and_says_what_follows(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a deployed stack with a running run
    execution = deployed_with_a_running_run()

    # WHEN it is cancelled by run ID
    code = main(["cancel", RUN_ID, "--region", REGION])
    out = capsys.readouterr().out

    # THEN its execution was stopped (as a stop from the console), and the output says what happens next
    assert code == 0
    described = boto3.client("stepfunctions", region_name=REGION).describe_execution(executionArn=execution)
    assert described["status"] == "ABORTED"
    assert f"run {RUN_ID}" in out and "ExecutionEnded" in out
    assert "stops its service jobs" in out and "Batch Prediction Failed" in out


def test_cancel_json_is_one_document(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    deployed_with_a_running_run()

    code = main(["cancel", RUN_ID, "--region", REGION, "--json"])
    document = json.loads(capsys.readouterr().out)

    assert code == 0
    assert (document["runId"], document["executionStatus"]) == (RUN_ID, "ABORTED")


def test_cancelling_a_run_that_has_ended_is_one_line_and_exit_1(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    deployed_with_a_running_run()
    assert main(["cancel", RUN_ID, "--region", REGION]) == 0
    capsys.readouterr()

    code = main(["cancel", RUN_ID, "--region", REGION])
    err = capsys.readouterr().err

    assert code == 1
    assert err.count("\n") == 1 and "has already ended" in err and "nothing to cancel" in err


def test_cancel_refuses_what_is_not_a_run_id(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cancel", "not-a-run", "--region", REGION]) == 2
    assert "is not a run ID" in capsys.readouterr().err


def test_cancel_local_without_a_runtime_in_the_process_names_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["cancel", "demo-sagemaker-" + "ab" * 16, "--local"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no local runtime is running" in err
    assert "`batchline local serve`" in err and "--endpoint-url" in err  # how to reach one from another shell
