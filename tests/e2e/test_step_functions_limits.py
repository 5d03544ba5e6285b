"""The local runtime refuses what Step Functions refuses (DESIGN.md: "The local runtime is as strict as AWS").

256 KiB (262,144 bytes of UTF-8 JSON) for every state's input, output and result and for every Map child's
input: past it the execution fails with States.DataLimitExceeded, which a Catch or Retry on States.ALL does not
handle (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html). 25,000 events per
execution history: event 25,000 is ExecutionFailed (States.Runtime) unless it is ExecutionSucceeded
(https://docs.aws.amazon.com/step-functions/latest/dg/bp-history-limit.html).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from batchline_local.interpreter import STATE_BYTES_LIMIT
from batchline_local.runtime import LocalRuntime

pytestmark = pytest.mark.timeout(180)
ROLE = "arn:aws:iam::123456789012:role/batchline-local"
CATCH_ALL = [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]
RETRY_ALL = [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2, "IntervalSeconds": 1}]


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    # State machines of the test's own, outside the stack: the permission checks (which take any interpreter's
    # call for the stack's state machine) have nothing to say about them.
    with LocalRuntime(check_permissions=False) as local:
        local.client("lambda").create_function(
            FunctionName="payload-probe",
            Runtime="python3.13",
            Role=ROLE,
            Handler="tests.e2e.payload_probe.handler",
            Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},  # an empty zip: the handler runs from the repository
        )
        yield local


def probe_arn(runtime: LocalRuntime) -> str:
    return str(runtime.client("lambda").get_function(FunctionName="payload-probe")["Configuration"]["FunctionArn"])


def execute(runtime: LocalRuntime, name: str, states: dict[str, Any], start: str, payload: Any) -> dict[str, Any]:
    """Run a small state machine to its end; its description and history."""
    sfn = runtime.client("stepfunctions")
    definition = {"StartAt": start, "States": {**states, "Caught": {"Type": "Pass", "End": True}}}
    arn = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps(payload))["executionArn"]
    deadline = time.monotonic() + 60
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{name} still running"
        time.sleep(0.02)
    history = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    return {**described, "history": history, "orchestration": runtime.ledger.orchestration(execution, runtime.limits)}


def entered(history: list[dict[str, Any]]) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in history if e["type"].endswith("StateEntered")]


def test_a_lambda_result_of_exactly_256_kib_passes(runtime: LocalRuntime) -> None:
    states = {"Produce": {"Type": "Task", "Resource": probe_arn(runtime), "End": True}}

    done = execute(runtime, "exactly-at-limit", states, "Produce", {"bytes": STATE_BYTES_LIMIT})

    assert done["status"] == "SUCCEEDED"
    assert done["orchestration"]["largestStateBytes"] == STATE_BYTES_LIMIT


def test_a_lambda_result_past_256_kib_fails_the_execution_and_no_retry_or_catch_runs(runtime: LocalRuntime) -> None:
    # GIVEN a Task with a Retry and a Catch on States.ALL, whose Lambda returns one byte past 256 KiB
    states = {
        "Produce": {
            "Type": "Task",
            "Resource": probe_arn(runtime),
            "Retry": RETRY_ALL,
            "Catch": CATCH_ALL,
            "End": True,
        }
    }

    # WHEN it runs
    done = execute(runtime, "result-past-limit", states, "Produce", {"bytes": STATE_BYTES_LIMIT + 1})

    # THEN the execution failed with States.DataLimitExceeded: not retried, not caught
    assert done["status"] == "FAILED"
    assert done["error"] == "States.DataLimitExceeded"
    assert "Produce" in done["cause"]
    assert "Caught" not in entered(done["history"])
    assert sum(e["type"] == "LambdaFunctionScheduled" for e in done["history"]) == 1
    assert done["history"][-1]["type"] == "ExecutionFailed"


def test_a_state_input_past_256_kib_after_parameters_fails_the_execution(runtime: LocalRuntime) -> None:
    # GIVEN a Task whose Parameters copy a 200 KB field twice: its input is past the limit only after Parameters
    states = {
        "Send": {
            "Type": "Task",
            "Resource": probe_arn(runtime),
            "Parameters": {"bytes": 10, "a.$": "$.big", "b.$": "$.big"},
            "Catch": CATCH_ALL,
            "End": True,
        }
    }

    done = execute(runtime, "parameters-past-limit", states, "Send", {"big": "y" * 200_000})

    assert done["status"] == "FAILED"
    assert done["error"] == "States.DataLimitExceeded"
    assert "Caught" not in entered(done["history"])
    assert not any(e["type"] == "LambdaFunctionScheduled" for e in done["history"])


@pytest.mark.parametrize("mode", ["INLINE", "DISTRIBUTED"])
def test_a_map_child_input_past_256_kib_fails_the_execution(runtime: LocalRuntime, mode: str) -> None:
    # GIVEN a Map whose ItemSelector gives each child the item and a 200 KB field twice
    processor: dict[str, Any] = {
        "ProcessorConfig": {"Mode": mode, **({"ExecutionType": "STANDARD"} if mode == "DISTRIBUTED" else {})},
        "StartAt": "Child",
        "States": {"Child": {"Type": "Pass", "End": True}},
    }
    states = {
        "EachItem": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemSelector": {"item.$": "$$.Map.Item.Value", "a.$": "$.big", "b.$": "$.big"},
            "ItemProcessor": processor,
            "ResultPath": None,
            "Catch": CATCH_ALL,
            "End": True,
        }
    }

    done = execute(
        runtime, f"child-input-past-limit-{mode.lower()}", states, "EachItem", {"items": [1, 2], "big": "z" * 200_000}
    )

    assert done["status"] == "FAILED"
    assert done["error"] == "States.DataLimitExceeded"
    assert "Caught" not in entered(done["history"])
