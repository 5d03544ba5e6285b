"""Promises 1 and 2 of the hostile-input issue, checked on what a run left.

1. Every input record is exactly once in predictions.csv (under its own key, once the spreadsheet rule is
   undone) or in errors.csv (its line, its key, a reason); the counts reconcile; no two input keys come out
   as one; a readable file never fails the run; a plain record is predicted whatever its neighbours are.
2. Every CSV Batchline wrote parses back (strict) with the same number of cells in every row, and, with
   spreadsheetSafe on, every cell is something csvsafe.neutralise can have written.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter

from batchline.csvsafe import neutralise, restore
from batchline.prepare import ERROR_COLUMNS

from tests.property.flow_driver import Outcome
from tests.property.hostile import HostileFile
from tests.property.known_broken import RECORD_COLUMN_LINE_BREAK


def parse_strict(name: str, data: bytes, columns: int | None = None) -> list[list[str]]:
    """Promise 2, shape: UTF-8, strict CSV, one header, every row as wide as the header."""
    text = data.decode("utf-8")  # UnicodeDecodeError is a failure too
    assert not text.startswith("\ufeff"), f"{name} starts with a BOM"
    rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    assert rows, f"{name} is empty"
    width = columns if columns is not None else len(rows[0])
    for number, row in enumerate(rows, start=1):
        assert len(row) == width, f"{name} row {number} has {len(row)} cells, expected {width}: {row!r}"[:2000]
    return rows


def assert_spreadsheet_safe(name: str, rows: list[list[str]]) -> None:
    """Promise 2, safety: each cell is neutralise's output for some value (so restore gives that value back)."""
    for number, row in enumerate(rows, start=1):
        for column, cell in enumerate(row):
            assert neutralise(restore(cell)) == cell, f"{name} row {number} column {column}: unescaped cell {cell!r}"[
                :2000
            ]


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


def check_staged(provider: str, outcome: Outcome, context: str) -> None:
    """What the service reads: JSON lines split at LF only, each a strict JSON object; SageMaker's CSV split at
    LF only (SplitType Line), each line one record."""
    for name, data in outcome.staged.items():
        lines = data.decode("utf-8").split("\n")
        assert lines[-1] == "", f"staged {name} does not end with LF{context}"
        for number, line in enumerate(lines[:-1], start=1):
            if name.endswith(".jsonl"):
                try:
                    value = json.loads(line, parse_constant=_no_constant)
                except ValueError as exc:
                    raise AssertionError(f"staged {name} line {number} is not one JSON value: {exc}{context}") from exc
                assert isinstance(value, dict), f"staged {name} line {number}{context}"
            elif provider == "sagemaker":
                rows = list(csv.reader(io.StringIO(line, newline=""), strict=True))
                assert len(rows) == 1, f"staged {name} line {number} is not one CSV record: {line!r}{context}"


