"""Limits lowered for the test, so that a real run reaches them cheaply; each test runs its own local runtime.

AWS: event 25,000 of an execution's history is ExecutionFailed (States.Runtime, "The execution reached the maximum
number of history events (25000).") unless it is ExecutionSucceeded
(https://docs.aws.amazon.com/step-functions/latest/dg/bp-history-limit.html); a state past 256 KiB fails the execution
with States.DataLimitExceeded, which no Catch on States.ALL handles.
"""

from __future__ import annotations

import pytest

from batchline_local.interpreter import Limits
from batchline_local.runtime import LocalRuntime
from tests.e2e.conftest import SAMPLES
from tests.e2e.test_step_functions_limits import entered, execute

pytestmark = pytest.mark.timeout(180)


def test_a_history_past_its_limit_fails_the_execution_at_the_limit() -> None:
    # GIVEN a loop that never ends, and a history limit lowered to 50 events (25,000 on AWS)
    states = {
        "Spin": {"Type": "Pass", "Next": "Again"},
        "Again": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.spin", "BooleanEquals": True, "Next": "Spin"}],
            "Default": "Caught",
        },
    }
    with LocalRuntime(limits=Limits(history_events=50)) as runtime:
        # WHEN it runs
        done = execute(runtime, "endless", states, "Spin", {"spin": True})

    # THEN event 50 is ExecutionFailed with States.Runtime, as AWS ends an execution at 25,000 events
    assert done["status"] == "FAILED"
    assert done["error"] == "States.Runtime"
    assert done["cause"] == "The execution reached the maximum number of history events (50)."
    assert len(done["history"]) == 50
    assert done["history"][-1]["type"] == "ExecutionFailed"
    assert done["orchestration"]["historyEvents"]["run"] == 50


def test_a_run_past_a_lowered_history_limit_fails_without_its_catch() -> None:
    # GIVEN the real state machine, and a history limit lower than a demo run needs (61 events)
    with LocalRuntime(limits=Limits(history_events=30)) as runtime:
        # WHEN a demo file runs
        result = runtime.run_file(SAMPLES / "demo-sagemaker.csv", "demo-sagemaker")
        described = runtime.client("stepfunctions").describe_execution(executionArn=result.execution_arn)

    # THEN the run's execution failed with States.Runtime; ReportFailure (its Catch) never ran, ExecutionEnded did
    assert result.status == "FAILED"
    assert described["error"] == "States.Runtime"
    assert "maximum number of history events (30)" in described["cause"]
    assert len(result.history) == 30
    assert "ReportFailure" not in entered(result.history)
    assert not any(name.endswith("ReportFailure") for name, _ in runtime.invocations)
    assert result.event is not None and "maximum number of history events" in result.event["detail"]["error"]["cause"]


def test_a_run_past_a_lowered_state_limit_fails_with_data_limit_exceeded_without_its_catch() -> None:
    # GIVEN the real state machine, and a state limit lower than a demo run's largest state (about 3 KB)
    with LocalRuntime(limits=Limits(state_bytes=2_000)) as runtime:
        result = runtime.run_file(SAMPLES / "demo-sagemaker.csv", "demo-sagemaker")
        described = runtime.client("stepfunctions").describe_execution(executionArn=result.execution_arn)

    # THEN the execution failed with States.DataLimitExceeded, and no failure handling of the ASL ran
    assert result.status == "FAILED"
    assert described["error"] == "States.DataLimitExceeded"
    assert "ReportFailure" not in entered(result.history)
    # AND the stack's rule on FAILED executions brought it to ExecutionEnded: one failure event that says why
    assert result.event is not None and result.event["detail"]["status"] == "FAILED"
    error = result.event["detail"]["error"]
    assert error["error"] == "ExecutionFailed" and "States.DataLimitExceeded" in error["cause"]


@pytest.mark.parametrize(("limit", "status"), [(4, "SUCCEEDED"), (3, "FAILED")])
def test_the_last_event_allowed_is_execution_succeeded_or_else_execution_failed(limit: int, status: str) -> None:
    # GIVEN one Pass state: ExecutionStarted, PassStateEntered, PassStateExited, ExecutionSucceeded (4 events)
    states = {"Only": {"Type": "Pass", "End": True}}
    with LocalRuntime(limits=Limits(history_events=limit)) as runtime:
        done = execute(runtime, f"one-pass-{limit}", states, "Only", {})

    # THEN at 4 the execution ends with ExecutionSucceeded as event 4; at 3, event 3 is ExecutionFailed
    assert done["status"] == status
    assert len(done["history"]) == limit
    assert done["history"][-1]["type"] == ("ExecutionSucceeded" if status == "SUCCEEDED" else "ExecutionFailed")
