"""StartRun or ExecutionEnded failing after Lambda's retries still ends in one clear failure event (issue 15): Lambda
sends the invocation record to the FailedInvocations queue, and ReportFailedInvocation publishes from it, once."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batchline.naming import run_id_for

from batchline_local.runtime import ACCOUNT, REGION, LocalRuntime
from tests.e2e.conftest import check_every_event, write_csv

pytestmark = pytest.mark.timeout(180)

PIPELINES = {
    # Every emulated job stays in progress far longer than the test waits: the run can be stopped by hand.
    "churn": {"keyColumn": "id", "service": {"provider": "sagemaker", "modelName": "m", "predictionColumns": ["p"]}},
}


@pytest.fixture(scope="module")
def runtime(validate_event: Any) -> Iterator[LocalRuntime]:
    with LocalRuntime(PIPELINES, time_scale=0.1, service_polls_until_done=10_000) as local:
        yield local
        check_every_event(local, validate_event)


def invoke_failing(runtime: LocalRuntime, function: str, event: dict[str, Any]) -> dict[str, Any]:
    """Invoke as EventBridge does; the function fails, and its error payload is what Lambda's record carries."""
    response = runtime.client("lambda").invoke(FunctionName=f"batchline-local-{function}", Payload=json.dumps(event))
    assert response.get("FunctionError"), "the function was meant to fail"
    return dict(json.loads(response["Payload"].read()))


def failed_invocation(function: str, event: dict[str, Any], error: dict[str, Any]) -> dict[str, Any]:
    """What Lambda puts in the on-failure destination once the retries are spent, as the queue delivers it.
    https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html"""
    record = {
        "version": "1.0",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "requestContext": {
            "requestId": f"local-{time.time_ns()}",
            "functionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:batchline-local-{function}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": error,
    }
    message = {
        "messageId": f"m-{time.time_ns()}",
        "receiptHandle": "r",
        "body": json.dumps(record),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:FailedInvocations",
        "awsRegion": REGION,
    }
    return {"Records": [message]}


def events_of(runtime: LocalRuntime, run_id: str) -> list[dict[str, Any]]:
    return [e for e in runtime.published_events() if e["detail"]["runId"] == run_id]


def test_an_upload_whose_start_run_failed_gets_one_run_not_started_event(runtime: LocalRuntime, tmp_path: Path) -> None:
    # GIVEN an upload whose StartRun dies before starting the run (on every one of Lambda's attempts)
    obj = runtime.upload(write_csv(tmp_path / "lost.csv", ["id", "x"], [[1, 2]]), "churn")
    event = runtime.object_created_event(obj)
    runtime.crash_once("StartRun", target="batchline.steps.start.run_id_for", on_call=1)
    record = failed_invocation("StartRun", event, invoke_failing(runtime, "StartRun", event))
    run_id = run_id_for("churn", obj["bucket"], obj["key"], obj["versionId"])

    # WHEN the queue delivers the failed invocation, and then delivers it again
    first = runtime.invoke("ReportFailedInvocation", record)
    second = runtime.invoke("ReportFailedInvocation", record)

    # THEN one failure event names the upload, says no run started and why, and nothing is sent back to the queue
    assert first == second == {"batchItemFailures": []}
    [published] = events_of(runtime, run_id)
    detail = published["detail"]
    assert (published["detail-type"], detail["status"], detail["pipeline"]) == (
        "Batch Prediction Failed",
        "FAILED",
        "churn",
    )
    assert (detail["input"]["key"], detail["input"]["versionId"]) == (obj["key"], obj["versionId"])
    assert detail["error"]["error"] == "RunNotStarted"
    assert "Sandbox.Timedout" in detail["error"]["cause"] and obj["key"] in detail["error"]["cause"]
    assert detail["provider"] == "sagemaker"


def test_a_stopped_run_whose_execution_ended_failed_gets_one_failure_event_saying_so(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    # GIVEN a running run, stopped by hand, whose ExecutionEnded dies before reporting it
    obj = runtime.upload(write_csv(tmp_path / "stopped.csv", ["id", "x"], [[1, 2], [2, 3]]), "churn")
    decision = runtime.deliver(runtime.object_created_event(obj))
    run_id = decision["runId"]
    deadline = time.monotonic() + 60  # stopped once its job is being polled
    while not any(name.endswith("PollJob") for name, _ in runtime.invocations):
        assert time.monotonic() < deadline, "the run's job was never polled"
        time.sleep(0.02)
    runtime.crash_once("ExecutionEnded", target="batchline.steps.ended.read_history", on_call=1)
    with pytest.raises(RuntimeError, match="ExecutionEnded failed"):
        runtime.stop_by_hand(run_id)
    [(_, status_change)] = [call for call in runtime.invocations if call[0].endswith("ExecutionEnded")][-1:]
    error = {"errorType": "Sandbox.Timedout", "errorMessage": "emulated: ExecutionEnded died"}
    record = failed_invocation("ExecutionEnded", status_change, error)
    assert events_of(runtime, run_id) == []

    # WHEN the failed invocation is delivered twice, and EventBridge delivers the status change once more
    runtime.invoke("ReportFailedInvocation", record)
    runtime.invoke("ReportFailedInvocation", record)
    again = runtime.invoke("ExecutionEnded", status_change)

    # THEN one failure event: the run was stopped by hand, and its report failed (jobs may still run)
    [published] = events_of(runtime, run_id)
    failure = published["detail"]["error"]
    assert failure["error"] == "ExecutionAborted"
    assert "ExecutionEnded failed" in failure["reportError"] and "Sandbox.Timedout" in failure["reportError"]
    assert again["handled"] is False  # the marker it shares with ExecutionEnded


def test_a_record_that_is_neither_an_upload_nor_an_execution_end_is_kept_for_an_operator(
    runtime: LocalRuntime,
) -> None:
    record = failed_invocation("StartRun", {"source": "elsewhere", "detail-type": "Other"}, {"errorType": "E"})
    # The batch fails (Powertools raises when every record of it failed): SQS hands the record out again, and after
    # FAILED_REPORT_RECEIVES tries moves it to the alarmed UnreportedFailures queue; nothing is published.
    with pytest.raises(RuntimeError, match="BatchProcessingError"):
        runtime.invoke("ReportFailedInvocation", record)
