"""The Lambda functions of Batchline, listed once: name, handler, sizing, and what each one touches.

The stack builds each function from its entry here and each construct grants what the entry declares for its
concern (storage: ``data``; the services: ``jobs``; Google: ``calls_google``); the state machine's placeholders
come from ``placeholder``; the local runtime runs ``handler``. Nothing here imports CDK or boto3, so the stack,
the local runtime and the tests read the same list.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

# The stack's data buckets, by the name the functions' environment gives them (INBOX_BUCKET, ...).
Bucket = Literal["inbox", "work", "results"]
# The adapter operations (batchline.adapters.base.BatchAdapter) a function calls on a pipeline's service:
# "encode" is input_encoder() (Amazon ML reads the model's training schema when the config gives none);
# "release" is the run's end deleting what a service keeps of ended jobs (adapters.base.ReleasesServiceObjects).
JobCall = Literal["encode", "submit", "describe", "stop", "release"]

# Lambda's default and largest /tmp, in MB. A function that writes a file whose size grows with the upload gets
# the largest: its worst case is an upload of maxInputBytes (10 GiB by default), so no smaller size is safe, and
# /tmp above 512 MB costs little (billed per GB-second of the invocation). The others write nothing to /tmp
# (errors.csv and rejected.csv are concatenated inside S3: s3io.concatenate_csv).
DEFAULT_EPHEMERAL_MB = 512
MAX_EPHEMERAL_MB = 10240


@dataclass(frozen=True)
class DataAccess:
    """Object access in the stack's buckets; no function may delete, except the discard below."""

    read: frozenset[Bucket] = frozenset()
    write: frozenset[Bucket] = frozenset()
    # PutObject on each job's last look only (work bucket, <pipeline>/<run-id>/state/job-*).
    job_looks: bool = False
    # DeleteObject on staged parts and their indexes only (work bucket, .../{input,index}/part-*).
    discard_staged_parts: bool = False
    # GetObject and PutObject on the waiting jobs' tokens and end events only (work bucket, wake/*).
    job_wake: bool = False
    # PutObject on the jobs' output prefixes only (work bucket, <pipeline>/<run-id>/output/job-*): a job answered
    # on demand (Bedrock under its batch minimum) is written there by its submit, as the service writes a job's.
    job_outputs: bool = False


@dataclass(frozen=True)
class FunctionSpec:
    """One function of the deployment."""

    name: str
    handler: str
    timeout_seconds: int
    memory_mb: int
    ephemeral_storage_mb: int = DEFAULT_EPHEMERAL_MB
    # DuckDB (lambdas/collect_layer), for the functions that collect outputs.
    engine_layer: bool = False
    data: DataAccess = field(default_factory=DataAccess)
    # The operations on the pipelines' batch services this function makes (empty: none).
    jobs: frozenset[JobCall] = frozenset()
    # Calls Google APIs for Vertex pipelines (so its role is bound in the workload identity pool).
    calls_google: bool = False
    # Its ``${Placeholder}`` in statemachine/*.asl.json, or None when the state machine does not invoke it.
    placeholder: str | None = None

    def __post_init__(self) -> None:
        if not DEFAULT_EPHEMERAL_MB <= self.ephemeral_storage_mb <= MAX_EPHEMERAL_MB:
            raise ValueError(f"{self.name}: ephemeral storage must be {DEFAULT_EPHEMERAL_MB}-{MAX_EPHEMERAL_MB} MB")


def _placeholder(name: str) -> str:
    return f"{name}FunctionArn"


_READ_WRITE_WORK = DataAccess(read=frozenset({"work"}), write=frozenset({"work"}))
_READ_WRITE_BOTH = DataAccess(read=frozenset({"work", "results"}), write=frozenset({"work", "results"}))

