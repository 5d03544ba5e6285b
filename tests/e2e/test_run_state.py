"""The run's own execution stays the same size whatever the number of jobs: each job runs in a child execution,
and the jobs and their looks live in S3, not in the state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchline_local.runtime import LocalRuntime, RunResult, load_pipeline_context
from tests.e2e.conftest import bedrock_pipeline, check_every_event, write_csv

pytestmark = pytest.mark.timeout(180)
PIPELINES = {
    **load_pipeline_context(),
    "many-jobs": bedrock_pipeline(records_per_job=2, maxConcurrentJobs=40),
}


@pytest.fixture(scope="module")
def runtime(validate_event: Any) -> Iterator[LocalRuntime]:
    with LocalRuntime(PIPELINES) as local:
        yield local
        check_every_event(local, validate_event)


def largest_state(result: RunResult) -> int:
    sizes = [0]
    for event in result.history:
        for details in event.values():
            if isinstance(details, dict):
                for key in ("input", "output"):
                    if isinstance(details.get(key), str):
                        sizes.append(len(details[key].encode()))
    return max(sizes)


def run_with_jobs(runtime: LocalRuntime, tmp_path: Path, jobs: int) -> RunResult:
    rows = [[f"k{n}", f"prompt {n}"] for n in range(2 * jobs)]
    result = runtime.run_file(write_csv(tmp_path / f"jobs-{jobs}.csv", ["id", "text"], rows), "many-jobs")
    assert result.event is not None
    detail = result.event["detail"]
    assert detail["status"] == "SUCCEEDED", detail["error"]
    assert detail["jobCount"] == jobs and detail["counts"]["predicted"] == 2 * jobs
    return result


def test_the_runs_history_and_state_do_not_grow_with_its_jobs(runtime: LocalRuntime, tmp_path: Path) -> None:
    one, forty = run_with_jobs(runtime, tmp_path, 1), run_with_jobs(runtime, tmp_path, 40)

    assert len(forty.history) == len(one.history)
    # The largest state is the outcome event, which lists at most 25 jobs (each with its last look and the service's
    # figures, about 450 bytes): bounded at any number of jobs, far under Step Functions' 256 KiB.
    assert largest_state(one) < 4 * 1024 and largest_state(forty) < 16 * 1024
    assert forty.event is not None and forty.event["detail"]["jobCount"] == 40
    assert len(forty.event["detail"]["jobs"]) == 25  # the event lists 25; manifest.json lists all 40