def check_run(
    upload: HostileFile,
    outcome: Outcome,
    *,
    provider: str = "",
    spreadsheet_safe: bool = True,
    record_line_breaks: bool = RECORD_COLUMN_LINE_BREAK is None,
) -> None:
    """Promises 1 and 2 for one run of ``upload``; ``record_line_breaks`` also checks the record column of rows
    holding a line break (off while known_broken.RECORD_COLUMN_LINE_BREAK says it is broken)."""
    context = f"\nupload: {upload.describe()}\noutcome: {outcome.detail.get('status')} {outcome.error}"[:3000]
    check_staged(provider, outcome, context)
    undo = restore if spreadsheet_safe else (lambda cell: cell)

    # A file readable as a whole never fails the run (every file drawn here is).
    assert outcome.failed_step is None, f"the run failed in {outcome.failed_step}: {context}"
    assert outcome.status in ("SUCCEEDED", "PARTIALLY_SUCCEEDED"), context

    predictions: list[list[str]] = []
    if "predictions.csv" in outcome.csvs:
        rows = parse_strict("predictions.csv", outcome.csvs["predictions.csv"])
        if spreadsheet_safe:
            assert_spreadsheet_safe("predictions.csv", rows)
        assert rows[0][0] == upload.header[0], f"predictions.csv header {rows[0]!r}{context}"
        predictions = rows[1:]
    errors: list[list[str]] = []
    if "errors.csv" in outcome.csvs:
        rows = parse_strict("errors.csv", outcome.csvs["errors.csv"], len(ERROR_COLUMNS))
        if spreadsheet_safe:
            assert_spreadsheet_safe("errors.csv", rows)
        assert rows[0] == ERROR_COLUMNS, context
        errors = rows[1:]

    # Error rows by line: each names its file, its key and a reason.
    error_by_line: dict[int, list[list[str]]] = {}
    for row in errors:
        source_file, line, key, stage, reason, _record = (undo(cell) for cell in row)
        assert source_file.endswith("/" + upload.name), f"errors.csv source_file {source_file!r}{context}"
        assert line.isdigit(), f"errors.csv row without a line: {row!r}{context}"
        assert stage in ("prepare", "service"), f"errors.csv stage {stage!r}{context}"
        assert reason.strip(), f"errors.csv row without a reason: {row!r}{context}"
        error_by_line.setdefault(int(line), []).append([key, reason, _record])

    # Predicted keys (a long-form pipeline writes several rows per key, consecutively).
    predicted = Counter()
    previous = None
    for row in predictions:
        key = undo(row[0])
        if key != previous:
            predicted[key] += 1
        previous = key
    merged = {key: n for key, n in predicted.items() if n > 1}
    assert not merged, f"keys predicted more than once (two input records came out as one key?): {merged!r}{context}"

    # Promise 1: each record once, in errors.csv at its line or in predictions.csv under its key.
    unclaimed = set(predicted)
    lost, misplaced = [], []
    for record in upload.records:
        at_line = error_by_line.pop(record.line, None)
        if at_line is not None:
            assert len(at_line) == 1, f"line {record.line} has {len(at_line)} rows in errors.csv{context}"
            key, reason, record_text = at_line[0]
            line_break = re.search("[\r\n]", "".join(record.values.values())) is not None
            if upload.name.endswith(".csv") and record_text and (record_line_breaks or not line_break):
                # The record column is the rejected row as one CSV line: it reads back as the row's cells.
                cells = list(csv.reader(io.StringIO(record_text, newline=""), strict=True))
                expected = [record.values[name] for name in upload.header]
                assert cells == [expected], f"errors.csv line {record.line}: record column {record_text!r}{context}"
            assert key == record.key, (
                f"errors.csv line {record.line}: key {key!r}, the record's is {record.key!r}{context}"
            )
            assert not record.anchor, f"plain record {record.key!r} failed: {reason}{context}"
        elif record.key in unclaimed:
            unclaimed.discard(record.key)
        else:
            (misplaced if record.key in predicted else lost).append((record.line, record.key))
    assert not lost, f"records in neither output (line, key): {lost!r}"[:1500] + context
    assert not misplaced, f"records whose key was predicted for another record: {misplaced!r}"[:1500] + context
    assert not error_by_line, f"errors.csv rows at lines where no record starts: {error_by_line!r}"[:1500] + context
    assert not unclaimed, f"predicted keys that are no input record's key: {sorted(unclaimed)!r}"[:1500] + context

    counts = outcome.detail["counts"]
    assert counts["input"] == len(upload.records), f"counts {counts}, records {len(upload.records)}{context}"
    assert counts["input"] == counts["predicted"] + counts["failed"] + counts["rejected"], f"{counts}{context}"
    assert counts["predicted"] == sum(predicted.values()), f"{counts}, predicted keys {len(predicted)}{context}"
    assert counts["failed"] + counts["rejected"] == len(errors), f"{counts}, errors.csv rows {len(errors)}{context}"
