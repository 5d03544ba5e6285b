"""A run's progress while ``--wait`` follows it: a live panel on a terminal, one line per change otherwise.

Both go to stderr, so stdout keeps only the result (and ``--json`` stays one document).
"""

from __future__ import annotations

import sys
from datetime import timedelta
from types import TracebackType
from typing import Any

from batchline_local.runs import RunView


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

    def __init__(self, *, show: bool = True) -> None:
        from rich.console import Console

        self._console = Console(stderr=True)
        self._show = show
        self._live: Any = None
        self._view: RunView | None = None
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
        self._view = view
        if self._live is not None:
            self._live.refresh()
        elif self._show:
            line = self._line(view)
            if line != self._last_line:  # a line per change, not per look
                print(f"[{elapsed_text(view)}] {line}", file=sys.stderr, flush=True)
                self._last_line = line

    @staticmethod
    def _line(view: RunView) -> str:
        parts = [view.status if not view.running else (view.history.state or "starting")]
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
        for index, job in enumerate(jobs):
            table.add_row("job", describe_job(index, job))
        if planned and not jobs:
            table.add_row("jobs", f"{planned} to submit")
        counts = describe_counts(view.counts)
        if counts:
            table.add_row("records", counts)
        table.add_row("elapsed", elapsed_text(view))
        return table
