"""The one small interface every batch service adapter implements.

The flow (Prepare -> Submit -> Poll -> Collect) never branches on the service: it asks the adapter to
encode records, create or find the job, normalise its status, and read results back as keyed records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from botocore.exceptions import ClientError

from batchline.config import PipelineConfig
from batchline.errors import QuotaFull, ServiceRequestFailed, ServiceThrottled
from batchline.layout import RunLayout, S3Location

logger = logging.getLogger(__name__)


class JobStatus(StrEnum):
    """The service's status, normalised. The state machine's Choice state matches these strings."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    PARTIAL = "PARTIAL"
    FAILED = "FAILED"
    STOPPED = "STOPPED"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.PARTIAL, JobStatus.FAILED, JobStatus.STOPPED)


@dataclass(frozen=True)
class JobState:
    """What one look at the service's job told us."""

    job_id: str
    status: JobStatus
    raw_status: str
    message: str | None = None
    # Record counts when the service reports them (SageMaker does not).
    counts: dict[str, int] = field(default_factory=dict)
    # The service's own figures for the job, under the names of JOB_FIGURES, when it reports them.
    figures: dict[str, Any] = field(default_factory=dict)


# The one vocabulary of the service's own timing and consumption figures (manifest.json and the event carry them
# under ``jobs[].figures``); an adapter reports those its service returns, in these units, and leaves out the rest.
JOB_FIGURES: dict[str, str] = {
    "createdAt": "when the service created the job (ISO 8601, UTC)",
    "startedAt": "when the job started running (ISO 8601, UTC)",
    "endedAt": "when the job ended (ISO 8601, UTC)",
    "computeSeconds": "compute time the service billed or reported, in seconds",
    "replicaHours": "machine replica hours consumed (Vertex AI resourcesConsumed)",
    "inputTokens": "input tokens processed (Bedrock)",
    "outputTokens": "output tokens produced (Bedrock)",
    "logUri": "where the service wrote the job's log",
    "invocations": "on-demand model calls made instead of a batch job",
}


@dataclass(frozen=True)
class Chunk:
    """The share of the input one service job handles."""

    index: int
    input_prefix: S3Location
    output_prefix: S3Location
    records: int

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "inputPrefix": self.input_prefix.uri,
            "outputPrefix": self.output_prefix.uri,
            "records": self.records,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Chunk:
        return cls(
            data["index"],
            S3Location.parse(data["inputPrefix"]),
            S3Location.parse(data["outputPrefix"]),
            data["records"],
        )


@dataclass(frozen=True)
class RunContext:
    """Everything an adapter needs to know about the run and one of its jobs; rebuilt from the state."""

    run_id: str
    pipeline: PipelineConfig
    layout: RunLayout
    # Facts Prepare learned from the input (header, column counts...) that Submit and Collect need.
    staging: dict[str, Any]
    chunk: Chunk


@dataclass(frozen=True)
class StagedRecord:
    """A record as staged: which part file holds it, its key, source line and the ID sent to the service."""

    part: str
    key: str
    line: int
    record_id: str


@dataclass(frozen=True)
class Prediction:
    """One record's prediction: one or more CSV rows after the key (long form writes a row per item)."""

    key: str
    line: int | None
    rows: list[list[str]]


@dataclass(frozen=True)
class FailedRecord:
    key: str
    line: int | None
    reason: str


@dataclass(frozen=True)
class UnitFiles:
    """Where one Collect unit of keyed output writes, and how: prediction rows (with ``header`` first when it is
    the run's first unit), every key the output named, and its failed lines as (key, reason)."""

    predictions: str
    keys: str
    failed: str
    header: list[str] | None
    spreadsheet_safe: bool


class RecordRejected(Exception):
    """Raised by an encoder for one record the service cannot take; the row goes to errors.csv."""


@dataclass(frozen=True)
class EncodedRecord:
    """One line of service input (ending in a newline) and the ID the service will echo back."""

    text: str
    record_id: str


@dataclass(frozen=True)
class JobLimits:
    """Per-job bounds of a service; Prepare splits the input into jobs that respect them."""

    min_records_per_job: int = 1
    max_records_per_job: int = 10**12
    max_bytes_per_job: int = 10**15
    # The service answers a job under the minimum another way (Bedrock on demand): such a job is made, not refused.
    below_minimum_allowed: bool = False


class InputEncoder(Protocol):
    """Turns validated input rows into the service's input format, one line per record."""

    suffix: str
    content_type: str
    max_records_per_file: int
    max_bytes_per_file: int
    limits: JobLimits

    def start(self, header: list[str], key_index: int) -> dict[str, Any]:
        """Called once with the header; returns the staging facts (JSON-able) Submit and Collect need."""
        ...

    def encode(self, row: list[str], sequence: int) -> EncodedRecord:
        """One record of service input; ``sequence`` counts staged records from 0. RecordRejected if bad."""
        ...


class BatchAdapter(Protocol):
    provider: str

    def input_encoder(self) -> InputEncoder: ...

    def job_id(self, run: RunContext) -> str:
        """Deterministic ID of the chunk's job as describe() takes it (a name, an ID or an ARN)."""
        ...

    def submit(self, run: RunContext) -> JobState:
        """Create the job, or find the one a previous attempt created (same deterministic name)."""
        ...

    def describe(self, run: RunContext, job_id: str) -> JobState:
        """One look at the job; never creates anything. JobNotFound only when the service says it has no such job."""
        ...

    def stop(self, run: RunContext, job_id: str) -> bool:
        """Ask the service to stop a running job; False when the service cannot stop this kind of job."""
        ...

    def result_columns(self, run: RunContext) -> list[str]:
        """Names of the prediction columns written after the key column."""
        ...

    def read_results(
        self, run: RunContext, job: JobState, staged: Iterator[StagedRecord]
    ) -> Iterator[Prediction | FailedRecord]:
        """Every staged record of the chunk exactly once, as a prediction or a failure, from the raw output.

        ``staged`` yields the chunk's records part by part in staging order (see StagedRecord).
        """
        ...


