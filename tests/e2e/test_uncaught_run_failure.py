"""An execution that fails with an error no Catch handles (States.DataLimitExceeded here) still stops its service
jobs and publishes exactly one failure event (issue 14), through ExecutionEnded as the stack's rule on FAILED
executions brings it there. Its own module: it starts its own runtime, with a lowered state limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from batchline.naming import job_name_for

from batchline_local.interpreter import Limits
from batchline_local.runtime import LocalRuntime
from tests.e2e.conftest import write_csv
from tests.e2e.test_run_endings import SAGEMAKER, entered, events_of, stopped

pytestmark = pytest.mark.timeout(180)


def test_an_execution_failing_with_an_uncaught_runtime_error_stops_its_jobs_and_publishes_one_event(
    validate_event: Any, tmp_path: Path
) -> None:
    # GIVEN a cut SageMaker upload and a state limit of 1,000 bytes (256 KiB on AWS). Measured on this run: every
    # state up to the job's child input stays under 940 bytes, and SubmitJob's result takes the child's state past
    # 1,000 bytes. So the job is created, then its child fails with States.DataLimitExceeded; the RunJobs Map fails
    # and its Catch adds the error to a state already over the limit: the execution fails with no Catch able to run.
    upload = write_csv(tmp_path / "cut.csv", ["id", "x"], [[f"k{n}", n] for n in range(400)])
    pipelines = {"cut": {"keyColumn": "id", "service": SAGEMAKER, "minPollSeconds": 1, "prepareShardBytes": 1024}}
    with LocalRuntime(
        pipelines, time_scale=0.1, service_polls_until_done=10_000, limits=Limits(state_bytes=1_000)
    ) as runtime:
        # WHEN the run goes
        result = runtime.run_file(upload, "cut", timeout_seconds=120)
        described = runtime.client("stepfunctions").describe_execution(executionArn=result.execution_arn)
        job_name = job_name_for(result.run_id, suffix="-0")
        jobs = runtime.sagemaker.jobs
        events = events_of(runtime, result.run_id)

    # THEN the execution failed with States.DataLimitExceeded after submitting its job, and no Catch handled it
    assert "MergeShards" in entered(result.history), "the upload was not cut"
    assert job_name in jobs, "the run never submitted its job: the limit failed it too early"
    assert result.status == "FAILED" and described["error"] == "States.DataLimitExceeded", described
    assert "ReportFailure" not in entered(result.history)
    # AND ExecutionEnded stopped the job and published exactly one failure event, which says so
    assert len(events) == 1, events
    validate_event(events[0])
    error = events[0]["detail"]["error"]
    assert error["error"] == "ExecutionFailed" and "States.DataLimitExceeded" in error["cause"]
    assert stopped(error) == {job_name}
    assert jobs[job_name].stop_requested
