"""Collect: turn every job's raw output into one keyed predictions.csv and the failed records' rows.

Three steps, so the work fans out on a Step Functions Distributed Map when the output is large:

1. ``plan_units``: one unit per job, or, for services whose output lines carry their own key
   (Personalize), one unit per byte-range shard of each output object (``shardBytes`` each), or, for
   services that write one ordered output file per staged part (SageMaker, Amazon ML), one unit per run
   of consecutive parts holding about ``unitRecords`` records; a larger keyed job whose results come in
   several files of the service's choosing (Vertex AI) gets one unit per file.
2. ``collect_unit`` (a Map child each): writes the unit's rows to ``collect/unit-NNNNN.csv`` (unit 0 carries
   the header), its failures, and a summary with row counts and the part's SHA-256.
3. ``assemble``: reconciles sharded output against the staged index, concatenates the parts into
   ``predictions.csv`` server-side (``assembly``) and writes ``failed.csv``.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from batchline import errors
from batchline.adapters.base import (
    BatchAdapter,
    FailedRecord,
    JobState,
    KeyedOutput,
    PartOrderedOutput,
    RunContext,
    ShardedOutput,
    StagedRecord,
    StreamedKeyedOutput,
    UnitFiles,
)
from batchline.assembly import Part, concatenate
from batchline.csvsafe import CsvWriter
from batchline.errors import BatchlineError, OutputInvalid
from batchline.layout import RunLayout, S3Location
from batchline.line_ranges import copy_lines, split_ranges
from batchline.prepare import ERROR_HEADER, temp_workdir
from batchline.s3io import append_object, csv_rows, list_keys, put_bytes, sha256_of, upload_file

# Errors a unit records in its summary instead of raising: they are about the output, so retrying the
# unit cannot help, and Assemble raises them by name for a clear failure event.
_RECORDED_ERRORS = (errors.OutputInvalid, errors.OutputMissing, errors.JobFailed)
# A unit's files, by suffix, and the summary field naming each one's key.
_UNIT_FILES = {".csv": "rowsKey", ".failed.csv": "failedKey", ".keys.csv": "keysKey"}


@dataclass(frozen=True)
class CollectUnit:
    """One Map child's work: a whole job, the lines of ``[start, end)`` of one output object, or the records
    of some of the job's staged parts (``parts``, by name)."""

    unit: int
    job: int  # position in the run's jobs list
    output_key: str | None = None
    start: int = 0
    end: int = 0
    parts: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "job": self.job,
            "outputKey": self.output_key,
            "start": self.start,
            "end": self.end,
            "parts": list(self.parts) if self.parts is not None else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CollectUnit:
        parts = data.get("parts")
        return cls(
            data["unit"],
            data["job"],
            data.get("outputKey"),
            data.get("start", 0),
            data.get("end", 0),
            tuple(parts) if parts is not None else None,
        )


def staged_parts(s3: Any, input_prefix: S3Location) -> list[str]:
    """Names of one job's staged parts, in staging order."""
    return sorted(posixpath.basename(key) for key in list_keys(s3, input_prefix))


def staged_records(
    s3: Any, layout: RunLayout, input_prefix: S3Location, parts: tuple[str, ...] | None = None
) -> Iterator[StagedRecord]:
    """The records of one job's input (or of the named ``parts`` of it), part by part in staging order."""
    for part in parts if parts is not None else staged_parts(s3, input_prefix):
        for line, record_key, record_id in csv_rows(s3, layout.index_for(part)):
            yield StagedRecord(part, record_key, int(line), record_id)


def job_end_reason(job_id: str, raw_status: str, message: str | None) -> str:
    return f"job {job_id} ended with status {raw_status}: {message or 'no reason given'}"


def _succeeded(job: JobState) -> bool:
    return job.status.value in ("SUCCEEDED", "PARTIAL")