CATALOGUE: tuple[FunctionSpec, ...] = (
    # Outside the state machine: the upload rule's target; HEADs the uploaded version (size, ETag, decoded key).
    FunctionSpec(
        "StartRun",
        "handlers.start_run.handler",
        timeout_seconds=30,
        memory_mb=256,
        data=DataAccess(read=frozenset({"inbox"})),
    ),
    FunctionSpec(
        "PrepareInput",
        "handlers.prepare_input.handler",
        timeout_seconds=900,
        memory_mb=2048,
        ephemeral_storage_mb=MAX_EPHEMERAL_MB,
        data=DataAccess(read=frozenset({"inbox", "work"}), write=frozenset({"work"}), discard_staged_parts=True),
        jobs=frozenset({"encode"}),
        placeholder=_placeholder("PrepareInput"),
    ),
    # Vertex pipelines stream the staged input from S3 to Cloud Storage in this step.
    FunctionSpec(
        "SubmitJob",
        "handlers.submit_job.handler",
        timeout_seconds=900,
        memory_mb=512,
        data=DataAccess(read=frozenset({"work"}), job_looks=True, job_outputs=True),
        # submit() describes what it created, or the job an earlier attempt created.
        jobs=frozenset({"submit", "describe"}),
        calls_google=True,
        placeholder=_placeholder("SubmitJob"),
    ),
    FunctionSpec(
        "PollJob",
        "handlers.poll_job.handler",
        timeout_seconds=60,
        memory_mb=256,
        data=DataAccess(read=frozenset({"work"}), job_looks=True),
        jobs=frozenset({"describe"}),
        calls_google=True,
        placeholder=_placeholder("PollJob"),
    ),
    # A job's wait (AwaitJobEnd) parks its task token here; the job-event rules (SageMaker, Bedrock) resume it.
    FunctionSpec(
        "WakeJob",
        "handlers.wake_job.handler",
        timeout_seconds=30,
        memory_mb=256,
        data=DataAccess(job_wake=True),
        placeholder=_placeholder("WakeJob"),
    ),
    FunctionSpec(
        "PlanCollect",
        "handlers.plan_collect.handler",
        timeout_seconds=300,
        memory_mb=512,
        data=_READ_WRITE_WORK,
        calls_google=True,
        placeholder=_placeholder("PlanCollect"),
    ),
    # One unit of Collect (a Distributed Map child): a whole job, or one byte range of a large output object.
    FunctionSpec(
        "CollectUnit",
        "handlers.collect_unit.handler",
        timeout_seconds=900,
        memory_mb=2048,
        ephemeral_storage_mb=MAX_EPHEMERAL_MB,
        engine_layer=True,
        data=_READ_WRITE_WORK,
        calls_google=True,
        placeholder=_placeholder("CollectUnit"),
    ),
    # Copies the units' parts into predictions.csv (results bucket); aborts a multipart upload it cannot finish.
    FunctionSpec(
        "AssembleOutput",
        "handlers.assemble_output.handler",
        timeout_seconds=900,
        memory_mb=2048,
        ephemeral_storage_mb=MAX_EPHEMERAL_MB,
        engine_layer=True,
        data=DataAccess(read=frozenset({"work"}), write=frozenset({"work", "results"})),
        calls_google=True,
        placeholder=_placeholder("AssembleOutput"),
    ),
    # Merges rejected.csv and failed.csv into errors.csv inside S3 (s3io.concatenate_csv: a multipart upload of
    # ranged copies and 5 MiB gathered parts), so it needs no scratch space: the default /tmp, unused.
    # Reads predictions.csv and errors.csv once for the run's summary and report: 27 s of one core for 10 million
    # rows of either, at a flat 35 MB (benchmarks/report_summary.py), plus S3's transfer. 1,769 MB is one whole
    # vCPU; 15 minutes cover an upload of maxInputBytes (10 GiB, some 100 million rows), past which the summary is
    # marked partial.
    FunctionSpec(
        "FinalizeRun",
        "handlers.finalize_run.handler",
        timeout_seconds=900,
        memory_mb=1769,
        data=_READ_WRITE_BOTH,
        # Deletes what a service keeps of the run's ended jobs (Amazon ML's DataSource and BatchPrediction).
        jobs=frozenset({"release"}),
        placeholder=_placeholder("FinalizeRun"),
    ),
    # Summarises errors.csv for the failed run's report (up to every row of the upload rejected): one vCPU, and
    # time for 10 million rows; past its budget the summary is marked partial and the event still goes out.
    FunctionSpec(
        "ReportFailure",
        "handlers.report_failure.handler",
        timeout_seconds=300,
        memory_mb=1769,
        # Merges rejected.csv (up to every row of the upload, with a reason each) into errors.csv as FinalizeRun
        # does, inside S3 with at most a 5 MiB part in memory: the default /tmp, unused.
        data=_READ_WRITE_BOTH,
        # Stops the run's jobs that still run: each is described first (never created: nothing to stop); releases
        # those that have ended.
        jobs=frozenset({"describe", "stop", "release"}),
        calls_google=True,
        placeholder=_placeholder("ReportFailure"),
    ),
    # Executions stopped by hand, timed out or failed uncaught: stops their jobs and publishes the failure event.
    FunctionSpec(
        "ExecutionEnded",
        "handlers.execution_ended.handler",
        timeout_seconds=300,
        memory_mb=512,
        # Like ReportFailure: rejected.csv is copied into errors.csv inside S3, so the default /tmp, unused.
        data=_READ_WRITE_BOTH,
        # Stops the run's jobs that still run: each is described first (never created: nothing to stop); releases
        # those that have ended.
        jobs=frozenset({"describe", "stop", "release"}),
        calls_google=True,  # cancels the Vertex jobs of the run
    ),
    # Outside the state machine: reads the FailedInvocations queue (StartRun or ExecutionEnded failed after its
    # retries) and publishes the upload's or the run's failure event; HEADs the upload as StartRun does.
    FunctionSpec(
        "ReportFailedInvocation",
        "handlers.report_failed_invocation.handler",
        timeout_seconds=60,
        memory_mb=256,
        data=DataAccess(read=frozenset({"inbox"})),
    ),
)

FUNCTION_NAMES: tuple[str, ...] = tuple(spec.name for spec in CATALOGUE)


def function(name: str) -> FunctionSpec:
    """The entry of ``name``; a name not in the catalogue is a KeyError naming the known ones."""
    for spec in CATALOGUE:
        if spec.name == name:
            return spec
    raise KeyError(f"no function {name!r} in the catalogue (known: {', '.join(FUNCTION_NAMES)})")


def placeholders() -> dict[str, str]:
    """ASL placeholder -> the function whose ARN fills it."""
    return {spec.placeholder: spec.name for spec in CATALOGUE if spec.placeholder}


def calling(job_call: JobCall) -> Iterator[FunctionSpec]:
    """The functions that make ``job_call`` on the services."""
    return (spec for spec in CATALOGUE if job_call in spec.jobs)
