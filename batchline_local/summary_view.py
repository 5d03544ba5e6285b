"""`batchline results RUN --summary`: the run's manifest summary as aligned text for a terminal.

The same figures report.html shows (batchline.summary computes them in FinalizeRun): counts, jobs, error reasons
grouped, and each prediction column's distribution, bars drawn with block characters.
"""

from __future__ import annotations

import unicodedata
from typing import Any

# Widest a value or reason is shown here (the manifest and report.html have the whole text).
CELL_CHARS = 48
BAR_CHARS = 30


def clean(value: Any, width: int = CELL_CHARS) -> str:
    """One line of printable text: control characters (a terminal's escape sequences) shown as \\x.., cut."""
    text = "" if value is None else str(value)
    shown = "".join(f"\\x{ord(char):02x}" if unicodedata.category(char) in ("Cc", "Cf") else char for char in text)
    return shown if len(shown) <= width else shown[: width - 1] + "…"


def table(header: list[str], rows: list[list[str]], numbers: set[int]) -> list[str]:
    """Columns as wide as their widest cell, two spaces apart; the ``numbers`` columns right-aligned."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        aligned = [
            cell.rjust(width) if index in numbers else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return ("  " + "  ".join(aligned)).rstrip()

    return [line(header), *(line(row) for row in rows)]


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.6g}"


def _bar(count: int, largest: int) -> str:
    if not largest or not count:
        return ""
    return "█" * max(1, round(BAR_CHARS * count / largest))


def summary_lines(manifest: dict[str, Any]) -> list[str]:
    """The whole summary, line by line."""
    counts = manifest.get("counts") or {}
    lines = [
        f"run:         {clean(manifest.get('runId'), 120)}",
        f"pipeline:    {clean(manifest.get('pipeline'))} ({clean(manifest.get('provider'))})",
        f"status:      {clean(manifest.get('status'))}",
        "records:     "
        + ", ".join(f"{name} {counts.get(name, '-')}" for name in ("input", "sent", "predicted", "failed", "rejected")),
    ]
    error = manifest.get("error") or {}
    if error:
        lines.append(f"error:       {clean(error.get('error'))}: {clean(error.get('cause'), 200)}")
    report = (manifest.get("outputs") or {}).get("report")
    if report:
        lines.append(f"report:      {report}")
    lines += _jobs(manifest.get("jobs") or [])
    summary = manifest.get("summary")
    if summary is None:
        lines.append("summary:     none (this run's manifest has no summary statistics)")
        return lines
    lines += _errors(summary.get("errors"))
    lines += _columns(summary.get("predictions"))
    return lines


def _jobs(jobs: list[dict[str, Any]]) -> list[str]:
    if not jobs:
        return ["jobs:        none"]
    rows = []
    for job in jobs:
        figures = job.get("figures") or {}
        rows.append(
            [
                clean(job.get("jobId")),
                clean(job.get("status")),
                clean(figures.get("createdAt") or "-"),
                clean(figures.get("startedAt") or "-"),
                clean(figures.get("endedAt") or "-"),
                str(job.get("pollCount") if job.get("pollCount") is not None else "-"),
            ]
        )
    return ["jobs:", *table(["JOB", "STATUS", "SUBMITTED", "STARTED", "ENDED", "POLLS"], rows, {5})]


def _errors(errors: dict[str, Any] | None) -> list[str]:
    if not errors or not errors.get("groups"):
        return ["errors:      none"]
    partial = "" if errors.get("complete", True) else " (partial: the time budget ended the reading)"
    rows = []
    for group in errors["groups"]:
        example = group.get("example") or {}
        rows.append(
            [
                clean(group.get("stage") or "-"),
                str(group.get("count")),
                clean(group.get("reason")),
                f"line {clean(example.get('line'), 12)}, key {clean(example.get('key'), 24)}",
            ]
        )
    return [
        f"errors:      {errors.get('rows')} rows of errors.csv{partial}",
        *table(["STAGE", "ROWS", "REASON", "EXAMPLE"], rows, {1}),
    ]


def _columns(predictions: dict[str, Any] | None) -> list[str]:
    if not predictions:
        return ["predictions: none"]
    partial = "" if predictions.get("complete", True) else " (partial: the time budget ended the reading)"
    lines = [f"predictions: {predictions.get('rows')} rows of predictions.csv{partial}"]
    for column in predictions.get("columns") or []:
        lines += _numeric(column) if column.get("kind") == "numeric" else _text(column)
    return lines


def _numeric(column: dict[str, Any]) -> list[str]:
    lines = [
        f"  {clean(column.get('name'))} (numeric): {column.get('count')} numbers, {column.get('blanks')} blank, "
        f"{column.get('nonFinite')} NaN or infinite; min {_number(column.get('min'))}, "
        f"mean {_number(column.get('mean'))}, max {_number(column.get('max'))}"
    ]
    bins = column.get("histogram") or []
    largest = max((b["count"] for b in bins), default=0)
    rows = [[f"{_number(b['start'])} to {_number(b['end'])}", str(b["count"]), _bar(b["count"], largest)] for b in bins]
    if rows:
        lines += ["  " + line for line in table(["RANGE", "ROWS", ""], rows, {1})]
    return lines


def _text(column: dict[str, Any]) -> list[str]:
    distinct = column.get("distinct")
    lines = [
        f"  {clean(column.get('name'))} (text): {column.get('count')} values, {column.get('blanks')} blank, "
        + (f"{distinct} distinct" if distinct is not None else "too many distinct values to count each")
    ]
    if column.get("approximate"):
        lines.append(f"    approximate: each count may be low by up to {column.get('maxUndercount')}")
    top = column.get("topValues") or []
    largest = max((t["count"] for t in top), default=0)
    rows = [[clean(t["value"]), str(t["count"]), _bar(t["count"], largest)] for t in top]
    if rows:
        lines += ["  " + line for line in table(["VALUE", "ROWS", ""], rows, {1})]
    return lines
