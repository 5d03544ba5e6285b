"""What every step after Prepare reads of its run: the adapter's view of one job, the jobs file, the jobs' looks."""

from __future__ import annotations

import json
from typing import Any

from batchline.adapters.base import Chunk, JobState, JobStatus, RunContext
from batchline.clients import AwsClients
from batchline.config import Deployment, Pipelines
from batchline.errors import JobStepFailed
from batchline.layout import S3Location
from batchline.s3io import open_object
from batchline.state import ChunkItem, JobLook, RunFacts, UploadedObject, read_job_looks


def source_name(upload: UploadedObject) -> str:
    """How errors and the record column name the upload."""
    return f"s3://{upload.bucket}/{upload.key}"


def run_context(facts: RunFacts, chunk: ChunkItem, pipelines: Pipelines, deployment: Deployment) -> RunContext:
    pipeline = pipelines.get(facts.pipeline)
    return RunContext(
        run_id=facts.run_id,
        pipeline=pipeline,
        layout=deployment.layout(pipeline.name, facts.run_id),
        staging=facts.staging,
        chunk=Chunk.from_json(chunk.dump()),
    )


def run_chunks(clients: AwsClients, facts: RunFacts) -> list[ChunkItem]:
    """The run's jobs as Prepare split them (one chunk of the input each), from the jobs file."""
    with open_object(clients.s3, S3Location(facts.jobs_file.bucket, facts.jobs_file.key)) as body:
        return [ChunkItem.model_validate(item) for item in json.load(body)]


def run_jobs(clients: AwsClients, deployment: Deployment, facts: RunFacts) -> list[JobLook]:
    """Every job's last look, in chunk order (JobStepFailed when a job's execution left none)."""
    layout = deployment.layout(facts.pipeline, facts.run_id)
    looks = read_job_looks(clients.s3, layout, facts.job_count)
    missing = [index for index in range(facts.job_count) if index not in looks]
    if missing:
        raise JobStepFailed(f"job {missing[0]} left no state at {layout.job_state(missing[0]).uri}")
    return [looks[index] for index in range(facts.job_count)]


def job_state(look: JobLook) -> JobState:
    """The adapter's form of a job's last look."""
    return JobState(look.job_id or "", JobStatus(look.status), look.raw_status or "", look.message, look.counts)


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
