"""The Prepare steps: PrepareInput (a whole upload, or the plan of shards for a large one), each PrepareShard
child, and MergeShards. They end with the run's facts (``$.prepared``) and its jobs file in S3."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from batchline.adapters import adapter_for
from batchline.adapters.base import InputEncoder
from batchline.clients import AwsClients
from batchline.clock import iso, parse_time
from batchline.config import Deployment, PipelineConfig, Pipelines
from batchline.errors import InputRejected
from batchline.job_events import announces_job_ends
from batchline.layout import RunLayout, S3Location
from batchline.prepare import RejectWriter, StagedPart, chunk_parts, prepare_records, temp_workdir
from batchline.prepare_shards import SourceFile, merge_shards, plan_shards, prepare_shard
from batchline.s3io import put_bytes, upload_file
from batchline.staging import StagedInput, discard_parts, stage_jobs
from batchline.state import Counts, FanOut, PreparingRun, RunFacts, RunStart, S3Pointer
from batchline.steps.run import source_name


def prepare_run(
    start: RunStart,
    *,
    pipelines: Pipelines,
    deployment: Deployment,
    clients: AwsClients,
    time_left: Callable[[], float] | None = None,
) -> RunFacts | PreparingRun:
    """Validate and stage the upload; returns the run facts every later step reads (``$.prepared``).

    An upload over the pipeline's ``prepareShardBytes`` is cut into shards instead: the result then carries
    ``fanOut`` (the plan for the PrepareShards Map) and the real facts come from ``merge_prepared_shards``.
    ``time_left`` (the function's remaining seconds) lets a file too large for one function stop cleanly.
    """
    pipeline = pipelines.get(start.pipeline)
    layout = deployment.layout(pipeline.name, start.run_id)
    source = _source_file(start)
    if source.size > pipeline.max_input_bytes:
        raise InputRejected(
            f"{source.name}: the file is {source.size} bytes, over this pipeline's maxInputBytes "
            f"({pipeline.max_input_bytes})"
        )
    run = start.model_copy(update={"provider": pipeline.provider, "started_at": iso(_started(start))})
    shards = plan_shards(clients.s3, source, layout, shard_bytes=pipeline.prepare_shard_bytes)
    if shards > 1:
        fan_out = _fan_out(layout, "shards.json", shards, 1, pipeline.max_concurrent_preparers)
        return PreparingRun.model_validate({**run.dump(), "fanOut": fan_out.dump()})
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
    return _staged_facts(
        run, pipeline, clients, layout, encoder, result.counts, result.staging, staged.parts, bool(result.rejected)
    )


def prepare_one_shard(
    run: PreparingRun,
    shard: dict[str, Any],
    *,
    pipelines: Pipelines,
    deployment: Deployment,
    clients: AwsClients,
    time_left: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """One child of the PrepareShards Map: stage its byte range, write its summary (errors go in it)."""
    pipeline = pipelines.get(run.pipeline)
    summary = prepare_shard(
        clients.s3,
        _source_file(run),
        deployment.layout(pipeline.name, run.run_id),
        shard,
        key_column=pipeline.key_column,
        encoder=adapter_for(pipeline, clients).input_encoder(),
        spreadsheet_safe=pipeline.spreadsheet_safe,
        time_left=time_left,
    )
    return {"shard": summary["index"], "counts": summary.get("counts"), "error": summary["error"]}


def merge_prepared_shards(
    run: PreparingRun, *, pipelines: Pipelines, deployment: Deployment, clients: AwsClients
) -> RunFacts | PreparingRun:
    """After the PrepareShards Map: the run facts, or another round for the shards that hold a repeated key."""
    pipeline = pipelines.get(run.pipeline)
    layout = deployment.layout(pipeline.name, run.run_id)
    merged = merge_shards(clients.s3, _source_file(run), layout, shards=run.fan_out.shards, round_=run.fan_out.round)
    if isinstance(merged, int):
        again = _fan_out(layout, "redo.json", run.fan_out.shards, 2, pipeline.max_concurrent_preparers)
        again.redo = merged
        return run.model_copy(update={"fan_out": again})
    encoder = adapter_for(pipeline, clients).input_encoder()
    start = RunStart.model_validate(run.model_dump(by_alias=True, exclude={"fan_out"}, exclude_unset=True))
    return _staged_facts(
        start, pipeline, clients, layout, encoder, merged.counts, merged.staging, merged.parts, merged.rejected
    )


def _started(start: RunStart) -> Any:
    if not start.started_at:
        raise ValueError(f"run {start.run_id} has no startedAt: StartRun sets it")
    return parse_time(start.started_at)


def _source_file(run: RunStart) -> SourceFile:
    upload = run.input
    return SourceFile(
        S3Location(upload.bucket, upload.key), upload.version_id, int(upload.size or 0), source_name(upload)
    )


def _fan_out(layout: RunLayout, plan: str, shards: int, round_: int, concurrency: int) -> FanOut:
    location = layout.prepare_file(plan)
    return FanOut(
        plan=S3Pointer(bucket=location.bucket, key=location.key),
        shards=shards,
        round=round_,
        max_concurrency=concurrency,
    )


def _staged_facts(
    run: RunStart,
    pipeline: PipelineConfig,
    clients: AwsClients,
    layout: RunLayout,
    encoder: InputEncoder,
    counts: dict[str, int],
    staging: dict[str, Any],
    parts: list[StagedPart],
    rejected: bool,
) -> RunFacts:
    """The run facts after staging: split the parts into jobs and say where everything is."""
    source = source_name(run.input)
    try:
        if counts["sent"] == 0:
            raise InputRejected(
                f"{source}: none of the {counts['input']} records can be sent; all were rejected (see errors.csv)"
            )
        chunks = chunk_parts(parts, encoder.limits, source)
    except InputRejected:
        # The file was read whole: the failure event counts its records, and nothing stays staged.
        put_bytes(clients.s3, layout.refused_counts, json.dumps(counts).encode(), "application/json")
        discard_parts(clients.s3, layout, [part.name for part in parts])
        raise
    jobs = [chunk.to_json() for chunk in stage_jobs(clients.s3, layout, parts, chunks)]
    # The jobs live in S3, not in the state: RunJobs reads them, so the state stays small at any number of jobs.
    put_bytes(clients.s3, layout.jobs_file, json.dumps(jobs).encode(), "application/json")
    started_at = _started(run)
    return RunFacts(
        run_id=run.run_id,
        pipeline=run.pipeline,
        provider=pipeline.provider,
        input=run.input,
        started_at=iso(started_at),
        deadline=iso(started_at + timedelta(hours=pipeline.max_run_hours)),
        max_polls=pipeline.max_polls,
        max_concurrent_jobs=pipeline.max_concurrent_jobs,
        counts=Counts.model_validate(counts),
        staging={**staging, "parts": len(parts)},
        jobs_file=S3Pointer(bucket=layout.jobs_file.bucket, key=layout.jobs_file.key),
        job_count=len(jobs),
        rejected_uri=layout.rejected.uri if rejected else None,
        job_events=pipeline.job_events and announces_job_ends(pipeline.provider),
    )
