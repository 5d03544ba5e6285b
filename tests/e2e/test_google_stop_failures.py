"""A Vertex run stopped by hand whose Google token is refused reports that the stop failed and why, instead of
reading the refusal as "never created: nothing to stop" and leaving the job running (issue 15)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batchline.naming import job_name_for

from batchline_local.runtime import LocalRuntime, load_pipeline_context
from tests.e2e.conftest import check_every_event, write_csv

pytestmark = pytest.mark.timeout(120)
PIPELINES = {"vertex-slow": {**load_pipeline_context()["demo-vertex"], "minPollSeconds": 1}}
HEADER = ["id", "sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="module")
def slow_runtime(validate_event: Any) -> Iterator[LocalRuntime]:
    with LocalRuntime(PIPELINES, time_scale=0.1, service_polls_until_done=10_000) as local:
        yield local
        check_every_event(local, validate_event)


def stopped_while_refused(runtime: LocalRuntime, tmp_path: Path) -> tuple[str, str]:
    """Start a Vertex run, wait for its job, unbind ExecutionEnded's role, stop the run by hand: (run, job)."""
    upload = runtime.upload(write_csv(tmp_path / "v.csv", HEADER, [["a", 1, 2, 3, 4]]), "vertex-slow")
    run_id = str(runtime.deliver(runtime.object_created_event(upload))["runId"])
    label = job_name_for(run_id, suffix="-0")
    deadline = time.monotonic() + 60
    while not (job := next((n for n, j in runtime.google.jobs.items() if j.get("displayName") == label), None)):
        assert time.monotonic() < deadline, "the run never created its Vertex job"
        time.sleep(0.01)
    # Whatever the stack binds, the role stopping the run is not bound here.
    runtime.google.bound_callers -= {"ExecutionEnded"}
    try:
        runtime.stop_by_hand(run_id)
    finally:
        runtime.google.bound_callers = runtime.google.bound_callers | {"ExecutionEnded"}
    return run_id, job


def test_a_refused_token_leaves_the_vertex_job_running_and_the_refusal_is_googles(
    slow_runtime: LocalRuntime, tmp_path: Path
) -> None:
    _, job = stopped_while_refused(slow_runtime, tmp_path)

    assert "ExecutionEnded" in slow_runtime.google.refused
    assert slow_runtime.google.jobs[job]["state"] not in ("JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED")


def test_a_vertex_run_stopped_by_hand_whose_token_is_refused_reports_the_stop_failure(
    slow_runtime: LocalRuntime, tmp_path: Path
) -> None:
    run_id, job = stopped_while_refused(slow_runtime, tmp_path)

    (event,) = [e for e in slow_runtime.published_events() if e["detail"]["runId"] == run_id]
    error = event["detail"]["error"]
    assert "jobStopped" not in error
    assert "token exchange failed" in error["stopError"] and "getAccessToken" in error["stopError"]
