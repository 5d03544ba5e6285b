"""The Collect steps: PlanCollect (the units of work, in S3), each CollectUnit child, and AssembleOutput
(predictions.csv and the run's counts)."""

from __future__ import annotations

import json
from typing import Any

from batchline.adapters import adapter_for
from batchline.adapters.base import JobState, RunContext
from batchline.clients import AwsClients
from batchline.collect import CollectUnit, assemble, collect_unit, plan_units
from batchline.config import Deployment, Pipelines
from batchline.s3io import open_object, put_bytes
from batchline.state import ChunkItem, CollectPlan, JobLook, RunFacts
from batchline.steps.jobs import raise_if_a_job_ended_early
from batchline.steps.run import job_state, run_chunks, run_context, run_jobs, source_name


def plan_collect(run: RunFacts, *, pipelines: Pipelines, deployment: Deployment, clients: AwsClients) -> CollectPlan:
    """Collect's units of work, written where the Distributed Map reads its items. Fails by name when a job's
    execution stopped waiting (deadline, poll bound, an error). A job that failed is collected too: each of its
    records becomes an errors.csv row with the job's reason, even when every job failed (FinalizeRun then fails
    the run with JobFailed), so the user gets back exactly the records to send again."""
    pipeline = pipelines.get(run.pipeline)
    jobs = run_jobs(clients, deployment, run)
    raise_if_a_job_ended_early(jobs)
    units = plan_units(
        clients.s3,
        adapter_for(pipeline, clients),
        _contexts(run, jobs, run_chunks(clients, run), pipelines, deployment),
        shard_bytes=pipeline.collect_shard_bytes,
        unit_records=pipeline.collect_unit_records,
    )
    plan = deployment.layout(pipeline.name, run.run_id).collect_plan
    put_bytes(clients.s3, plan, json.dumps([unit.to_json() for unit in units]).encode(), "application/json")
    return CollectPlan(
        units=len(units), bucket=plan.bucket, key=plan.key, max_concurrency=pipeline.max_concurrent_collectors
    )


def collect_one_unit(
    run: RunFacts,
    unit: dict[str, Any],
    *,
    pipelines: Pipelines,
    deployment: Deployment,
    clients: AwsClients,
) -> dict[str, Any]:
    """One Distributed Map child: a job's output, or one byte range of an output object, to CSV rows."""
    pipeline = pipelines.get(run.pipeline)
    work = CollectUnit.from_json(unit)
    layout = deployment.layout(pipeline.name, run.run_id)
    with open_object(clients.s3, layout.job_state(work.job)) as body:
        look = JobLook.model_validate(json.load(body))
    context, job = _contexts(run, [look], run_chunks(clients, run), pipelines, deployment)[0]
    summary = collect_unit(
        clients.s3,
        adapter_for(pipeline, clients),
        context,
        job,
        work,
        key_header=run.staging["keyHeader"],
        source_name=source_name(run.input),
        spreadsheet_safe=pipeline.spreadsheet_safe,
    )
    # The Map discards children's results (thousands would not fit in the state); Assemble reads summaries.
    return {key: summary[key] for key in ("unit", "predicted", "failed", "rows", "error") if key in summary}


def assemble_output(
    run: RunFacts,
    plan: CollectPlan,
    *,
    pipelines: Pipelines,
    deployment: Deployment,
    clients: AwsClients,
) -> dict[str, Any]:
    """predictions.csv from the units' parts (copied server-side), failed.csv, and the run's counts."""
    pipeline = pipelines.get(run.pipeline)
    jobs = run_jobs(clients, deployment, run)
    return assemble(
        clients.s3,
        adapter_for(pipeline, clients),
        _contexts(run, jobs, run_chunks(clients, run), pipelines, deployment),
        plan.units,
        source_name=source_name(run.input),
    )


def _contexts(
    run: RunFacts, jobs: list[JobLook], chunks: list[ChunkItem], pipelines: Pipelines, deployment: Deployment
) -> list[tuple[RunContext, JobState]]:
    return [(run_context(run, chunks[job.chunk], pipelines, deployment), job_state(job)) for job in jobs]
