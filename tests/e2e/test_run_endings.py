"""Every way a run ends other than success stops the service jobs still running and publishes exactly one failure
event saying which were stopped (issue 14): stopped by hand, past its deadline, an uncaught runtime error; whole-file
and cut uploads, one job and several, AWS and Google services. An uncaught runtime error needs its own runtime
(lowered limits): tests/e2e/test_uncaught_run_failure.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from batchline.naming import job_name_for

from batchline_local.runtime import LocalRuntime, load_pipeline_context
from tests.e2e.conftest import bedrock_pipeline, check_every_event, write_csv

pytestmark = pytest.mark.timeout(180)

SAGEMAKER = {"provider": "sagemaker", "modelName": "slow-model", "predictionColumns": ["p"]}
VERTEX = load_pipeline_context()["demo-vertex"]
VERTEX_HEADER = ["id", "sepal_length", "sepal_width", "petal_length", "petal_width"]
# A deadline of about 11 s: long enough for a cut upload to be prepared and its job submitted on a busy machine,
# short enough that the test ends soon after (polls run at a tenth of real time: every 0.1 s or so).
DEADLINE_HOURS = 0.003
PIPELINES = {
    # Uploads over 1 KiB are cut and prepared by shards: the run's jobs come from MergeShards, not PrepareInput.
    "cut-deadline": {
        "keyColumn": "id",
        "service": SAGEMAKER,
        "minPollSeconds": 1,
        "prepareShardBytes": 1024,
        "maxRunHours": DEADLINE_HOURS,
    },
    "vertex-slow": {**VERTEX, "minPollSeconds": 1},
    # Two records a job: six records make three Bedrock jobs, all running at once.
    "bedrock-deadline": bedrock_pipeline(
        records_per_job=2, maxConcurrentJobs=3, minPollSeconds=1, maxRunHours=DEADLINE_HOURS
    ),
}


@pytest.fixture(scope="module")
def slow_runtime(validate_event: Any) -> Iterator[LocalRuntime]:
    # Every emulated job stays in progress far longer than any test waits, unless a test finishes it.
    with LocalRuntime(PIPELINES, time_scale=0.1, service_polls_until_done=10_000) as local:
        yield local
        check_every_event(local, validate_event)


def start(runtime: LocalRuntime, upload: Path, pipeline: str) -> str:
    decision = runtime.deliver(runtime.object_created_event(runtime.upload(upload, pipeline)))
    assert decision.get("started"), decision
    return str(decision["runId"])


def wait_until(found: Callable[[], Any], what: str, seconds: float = 60.0) -> Any:
    """Poll (bounded) until ``found()`` returns something truthy."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"gave up after {seconds:g} s waiting for {what}")


def events_of(runtime: LocalRuntime, run_id: str) -> list[dict[str, Any]]:
    return [e for e in runtime.published_events() if e["detail"]["runId"] == run_id]


def entered(history: list[dict[str, Any]]) -> list[str]:
    """The states an execution entered, in order."""
    return [e["stateEnteredEventDetails"]["name"] for e in history if e["type"].endswith("StateEntered")]


def stopped(error: dict[str, Any]) -> set[str]:
    return {name.strip() for name in (error.get("jobStopped") or "").split(",") if name.strip()}


def test_a_vertex_run_stopped_by_hand_cancels_its_vertex_job(
    slow_runtime: LocalRuntime, validate_event: Any, tmp_path: Path
) -> None:
    # GIVEN a Vertex AI run whose batch prediction job is running
    run_id = start(slow_runtime, write_csv(tmp_path / "v.csv", VERTEX_HEADER, [["a", 1, 2, 3, 4]]), "vertex-slow")
    label = job_name_for(run_id, suffix="-0")
    job_id = wait_until(
        lambda: next((n for n, j in slow_runtime.google.jobs.items() if j.get("displayName") == label), None),
        "the run's Vertex job",
    )

    # WHEN it is stopped from the console
    handled = slow_runtime.stop_by_hand(run_id)

    # THEN Vertex was asked to cancel the job, and the run's one failure event says so
    assert handled["handled"] is True, handled
    assert slow_runtime.google.jobs[job_id]["state"] in ("JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED")
    (event,) = events_of(slow_runtime, run_id)
    validate_event(event)
    error = event["detail"]["error"]
    assert error["error"] == "ExecutionAborted" and "stopped by hand" in error["cause"]
    assert stopped(error) == {job_id}
    assert "stopError" not in error


def test_a_cut_run_past_its_deadline_stops_its_job_and_says_so(
    slow_runtime: LocalRuntime, validate_event: Any, tmp_path: Path
) -> None:
    # GIVEN an upload over prepareShardBytes (cut, its job planned by MergeShards) whose job outlasts the deadline
    upload = write_csv(tmp_path / "cut.csv", ["id", "x"], [[f"k{n}", n] for n in range(400)])
    result = slow_runtime.run_file(upload, "cut-deadline")

    assert "MergeShards" in entered(result.history), "the upload was not cut"
    job_name = job_name_for(result.run_id, suffix="-0")
    assert job_name in slow_runtime.sagemaker.jobs, "the run never submitted its job"
    # THEN the run failed by its deadline, the job was stopped, and the one event says which
    assert result.status == "FAILED"
    (event,) = events_of(slow_runtime, result.run_id)
    validate_event(event)
    error = event["detail"]["error"]
    assert error["error"] == "RunDeadlineExceeded" and "passed its deadline" in error["cause"]
    assert stopped(error) == {job_name}
    assert slow_runtime.sagemaker.jobs[job_name].stop_requested


def test_a_deadline_passing_stops_every_job_still_running_and_names_the_deadline(
    slow_runtime: LocalRuntime, validate_event: Any, tmp_path: Path
) -> None:
    # GIVEN three Bedrock jobs running at once, of which the first finishes and the other two outlast the deadline
    rows = [[f"k{n}", f"prompt {n}"] for n in range(6)]
    run_id = start(slow_runtime, write_csv(tmp_path / "three.csv", ["id", "text"], rows), "bedrock-deadline")
    names = [job_name_for(run_id, suffix=f"-{index}") for index in range(3)]

    def job(name: str) -> dict[str, Any] | None:
        return next((j for j in list(slow_runtime.bedrock.jobs.values()) if j["jobName"] == name), None)

    first = wait_until(lambda: job(names[0]), "the run's first Bedrock job")
    first["step"] = slow_runtime.bedrock.polls_until_done  # its next look finds it done
    result = slow_runtime.wait_for(run_id, timeout_seconds=120)

    # THEN the run failed by its deadline; the two jobs still running were stopped, the finished one was not
    assert result.status == "FAILED"
    (event,) = events_of(slow_runtime, run_id)
    validate_event(event)
    detail = event["detail"]
    assert detail["error"]["error"] == "RunDeadlineExceeded" and "passed its deadline" in detail["error"]["cause"]
    running = [job(name) for name in names[1:]]
    assert all(j is not None and j.get("stop_requested") for j in running), running
    assert stopped(detail["error"]) == {j["jobArn"] for j in running if j is not None}
    assert first["status"] == "Completed" and not first.get("stop_requested")
    assert detail["jobCount"] == 3
