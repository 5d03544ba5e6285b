"""One plain function per step of the state machine. Handlers parse nothing and call these.

Each takes the JSON the state machine passes and returns the JSON it stores (ResultPath), so a retried
step recomputes the same result from the same input and writes the same keys.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from batchline import errors as errors_module
from batchline.adapters import adapter_for
from batchline.adapters.base import Chunk, InputEncoder, JobState, JobStatus, RunContext
from batchline.backoff import next_wait_seconds
from batchline.clients import AwsClients
from batchline.collect import CollectUnit, assemble, collect_unit, job_end_reason, plan_units
from batchline.config import PipelineConfig, Pipelines, require_env
from batchline.errors import (
    BatchlineError,
    InputRejected,
    JobFailed,
    JobStepFailed,
    PollLimitReached,
    QuotaFull,
    RunDeadlineExceeded,
)
from batchline.layout import RunLayout, S3Location
from batchline.prepare import (
    RejectWriter,
    StagedPart,
    group_parts,
    prepare_records,
    temp_workdir,
)
from batchline.prepare_shards import SourceFile, merge_shards, plan_shards, prepare_shard
from batchline.s3io import open_object, put_bytes, upload_file
from batchline.staging import StagedInput, discard_parts, stage_jobs
from batchline.state import (
    CollectPlan,
    Counts,
    FanOut,
    JobLook,
    RunFacts,
    S3Pointer,
    UploadedObject,
    read_job_looks,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deployment:
    """Names the stack hands every function through its environment."""

    inbox_bucket: str
    work_bucket: str
    results_bucket: str
    event_bus_name: str
    runtime: str

    @classmethod
    def from_env(cls) -> Deployment:
        return cls(
            inbox_bucket=require_env("INBOX_BUCKET"),
            work_bucket=require_env("WORK_BUCKET"),
            results_bucket=require_env("RESULTS_BUCKET"),
            event_bus_name=require_env("EVENT_BUS_NAME"),
            runtime=require_env("BATCHLINE_RUNTIME"),
        )

    def layout(self, pipeline: str, run_id: str) -> RunLayout:
        return RunLayout(pipeline, run_id, self.work_bucket, self.results_bucket)


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, the form the state machine's timestamp comparisons accept."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def run_context(
    prepared: dict[str, Any], chunk: dict[str, Any], pipelines: Pipelines, deployment: Deployment
) -> RunContext:
    pipeline = pipelines.get(prepared["pipeline"])
    return RunContext(
        run_id=prepared["runId"],
        pipeline=pipeline,
        layout=deployment.layout(pipeline.name, prepared["runId"]),
        staging=prepared["staging"],
        chunk=Chunk.from_json(chunk),
    )


def _source_name(input_object: dict[str, Any]) -> str:
    return f"s3://{input_object['bucket']}/{input_object['key']}"


# --- Prepare -------------------------------------------------------------------------------------


def prepare_run(
    event: dict[str, Any],
    *,
    pipelines: Pipelines,
    deployment: Deployment,
    clients: AwsClients,
    time_left: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """Validate and stage the upload; returns the run facts every later step reads (``$.prepared``).

    An upload over the pipeline's ``prepareShardBytes`` is cut into shards instead: the result then carries
    ``fanOut`` (the plan for the PrepareShards Map) and the real facts come from ``merge_prepared_shards``.
    ``time_left`` (the function's remaining seconds) lets a file too large for one function stop cleanly.
    """
    run_id, input_object = event["runId"], event["input"]
    pipeline = pipelines.get(event["pipeline"])
    layout = deployment.layout(pipeline.name, run_id)
    source = _source_file(input_object)
    started_at = parse_time(event["startedAt"])
    if source.size > pipeline.max_input_bytes:
        raise InputRejected(
            f"{source.name}: the file is {source.size} bytes, over this pipeline's maxInputBytes "
            f"({pipeline.max_input_bytes})"
        )
    run = {
        "runId": run_id,
        "pipeline": pipeline.name,
        "provider": pipeline.provider,
        "input": input_object,
        "startedAt": iso(started_at),
    }
    shards = plan_shards(clients.s3, source, layout, shard_bytes=pipeline.prepare_shard_bytes)
    if shards > 1:
        return {**run, "fanOut": _fan_out(layout, "shards.json", shards, 1, pipeline.max_concurrent_preparers)}
    encoder = adapter_for(pipeline, clients).input_encoder()

    with temp_workdir() as workdir:
        rejected_path = os.path.join(workdir, "rejected.csv")
        staged = StagedInput(clients.s3, layout, encoder.content_type)
        with open(rejected_path, "w", encoding="utf-8", newline="") as rejected_file:
            rejects = RejectWriter(rejected_file, source.name, spreadsheet_safe=pipeline.spreadsheet_safe)
            result = prepare_records(
                # Read once, or twice when a key repeats: the pinned version makes both reads see the same bytes.
                lambda: source.open(clients.s3),
                source_name=source.name,
                key_column=pipeline.key_column,
                encoder=encoder,
                rejects=rejects,
                parts=staged,
                workdir=workdir,
                time_left=time_left,
            )
        if result.rejected:
            upload_file(clients.s3, rejected_path, layout.rejected, "text/csv")
    return _prepared(
        run, pipeline, clients, layout, encoder, result.counts, result.staging, staged.parts, bool(result.rejected)
    )


def _source_file(input_object: dict[str, Any]) -> SourceFile:
    return SourceFile(
        S3Location(input_object["bucket"], input_object["key"]),
        input_object.get("versionId"),
        int(input_object.get("size") or 0),
        _source_name(input_object),
    )


def _fan_out(layout: RunLayout, plan: str, shards: int, round_: int, concurrency: int) -> dict[str, Any]:
    location = layout.prepare_file(plan)
    return FanOut(
        plan=S3Pointer(bucket=location.bucket, key=location.key),
        shards=shards,
        round=round_,
        max_concurrency=concurrency,
    ).dump()


def _prepared(
    run: dict[str, Any],
    pipeline: PipelineConfig,
    clients: AwsClients,
    layout: RunLayout,
    encoder: InputEncoder,
    counts: dict[str, int],
    staging: dict[str, Any],
    parts: list[StagedPart],
    rejected: bool,
) -> dict[str, Any]:
    """The run facts after staging: split the parts into jobs and say where everything is."""
    source = _source_name(run["input"])
    try:
        if counts["sent"] == 0:
            raise InputRejected(
                f"{source}: none of the {counts['input']} records can be sent; all were rejected (see errors.csv)"
            )
        groups = group_parts(parts, encoder.limits, source)
    except InputRejected:
        # The file was read whole: the failure event counts its records, and nothing stays staged.
        put_bytes(clients.s3, layout.refused_counts, json.dumps(counts).encode(), "application/json")
        discard_parts(clients.s3, layout, [part.name for part in parts])
        raise
    chunks = stage_jobs(clients.s3, layout, parts, groups)
    # The jobs live in S3, not in the state: RunJobs reads them, so the state stays small at any number of jobs.
    jobs = [chunk.to_json() for chunk in chunks]
    put_bytes(clients.s3, layout.jobs_file, json.dumps(jobs).encode(), "application/json")
    started_at = parse_time(run["startedAt"])
    return RunFacts(
        run_id=run["runId"],
        pipeline=run["pipeline"],
        provider=run["provider"],
        input=UploadedObject.model_validate(run["input"]),
        started_at=run["startedAt"],
        deadline=iso(started_at + timedelta(hours=pipeline.max_run_hours)),
        max_polls=pipeline.max_polls,
        max_concurrent_jobs=pipeline.max_concurrent_jobs,
        counts=Counts.model_validate(counts),
        staging={**staging, "parts": len(parts)},
        jobs_file=S3Pointer(bucket=layout.jobs_file.bucket, key=layout.jobs_file.key),
        job_count=len(jobs),
        rejected_uri=layout.rejected.uri if rejected else None,
    ).dump()


def run_chunks(clients: AwsClients, prepared: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's jobs as Prepare split them (one chunk of the input each), from the jobs file."""
    with open_object(clients.s3, S3Location(**prepared["jobsFile"])) as body:
        return list(json.load(body))


def prepare_one_shard(
    event: dict[str, Any],
    *,
    pipelines: Pipelines,
    deployment: Deployment,
    clients: AwsClients,
    time_left: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """One child of the PrepareShards Map: stage its byte range, write its summary (errors go in it)."""
    run, item = event["run"], event["shard"]
    pipeline = pipelines.get(run["pipeline"])
    summary = prepare_shard(
        clients.s3,
        _source_file(run["input"]),
        deployment.layout(pipeline.name, run["runId"]),
        item,
        key_column=pipeline.key_column,
        encoder=adapter_for(pipeline, clients).input_encoder(),
        spreadsheet_safe=pipeline.spreadsheet_safe,
        time_left=time_left,
    )
    return {"shard": summary["index"], "counts": summary.get("counts"), "error": summary["error"]}


def merge_prepared_shards(
    event: dict[str, Any], *, pipelines: Pipelines, deployment: Deployment, clients: AwsClients
) -> dict[str, Any]:
    """After the PrepareShards Map: the run facts, or another round for the shards that hold a repeated key."""
    run = event["run"]
    fan_out = run["fanOut"]
    pipeline = pipelines.get(run["pipeline"])
    layout = deployment.layout(pipeline.name, run["runId"])
    merged = merge_shards(
        clients.s3, _source_file(run["input"]), layout, shards=fan_out["shards"], round_=fan_out["round"]
    )
    if isinstance(merged, int):
        again = _fan_out(layout, "redo.json", fan_out["shards"], 2, pipeline.max_concurrent_preparers)
        return {**{key: value for key, value in run.items() if key != "fanOut"}, "fanOut": {**again, "redo": merged}}
    encoder = adapter_for(pipeline, clients).input_encoder()
    return _prepared(
        run, pipeline, clients, layout, encoder, merged.counts, merged.staging, merged.parts, merged.rejected
    )


# --- Submit and poll -----------------------------------------------------------------------------


def state_summary(state: JobState) -> dict[str, Any]:
    """The JSON form of one look at a job, as the payload, events and manifests carry it."""
    return {
        "jobId": state.job_id,
        "status": state.status.value,
        "rawStatus": state.raw_status,
        "message": state.message,
        "counts": state.counts,
    }


def _job_payload(
    state: JobState, prepared: dict[str, Any], chunk: dict[str, Any], poll_count: int, pipelines: Pipelines
) -> dict[str, Any]:
    pipeline = pipelines.get(prepared["pipeline"])
    now = utc_now()
    elapsed = (now - parse_time(prepared["startedAt"])).total_seconds()
    look = JobLook(
        chunk=chunk["index"],
        job_id=state.job_id,
        status=state.status.value,
        raw_status=state.raw_status,
        message=state.message,
        counts=state.counts,
        poll_count=poll_count,
        checked_at=iso(now),
        wait_seconds=next_wait_seconds(elapsed, minimum=pipeline.min_poll_seconds, maximum=pipeline.max_poll_seconds),
    )
    if not state.status.is_terminal:
        if now > parse_time(prepared["deadline"]):
            look.ended = RunDeadlineExceeded.__name__
            look.cause = (
                f"the run passed its deadline {prepared['deadline']} while job {state.job_id} was still "
                f"{state.raw_status}"
            )
        elif poll_count >= int(prepared["maxPolls"]):
            look.ended = PollLimitReached.__name__
            look.cause = f"job {state.job_id} was polled {poll_count} times (maxPolls) and is still {state.raw_status}"
    return look.dump()


def _record_job(clients: AwsClients, deployment: Deployment, prepared: dict[str, Any], job: dict[str, Any]) -> None:
    """The job's last look, where the run's later steps read it (each job runs in its own child execution)."""
    location = deployment.layout(prepared["pipeline"], prepared["runId"]).job_state(int(job["chunk"]))
    put_bytes(clients.s3, location, json.dumps(job).encode(), "application/json")


def submit_job(
    prepared: dict[str, Any],
    chunk: dict[str, Any],
    *,
    pipelines: Pipelines,
    deployment: Deployment,
    clients: AwsClients,
) -> dict[str, Any]:
    """Create (or find) the chunk's job. Past the deadline while waiting for a quota slot, the job's execution
    ends with ``ended`` set instead of failing, so the run can stop every other job and say why."""
    run = run_context(prepared, chunk, pipelines, deployment)
    try:
        state = adapter_for(run.pipeline, clients).submit(run)
    except QuotaFull as exc:
        # The state machine retries QuotaFull to wait for a slot; past the deadline, waiting stops.
        if utc_now() <= parse_time(prepared["deadline"]):
            raise
        job = JobLook(
            chunk=chunk["index"],
            job_id=None,
            status=JobStatus.PENDING.value,
            raw_status="NotSubmitted",
            poll_count=0,
            ended=RunDeadlineExceeded.__name__,
            cause=f"the run passed its deadline {prepared['deadline']} while waiting for a job slot: {exc}",
        ).dump()
    else:
        job = _job_payload(state, prepared, chunk, 0, pipelines)
    _record_job(clients, deployment, prepared, job)
    return job


def poll_job(
    prepared: dict[str, Any],
    chunk: dict[str, Any],
    job: dict[str, Any],
    *,
    pipelines: Pipelines,
    deployment: Deployment,
    clients: AwsClients,
) -> dict[str, Any]:
    """One look at the job; ``ended`` says the run's deadline or poll bound stopped the waiting."""
    run = run_context(prepared, chunk, pipelines, deployment)
    state = adapter_for(run.pipeline, clients).describe(run, job["jobId"])
    looked = _job_payload(state, prepared, chunk, int(job.get("pollCount", 0)) + 1, pipelines)
    _record_job(clients, deployment, prepared, looked)
    return looked


def record_job_error(
    prepared: dict[str, Any],
    chunk: dict[str, Any],
    error: dict[str, Any],
    *,
    deployment: Deployment,
    clients: AwsClients,
) -> dict[str, Any]:
    """A job's execution caught an error it cannot handle (after its retries): recorded for PlanCollect to raise."""
    described = describe_error(error)
    job = JobLook(
        chunk=chunk["index"],
        job_id=None,
        status=JobStatus.PENDING.value,
        raw_status="Unknown",
        ended=described["error"],
        cause=described["cause"],
    ).dump()
    _record_job(clients, deployment, prepared, job)
    return {"chunk": chunk["index"], "ended": described["error"]}


def run_jobs(clients: AwsClients, deployment: Deployment, prepared: dict[str, Any]) -> list[dict[str, Any]]:
    """Every job's last look, in chunk order (JobStepFailed when a job's execution left none)."""
    layout = deployment.layout(prepared["pipeline"], prepared["runId"])
    count = int(prepared["jobCount"])
    looks = read_job_looks(clients.s3, layout, count)
    for index in range(count):
        if index not in looks:
            raise JobStepFailed(f"job {index} left no state at {layout.job_state(index).uri}")
    return [looks[index] for index in range(count)]


def raise_if_a_job_ended_early(jobs: list[dict[str, Any]]) -> None:
    """A job whose execution stopped waiting (deadline, poll bound, an error) fails the run by that name."""
    for job in jobs:
        if job.get("ended"):
            name, cause = str(job["ended"]), str(job.get("cause") or "")
            error = getattr(errors_module, name, None)
            if isinstance(error, type) and issubclass(error, BatchlineError):
                raise error(cause)
            raise JobStepFailed(f"job {job['chunk']}: {name}: {cause}")


# --- Collect -------------------------------------------------------------------------------------


def _runs(
    prepared: dict[str, Any],
    jobs: list[dict[str, Any]],
    chunks: list[dict[str, Any]],
    pipelines: Pipelines,
    deployment: Deployment,
) -> list[tuple[RunContext, JobState]]:
    return [
        (
            run_context(prepared, chunks[job["chunk"]], pipelines, deployment),
            JobState(
                job["jobId"],
                JobStatus(job["status"]),
                job["rawStatus"],
                job.get("message"),
                job.get("counts") or {},
            ),
        )
        for job in jobs
    ]


def plan_collect(
    prepared: dict[str, Any],
    *,
    pipelines: Pipelines,
    deployment: Deployment,
    clients: AwsClients,
) -> dict[str, Any]:
    """Collect's units of work, written where the Distributed Map reads its items. Fails by name when a job's
    execution stopped waiting (deadline, poll bound, an error), and with each job's reason when none produced
    output."""
    pipeline = pipelines.get(prepared["pipeline"])
    jobs = run_jobs(clients, deployment, prepared)
    raise_if_a_job_ended_early(jobs)
    ended = [job for job in jobs if job["status"] in ("FAILED", "STOPPED")]
    if len(ended) == len(jobs):
        reasons = "; ".join(
            f"{pipeline.provider} {job_end_reason(job['jobId'], job['rawStatus'], job.get('message'))}" for job in ended
        )
        raise JobFailed(reasons)
    runs = _runs(prepared, jobs, run_chunks(clients, prepared), pipelines, deployment)
    units = plan_units(
        clients.s3,
        adapter_for(pipeline, clients),
        runs,
        shard_bytes=pipeline.collect_shard_bytes,
        unit_records=pipeline.collect_unit_records,
    )
    plan = deployment.layout(pipeline.name, prepared["runId"]).collect_plan
    put_bytes(clients.s3, plan, json.dumps([unit.to_json() for unit in units]).encode(), "application/json")
    return CollectPlan(
        units=len(units), bucket=plan.bucket, key=plan.key, max_concurrency=pipeline.max_concurrent_collectors
    ).dump()


def collect_one_unit(
    prepared: dict[str, Any],
    unit: dict[str, Any],
    *,
    pipelines: Pipelines,
    deployment: Deployment,
    clients: AwsClients,
) -> dict[str, Any]:
    """One Distributed Map child: a job's output, or one byte range of an output object, to CSV rows."""
    pipeline = pipelines.get(prepared["pipeline"])
    work = CollectUnit.from_json(unit)
    layout = deployment.layout(pipeline.name, prepared["runId"])
    with open_object(clients.s3, layout.job_state(work.job)) as body:
        job_look = json.load(body)
    run, job = _runs(prepared, [job_look], run_chunks(clients, prepared), pipelines, deployment)[0]
    summary = collect_unit(
        clients.s3,
        adapter_for(pipeline, clients),
        run,
        job,
        work,
        key_header=prepared["staging"]["keyHeader"],
        source_name=_source_name(prepared["input"]),
        spreadsheet_safe=pipeline.spreadsheet_safe,
    )
    # The Map discards children's results (thousands would not fit in the state); Assemble reads summaries.
    return {key: summary[key] for key in ("unit", "predicted", "failed", "rows", "error") if key in summary}


def assemble_output(
    prepared: dict[str, Any],
    plan: dict[str, Any],
    *,
    pipelines: Pipelines,
    deployment: Deployment,
    clients: AwsClients,
) -> dict[str, Any]:
    """predictions.csv from the units' parts (copied server-side), failed.csv, and the run's counts."""
    pipeline = pipelines.get(prepared["pipeline"])
    return assemble(
        clients.s3,
        adapter_for(pipeline, clients),
        _runs(prepared, run_jobs(clients, deployment, prepared), run_chunks(clients, prepared), pipelines, deployment),
        plan["units"],
        source_name=_source_name(prepared["input"]),
    )


def describe_error(raw: dict[str, Any]) -> dict[str, Any]:
    """Step Functions' {Error, Cause}; a Lambda's Cause is JSON carrying errorMessage."""
    name = str(raw.get("Error") or "UnknownError")
    cause = str(raw.get("Cause") or "")
    try:
        parsed = json.loads(cause)
        if isinstance(parsed, dict) and "errorMessage" in parsed:
            cause = str(parsed["errorMessage"])
    except ValueError:
        pass
    return {"error": name, "cause": cause}
