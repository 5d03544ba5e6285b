"""Google Vertex AI batch prediction from the AWS pipeline.

Submit sends the chunk's staged records to Google: JSON lines or CSV streamed from S3 to GCS, or, with
``bigquerySource``, loaded into a table of their own by a BigQuery load job. It then finds the job by its label or
creates it (Vertex's create is not idempotent). Results are read from ``outputInfo.gcsOutputDirectory``
(``predictions_NNNNN.jsonl`` and ``errors_NNNNN.jsonl``, 4 or 5 digits) or, with ``bigqueryDestination``, from the
tables named by ``outputInfo.bigqueryOutputDataset`` and ``bigqueryOutputTable`` (tabledata.list). Each result names
its record by ``key`` (``instanceConfig.keyField``, jsonl, csv and BigQuery input alike); publisher models take no
keyField, so the key travels in the instance and is read from the instance the result echoes.
https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.batchPredictionJobs
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import math
import posixpath
import re
import tempfile
from collections.abc import Iterator
from typing import Any

from batchline.adapters.base import (
    EncodedRecord,
    FailedRecord,
    JobLimits,
    JobState,
    JobStatus,
    Prediction,
    RecordRejected,
    RunContext,
    StagedRecord,
    UnitFiles,
)
from batchline.adapters.google_apis import BigQuery, CloudStorage, VertexJobs, split_gcs_uri
from batchline.clock import iso, parse_time
from batchline.config import BIGQUERY_COLUMN, VertexSettings
from batchline.csvsafe import CsvWriter
from batchline.errors import InputRejected, JobNotFound, OutputInvalid, ServiceRequestFailed, ServiceThrottled
from batchline.layout import S3Location
from batchline.naming import job_name_for
from batchline.s3io import csv_rows, list_keys, open_object

_STATES = {
    "QUEUED": JobStatus.PENDING,
    "PENDING": JobStatus.PENDING,
    "RUNNING": JobStatus.RUNNING,
    "UPDATING": JobStatus.RUNNING,
    "PAUSED": JobStatus.RUNNING,
    "CANCELLING": JobStatus.RUNNING,
    "SUCCEEDED": JobStatus.SUCCEEDED,
    "PARTIALLY_SUCCEEDED": JobStatus.PARTIAL,
    "FAILED": JobStatus.FAILED,
    "EXPIRED": JobStatus.FAILED,
    "CANCELLED": JobStatus.STOPPED,
}
JOB_LABEL = "batchline-job"
DEFAULT_MACHINE_TYPE = "n1-standard-4"
_RESULT_FILE = re.compile(r"^(predictions|errors)_\d{4,5}\.jsonl$")
_JOB_NAME = re.compile(r"^projects/[^/]+/locations/[^/]+/batchPredictionJobs/[^/]+$")


# A JSON number (RFC 8259 section 6): float() also takes "nan", "inf", "1_0", " 1 " and "+1", which are not.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def json_number(column: str, text: str) -> float | None:
    """A numeric feature's value: None for a blank cell, else a finite JSON number, else RecordRejected."""
    if not text.strip():
        return None
    if _JSON_NUMBER.fullmatch(text) is None:
        raise RecordRejected(f"column {column!r} is not a JSON number: {text!r}")
    value = float(text)
    if math.isinf(value):
        raise RecordRejected(f"column {column!r} is too large for a JSON number Vertex AI can read: {text!r}")
    return value


def _csv_cell(column: str, text: str) -> str:
    """A string cell as Vertex reads CSV: double-quoted, quotes doubled; Vertex takes no line break in a cell."""
    if "\n" in text or "\r" in text:
        raise RecordRejected(f"column {column!r} holds a line break, which Vertex AI does not read in a CSV cell")
    return '"' + text.replace('"', '""') + '"'


def normalise_state(raw: str) -> JobStatus:
    return _STATES.get(raw.removeprefix("JOB_STATE_"), JobStatus.RUNNING)


