"""WakeJob: a job's wait ends at its next poll or at the service's end event for it, whichever comes first.

Two callers, one function (both need the same two objects and the same call):
- the job's child execution (AwaitJobEnd, ``.waitForTaskToken`` with the poll interval as its timeout) parks the
  job: its task token goes to ``wake/<job-name>.json``. If the job's end event already came after the job's last
  look (it arrived between two waits), the wait ends at once.
- the rules on the default bus (SageMaker's and Bedrock's job state changes, Batchline's job names only) hand the
  event here: it is recorded in ``wake/<job-name>.event.json``, then the waiting task is resumed with
  SendTaskSuccess.

Each side writes its own object before reading the other's (S3 reads are strongly consistent), so an event that
comes while the execution is between two waits is never missed by both. Resuming is only a wake-up: PollJob then
reads the job's status from the service. A stale token (the wait already ended by its timeout or an earlier
event), an unknown job or a foreign event is ignored.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from batchline.adapters import adapter_for
from batchline.clients import AwsClients
from batchline.clock import utc_now
from batchline.config import Deployment, Pipelines
from batchline.job_events import job_end, wake_on_park
from batchline.layout import S3Location, wake_event, wake_token
from batchline.s3io import open_object, put_bytes
from batchline.state import ChunkItem, JobLook, RunFacts
from batchline.steps.run import run_context

# SendTaskSuccess answers for a token whose wait is over (timed out, already resumed, execution ended).
STALE_TOKEN_ERRORS = frozenset({"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"})


def park_job(
    run: RunFacts,
    chunk: ChunkItem,
    job: JobLook,
    task_token: str,
    *,
    pipelines: Pipelines,
    deployment: Deployment,
    clients: AwsClients,
) -> dict[str, Any]:
    """Record the wait's token under the job's name; end the wait at once if the end event is already in."""
    context = run_context(run, chunk, pipelines, deployment)
    name = adapter_for(context.pipeline, clients).job_id(context)  # the deterministic name events carry
    parked = {
        "taskToken": task_token,
        "pipeline": run.pipeline,
        "runId": run.run_id,
        "chunk": chunk.index,
        "lastLookAt": job.checked_at,
        "parkedAt": utc_now().isoformat(),
    }
    put_bytes(clients.s3, wake_token(deployment.work_bucket, name), json.dumps(parked).encode(), "application/json")
    seen = _read(clients.s3, wake_event(deployment.work_bucket, name))
    if seen is not None and wake_on_park(seen.get("receivedAt"), job.checked_at):
        resumed = _resume(clients.stepfunctions, task_token, {"woken": "event", "status": seen.get("status")})
        return {"jobName": name, "parked": True, "resumedAtOnce": resumed}
    return {"jobName": name, "parked": True, "resumedAtOnce": False}


def wake_on_event(event: dict[str, Any], *, deployment: Deployment, clients: AwsClients) -> dict[str, Any]:
    """Resume the job's wait for a job end event; anything else is ignored (and says why)."""
    ended = job_end(event)
    if ended is None:
        return {"woken": False, "reason": "not the end of a Batchline job"}
    record = {"status": ended.status, "eventTime": ended.time, "receivedAt": utc_now().isoformat()}
    put_bytes(
        clients.s3,
        wake_event(deployment.work_bucket, ended.job_name),
        json.dumps(record).encode(),
        "application/json",
    )
    parked = _read(clients.s3, wake_token(deployment.work_bucket, ended.job_name))
    if parked is None:
        return {"woken": False, "jobName": ended.job_name, "reason": "no wait recorded for this job"}
    woken = _resume(clients.stepfunctions, parked["taskToken"], {"woken": "event", "status": ended.status})
    summary = {
        "woken": woken,
        "jobName": ended.job_name,
        "runId": parked.get("runId"),
        "pipeline": parked.get("pipeline"),
        "chunk": parked.get("chunk"),
    }
    if not woken:
        summary["reason"] = "the wait had already ended (a poll, or an earlier event)"
    return summary


def _resume(stepfunctions: Any, token: str, output: dict[str, Any]) -> bool:
    try:
        stepfunctions.send_task_success(taskToken=token, output=json.dumps(output))
    except ClientError as exc:
        if exc.response["Error"]["Code"] in STALE_TOKEN_ERRORS:
            return False
        raise
    return True


def _read(s3: Any, location: S3Location) -> dict[str, Any] | None:
    try:
        with open_object(s3, location) as body:
            document = json.load(body)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return None
        raise
    return document if isinstance(document, dict) else None
