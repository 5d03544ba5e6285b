"""The steps of one job's child execution (RunJobs' Distributed Map): SubmitJob, PollJob and JobErrored.

Each records the job's last look in ``state/job-NNNNN.json``, where the run's later steps read every job.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from batchline import errors as errors_module
from batchline.adapters import adapter_for
from batchline.adapters.base import JobState, JobStatus
from batchline.backoff import next_wait_seconds, next_wait_seconds_with_events
from batchline.clients import AwsClients
from batchline.clock import iso, parse_time, utc_now
from batchline.config import Deployment, Pipelines
from batchline.errors import BatchlineError, JobStepFailed, PollLimitReached, QuotaFull, RunDeadlineExceeded
from batchline.s3io import put_bytes
from batchline.state import ChunkItem, JobLook, RunFacts, StepError
from batchline.steps.run import describe_error, run_context


def submit_job(
    run: RunFacts,
    chunk: ChunkItem,
    *,
    pipelines: Pipelines,
    deployment: Deployment,
    clients: AwsClients,
) -> JobLook:
    """Create (or find) the chunk's job. Past the deadline while waiting for a quota slot, the job's execution
    ends with ``ended`` set instead of failing, so the run can stop every other job and say why."""
    context = run_context(run, chunk, pipelines, deployment)
    try:
        state = adapter_for(context.pipeline, clients).submit(context)
    except QuotaFull as exc:
        # The state machine retries QuotaFull to wait for a slot; past the deadline, waiting stops.
        if utc_now() <= parse_time(run.deadline):
            raise
        job = JobLook(
            chunk=chunk.index,
            job_id=None,
            status=JobStatus.PENDING.value,
            raw_status="NotSubmitted",
            poll_count=0,
            ended=RunDeadlineExceeded.__name__,
            cause=f"the run passed its deadline {run.deadline} while waiting for a job slot: {exc}",
        )
    else:
        job = _look(state, run, chunk, 0, pipelines)
    _record(clients, deployment, run, job)
    return job


def poll_job(
    run: RunFacts,
    chunk: ChunkItem,
    job: JobLook,
    *,
    pipelines: Pipelines,
    deployment: Deployment,
    clients: AwsClients,
) -> JobLook:
    """One look at the job; ``ended`` says the run's deadline or poll bound stopped the waiting."""
    if job.job_id is None:
        raise JobStepFailed(f"job {chunk.index} has no job ID to poll")
    context = run_context(run, chunk, pipelines, deployment)
    state = adapter_for(context.pipeline, clients).describe(context, job.job_id)
    looked = _look(state, run, chunk, (job.poll_count or 0) + 1, pipelines)
    _record(clients, deployment, run, looked)
    return looked


def record_job_error(
    run: RunFacts, chunk: ChunkItem, error: StepError, *, deployment: Deployment, clients: AwsClients
) -> dict[str, Any]:
    """A job's execution caught an error it cannot handle (after its retries): recorded for PlanCollect to raise."""
    described = describe_error(error.dump())
    job = JobLook(
        chunk=chunk.index,
        job_id=None,
        status=JobStatus.PENDING.value,
        raw_status="Unknown",
        ended=described["error"],
        cause=described["cause"],
    )
    _record(clients, deployment, run, job)
    return {"chunk": chunk.index, "ended": described["error"]}


def raise_if_a_job_ended_early(jobs: list[JobLook]) -> None:
    """A job whose execution stopped waiting (deadline, poll bound, an error) fails the run by that name."""
    for job in jobs:
        if job.ended:
            error = getattr(errors_module, job.ended, None)
            if isinstance(error, type) and issubclass(error, BatchlineError):
                raise error(job.cause or "")
            raise JobStepFailed(f"job {job.chunk}: {job.ended}: {job.cause or ''}")


def state_summary(state: JobState) -> dict[str, Any]:
    """The JSON form of one look at a job, as events and manifests carry it."""
    return {
        "jobId": state.job_id,
        "status": state.status.value,
        "rawStatus": state.raw_status,
        "message": state.message,
        "counts": state.counts,
        "figures": state.figures,
    }


def _look(state: JobState, run: RunFacts, chunk: ChunkItem, poll_count: int, pipelines: Pipelines) -> JobLook:
    pipeline = pipelines.get(run.pipeline)
    now = utc_now()
    elapsed = (now - parse_time(run.started_at)).total_seconds()
    look = JobLook(
        chunk=chunk.index,
        job_id=state.job_id,
        status=state.status.value,
        raw_status=state.raw_status,
        message=state.message,
        counts=state.counts,
        figures=state.figures,
        poll_count=poll_count,
        checked_at=iso(now),
        wait_seconds=_wait_seconds(run, elapsed, pipeline.min_poll_seconds, pipeline.max_poll_seconds, now),
    )
    if not state.status.is_terminal:
        if now > parse_time(run.deadline):
            look.ended = RunDeadlineExceeded.__name__
            look.cause = (
                f"the run passed its deadline {run.deadline} while job {state.job_id} was still {state.raw_status}"
            )
        elif poll_count >= run.max_polls:
            look.ended = PollLimitReached.__name__
            look.cause = f"job {state.job_id} was polled {poll_count} times (maxPolls) and is still {state.raw_status}"
    return look


def _wait_seconds(run: RunFacts, elapsed: float, minimum: int, maximum: int, now: datetime) -> int:
    """The plain back-off; with job end events, the longer fallback wait (the event ends it early), never past
    the run's deadline by more than the shortest wait, so a job still running then is seen in time."""
    if not run.job_events:
        return next_wait_seconds(elapsed, minimum=minimum, maximum=maximum)
    wait = next_wait_seconds_with_events(elapsed, minimum=minimum, maximum=maximum)
    to_deadline = (parse_time(run.deadline) - now).total_seconds()
    return int(min(wait, max(to_deadline, minimum)))


def _record(clients: AwsClients, deployment: Deployment, run: RunFacts, job: JobLook) -> None:
    """The job's last look, where the run's later steps read it (each job runs in its own child execution)."""
    location = deployment.layout(run.pipeline, run.run_id).job_state(job.chunk)
    put_bytes(clients.s3, location, json.dumps(job.dump()).encode(), "application/json")
