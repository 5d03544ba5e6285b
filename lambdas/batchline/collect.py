"""Collect: stream every job's raw output into one keyed predictions.csv and the failed records' rows."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from typing import Any

from batchline.adapters.base import BatchAdapter, FailedRecord, JobState, RunContext, StagedRecord
from batchline.csvsafe import CsvWriter
from batchline.layout import RunLayout, S3Location
from batchline.prepare import ERROR_COLUMNS, temp_workdir
from batchline.s3io import csv_rows, list_keys, sha256_of, upload_file


def staged_records(s3: Any, layout: RunLayout, input_prefix: S3Location) -> Iterator[StagedRecord]:
    """The records of one job's input, part by part in staging order, from the index sidecars."""
    for key in sorted(list_keys(s3, input_prefix)):
        part = posixpath.basename(key)
        for line, record_key, record_id in csv_rows(s3, layout.index_for(part)):
            yield StagedRecord(part, record_key, int(line), record_id)


def job_end_reason(job_id: str, raw_status: str, message: str | None) -> str:
    return f"job {job_id} ended with status {raw_status}: {message or 'no reason given'}"


def _failed(staged: Iterator[StagedRecord], reason: str) -> Iterator[FailedRecord]:
    for record in staged:
        yield FailedRecord(record.key, record.line, reason)


def collect_jobs(
    s3: Any,
    adapter: BatchAdapter,
    runs: list[tuple[RunContext, JobState]],
    *,
    key_header: str,
    source_name: str,
    spreadsheet_safe: bool = True,
) -> dict[str, Any]:
    """Write predictions.csv (results) and failed.csv (work) for every job; returns counts and checksums."""
    layout = runs[0][0].layout
    header = [key_header, *adapter.result_columns(runs[0][0])]
    predicted = failed = rows = 0
    with temp_workdir() as workdir:
        predictions_path = os.path.join(workdir, "predictions.csv")
        failed_path = os.path.join(workdir, "failed.csv")
        with (
            open(predictions_path, "w", encoding="utf-8", newline="") as predictions_file,
            open(failed_path, "w", encoding="utf-8", newline="") as failed_file,
        ):
            predictions = CsvWriter(predictions_file, safe=spreadsheet_safe)
            predictions.writerow(header)
            failures = CsvWriter(failed_file, safe=spreadsheet_safe)
            failures.writerow(ERROR_COLUMNS)
            for run, job in runs:
                staged = staged_records(s3, layout, run.chunk.input_prefix)
                if job.status.value in ("SUCCEEDED", "PARTIAL"):
                    records: Iterator[Any] = adapter.read_results(run, job, staged)
                else:
                    records = _failed(staged, job_end_reason(job.job_id, job.raw_status, job.message))
                for record in records:
                    if isinstance(record, FailedRecord):
                        failures.writerow([source_name, record.line or "", record.key, "service", record.reason, ""])
                        failed += 1
                    else:
                        predictions.writerows([[record.key, *row] for row in record.rows])
                        rows += len(record.rows)
                        predicted += 1
        result: dict[str, Any] = {
            "counts": {"predicted": predicted, "failed": failed},
            "predictions": None,
            "failedUri": None,
        }
        if predicted:
            upload_file(s3, predictions_path, layout.predictions, "text/csv")
            result["predictions"] = {
                "uri": layout.predictions.uri,
                "records": predicted,
                "rows": rows,
                "sha256": sha256_of(predictions_path),
            }
        if failed:
            upload_file(s3, failed_path, layout.failed, "text/csv")
            result["failedUri"] = layout.failed.uri
    return result
