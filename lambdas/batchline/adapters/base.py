"""The one small interface every batch service adapter implements.

The flow (Prepare -> Submit -> Poll -> Collect) never branches on the service: it asks the adapter to
encode records, create or find the job, normalise its status, and read results back as keyed records.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from batchline.config import PipelineConfig
from batchline.layout import RunLayout


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


@dataclass(frozen=True)
class RunContext:
    """Everything an adapter needs to know about the run; rebuilt in each Lambda from the state payload."""

    run_id: str
    pipeline: PipelineConfig
    layout: RunLayout
    # Facts Prepare learned from the input (header, column counts...) that Submit and Collect need.
    staging: dict[str, Any]


@dataclass(frozen=True)
class Prediction:
    key: str
    line: int | None
    values: list[str]


@dataclass(frozen=True)
class FailedRecord:
    key: str
    line: int | None
    reason: str


class RecordRejected(Exception):
    """Raised by an encoder for one record the service cannot take; the row goes to errors.csv."""


class InputEncoder(Protocol):
    """Turns validated input rows into the service's input format, one line per record."""

    suffix: str
    content_type: str
    max_records_per_file: int

    def start(self, header: list[str], key_index: int) -> dict[str, Any]:
        """Called once with the header; returns the staging facts (JSON-able) Submit and Collect need."""
        ...

    def encode(self, row: list[str]) -> str:
        """One line of service input, ending in a newline; raises RecordRejected for a bad record."""
        ...


class BatchAdapter(Protocol):
    provider: str

    def input_encoder(self) -> InputEncoder: ...

    def submit(self, run: RunContext) -> JobState:
        """Create the job, or find the one a previous attempt created (same deterministic name)."""
        ...

    def describe(self, run: RunContext, job_id: str) -> JobState: ...

    def stop(self, run: RunContext, job_id: str) -> None:
        """Ask the service to stop the job; a job that already ended is not an error."""
        ...

    def result_columns(self, run: RunContext) -> list[str]:
        """Names of the prediction columns written after the key column."""
        ...

    def read_results(self, run: RunContext, job: JobState) -> Iterator[Prediction | FailedRecord]:
        """Every staged record exactly once, as a prediction or a failure, streamed from the raw output."""
        ...
