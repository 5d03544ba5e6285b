"""What a run is doing or did, read the same way from any target.

The execution (Step Functions) gives its status and, through its history, the state it is in and the counts
Prepare found. Each service job runs in a child execution of its own, which records its last look in the work
bucket (``state/job-NNNNN.json``): that is where a running run's jobs are read. Once the run has ended, its
``manifest.json`` in the results bucket is the record: status, counts, outputs and error, also for runs stopped
by hand (written by the ExecutionEnded function, which the history does not show).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from batchline import state
from batchline.history import RunHistory, read_history
from botocore.exceptions import ClientError

from batchline_local.target import Target, TargetError, pipeline_of


@dataclass
class RunView:
    """One run as the CLI shows it; ``status`` is RUNNING or the run's outcome."""

    run_id: str
    pipeline: str
    execution_status: str  # RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED, PENDING_REDRIVE
    started: datetime | None
    stopped: datetime | None
    input: dict[str, Any] = field(default_factory=dict)
    history: RunHistory = field(default_factory=RunHistory)
    manifest: dict[str, Any] | None = None
    looks: dict[int, dict[str, Any]] = field(default_factory=dict)  # each job's last look, while running

    @property
    def running(self) -> bool:
        return self.execution_status == "RUNNING"

    @property
    def status(self) -> str:
        if self.running:
            return "RUNNING"
        detail = self.manifest or self.history.outcome
        if detail and detail.get("status"):
            return str(detail["status"])
        return "SUCCEEDED" if self.execution_status == "SUCCEEDED" else "FAILED"

    @property
    def jobs(self) -> list[dict[str, Any]]:
        if self.manifest and self.manifest.get("jobs"):
            return list(self.manifest["jobs"])
        return [self.looks[index] for index in sorted(self.looks)]

    @property
    def counts(self) -> dict[str, Any]:
        detail = self.manifest or self.history.outcome
        if detail and detail.get("counts"):
            return dict(detail["counts"])
        return self.history.counts

    @property
    def outputs(self) -> dict[str, str | None]:
        detail = self.manifest or self.history.outcome
        return dict(detail.get("outputs") or {}) if detail else {}

    @property
    def error(self) -> dict[str, Any] | None:
        detail = self.manifest or self.history.outcome
        if detail and detail.get("error"):
            return dict(detail["error"])
        ending = self.history.ending
        return ending.to_json() if ending and not self.running and self.status == "FAILED" else None

    def elapsed_seconds(self, now: datetime | None = None) -> float | None:
        if self.started is None:
            return None
        end = self.stopped or now or datetime.now(UTC)
        return max((end - self.started).total_seconds(), 0.0)

    def to_json(self) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "pipeline": self.pipeline,
            "status": self.status,
            "executionStatus": self.execution_status,
            "state": self.history.state,
            "startedAt": _iso(self.started),
            "stoppedAt": _iso(self.stopped),
            "elapsedSeconds": _rounded(self.elapsed_seconds()),
            "input": self.input,
            "plannedJobs": self.history.job_count,
            "jobs": self.jobs,
            "counts": self.counts,
            "outputs": self.outputs,
            "error": self.error,
        }


def describe_run(target: Target, run_id: str, view: RunView | None = None) -> RunView:
    """The run now; pass the previous view while following, so only new history events are read."""
    stepfunctions = target.client("stepfunctions")
    try:
        described = stepfunctions.describe_execution(executionArn=target.execution_arn(run_id))
    except stepfunctions.exceptions.ExecutionDoesNotExist as exc:
        raise TargetError(f"no run {run_id!r} in {target.label}; list runs with `batchline runs`") from exc
    execution_input = json.loads(described.get("input") or "{}")
    history = read_history(stepfunctions, described["executionArn"], view.history if view is not None else None)
    current = RunView(
        run_id=run_id,
        pipeline=str(execution_input.get("pipeline") or pipeline_of(run_id)),
        execution_status=described["status"],
        started=described.get("startDate"),
        stopped=described.get("stopDate"),
        input=execution_input.get("input") or {},
        history=history,
    )
    if not current.running:
        current.manifest = read_manifest(target, current.pipeline, run_id)
    elif history.job_count:
        current.looks = read_job_looks(target, current.pipeline, run_id, history.job_count)
    return current


_JOB_FIELDS = ("chunk", "jobId", "status", "rawStatus", "message", "counts", "pollCount")


def read_job_looks(target: Target, pipeline: str, run_id: str, jobs: int) -> dict[int, dict[str, Any]]:
    """Each job's last look, as its own execution recorded it (a job not submitted yet has none)."""
    looks = state.read_job_looks(target.client("s3"), target.layout(pipeline, run_id), jobs)
    return {
        index: {key: value for key, value in look.model_dump(by_alias=True, mode="json").items() if key in _JOB_FIELDS}
        for index, look in looks.items()
    }


def read_manifest(target: Target, pipeline: str, run_id: str) -> dict[str, Any] | None:
    location = target.layout(pipeline, run_id).manifest
    try:
        body = target.client("s3").get_object(Bucket=location.bucket, Key=location.key)["Body"].read()
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return None
        raise
    return dict(json.loads(body))


def list_runs(target: Target, *, pipeline: str | None, limit: int) -> list[RunView]:
    """The newest runs first (Step Functions lists executions newest first), with their manifests' counts."""
    views = []
    for execution in _executions(target):
        run_pipeline = pipeline_of(execution["name"])
        if pipeline is not None and run_pipeline != pipeline:
            continue
        view = RunView(
            run_id=execution["name"],
            pipeline=run_pipeline,
            execution_status=execution["status"],
            started=execution.get("startDate"),
            stopped=execution.get("stopDate"),
        )
        if not view.running:
            view.manifest = read_manifest(target, run_pipeline, view.run_id)
            view.input = dict((view.manifest or {}).get("input") or {})
        views.append(view)
        if len(views) >= limit:
            break
    return views


def _executions(target: Target) -> Iterator[dict[str, Any]]:
    stepfunctions = target.client("stepfunctions")
    request: dict[str, Any] = {"stateMachineArn": target.state_machine_arn, "maxResults": 100}
    while True:
        page = stepfunctions.list_executions(**request)
        yield from page["executions"]
        if not page.get("nextToken"):
            return
        request["nextToken"] = page["nextToken"]


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def _rounded(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None