class VertexJsonEncoder:
    suffix = ".jsonl"
    content_type = "application/jsonl"
    limits = JobLimits()
    max_bytes_per_file = 10 * 1024**3

    def __init__(self, settings: VertexSettings, key_field: str) -> None:
        self._settings = settings
        self._key_field = key_field
        self.max_records_per_file = settings.records_per_file
        self._columns: list[tuple[int, str, bool]] = []
        self._key_index = 0

    def start(self, header: list[str], key_index: int) -> dict[str, Any]:
        settings = self._settings
        features = settings.feature_columns or [name for i, name in enumerate(header) if i != key_index]
        missing = [name for name in [*features, *settings.numeric_columns] if name not in header]
        if missing:
            raise InputRejected(f"columns named in the pipeline config are not in the header: {', '.join(missing)}")
        numeric = set(settings.numeric_columns)
        self._columns = [(header.index(name), name, name in numeric) for name in features]
        self._key_index = key_index
        facts: dict[str, Any] = {"keyHeader": header[key_index]}
        if settings.bigquery_source:
            names = [header[key_index], *features]
            bad = [name for name in names if not BIGQUERY_COLUMN.match(name)]
            if bad:
                raise InputRejected(
                    f"bigquerySource: these headers cannot be BigQuery columns (letters, digits and _, not starting "
                    f"with a digit, at most 300): {', '.join(map(repr, bad))}"
                )
            facts["bigqueryFields"] = [
                {"name": header[key_index], "type": "STRING", "mode": "REQUIRED"},
                *(
                    {"name": name, "type": "FLOAT" if num else "STRING", "mode": "NULLABLE"}
                    for _, name, num in self._columns
                ),
            ]
        return facts

    def encode(self, row: list[str], sequence: int) -> EncodedRecord:
        instance: dict[str, Any] = {self._key_field: row[self._key_index]}
        for index, name, numeric in self._columns:
            value: Any = row[index]
            if numeric:
                value = json_number(name, value)
            instance[name] = value
        return EncodedRecord(json.dumps(instance, ensure_ascii=False) + "\n", row[self._key_index])


class VertexCsvEncoder(VertexJsonEncoder):
    """instancesFormat csv: a header line (added to each staged file in Cloud Storage), strings double-quoted,
    numericColumns bare (Vertex reads an unquoted value as a number). The key is a quoted column named by
    keyField: Vertex leaves it out of the instance and writes it back as ``key``."""

    suffix = ".csv"
    content_type = "text/csv"

    def start(self, header: list[str], key_index: int) -> dict[str, Any]:
        facts = super().start(header, key_index)
        try:
            names = [header[key_index], *(name for _, name, _ in self._columns)]
            facts["csvHeader"] = ",".join(_csv_cell("header", name) for name in names) + "\n"
        except RecordRejected as exc:
            raise InputRejected(f"a header {exc}") from None
        return facts

    def encode(self, row: list[str], sequence: int) -> EncodedRecord:
        key = row[self._key_index]
        cells = [_csv_cell(self._key_field, key)]
        for index, name, numeric in self._columns:
            if numeric:
                value = json_number(name, row[index])
                if value is None:
                    raise RecordRejected(f"column {name!r} is blank: Vertex AI reads an unquoted CSV cell as a number")
                cells.append(row[index])
            else:
                cells.append(_csv_cell(name, row[index]))
        return EncodedRecord(",".join(cells) + "\n", key)


_GCS_URI = re.compile(r"^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]/[^\r\n]+$")
# A job's file-list records: Collect holds their content digests in memory (about 150 bytes a record).
FILE_LIST_LIMITS = JobLimits(max_records_per_job=1_000_000)
DIGESTS_OBJECT = "file-digests.csv"


