"""Issue 14 asks for a state bounded at any size: "the largest state of a 1,000-job run stays within 32 KiB". The
outcome event lists at most 25 jobs, and the Distributed Maps write their children's results to S3 (ResultWriter),
so past 25 jobs nothing in the run's state grows with its jobs or its Collect units (before ResultWriter it grew by
about 60 bytes a job). Its own module: it starts its own runtime."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchline_local.runtime import LocalRuntime, RunResult
from tests.e2e.conftest import bedrock_pipeline, write_csv

pytestmark = pytest.mark.timeout(300)
PIPELINES = {"two-a-job": bedrock_pipeline(records_per_job=2, maxConcurrentJobs=40)}


def run_with_jobs(runtime: LocalRuntime, tmp_path: Path, jobs: int) -> RunResult:
    rows = [[f"k{n}", f"prompt {n}"] for n in range(2 * jobs)]
    result = runtime.run_file(write_csv(tmp_path / f"jobs-{jobs}.csv", ["id", "text"], rows), "two-a-job")
    assert result.status == "SUCCEEDED" and result.event is not None
    assert result.event["detail"]["jobCount"] == jobs
    return result


def test_the_largest_state_does_not_grow_with_the_number_of_collect_units(tmp_path: Path) -> None:
    # GIVEN runs of 30 and 200 jobs (one Collect unit a job): both past the 25 jobs the outcome event lists
    with LocalRuntime(PIPELINES) as runtime:
        thirty, two_hundred = run_with_jobs(runtime, tmp_path, 30), run_with_jobs(runtime, tmp_path, 200)

    # THEN the largest state is the same but for a few digits (job numbers, timings)
    grown = two_hundred.orchestration["largestStateBytes"] - thirty.orchestration["largestStateBytes"]
    assert grown < 512, f"the largest state grew by {grown} bytes from 30 to 200 jobs"
