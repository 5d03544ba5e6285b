"""A run never polls forever: its deadline and its poll bound end it, and the job is stopped."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batchline.naming import job_name_for

from batchline_local.runtime import LocalRuntime
from tests.e2e.conftest import check_every_event, step_inputs, write_csv

pytestmark = pytest.mark.timeout(120)

SERVICE = {"provider": "sagemaker", "modelName": "slow-model", "predictionColumns": ["p"]}
PIPELINES = {
    "short-deadline": {"keyColumn": "id", "service": SERVICE, "maxRunHours": 0.0003, "minPollSeconds": 1},
    "few-polls": {"keyColumn": "id", "service": SERVICE, "maxPolls": 3, "minPollSeconds": 1},
    "long-running": {"keyColumn": "id", "service": SERVICE, "minPollSeconds": 1},
    # Uploads over 1 KiB are cut and prepared by shards: the run's jobs come from MergeShards.
    "long-running-cut": {"keyColumn": "id", "service": SERVICE, "minPollSeconds": 1, "prepareShardBytes": 1024},
    "quota-deadline": {
        "keyColumn": "userId",
        "maxRunHours": 0.0003,
        "service": {
            "provider": "personalize",
            "recipe": "USER_PERSONALIZATION",
            "roleArn": "arn:aws:iam::123456789012:role/p",
            "solutionVersionArn": "arn:aws:personalize:us-east-1:123456789012:solution/busy/1",
        },
    },
}


@pytest.fixture(scope="module")
def slow_runtime(validate_event: Any) -> Iterator[LocalRuntime]:
    # The emulated job stays InProgress far longer than either bound. Waits run at a tenth of real time,
    # so a 1 s poll interval takes 0.1 s and the ~1 s deadline passes after a handful of polls.
    with LocalRuntime(PIPELINES, time_scale=0.1, service_polls_until_done=10_000) as local:
        yield local
        check_every_event(local, validate_event)


def test_deadline_passing_stops_the_job_and_names_the_deadline(
    slow_runtime: LocalRuntime, validate_event: Any, tmp_path: Path
) -> None:
    result = slow_runtime.run_file(write_csv(tmp_path / "slow.csv", ["id", "x"], [["a", 1]]), "short-deadline")

    assert result.status == "FAILED"
    assert result.event is not None
    validate_event(result.event)
    error = result.event["detail"]["error"]
    assert error["error"] == "RunDeadlineExceeded"
    assert "passed its deadline" in error["cause"]
    job_id = result.event["detail"]["jobs"][0]["jobId"]
    assert error["jobStopped"] == job_id
    assert slow_runtime.sagemaker.jobs[job_id].stop_requested


def test_poll_bound_ends_the_run(slow_runtime: LocalRuntime, validate_event: Any, tmp_path: Path) -> None:
    result = slow_runtime.run_file(write_csv(tmp_path / "polls.csv", ["id", "x"], [["a", 1]]), "few-polls")

    assert result.status == "FAILED"
    assert result.event is not None
    validate_event(result.event)
    assert result.event["detail"]["error"]["error"] == "PollLimitReached"
    assert "was polled 3 times (maxPolls)" in result.event["detail"]["error"]["cause"]
    assert result.event["detail"]["error"]["jobStopped"] == result.event["detail"]["jobs"][0]["jobId"]
    assert len(step_inputs(slow_runtime, "PollJob", result.run_id)) == 3


def test_waiting_for_a_job_slot_ends_at_the_deadline(slow_runtime: LocalRuntime, tmp_path: Path) -> None:
    slow_runtime.personalize.quota_full_for = 10**6  # the account's job quota never frees up
    try:
        result = slow_runtime.run_file(write_csv(tmp_path / "q.csv", ["userId"], [["u1"]]), "quota-deadline")
    finally:
        slow_runtime.personalize.quota_full_for = 0

    assert result.status == "FAILED"
    assert result.event is not None
    error = result.event["detail"]["error"]
    assert error["error"] == "RunDeadlineExceeded"
    assert "while waiting for a job slot" in error["cause"] and "LimitExceededException" in error["cause"]
    # Every attempt reported the run's age though it raised: a run stuck waiting for a slot stays seen.
    attempts = [
        p for n, p in slow_runtime.invocations if n.endswith("SubmitJob") and p["run"]["runId"] == result.run_id
    ]
    ages = [d for d in slow_runtime.metrics if d.get("run_id") == result.run_id and "RunAge" in d]
    assert attempts and len(ages) == len(attempts)


@pytest.mark.parametrize(
    ("pipeline", "rows"), [("long-running", 1), ("long-running-cut", 400)], ids=["whole-file", "cut-upload"]
)
def test_stopping_an_execution_by_hand_stops_its_job_and_publishes_a_failure(
    slow_runtime: LocalRuntime, validate_event: Any, tmp_path: Path, pipeline: str, rows: int
) -> None:
    upload = write_csv(tmp_path / "manual.csv", ["id", "x"], [[f"k{n}", n] for n in range(rows)])
    obj = slow_runtime.upload(upload, pipeline)
    decision = slow_runtime.deliver(slow_runtime.object_created_event(obj))
    job_name = job_name_for(decision["runId"], suffix="-0")
    for _ in range(1000):  # wait (bounded) until this run's job exists; earlier tests left jobs of their own
        if job_name in slow_runtime.sagemaker.jobs:
            break
        time.sleep(0.01)
    assert job_name in slow_runtime.sagemaker.jobs, "the run never submitted its job"

    handled = slow_runtime.stop_by_hand(decision["runId"])
    # EventBridge delivers at least once: the same status change may come again
    again = slow_runtime.execution_ended(decision["runId"], "ABORTED")

    assert handled["handled"] is True, handled
    assert again["handled"] is False and "already reported" in again["reason"]
    events = [e for e in slow_runtime.published_events() if e["detail"]["runId"] == decision["runId"]]
    assert len(events) == 1
    validate_event(events[0])
    error = events[0]["detail"]["error"]
    assert error["error"] == "ExecutionAborted" and "stopped by hand" in error["cause"]
    assert error["jobStopped"] == job_name
    assert slow_runtime.sagemaker.jobs[error["jobStopped"]].stop_requested
    # ExecutionEnded reports the stopped run's records like any other outcome (metrics carry the run ID).
    outcome = [d for d in slow_runtime.metrics if d.get("run_id") == decision["runId"] and "RecordsIn" in d]
    assert len(outcome) == 1 and (outcome[0]["RecordsIn"], outcome[0]["RecordsPredicted"]) == ([float(rows)], [0.0])
