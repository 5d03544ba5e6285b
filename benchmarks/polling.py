"""Orchestration cost of the real back-off: polls, history events and notification delay per job length."""

from __future__ import annotations

from dataclasses import dataclass

from batchline.backoff import next_wait_seconds
from batchline.config import PipelineConfig

# History events per poll turn in a job's child execution (each job runs in its own, under RunJobs' Distributed
# Map, so these never reach the run's history): WaitStateEntered/Exited, TaskStateEntered,
# LambdaFunctionScheduled/Started/Succeeded, TaskStateExited, ChoiceStateEntered/Exited.
EVENTS_PER_POLL = 9
# Events of the child outside the polling loop: ExecutionStarted, SubmitJob's five (as a poll's Task), IsJobDone's
# two, JobEnded's two, ExecutionSucceeded. benchmarks/orchestration.py checks it against a real child's history.
FIXED_EVENTS = 11
HISTORY_TARGET = 2_500


@dataclass
class PollingCost:
    job_seconds: float
    polls: int
    history_events: int
    notify_delay_seconds: float

    @property
    def delay_share(self) -> float:
        return self.notify_delay_seconds / self.job_seconds


def polling_cost(job_seconds: float, pipeline: PipelineConfig) -> PollingCost:
    """Simulate the Wait/Poll loop with the same function the PollJob Lambda uses."""
    elapsed = 0.0
    polls = 0
    while elapsed < job_seconds:
        elapsed += next_wait_seconds(elapsed, minimum=pipeline.min_poll_seconds, maximum=pipeline.max_poll_seconds)
        polls += 1
    return PollingCost(job_seconds, polls, FIXED_EVENTS + EVENTS_PER_POLL * polls, elapsed - job_seconds)
