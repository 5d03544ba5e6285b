"""A run's progress while ``--wait`` follows it: a live panel on a terminal, one line per change otherwise.

Both show the step, the records read and collected so far, the jobs running and the time elapsed, and go to
stderr, so stdout keeps only the result (and ``--json`` stays one document). ``submit --wait`` and the ``local
run`` panel show the same.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any

from batchline_local.runs import RunView

# The run's states while Prepare reads the upload, and once Collect writes the keyed rows (statemachine/).
PREPARE_STATES = frozenset({"PrepareInput", "IsPrepareFannedOut", "PrepareShards", "MergeShards"})
COLLECT_STATES = frozenset({"CollectUnits", "AssembleOutput"})
_RUNNING_JOB = frozenset({"PENDING", "RUNNING"})


@dataclass(frozen=True)
class RecordsSoFar:
    """The records of a run so far: read by Prepare, sent to the service, collected (predicted or failed)."""

    read: int | None = None
    sent: int | None = None
    rejected: int | None = None
    collected: int | None = None

    def describe(self) -> str:
        parts = []
        if self.read is not None:
            staged = f" (sent {self.sent}, rejected {self.rejected})" if self.sent is not None else ""
            parts.append(f"read {self.read}{staged}")
        if self.collected is not None:
            parts.append(f"collected {self.collected}" + (f" of {self.sent}" if self.sent is not None else ""))
        return ", ".join(parts)


class RecordCounter:
    """Counts a running run's records from the summaries its steps leave in the work bucket as each piece ends:
    a Prepare shard's (``prepare/shard-NNNNN.json``: records read) and a Collect unit's (``collect/unit-NNNNN.json``:
    rows predicted and failed). Each summary is read once (by key and ETag), so a long run costs a listing a look."""

    def __init__(self, target: Any) -> None:
        self._target = target
        self._summaries: dict[tuple[str, str], dict[str, Any]] = {}

    def look(self, view: RunView) -> RecordsSoFar:
        counts = view.counts
        if not view.running or "predicted" in counts:
            collected = counts.get("predicted", 0) + counts.get("failed", 0) if "predicted" in counts else None
            return RecordsSoFar(counts.get("input"), counts.get("sent"), counts.get("rejected"), collected)
        state = view.history.state or ""
        layout = self._target.layout(view.pipeline, view.run_id)
        read = counts.get("input")
        if read is None and state in PREPARE_STATES:
            shards = self._read(layout.work_bucket, layout.prepare_prefix.key + "shard-")
            read = sum(int((shard.get("counts") or {}).get("input", 0)) for shard in shards) if shards else None
        collected = None
        if state in COLLECT_STATES:
            units = self._read(layout.work_bucket, layout.collect_prefix.key + "unit-")
            collected = sum(int(unit.get("predicted", 0)) + int(unit.get("failed", 0)) for unit in units)
        return RecordsSoFar(read, counts.get("sent"), counts.get("rejected"), collected)

    def _read(self, bucket: str, prefix: str) -> list[dict[str, Any]]:
        """The JSON summaries under ``prefix`` (their other files, rows and keys, are left alone)."""
        s3 = self._target.client("s3")
        found = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if not item["Key"].endswith(".json"):
                    continue
                seen = (item["Key"], item.get("ETag", ""))
                if seen not in self._summaries:
                    body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                    self._summaries[seen] = dict(json.loads(body))
                found.append(self._summaries[seen])
        return found


def jobs_running(view: RunView) -> str:
    """``1 running of 4`` (of those planned, once Prepare has planned them)."""
    running = sum(1 for job in view.jobs if job.get("status") in _RUNNING_JOB)
    planned = view.history.job_count
    return f"{running} running" + (f" of {planned}" if planned else "")


def describe_counts(counts: dict[str, Any] | None) -> str:
    """``processed 50 of 120`` where the service says both, otherwise every count it reports."""
    if not counts:
        return ""
    counts = dict(counts)
    parts = []
    if "processed" in counts and "total" in counts:
        parts.append(f"processed {counts.pop('processed')} of {counts.pop('total')}")
    parts.extend(f"{name} {value}" for name, value in counts.items())
    return ", ".join(parts)


def describe_job(index: int, job: dict[str, Any]) -> str:
    text = f"job {index}: {job.get('status')} ({job.get('rawStatus')})"
    counts = describe_counts(job.get("counts"))
    return f"{text}, {counts}" if counts else text


def elapsed_text(view: RunView) -> str:
    seconds = view.elapsed_seconds()
    return str(timedelta(seconds=int(seconds))) if seconds is not None else "-"


class RunProgress:
    """``with RunProgress(show=...) as progress: progress.update(view)`` as each new look at the run comes in."""

    def __init__(self, *, show: bool = True, target: Any = None) -> None:
        from rich.console import Console

        self._console = Console(stderr=True)
        self._show = show
        self._live: Any = None
        self._view: RunView | None = None
        self._records = RecordsSoFar()
        # Reads the records so far from the run's bucket; without a target, Prepare's counts once it is done.
        self._counter = RecordCounter(target) if target is not None else None
        self._last_line: str | None = None

    @property
    def live(self) -> bool:
        return self._show and self._console.is_terminal

    def __enter__(self) -> RunProgress:
        if self.live:
            from rich.live import Live

            self._live = Live(console=self._console, get_renderable=self._render, refresh_per_second=4)
            self._live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.stop()

    def update(self, view: RunView) -> None:
        if not self._show:
            return
        self._records = self._look(view)
        self._view = view
        if self._live is not None:
            self._live.refresh()
        else:
            line = self._line(view, self._records)
            if line != self._last_line:  # a line per change, not per look
                print(f"[{elapsed_text(view)}] {line}", file=sys.stderr, flush=True)
                self._last_line = line

    def _look(self, view: RunView) -> RecordsSoFar:
        if self._counter is None:
            counts = view.counts
            return RecordsSoFar(counts.get("input"), counts.get("sent"), counts.get("rejected"))
        try:
            return self._counter.look(view)
        except Exception:  # noqa: BLE001 - a look that fails (a summary being rewritten) leaves the last one shown
            return self._records

    @staticmethod
    def _line(view: RunView, records: RecordsSoFar) -> str:
        parts = [view.status if not view.running else (view.history.state or "starting")]
        if records.describe():
            parts.append(records.describe())
        if view.running and (view.jobs or view.history.job_count):
            parts.append(f"jobs {jobs_running(view)}")
        parts.extend(describe_job(index, job) for index, job in enumerate(view.jobs))
        return " | ".join(parts)

    def _render(self) -> Any:
        from rich.spinner import Spinner
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        view = self._view
        if view is None:
            table.add_row("run", Spinner("dots", text="starting"))
            return table
        table.add_row("run", f"{view.run_id} ({view.pipeline})")
        state = view.history.state or "starting"
        table.add_row("state", Spinner("dots", text=state) if view.running else f"{state}: {view.status}")
        planned = view.history.job_count
        jobs = view.jobs
        if view.running and (jobs or planned):
            table.add_row("jobs", jobs_running(view))
        for index, job in enumerate(jobs):
            table.add_row("job", describe_job(index, job))
        records = self._records.describe()
        if records:
            table.add_row("records", records)
        table.add_row("elapsed", elapsed_text(view))
        return table