class VertexFileListEncoder(VertexJsonEncoder):
    """instancesFormat file-list: one gs:// URI a line, from fileColumn. The URI is the record's ID: Submit reads
    the MD5 of each file, by which Collect ties the content each result echoes back to its key."""

    suffix = ".txt"
    content_type = "text/plain"
    limits = FILE_LIST_LIMITS

    def start(self, header: list[str], key_index: int) -> dict[str, Any]:
        column = str(self._settings.file_column)
        if column not in header:
            raise InputRejected(f"fileColumn {column!r} is not in the header")
        self._key_index, self._file_index = key_index, header.index(column)
        return {"keyHeader": header[key_index]}

    def encode(self, row: list[str], sequence: int) -> EncodedRecord:
        uri = row[self._file_index]
        if not _GCS_URI.match(uri):
            raise RecordRejected(f"column {self._settings.file_column!r} is not a gs://bucket/object URI: {uri!r}")
        return EncodedRecord(uri + "\n", uri)


class _HeaderThenBody:
    """A readable of ``head`` then ``body``: each staged CSV part goes to GCS with the header Vertex needs first."""

    def __init__(self, head: bytes, body: Any) -> None:
        self._head, self._body = head, body

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return bytes(self._body.read(size))
        if size < 0:
            head, self._head = self._head, b""
            return head + bytes(self._body.read())
        head, self._head = self._head[:size], self._head[size:]
        rest = size - len(head)
        return head + (bytes(self._body.read(rest)) if rest > 0 else b"")