# --- How each adapter's output is collected: an adapter implements the one its service's output allows. ----------


@runtime_checkable
class KeyedOutput(Protocol):
    """An adapter whose output lines each name their record: rows need no join while they are written; the
    keys seen are checked against the staged index afterwards (``keyed.reconcile``, in AssembleOutput)."""

    def missing_reason(self, run: RunContext, job: JobState) -> str:
        """Why a staged record no output line names failed; ``{part}`` stands for its staged file's name."""
        ...


@runtime_checkable
class ShardedOutput(KeyedOutput, Protocol):
    """Keyed output in S3 objects: byte ranges of one object are collected apart (one Map child each)."""

    def output_objects(self, run: RunContext) -> list[tuple[str, int]]:
        """(key, size) of each output object of the chunk, checked against the staged parts."""
        ...

    def collect_shard(self, run: RunContext, source_path: str, *, workdir: str, files: UnitFiles) -> dict[str, int]:
        """A shard's lines (a local file) -> ``files``. Returns counts."""
        ...


@runtime_checkable
class StreamedKeyedOutput(KeyedOutput, Protocol):
    """Keyed output in files of the service's choosing, read whole (Vertex AI results in Cloud Storage)."""

    def result_files(self, job: JobState) -> list[str]:
        """The job's result files, in order."""
        ...

    def collect_keyed(
        self, run: RunContext, job: JobState, files: UnitFiles, uris: tuple[str, ...] | None = None
    ) -> dict[str, int]:
        """Like ShardedOutput.collect_shard, for a whole job's output or the result files named."""
        ...


@runtime_checkable
class PartOrderedOutput(Protocol):
    """An adapter whose output is one file per staged part, in the part's order (read_results walks the staged
    records given, part by part): a unit may take any run of consecutive parts."""

    def check_outputs(self, run: RunContext) -> None:
        """OutputInvalid when an output file matches no staged part of the chunk."""
        ...


@runtime_checkable
class ReleasesServiceObjects(Protocol):
    """An adapter whose service keeps records of a job beside its output (Amazon ML's DataSource and
    BatchPrediction) that Batchline deletes once the job has ended. Adapters without such records leave it out."""

    def release(self, run: RunContext, job: JobState) -> None:
        """Delete what the service keeps of ``job`` (terminal); raises what the service said when it cannot."""
        ...


def release_job(adapter: object, run: RunContext, job: JobState) -> None:
    """The one call the run's end makes for each job: the adapter releases what its service keeps of a job that has
    ended; nothing for another adapter or a job still running (it is still using them). A failed deletion is
    logged and never raised: the run's outcome is decided and must still be reported."""
    if not isinstance(adapter, ReleasesServiceObjects):
        return
    if not job.status.is_terminal:
        logger.warning(
            "job %s still runs (%s): the service objects it uses are left in place", job.job_id, job.raw_status
        )
        return
    try:
        adapter.release(run, job)
    except Exception:  # noqa: BLE001 - a cleanup that fails never fails a run that has ended
        logger.exception("could not delete the service objects of job %s; delete them by hand", job.job_id)


THROTTLING_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded", "SlowDown"}
)


@dataclass(frozen=True)
class QuotaReading:
    """A quota refusal read in numbers: the quota's name, its applied value, what is in use and what the
    refused request asked for (all in the quota's unit)."""

    name: str
    limit: int
    usage: int
    request: int

    @property
    def never_fits(self) -> bool:
        """True when the request alone is over the quota: no slot that frees can ever make room for it."""
        return self.request > self.limit


# Reads a quota refusal's message; None when it does not say the numbers for certain.
QuotaReader = Callable[[str], QuotaReading | None]


def quota_refusal(service: str, code: str, message: str, reading: QuotaReading | None, how_to_raise: str) -> Exception:
    """QuotaFull (wait for a slot) unless the reading shows the job can never fit; then a failure at once that
    names the quota and how to raise it. A refusal not read for certain waits: the run's deadline bounds that."""
    if reading is None or not reading.never_fits:
        return QuotaFull(f"{service} quota is full ({code}): {message}")
    return ServiceRequestFailed(
        f"{service} can never run this job: the quota '{reading.name}' is {reading.limit} and the job alone "
        f"needs {reading.request} ({reading.usage} in use), so waiting for a slot cannot help. {how_to_raise} "
        f"(AWS said: {code}: {message})"
    )


def translate_client_error(
    exc: ClientError,
    service: str,
    quota_codes: frozenset[str],
    read_quota: QuotaReader | None = None,
    how_to_raise: str = "Ask for a higher quota in Service Quotas.",
) -> Exception:
    """Throttling and full quotas become the named errors the state machine retries (a quota the job can never
    fit fails at once, see quota_refusal); others pass through."""
    code = exc.response["Error"]["Code"]
    message = exc.response["Error"].get("Message", "")
    if code in THROTTLING_CODES:
        return ServiceThrottled(f"{service} throttled the request ({code}): {message}")
    if code in quota_codes:
        reading = read_quota(message) if read_quota is not None else None
        return quota_refusal(service, code, message, reading, how_to_raise)
    return exc
