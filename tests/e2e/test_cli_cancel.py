"""`batchline cancel RUN --local`: a run cancelled while its job runs has its service job stopped and publishes
exactly one failure event, as a stop from the console does (the local runtime delivers ABORTED to the real
ExecutionEnded function, as the stack's EventBridge rule does on AWS)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from batchline.naming import job_name_for

from batchline_local.cli import main
from batchline_local.runtime import LocalRuntime
from tests.e2e.conftest import SAMPLES, check_every_event
from tests.e2e.test_run_endings import events_of, stopped, wait_until

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("no_aws_configuration")]


@pytest.fixture(scope="module")
def slow_runtime(no_aws_configuration: Any, validate_event: Any) -> Iterator[LocalRuntime]:
    # cdk.json's pipelines; every emulated job stays in progress far longer than any test waits.
    with LocalRuntime(time_scale=0.1, service_polls_until_done=10_000) as local:
        yield local
        check_every_event(local, validate_event)


def submit(capsys: pytest.CaptureFixture[str]) -> str:
    code = main(["submit", str(SAMPLES / "demo-sagemaker.csv"), "--pipeline", "demo-sagemaker", "--local", "--json"])
    assert code == 0
    return str(json.loads(capsys.readouterr().out)["runId"])


def test_cancel_stops_a_running_local_run_and_its_job_and_publishes_one_failure_event(
    slow_runtime: LocalRuntime, validate_event: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a run whose SageMaker job is running
    run_id = submit(capsys)
    job_name = job_name_for(run_id, suffix="-0")
    wait_until(lambda: job_name in slow_runtime.sagemaker.jobs, "the run's SageMaker job")

    # WHEN it is cancelled
    code = main(["cancel", run_id, "--local"])
    out = capsys.readouterr().out

    # THEN the execution ended, its job was stopped, and exactly one failure event says so
    assert code == 0
    sfn = slow_runtime.client("stepfunctions")
    assert sfn.describe_execution(executionArn=slow_runtime.execution_arn(run_id))["status"] != "RUNNING"
    assert slow_runtime.sagemaker.jobs[job_name].stop_requested
    (event,) = events_of(slow_runtime, run_id)
    validate_event(event)
    assert event["detail-type"] == "Batch Prediction Failed"
    error = event["detail"]["error"]
    assert error["error"] == "ExecutionAborted"
    assert stopped(error) == {job_name}
    # the event shows the job as it is after the stop request, not the running look taken before it
    [job] = event["detail"]["jobs"]
    assert job["rawStatus"] in ("Stopping", "Stopped"), job
    # and the output says what happened: the jobs it stopped and the event, by ExecutionEnded
    assert f"run {run_id}" in out and "ExecutionEnded" in out and job_name in out
    assert "Batch Prediction Failed" in out

    # WHEN it is cancelled again, THEN nothing more happens: one line, exit 1, still one event
    assert main(["cancel", run_id, "--local"]) == 1
    assert "has already ended" in capsys.readouterr().err
    assert len(events_of(slow_runtime, run_id)) == 1


def test_a_run_stopped_through_local_serve_has_its_job_stopped_and_one_failure_event(
    slow_runtime: LocalRuntime, validate_event: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from batchline_local.serve import InboxWatcher

    # GIVEN a served runtime's watcher and a run whose job is running
    watcher = InboxWatcher(slow_runtime)
    run_id = submit(capsys)
    job_name = job_name_for(run_id, suffix="-0")
    wait_until(lambda: job_name in slow_runtime.sagemaker.jobs, "the run's SageMaker job")

    # WHEN the run is stopped as `batchline cancel --endpoint-url` does it (StopExecution only), and the watcher
    # looks twice (EventBridge delivers the status change once; the watcher must not report it twice)
    sfn = slow_runtime.client("stepfunctions")
    sfn.stop_execution(executionArn=slow_runtime.execution_arn(run_id), error="Cancelled", cause="batchline cancel")
    wait_until(
        lambda: sfn.describe_execution(executionArn=slow_runtime.execution_arn(run_id))["status"] != "RUNNING",
        "the execution to stop",
    )
    watcher.deliver_endings()
    watcher.deliver_endings()

    # THEN ExecutionEnded ran as the stack's rule would run it: the job stopped, one failure event
    assert slow_runtime.sagemaker.jobs[job_name].stop_requested
    (event,) = events_of(slow_runtime, run_id)
    validate_event(event)
    assert event["detail"]["error"]["error"] == "ExecutionAborted"
    assert stopped(event["detail"]["error"]) == {job_name}