class VertexAdapter:
    provider = "vertex"

    def __init__(
        self,
        settings: VertexSettings,
        key_column: str,
        jobs: VertexJobs,
        gcs: CloudStorage,
        s3: Any,
        bigquery: BigQuery | None = None,
    ):
        self._settings = settings
        self._key_column = key_column
        self._jobs = jobs
        self._gcs = gcs
        self._s3 = s3
        self._bigquery = bigquery
        self._digests: dict[str, list[str]] | None = None

    def input_encoder(self) -> VertexJsonEncoder:
        if self._settings.instances_format == "csv":
            return VertexCsvEncoder(self._settings, self._key_column)
        if self._settings.instances_format == "file-list":
            return VertexFileListEncoder(self._settings, self._key_column)
        return VertexJsonEncoder(self._settings, self._key_column)

    def job_id(self, run: RunContext) -> str:
        """The job's label value; describe() finds the resource name by it."""
        return job_name_for(run.run_id, suffix=f"-{run.chunk.index}")

    def _gcs_run_prefix(self, run: RunContext) -> tuple[str, str]:
        bucket, base = split_gcs_uri(self._settings.gcs_prefix.rstrip("/") + "/")
        return bucket, f"{base}{run.pipeline.name}/{run.run_id}/job-{run.chunk.index:05d}/"

    def stage(self, run: RunContext) -> str:
        """Copy the chunk's staged parts from S3 to GCS, streamed; parts already there are not sent again. A CSV
        part gets its header first (Vertex reads the field names from each file's first line)."""
        bucket, prefix = self._gcs_run_prefix(run)
        head = str(run.staging.get("csvHeader", "")).encode("utf-8")
        encoder = self.input_encoder()
        for key in sorted(list_keys(self._s3, run.chunk.input_prefix)):
            name = f"{prefix}input/{posixpath.basename(key)}"
            size = self._s3.head_object(Bucket=run.chunk.input_prefix.bucket, Key=key)["ContentLength"]
            if self._gcs.size(bucket, name) == len(head) + size:
                continue  # a retried Submit: this part is already in place
            with open_object(self._s3, S3Location(run.chunk.input_prefix.bucket, key)) as body:
                self._gcs.upload(bucket, name, _HeaderThenBody(head, body), encoder.content_type)
        if self._settings.instances_format == "file-list" and self._gcs.size(bucket, prefix + DIGESTS_OBJECT) is None:
            self._write_digests(run, bucket, prefix + DIGESTS_OBJECT)
        return f"gs://{bucket}/{prefix}"

    def _write_digests(self, run: RunContext, bucket: str, name: str) -> None:
        """``md5Hash,key`` of every listed file, from Cloud Storage's object listings (one listing a folder, not
        one request a file). A file with no MD5 (a composite object) or none at all is left out: its record then
        gets no result at Collect and fails with the reason."""
        wanted: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for part in sorted(posixpath.basename(key) for key in list_keys(self._s3, run.chunk.input_prefix)):
            for _line, key, uri in csv_rows(self._s3, run.layout.index_for(part)):
                file_bucket, file_name = split_gcs_uri(uri)
                wanted.setdefault((file_bucket, posixpath.dirname(file_name)), []).append((file_name, key))
        with tempfile.TemporaryFile() as out:
            text = io.TextIOWrapper(out, encoding="utf-8", newline="")
            rows = CsvWriter(text, safe=False)
            for (file_bucket, folder), records in wanted.items():
                found = {
                    item["name"]: item.get("md5Hash")
                    for item in self._gcs.items(file_bucket, f"{folder}/" if folder else "")
                }
                for file_name, key in records:
                    if found.get(file_name):
                        rows.writerow([found[file_name], key])
            text.flush()
            out.seek(0)
            self._gcs.upload(bucket, name, out, "text/csv")
            text.detach()

    def _load_digests(self, run: RunContext) -> None:
        """The job's MD5 -> keys map, for file-list results (which echo the file's content, not its name)."""
        if self._settings.instances_format != "file-list" or self._digests is not None:
            return
        bucket, prefix = self._gcs_run_prefix(run)
        digests: dict[str, list[str]] = {}
        text = self._gcs.read(bucket, prefix + DIGESTS_OBJECT).decode("utf-8")
        for digest, key in csv.reader(io.StringIO(text, newline="")):
            digests.setdefault(digest, []).append(key)
        self._digests = digests

    # --- BigQuery source: the records are loaded into a table of the job's own, with no Cloud Storage staging.

    def source_table(self, run: RunContext) -> tuple[str, str, str]:
        """(project, dataset, table) the job reads: batchline_<job> in the bigquerySource dataset."""
        project, dataset = str(self._settings.bigquery_source).removeprefix("bq://").split(".", 1)
        return project, dataset, "batchline_" + self.job_id(run).replace("-", "_")

    def load_source(self, run: RunContext) -> str:
        """Load each staged part into the job's table under a load job ID of its own (a retried Submit finds the
        jobs it started: BigQuery job IDs are unique); ServiceThrottled while a load still runs, so the
        state machine tries Submit again later."""
        assert self._bigquery is not None
        project, dataset, table = self.source_table(run)
        load_config = {
            "destinationTable": {"projectId": project, "datasetId": dataset, "tableId": table},
            "sourceFormat": "NEWLINE_DELIMITED_JSON",
            "schema": {"fields": run.staging["bigqueryFields"]},
            "createDisposition": "CREATE_IF_NEEDED",
            "writeDisposition": "WRITE_APPEND",
        }
        running = []
        for number, key in enumerate(sorted(list_keys(self._s3, run.chunk.input_prefix))):
            load_id = f"{table}_part{number:05d}"
            job = self._bigquery.job(project, load_id)
            if job is None:
                with open_object(self._s3, S3Location(run.chunk.input_prefix.bucket, key)) as body:
                    job = self._bigquery.load(project, load_id, load_config, body)
            status = job.get("status") or {}
            if status.get("errorResult"):
                error = status["errorResult"]
                raise ServiceRequestFailed(
                    f"BigQuery load job {load_id} into {dataset}.{table} failed: {error.get('reason')}: "
                    f"{error.get('message')}"
                )
            if status.get("state") != "DONE":
                running.append(load_id)
        if running:
            raise ServiceThrottled(f"BigQuery load jobs still running: {', '.join(running)}")
        return f"bq://{project}.{dataset}.{table}"

    def create_body(self, run: RunContext, gcs_run_prefix: str, source_table: str | None = None) -> dict[str, Any]:
        settings = self._settings
        if source_table:
            input_config: dict[str, Any] = {"instancesFormat": "bigquery", "bigquerySource": {"inputUri": source_table}}
        else:
            input_config = {
                "instancesFormat": settings.instances_format,
                "gcsSource": {"uris": [f"{gcs_run_prefix}input/*"]},
            }
        if settings.bigquery_destination:
            output_config: dict[str, Any] = {
                "predictionsFormat": "bigquery",
                "bigqueryDestination": {"outputUri": settings.bigquery_destination},
            }
        else:
            output_config = {
                "predictionsFormat": "jsonl",
                "gcsDestination": {"outputUriPrefix": f"{gcs_run_prefix}output/"},
            }
        body: dict[str, Any] = {
            "displayName": self.job_id(run),
            "model": settings.model_resource,
            "inputConfig": input_config,
            "outputConfig": output_config,
            # Ours last: the job is found by its label, so a user's label can never replace it.
            "labels": {**settings.labels, JOB_LABEL: self.job_id(run), "batchline-pipeline": run.pipeline.name},
        }
        if not settings.is_publisher_model and settings.instances_format != "file-list":
            # instanceType applies to jsonl and bigquery only; a publisher model and file-list take no keyField
            # (the key then travels in the instance, or is found by the content each result echoes).
            instance: dict[str, Any] = {"keyField": self._key_column}
            if settings.instances_format == "jsonl":
                instance = {"instanceType": "object", **instance}
            body["instanceConfig"] = instance
        if not settings.is_publisher_model:
            body["dedicatedResources"] = self._dedicated_resources()
        if settings.model_parameters is not None:
            body["modelParameters"] = settings.model_parameters
        if settings.generate_explanation:
            body["generateExplanation"] = True
            if settings.explanation_spec is not None:
                body["explanationSpec"] = settings.explanation_spec.model_dump(by_alias=True, exclude_none=True)
        if settings.job_service_account:
            body["serviceAccount"] = settings.job_service_account
        if settings.batch_size:
            body["manualBatchTuningParameters"] = {"batchSize": settings.batch_size}
        if settings.kms_key_name:
            body["encryptionSpec"] = {"kmsKeyName": settings.kms_key_name}
        if settings.disable_container_logging:
            body["disableContainerLogging"] = True
        return body

    def _dedicated_resources(self) -> dict[str, Any]:
        settings = self._settings
        machine: dict[str, Any] = {"machineType": settings.machine_type or DEFAULT_MACHINE_TYPE}
        if settings.accelerator_type:
            machine["acceleratorType"] = settings.accelerator_type
            machine["acceleratorCount"] = settings.accelerator_count or 1
        return {
            "machineSpec": machine,
            "startingReplicaCount": settings.starting_replica_count or 1,
            "maxReplicaCount": settings.max_replica_count or 1,
        }

    def submit(self, run: RunContext) -> JobState:
        existing = self._jobs.find(JOB_LABEL, self.job_id(run))
        if existing is not None:
            return _state(existing)
        if self._settings.bigquery_source:
            prefix, table = self._gcs_uri(run), self.load_source(run)
        else:
            prefix, table = self.stage(run), None
        existing = self._jobs.find(JOB_LABEL, self.job_id(run))  # staging takes time: look once more
        return _state(existing or self._jobs.create(self.create_body(run, prefix, table)))

    def _gcs_uri(self, run: RunContext) -> str:
        bucket, prefix = self._gcs_run_prefix(run)
        return f"gs://{bucket}/{prefix}"

    def _resource(self, job_id: str) -> dict[str, Any]:
        """The job by resource name or label. JobNotFound only when Vertex itself answered (a 404, or a listing
        with no job of that label): a refused token, a 403 or a 5xx says nothing about whether the job exists."""
        if _JOB_NAME.match(job_id):
            return self._jobs.get(job_id)
        found = self._jobs.find(JOB_LABEL, job_id)
        if found is None:
            raise JobNotFound(f"no Vertex AI batch prediction job carries label {JOB_LABEL}={job_id}: never created")
        return found

    def describe(self, run: RunContext, job_id: str) -> JobState:
        return _state(self._resource(job_id))

    def stop(self, run: RunContext, job_id: str) -> bool:
        job = self._resource(job_id)
        if not normalise_state(job.get("state", "")).is_terminal and job.get("state") != "JOB_STATE_CANCELLING":
            self._jobs.cancel(job["name"])
        return True

    def result_columns(self, run: RunContext) -> list[str]:
        columns = list(self._settings.prediction_fields or ["prediction"])
        return [*columns, "explanation"] if self._settings.generate_explanation else columns

    def _result_lines(self, job: JobState, uris: tuple[str, ...] | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        """(where, parsed result) of every line of the job's predictions_*/errors_* files, or every row of its
        BigQuery tables (or of ``uris``)."""
        for uri in uris if uris is not None else self.result_files(job):
            if uri.startswith("bq://"):
                yield from self._table_results(uri)
                continue
            bucket, name = split_gcs_uri(uri)
            for number, line in enumerate(self._gcs.lines(bucket, name), start=1):
                yield f"{posixpath.basename(name)} line {number}", json.loads(line)

    def _table_results(self, uri: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """The rows of a result table as result lines: the errors table's ``errors`` column (a google.rpc.Status
        STRUCT) is the ``error`` of a JSON errors line."""
        assert self._bigquery is not None
        project, dataset, table = uri.removeprefix("bq://").split(".", 2)
        found = self._bigquery.table(project, dataset, table)
        if found is None:
            raise OutputInvalid(f"the job's result table {dataset}.{table} does not exist")
        fields = (found.get("schema") or {}).get("fields", [])
        for number, cells in enumerate(self._bigquery.rows(project, dataset, table), start=1):
            row = {field["name"]: bigquery_value(field, cell) for field, cell in zip(fields, cells, strict=False)}
            if "errors" in row and "error" not in row:
                row["error"] = row.pop("errors")
            yield f"{table} row {number}", row

    def result_files(self, job: JobState) -> list[str]:
        """``gs://`` URIs of the job's predictions_*/errors_* files in name order, or the ``bq://`` URIs of its
        predictions table and (when Vertex made one) its errors table."""
        resource = self._resource(job.job_id)
        info = resource.get("outputInfo") or {}
        if self._settings.bigquery_destination:
            return self._result_tables(job.job_id, info)
        directory = info.get("gcsOutputDirectory")
        if not directory:
            raise OutputInvalid(f"job {job.job_id} reports no outputInfo.gcsOutputDirectory")
        bucket, prefix = split_gcs_uri(directory.rstrip("/") + "/")
        names = sorted(self._gcs.list(bucket, prefix))
        return [f"gs://{bucket}/{name}" for name in names if _RESULT_FILE.match(posixpath.basename(name))]

    def _result_tables(self, job_id: str, info: dict[str, Any]) -> list[str]:
        dataset_uri, table = info.get("bigqueryOutputDataset"), info.get("bigqueryOutputTable")
        if not dataset_uri or not table:
            raise OutputInvalid(f"job {job_id} reports no outputInfo.bigqueryOutputDataset and bigqueryOutputTable")
        assert self._bigquery is not None
        project, dataset = str(dataset_uri).removeprefix("bq://").split(".", 1)
        tables = [f"bq://{project}.{dataset}.{table}"]
        # The failed instances go to an errors table beside it, named the same way; none when nothing failed.
        errors = "errors" + str(table).removeprefix("predictions")
        if errors != table and self._bigquery.table(project, dataset, errors) is not None:
            tables.append(f"bq://{project}.{dataset}.{errors}")
        return tables

    def _delete_staged(self, run: RunContext, job: JobState) -> None:
        if self._settings.delete_staged_after_success and job.status is JobStatus.SUCCEEDED:
            if self._settings.bigquery_source:
                assert self._bigquery is not None
                self._bigquery.delete_table(*self.source_table(run))
                return
            staged_bucket, staged_prefix = self._gcs_run_prefix(run)
            for name in list(self._gcs.list(staged_bucket, staged_prefix + "input/")):
                self._gcs.delete(staged_bucket, name)

    def read_results(
        self, run: RunContext, job: JobState, staged: Iterator[StagedRecord]
    ) -> Iterator[Prediction | FailedRecord]:
        by_key = {record.key: record for record in staged}
        self._load_digests(run)
        for where, data in self._result_lines(job):
            result = self._record(data, by_key, where)
            if result is not None:
                yield result
        for record in by_key.values():
            yield FailedRecord(record.key, record.line, self.missing_reason(run, job))
        self._delete_staged(run, job)

    # --- Keyed collect (base.StreamedKeyedOutput): results come unordered, each naming its key, so rows are
    # written as they come and the keys are checked against the staged index afterwards, on disk.

    def missing_reason(self, run: RunContext, job: JobState) -> str:
        if self._settings.instances_format == "file-list":
            return (
                f"Vertex AI returned no result Batchline could tie to it ({job.raw_status}): its file is missing, "
                "has no MD5 (a composite object), or has the same content as another record's file in this job"
            )
        return f"Vertex AI returned no result for it ({job.raw_status})"

    def collect_keyed(
        self, run: RunContext, job: JobState, files: UnitFiles, uris: tuple[str, ...] | None = None
    ) -> dict[str, int]:
        predicted = failed = 0
        with (
            open(files.predictions, "w", encoding="utf-8", newline="") as rows_file,
            open(files.keys, "w", encoding="utf-8", newline="") as keys_file,
            open(files.failed, "w", encoding="utf-8", newline="") as failed_file,
        ):
            rows = CsvWriter(rows_file, safe=files.spreadsheet_safe)
            if files.header:
                rows.writerow(files.header)
            # Keys as the service wrote them: keyed.reconcile joins them to the index, then neutralises what it writes.
            keys, failures = CsvWriter(keys_file, safe=False), CsvWriter(failed_file, safe=False)
            self._load_digests(run)
            for where, data in self._result_lines(job, uris):
                key = self._echoed_key(data, where)
                if key is None:
                    continue  # content shared by several records' files: they fail as unanswered
                keys.writerow([key])
                reason = self._error(data)
                if reason is not None:
                    failures.writerow([key, reason])
                    failed += 1
                else:
                    rows.writerow([key, *self._columns(data)])
                    predicted += 1
        self._delete_staged(run, job)
        return {"predicted": predicted, "failed": failed, "rows": predicted}

    def _echoed_key(self, data: dict[str, Any], where: str) -> str | None:
        """The key a result names, or None for a file-list result whose content several records' files share.
        With keyField the result carries "key"; without (publisher models) the instance it echoes holds it."""
        instance = data.get("instance")
        if self._digests is not None:
            return self._key_by_content(instance, where)
        in_columns = self._settings.instances_format == "csv" or self._settings.bigquery_source is not None
        if isinstance(instance, list) and instance and in_columns:
            echoed: Any = instance[0]  # csv and BigQuery rows echo as arrays in column order: the key is staged first
        else:
            echoed = instance.get(self._key_column) if isinstance(instance, dict) else None
        key = data.get("key", echoed)
        if key is None:
            raise OutputInvalid(f"{where}: the result names no key ({self._key_column})")
        return str(key)

    @staticmethod
    def _error(data: dict[str, Any]) -> str | None:
        if "error" in data and "prediction" not in data:
            error = data["error"]
            message = error.get("message") if isinstance(error, dict) else str(error)
            return f"Vertex AI error: {message}"
        return None

    def _key_by_content(self, instance: Any, where: str) -> str | None:
        """file-list: the record whose file has the MD5 of the content the result echoes ({"b64": ...})."""
        assert self._digests is not None
        if not isinstance(instance, dict) or not isinstance(instance.get("b64"), str):
            raise OutputInvalid(f"{where}: a file-list result echoes no {{'b64': ...}} instance")
        digest = base64.b64encode(hashlib.md5(base64.b64decode(instance["b64"])).digest()).decode()  # noqa: S324
        keys = self._digests.get(digest)
        if not keys:
            raise OutputInvalid(f"{where}: the content it echoes is no listed file's (MD5 {digest})")
        return keys[0] if len(keys) == 1 else None

    def _record(
        self, data: dict[str, Any], by_key: dict[str, StagedRecord], where: str
    ) -> Prediction | FailedRecord | None:
        key = self._echoed_key(data, where)
        if key is None:
            return None
        record = by_key.pop(key, None)
        if record is None:
            raise OutputInvalid(f"{where}: key {key!r} was not staged in this job")
        reason = self._error(data)
        if reason is not None:
            return FailedRecord(record.key, record.line, reason)
        return Prediction(record.key, record.line, [self._columns(data)])

    def _columns(self, data: dict[str, Any]) -> list[str]:
        prediction = data.get("prediction")
        fields = self._settings.prediction_fields
        if fields and isinstance(prediction, dict):
            cells = [_cell(prediction.get(field)) for field in fields]
        else:
            cells = [_cell(prediction)]
        if self._settings.generate_explanation:
            cells.append(_cell(data.get("explanation")))  # the Explanation object, as JSON
        return cells


def bigquery_value(field: dict[str, Any], cell: Any) -> Any:
    """A tabledata.list cell as JSON: scalars come as text (numbers and booleans typed by the schema), a RECORD
    as ``{"f": [{"v": ...}]}``, a REPEATED field as ``[{"v": ...}]``, a JSON column as its text."""
    if cell is None:
        return None
    if field.get("mode") == "REPEATED":
        return [bigquery_value({**field, "mode": "NULLABLE"}, item.get("v")) for item in cell]
    kind = str(field.get("type", "STRING")).upper()
    if kind in ("RECORD", "STRUCT"):
        subfields = field.get("fields", [])
        return {
            sub["name"]: bigquery_value(sub, item.get("v")) for sub, item in zip(subfields, cell["f"], strict=False)
        }
    if kind in ("FLOAT", "FLOAT64", "NUMERIC", "BIGNUMERIC"):
        return float(cell)
    if kind in ("INTEGER", "INT64"):
        return int(cell)
    if kind in ("BOOLEAN", "BOOL"):
        return cell == "true"
    if kind == "JSON":
        return json.loads(cell)
    return cell


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _state(job: dict[str, Any]) -> JobState:
    raw = str(job.get("state", "JOB_STATE_UNSPECIFIED"))
    messages = []
    if job.get("error"):
        messages.append(str(job["error"].get("message", job["error"])))
    for failure in job.get("partialFailures", [])[:5]:
        messages.append(f"partial failure: {failure.get('message', failure)}")
    stats = job.get("completionStats") or {}
    counts = {
        name: int(stats[field])
        for name, field in (
            ("succeeded", "successfulCount"),
            ("failed", "failedCount"),
            ("incomplete", "incompleteCount"),
        )
        if field in stats
    }
    return JobState(str(job["name"]), normalise_state(raw), raw, "; ".join(messages) or None, counts, _figures(job))


def _figures(job: dict[str, Any]) -> dict[str, Any]:
    """Vertex's own timing and consumption: createTime, startTime, endTime and resourcesConsumed.replicaHours."""
    figures: dict[str, Any] = {}
    for name, field in (("createdAt", "createTime"), ("startedAt", "startTime"), ("endedAt", "endTime")):
        if job.get(field):
            figures[name] = iso(parse_time(_RFC3339_FRACTION.sub(r"\1", str(job[field]))))
    hours = (job.get("resourcesConsumed") or {}).get("replicaHours")
    if hours is not None:
        figures["replicaHours"] = float(hours)
    return figures


# Google's timestamps carry up to nine fractional digits; the figures are whole seconds.
_RFC3339_FRACTION = re.compile(r"^([^.]+)\.\d+")