def plan_units(
    s3: Any, adapter: BatchAdapter, runs: list[tuple[RunContext, JobState]], *, shard_bytes: int, unit_records: int
) -> list[CollectUnit]:
    """The units Collect fans out over, in output order."""
    units: list[CollectUnit] = []
    for job_index, (run, job) in enumerate(runs):
        if isinstance(adapter, ShardedOutput) and _succeeded(job):
            for key, size in adapter.output_objects(run):
                for start, end in split_ranges(size, shard_bytes):
                    units.append(CollectUnit(len(units), job_index, key, start, end))
            if units and units[-1].job == job_index:
                continue
        if isinstance(adapter, StreamedKeyedOutput) and _succeeded(job) and run.chunk.records > unit_records:
            results = adapter.result_files(job)
            if len(results) > 1:  # one unit per result file: the keys are checked per job afterwards
                first = len(units)
                units += [CollectUnit(first + n, job_index, uri) for n, uri in enumerate(results)]
                continue
        if isinstance(adapter, PartOrderedOutput):
            if _succeeded(job):
                adapter.check_outputs(run)
            parts = staged_parts(s3, run.chunk.input_prefix)
            # Parts hold about the same number of records (recordsPerFile), so a unit takes a fixed count of them.
            per_unit = max(1, unit_records * len(parts) // max(run.chunk.records, 1))
            if len(parts) > per_unit:
                for first in range(0, len(parts), per_unit):
                    units.append(CollectUnit(len(units), job_index, parts=tuple(parts[first : first + per_unit])))
                continue
        units.append(CollectUnit(len(units), job_index))  # whole job (a sharded job without output too)
    return units


def collect_unit(
    s3: Any,
    adapter: BatchAdapter,
    run: RunContext,
    job: JobState,
    unit: CollectUnit,
    *,
    key_header: str,
    source_name: str,
    spreadsheet_safe: bool = True,
) -> dict[str, Any]:
    """Writes one unit's rows, failures and summary under collect/; returns the summary."""
    layout = run.layout
    header = [key_header, *adapter.result_columns(run)] if unit.unit == 0 else None
    with temp_workdir() as workdir:
        paths = {suffix: os.path.join(workdir, "unit" + suffix) for suffix in (".csv", ".failed.csv", ".keys.csv")}
        try:
            keyed = True
            files = UnitFiles(paths[".csv"], paths[".keys.csv"], paths[".failed.csv"], header, spreadsheet_safe)
            if unit.output_key is not None and isinstance(adapter, ShardedOutput):
                counts = _collect_shard(s3, adapter, run, unit, workdir, files)
            elif _succeeded(job) and isinstance(adapter, StreamedKeyedOutput):
                uris = (unit.output_key,) if unit.output_key is not None else None
                counts = adapter.collect_keyed(run, job, files, uris)
            else:
                keyed = False
                counts = _collect_job(s3, adapter, run, job, unit, paths, header, source_name, spreadsheet_safe)
        except _RECORDED_ERRORS as exc:
            summary: dict[str, Any] = {**unit.to_json(), "error": {"type": type(exc).__name__, "message": str(exc)}}
            put_bytes(s3, layout.collect_unit(unit.unit, ".json"), json.dumps(summary).encode(), "application/json")
            return summary
        summary = {**unit.to_json(), **counts, "keyed": keyed}
        for suffix, name in _UNIT_FILES.items():
            path = paths[suffix]
            if os.path.exists(path) and (suffix == ".csv" or os.path.getsize(path) > 0):
                upload_file(s3, path, layout.collect_unit(unit.unit, suffix), "text/csv")
                summary[name] = layout.collect_unit(unit.unit, suffix).key
        summary["bytes"] = os.path.getsize(paths[".csv"])
        summary["sha256"] = sha256_of(paths[".csv"])
    put_bytes(s3, layout.collect_unit(unit.unit, ".json"), json.dumps(summary).encode(), "application/json")
    return summary


def _collect_shard(
    s3: Any, adapter: ShardedOutput, run: RunContext, unit: CollectUnit, workdir: str, files: UnitFiles
) -> dict[str, int]:
    source_path = os.path.join(workdir, "shard.jsonl")
    with open(source_path, "wb") as source:
        copy_lines(s3, S3Location(run.layout.work_bucket, unit.output_key or ""), unit.start, unit.end, source)
    return adapter.collect_shard(run, source_path, workdir=workdir, files=files)


def _collect_job(
    s3: Any,
    adapter: BatchAdapter,
    run: RunContext,
    job: JobState,
    unit: CollectUnit,
    paths: dict[str, str],
    header: list[str] | None,
    source_name: str,
    spreadsheet_safe: bool,
) -> dict[str, int]:
    predicted = failed = rows = 0
    with (
        open(paths[".csv"], "w", encoding="utf-8", newline="") as predictions_file,
        open(paths[".failed.csv"], "w", encoding="utf-8", newline="") as failed_file,
    ):
        predictions = CsvWriter(predictions_file, safe=spreadsheet_safe)
        if header:
            predictions.writerow(header)
        failures = CsvWriter(failed_file, safe=spreadsheet_safe)
        staged = staged_records(s3, run.layout, run.chunk.input_prefix, unit.parts)
        if _succeeded(job):
            records: Iterator[Any] = adapter.read_results(run, job, staged)
        else:
            reason = job_end_reason(job.job_id, job.raw_status, job.message)
            records = (FailedRecord(record.key, record.line, reason) for record in staged)
        for record in records:
            if isinstance(record, FailedRecord):
                failures.writerow([source_name, record.line or "", record.key, "service", record.reason, ""])
                failed += 1
            else:
                predictions.writerows([[record.key, *row] for row in record.rows])
                rows += len(record.rows)
                predicted += 1
    return {"predicted": predicted, "failed": failed, "rows": rows}


def assemble(
    s3: Any,
    adapter: BatchAdapter,
    runs: list[tuple[RunContext, JobState]],
    units: int,
    *,
    source_name: str,
) -> dict[str, Any]:
    """predictions.csv from the units' parts (server-side), failed.csv, and the counts; parts.json for the manifest."""
    layout = runs[0][0].layout
    summaries = _summaries(s3, layout, units)
    failed_sources = [
        S3Location(layout.work_bucket, s["failedKey"]) for s in summaries if s.get("failedKey") and not s["keyed"]
    ]
    predicted = sum(s["predicted"] for s in summaries)
    failed = sum(s["failed"] for s in summaries if not s["keyed"])
    with temp_workdir() as workdir:
        failed_path = os.path.join(workdir, "failed.csv")
        with open(failed_path, "wb") as failed_file:
            failed_file.write(ERROR_HEADER)
            for location in failed_sources:
                append_object(s3, location, failed_file)
        if isinstance(adapter, KeyedOutput):
            for job in sorted({s["job"] for s in summaries if s["keyed"]}):
                keyed = [s for s in summaries if s["keyed"] and s["job"] == job]
                failed += _reconcile(s3, adapter, runs[job], keyed, workdir, failed_path, source_name)
        result: dict[str, Any] = {
            "counts": {"predicted": predicted, "failed": failed},
            "predictions": None,
            "failedUri": None,
        }
        if failed:
            upload_file(s3, failed_path, layout.failed, "text/csv")
            result["failedUri"] = layout.failed.uri
    parts = [s for s in summaries if s.get("rowsKey") and s["bytes"] > 0]
    if predicted and parts:
        with temp_workdir() as workdir:
            assembled = concatenate(
                s3,
                [Part(S3Location(layout.work_bucket, s["rowsKey"]), s["bytes"]) for s in parts],
                layout.predictions,
                "text/csv",
                workdir,
            )
        manifest_parts = [
            {
                "unit": s["unit"],
                "job": s["job"],
                "records": s["predicted"],
                "rows": s["rows"],
                "bytes": s["bytes"],
                "sha256": s["sha256"],
            }
            for s in parts
        ]
        put_bytes(s3, layout.collect_parts, json.dumps(manifest_parts).encode(), "application/json")
        result["predictions"] = {
            "uri": layout.predictions.uri,
            "records": predicted,
            "rows": sum(s["rows"] for s in parts),
            "parts": len(parts),
            "partsCopiedServerSide": assembled.copied_parts,
            "partsUri": layout.collect_parts.uri,
        }
    return result


def _summaries(s3: Any, layout: RunLayout, units: int) -> list[dict[str, Any]]:
    summaries = []
    for unit in range(units):
        location = layout.collect_unit(unit, ".json")
        try:
            body = s3.get_object(Bucket=location.bucket, Key=location.key)["Body"]
        except s3.exceptions.NoSuchKey as exc:
            raise OutputInvalid(f"collect unit {unit} left no summary ({location.uri})") from exc
        summary = json.loads(body.read())
        if "error" in summary:
            error = summary["error"]
            raise getattr(errors, error["type"], BatchlineError)(error["message"])
        summaries.append(summary)
    return summaries


def _reconcile(
    s3: Any,
    adapter: KeyedOutput,
    job_run: tuple[RunContext, JobState],
    summaries: list[dict[str, Any]],
    workdir: str,
    failed_path: str,
    source_name: str,
) -> int:
    """One job's staged index vs the keys its units saw; appends the job's failed rows to failed_path."""
    from batchline.keyed import RECONCILE_MEMORY_LIMIT, connect, reconcile

    run, job = job_run
    folder = os.path.join(workdir, f"job-{run.chunk.index:05d}")
    os.makedirs(folder, exist_ok=True)

    def fetch(key: str, kind: str) -> str:
        """Into a folder per kind, under the object's own name (reconcile reads part names from index paths)."""
        path = os.path.join(folder, kind, posixpath.basename(key))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        s3.download_file(run.layout.work_bucket, key, path)
        return path

    # The job's folder (its index, keys, failed lines, database and rows) goes once its rows are appended:
    # a run of many jobs would otherwise hold every job's copies in /tmp until the last one is reconciled.
    try:
        staged_parts = sorted(list_keys(s3, run.chunk.input_prefix))
        index_paths = [fetch(run.layout.index_for(posixpath.basename(key)).key, "index") for key in staged_parts]
        keys_paths = [fetch(s["keysKey"], "keys") for s in summaries if s.get("keysKey")]
        failed_paths = [fetch(s["failedKey"], "failed") for s in summaries if s.get("failedKey")]
        rows_path = os.path.join(folder, "reconciled.csv")
        connection = connect(folder, memory_limit=RECONCILE_MEMORY_LIMIT)
        try:
            count = reconcile(
                connection,
                index_paths=index_paths,
                keys_paths=keys_paths,
                failed_paths=failed_paths,
                out_path=rows_path,
                source_name=source_name,
                missing_reason=adapter.missing_reason(run, job),
                spreadsheet_safe=run.pipeline.spreadsheet_safe,
                discard_inputs=True,
            ).failed
        finally:
            connection.close()
        with open(failed_path, "ab") as target, open(rows_path, "rb") as rows:
            shutil.copyfileobj(rows, target, 1024 * 1024)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return count
