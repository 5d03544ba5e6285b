"""A SageMaker or Bedrock job's wait ends at its end event on the default bus or at its next poll, whichever comes
first (AwaitJobEnd + WakeJob), on the local runtime: the emulators publish the services' events and the runtime
delivers them to the rule's target, as EventBridge does.

Time: the runtime runs waits at 1/100 of their length, and every job ends JOB_SECONDS (real) after its creation,
whatever the polls. With minPollSeconds 200 a plain wait lasts 2 s; with events the fallback wait is four times
that (8 s), so a job ending at 5 s ends between two polls either way.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from batchline.backoff import EVENT_WAIT_FACTOR

from batchline_local.runtime import BUCKETS, LocalRuntime, RunResult, load_pipeline_context
from tests.e2e.conftest import SAMPLES, check_every_event, read_s3_json

pytestmark = pytest.mark.timeout(120)
TIME_SCALE = 0.01
JOB_SECONDS = 5.0
POLL_SECONDS = 200  # 2 s real at TIME_SCALE without events, EVENT_WAIT_FACTOR times that with them
# Within this of the job's end event (real seconds), the run has noticed it, collected and published its event.
NOTICE_SECONDS = 6.0  # under the 8 s fallback wait with events (4 x 2 s): only the event can end it this soon
POLLING = {"minPollSeconds": POLL_SECONDS, "maxPollSeconds": 86400}
BASE = load_pipeline_context()
PIPELINES = {
    "sm-events": {**BASE["demo-sagemaker"], **POLLING},
    "sm-polls": {**BASE["demo-sagemaker"], **POLLING, "jobEvents": False},
    "br-events": {**BASE["demo-bedrock"], **POLLING},
    "br-polls": {**BASE["demo-bedrock"], **POLLING, "jobEvents": False},
}
SAMPLE = {"sm": SAMPLES / "demo-sagemaker.csv", "br": SAMPLES / "demo-bedrock.csv"}


@pytest.fixture(scope="module")
def runtime(validate_event: Any) -> Iterator[LocalRuntime]:
    with LocalRuntime(PIPELINES, time_scale=TIME_SCALE, service_job_seconds=JOB_SECONDS) as local:
        yield local
        check_every_event(local, validate_event)


def run(runtime: LocalRuntime, pipeline: str) -> tuple[RunResult, float, float]:
    """The run, when it ended (monotonic) and when its job's end event was published."""
    published = len(runtime.service_events)
    result = runtime.run_file(SAMPLE[pipeline[:2]], pipeline, timeout_seconds=60)
    ended = time.monotonic()
    ends = [
        at
        for at, event in runtime.service_events[published:]
        if (event["detail"].get("TransformJobStatus") or event["detail"].get("status")) in ("Completed", "Stopped")
    ]
    assert len(ends) == 1, runtime.service_events[published:]
    return result, ended, ends[0]


def polls(runtime: LocalRuntime, pipeline: str, run_id: str) -> int:
    look = read_s3_json(runtime, f"s3://{BUCKETS['work']}/{pipeline}/{run_id}/state/job-00000.json")
    return int(look["pollCount"])


@pytest.mark.parametrize("service", ["sm", "br"])
def test_a_job_ending_between_polls_is_noticed_within_seconds_of_its_end_event(
    runtime: LocalRuntime, service: str
) -> None:
    # GIVEN the same job (ending 5 s after creation), once with the end event and once polled only
    # WHEN each runs
    woken, woken_end, woken_event = run(runtime, f"{service}-events")
    polled, polled_end, polled_event = run(runtime, f"{service}-polls")

    # THEN both succeed; with the event the run ends within seconds of it, after one poll (the one it woke)
    assert woken.status == polled.status == "SUCCEEDED"
    assert woken_end - woken_event < NOTICE_SECONDS
    assert polls(runtime, f"{service}-events", woken.run_id) == 1
    # polled only, it waited for its polls (2 s apart): more polls, and noticed later after the job's end
    assert polls(runtime, f"{service}-polls", polled.run_id) >= JOB_SECONDS // (POLL_SECONDS * TIME_SCALE)
    assert polls(runtime, f"{service}-events", woken.run_id) < polls(runtime, f"{service}-polls", polled.run_id)
    assert woken.event is not None and polled.event is not None
    assert woken.event["detail"]["counts"] == polled.event["detail"]["counts"]


def test_a_lost_event_costs_one_poll_interval_and_the_run_still_finishes(runtime: LocalRuntime) -> None:
    runtime.lose_service_events = True
    try:
        result, ended, event_at = run(runtime, "sm-events")
    finally:
        runtime.lose_service_events = False

    assert result.status == "SUCCEEDED"
    # the wait ran to its timeout (the fallback poll), which found the job done
    assert polls(runtime, "sm-events", result.run_id) == 1
    fallback = EVENT_WAIT_FACTOR * POLL_SECONDS * TIME_SCALE
    assert ended - event_at > fallback - JOB_SECONDS - 0.5
    assert ended - event_at < fallback + NOTICE_SECONDS


def test_a_duplicate_event_changes_nothing(runtime: LocalRuntime) -> None:
    woken_before = len(runtime.wake_results)
    runtime.service_event_deliveries = 2
    try:
        result, ended, event_at = run(runtime, "br-events")
    finally:
        runtime.service_event_deliveries = 1

    assert result.status == "SUCCEEDED"
    assert ended - event_at < NOTICE_SECONDS
    assert polls(runtime, "br-events", result.run_id) == 1
    deadline = time.monotonic() + 10
    while len(runtime.wake_results) < woken_before + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    deliveries = runtime.wake_results[woken_before:]
    assert [d["woken"] for d in deliveries] == [True, False]  # the second found the wait already over
    assert result.event is not None and result.event["detail"]["counts"]["predicted"] > 0


def test_a_foreign_event_is_ignored(runtime: LocalRuntime) -> None:
    # Another team's transform job, and a job named like Batchline's that no run of this stack waits for.
    foreign = {
        "version": "0",
        "id": "foreign-1",
        "source": "aws.sagemaker",
        "detail-type": "SageMaker Transform Job State Change",
        "account": "123456789012",
        "region": "us-east-1",
        "time": "2026-01-01T00:00:00Z",
        "resources": [],
        "detail": {"TransformJobName": "their-nightly-job", "TransformJobStatus": "Completed"},
    }
    unknown = {**foreign, "detail": {"TransformJobName": "bl-nobody-waits-0", "TransformJobStatus": "Completed"}}
    other_service = {**foreign, "source": "aws.batch", "detail-type": "Batch Job State Change", "detail": {}}

    assert runtime.deliver_service_event(foreign)["woken"] is False
    assert runtime.deliver_service_event(other_service)["woken"] is False
    answer = runtime.deliver_service_event(unknown)
    assert answer == {"woken": False, "jobName": "bl-nobody-waits-0", "reason": "no wait recorded for this job"}


def test_a_token_whose_wait_is_over_is_refused_as_step_functions_refuses_it(runtime: LocalRuntime) -> None:
    # A late event whose wait already timed out: WakeJob's SendTaskSuccess must get AWS's InvalidToken (which it
    # takes as "the wait is over"), not an error of the emulation.
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as refused:
        runtime.client("stepfunctions").send_task_success(taskToken="a-wait-that-is-over", output="{}")
    assert refused.value.response["Error"]["Code"] == "InvalidToken"
