"""Which CloudWatch metrics each step reports, as plain data; the handlers hand them to Powertools Metrics.

Powertools writes them as embedded metric format (EMF) log lines, which CloudWatch turns into metrics in the
``Batchline`` namespace with no API call. Every metric has the dimensions {service, pipeline} and, for the
alarms and the all-pipelines view, {service} alone (Powertools adds ``service`` from POWERTOOLS_SERVICE_NAME).
The run ID rides along as EMF metadata: not a dimension, but searchable in the log line.

The stack reads the names below to build the dashboard and alarms, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

NAMESPACE = "Batchline"
SERVICE = "batchline"
SERVICE_DIMENSION = "service"
PIPELINE_DIMENSION = "pipeline"

RECORDS_IN = "RecordsIn"
RECORDS_PREDICTED = "RecordsPredicted"
RECORDS_FAILED = "RecordsFailed"
RECORDS_REJECTED = "RecordsRejected"
# Seconds from the upload's run start to its outcome (all of its service jobs, plus Prepare and Collect).
RUN_DURATION = "RunDuration"
# Seconds since a still-running run started, reported at each job submit attempt and each poll: the
# heartbeat the stale-run alarm watches (an execution reports nothing of its own until it ends).
RUN_AGE = "RunAge"
POLLS = "Polls"

COUNT = "Count"
SECONDS = "Seconds"

# counts key in the event detail -> metric
RECORD_METRICS = {
    "input": RECORDS_IN,
    "predicted": RECORDS_PREDICTED,
    "failed": RECORDS_FAILED,
    "rejected": RECORDS_REJECTED,
}


@dataclass(frozen=True)
class Measure:
    name: str
    value: float
    unit: str


class MetricsSink(Protocol):
    """The part of Powertools' ``Metrics`` used here (so this module needs no Powertools import)."""

    def add_dimension(self, name: str, value: str) -> None: ...

    def add_dimensions(self, **dimensions: str) -> None: ...

    def add_metadata(self, key: str, value: Any) -> None: ...

    def add_metric(self, name: str, unit: str, value: float) -> None: ...


def outcome_measures(detail: dict[str, Any]) -> list[Measure]:
    """A run's record counts and duration, from its outcome event detail.

    None for an upload under an unknown prefix (``provider`` is null): its "pipeline" is whatever the
    uploader typed, and each new value would become a new CloudWatch metric.
    """
    if detail.get("provider") is None:
        return []
    counts = detail.get("counts") or {}
    measures = [Measure(metric, counts.get(key, 0), COUNT) for key, metric in RECORD_METRICS.items()]
    duration = (detail.get("timings") or {}).get("durationSeconds")
    if duration is not None:
        measures.append(Measure(RUN_DURATION, duration, SECONDS))
    return measures


def run_age(started_at: str, now: datetime) -> list[Measure]:
    """How long the run has been going since ``started_at`` (the run facts' ``startedAt``)."""
    started = datetime.fromisoformat(started_at.replace("Z", "+00:00"))
    return [Measure(RUN_AGE, max(0.0, (now - started).total_seconds()), SECONDS)]


def poll_measures(started_at: str, now: datetime) -> list[Measure]:
    """One status poll of one job, and the run's age at that moment."""
    return [Measure(POLLS, 1, COUNT), *run_age(started_at, now)]


def publish(sink: MetricsSink, *, pipeline: str, run_id: str, measures: Sequence[Measure]) -> None:
    """Add ``measures`` for one pipeline; call once per invocation (the decorator flushes them)."""
    if not measures:
        return
    sink.add_dimension(name=PIPELINE_DIMENSION, value=pipeline)
    sink.add_dimensions(**{SERVICE_DIMENSION: SERVICE})  # the all-pipelines view, alongside per pipeline
    sink.add_metadata(key="run_id", value=run_id)
    for measure in measures:
        sink.add_metric(name=measure.name, unit=measure.unit, value=measure.value)
