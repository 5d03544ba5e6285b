"""How soon a run notices its job ended, with and without the services' job end events (SageMaker, Bedrock).

Modelled from the code's own waits (batchline.backoff: the plain back-off, and the sparser one a job waits with
when its end event can end the wait first) and the child execution's history per turn, as benchmarks/polling.py
does for polling. With events the wait ends at the event: the run notices after the event's delivery and one poll
(EVENT_NOTICE_SECONDS, an assumption: EventBridge delivers AWS service events "in near real time"; the local
e2e tests measure the whole path, tests/e2e/test_job_end_events.py). A lost event costs at most one fallback wait.
"""

from __future__ import annotations

from dataclasses import dataclass

from batchline.backoff import next_wait_seconds, next_wait_seconds_with_events
from batchline.config import PipelineConfig, parse_pipelines

from benchmarks.polling import EVENTS_PER_POLL, FIXED_EVENTS
from benchmarks.report import table

# AwaitJobEnd (a lambda:invoke.waitForTaskToken Task): TaskStateEntered, TaskScheduled, TaskStarted, TaskSubmitted,
# TaskSucceeded or TaskTimedOut, TaskStateExited; then PollJob's five and IsJobDone's two, as when polling.
EVENTS_PER_TURN_WITH_EVENTS = 6 + 5 + 2
# States entered per turn (billed transitions): the wait, PollJob, IsJobDone; and outside the loop SubmitJob,
# IsJobDone, JobEnded.
TRANSITIONS_PER_TURN = 3
FIXED_TRANSITIONS = 3
# From the job's end event to PollJob reading the end: EventBridge delivery, WakeJob, SendTaskSuccess, PollJob.
EVENT_NOTICE_SECONDS = 5.0
NOTICE_TARGET_SECONDS = 30.0
JOBS = (("10 minutes", 600), ("6 hours", 6 * 3600), ("24 hours", 86400), ("7 days", 7 * 86400))


@dataclass(frozen=True)
class Notice:
    polls: int
    history_events: int
    transitions: int
    delay_seconds: float


def without_events(job_seconds: float, pipeline: PipelineConfig) -> Notice:
    elapsed, polls = 0.0, 0
    while elapsed < job_seconds:
        elapsed += next_wait_seconds(elapsed, minimum=pipeline.min_poll_seconds, maximum=pipeline.max_poll_seconds)
        polls += 1
    return Notice(
        polls,
        FIXED_EVENTS + EVENTS_PER_POLL * polls,
        FIXED_TRANSITIONS + TRANSITIONS_PER_TURN * polls,
        elapsed - job_seconds,
    )


def with_events(job_seconds: float, pipeline: PipelineConfig, *, lost: bool = False) -> Notice:
    """Fallback polls until the end, then the one the event wakes (or, the event lost, the next fallback poll)."""
    elapsed, polls = 0.0, 0
    while True:
        wait = next_wait_seconds_with_events(
            elapsed, minimum=pipeline.min_poll_seconds, maximum=pipeline.max_poll_seconds
        )
        polls += 1
        if elapsed + wait >= job_seconds:
            delay = (elapsed + wait - job_seconds) if lost else EVENT_NOTICE_SECONDS
            break
        elapsed += wait
    return Notice(
        polls,
        FIXED_EVENTS + EVENTS_PER_TURN_WITH_EVENTS * polls,
        FIXED_TRANSITIONS + TRANSITIONS_PER_TURN * polls,
        delay,
    )


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def report() -> None:
    pipeline = parse_pipelines({"p": {"keyColumn": "id", "service": {"provider": "sagemaker", "modelName": "m"}}}).get(
        "p"
    )
    rows = []
    for label, seconds in JOBS:
        plain, woken = without_events(seconds, pipeline), with_events(seconds, pipeline)
        lost = with_events(seconds, pipeline, lost=True)
        rows.append(
            [
                label,
                f"{plain.polls} / {woken.polls}",
                f"{plain.history_events} / {woken.history_events}",
                f"{plain.transitions} / {woken.transitions}",
                f"{_duration(plain.delay_seconds)} / {_duration(woken.delay_seconds)}",
                _duration(lost.delay_seconds),
                "met" if woken.delay_seconds <= NOTICE_TARGET_SECONDS else "NOT MET",
            ]
        )
    day_plain, day_woken = without_events(86400, pipeline), with_events(86400, pipeline)
    share = day_woken.polls / day_plain.polls
    table(
        f"Noticing a job's end, without / with job end events (SageMaker, Bedrock; back-off "
        f"{pipeline.min_poll_seconds}-{pipeline.max_poll_seconds} s; event delivery to poll assumed "
        f"{EVENT_NOTICE_SECONDS:.0f} s). Targets: notice <= {NOTICE_TARGET_SECONDS:.0f} s with events; 24-hour job "
        f"polls <= 1/3 of today's: {day_woken.polls}/{day_plain.polls} = {share:.2f} "
        f"({'met' if share <= 1 / 3 else 'NOT MET'})",
        ["job length", "polls", "child history events", "state transitions", "notice delay", "event lost", "target"],
        rows,
    )


if __name__ == "__main__":
    report()
