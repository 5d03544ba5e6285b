"""Google Vertex AI batch prediction from the AWS pipeline.

Submit streams the chunk's staged JSON lines from S3 to GCS, then finds the job by its label or creates
it (Vertex's create is not idempotent). Results are read from ``outputInfo.gcsOutputDirectory``:
``predictions_NNNNN.jsonl`` and ``errors_NNNNN.jsonl`` (4 or 5 digits), keyed by ``instanceConfig.keyField``.
https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.batchPredictionJobs
"""

from __future__ import annotations

import json
import math
import posixpath
import re
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
from batchline.adapters.google_apis import CloudStorage, VertexJobs, split_gcs_uri
from batchline.config import VertexSettings
from batchline.csvsafe import CsvWriter
from batchline.errors import InputRejected, JobNotFound, OutputInvalid
from batchline.layout import S3Location
from batchline.naming import job_name_for
from batchline.s3io import list_keys, open_object

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
        return {"keyHeader": header[key_index]}

    def encode(self, row: list[str], sequence: int) -> EncodedRecord:
        instance: dict[str, Any] = {self._key_field: row[self._key_index]}
        for index, name, numeric in self._columns:
            value: Any = row[index]
            if numeric:
                value = json_number(name, value)
            instance[name] = value
        return EncodedRecord(json.dumps(instance, ensure_ascii=False) + "\n", row[self._key_index])


class VertexAdapter:
    provider = "vertex"

    def __init__(self, settings: VertexSettings, key_column: str, jobs: VertexJobs, gcs: CloudStorage, s3: Any):
        self._settings = settings
        self._key_column = key_column
        self._jobs = jobs
        self._gcs = gcs
        self._s3 = s3

    def input_encoder(self) -> VertexJsonEncoder:
        return VertexJsonEncoder(self._settings, self._key_column)

    def job_id(self, run: RunContext) -> str:
        """The job's label value; describe() finds the resource name by it."""
        return job_name_for(run.run_id, suffix=f"-{run.chunk.index}")

    def _gcs_run_prefix(self, run: RunContext) -> tuple[str, str]:
        bucket, base = split_gcs_uri(self._settings.gcs_prefix.rstrip("/") + "/")
        return bucket, f"{base}{run.pipeline.name}/{run.run_id}/job-{run.chunk.index:05d}/"

    def stage(self, run: RunContext) -> str:
        """Copy the chunk's staged parts from S3 to GCS, streamed; parts already there are not sent again."""
        bucket, prefix = self._gcs_run_prefix(run)
        for key in sorted(list_keys(self._s3, run.chunk.input_prefix)):
            name = f"{prefix}input/{posixpath.basename(key)}"
            size = self._s3.head_object(Bucket=run.chunk.input_prefix.bucket, Key=key)["ContentLength"]
            if self._gcs.size(bucket, name) == size:
                continue  # a retried Submit: this part is already in place
            with open_object(self._s3, S3Location(run.chunk.input_prefix.bucket, key)) as body:
                self._gcs.upload(bucket, name, body, VertexJsonEncoder.content_type)
        return f"gs://{bucket}/{prefix}"

    def create_body(self, run: RunContext, gcs_run_prefix: str) -> dict[str, Any]:
        settings = self._settings
        machine: dict[str, Any] = {"machineType": settings.machine_type}
        if settings.accelerator_type:
            machine["acceleratorType"] = settings.accelerator_type
            machine["acceleratorCount"] = settings.accelerator_count or 1
        body: dict[str, Any] = {
            "displayName": self.job_id(run),
            "model": settings.model_resource,
            "inputConfig": {"instancesFormat": "jsonl", "gcsSource": {"uris": [f"{gcs_run_prefix}input/*"]}},
            "instanceConfig": {"instanceType": "object", "keyField": self._key_column},
            "outputConfig": {
                "predictionsFormat": "jsonl",
                "gcsDestination": {"outputUriPrefix": f"{gcs_run_prefix}output/"},
            },
            "dedicatedResources": {
                "machineSpec": machine,
                "startingReplicaCount": settings.starting_replica_count,
                "maxReplicaCount": settings.max_replica_count,
            },
            # Ours last: the job is found by its label, so a user's label can never replace it.
            "labels": {**settings.labels, JOB_LABEL: self.job_id(run), "batchline-pipeline": run.pipeline.name},
        }
        if settings.job_service_account:
            body["serviceAccount"] = settings.job_service_account
        if settings.batch_size:
            body["manualBatchTuningParameters"] = {"batchSize": settings.batch_size}
        if settings.kms_key_name:
            body["encryptionSpec"] = {"kmsKeyName": settings.kms_key_name}
        if settings.disable_container_logging:
            body["disableContainerLogging"] = True
        return body

    def submit(self, run: RunContext) -> JobState:
        existing = self._jobs.find(JOB_LABEL, self.job_id(run))
        if existing is not None:
            return _state(existing)
        prefix = self.stage(run)
        existing = self._jobs.find(JOB_LABEL, self.job_id(run))  # staging takes time: look once more
        return _state(existing or self._jobs.create(self.create_body(run, prefix)))

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
        return list(self._settings.prediction_fields or ["prediction"])

    def _result_lines(self, job: JobState, uris: tuple[str, ...] | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        """(where, parsed line) of every line of the job's predictions_*/errors_* files (or of ``uris``)."""
        for uri in uris if uris is not None else self.result_files(job):
            bucket, name = split_gcs_uri(uri)
            for number, line in enumerate(self._gcs.lines(bucket, name), start=1):
                yield f"{posixpath.basename(name)} line {number}", json.loads(line)

    def result_files(self, job: JobState) -> list[str]:
        """``gs://`` URIs of the job's predictions_*/errors_* files, in name order."""
        resource = self._resource(job.job_id)
        directory = (resource.get("outputInfo") or {}).get("gcsOutputDirectory")
        if not directory:
            raise OutputInvalid(f"job {job.job_id} reports no outputInfo.gcsOutputDirectory")
        bucket, prefix = split_gcs_uri(directory.rstrip("/") + "/")
        names = sorted(self._gcs.list(bucket, prefix))
        return [f"gs://{bucket}/{name}" for name in names if _RESULT_FILE.match(posixpath.basename(name))]

    def _delete_staged(self, run: RunContext, job: JobState) -> None:
        if self._settings.delete_staged_after_success and job.status is JobStatus.SUCCEEDED:
            staged_bucket, staged_prefix = self._gcs_run_prefix(run)
            for name in list(self._gcs.list(staged_bucket, staged_prefix + "input/")):
                self._gcs.delete(staged_bucket, name)

    def read_results(
        self, run: RunContext, job: JobState, staged: Iterator[StagedRecord]
    ) -> Iterator[Prediction | FailedRecord]:
        by_key = {record.key: record for record in staged}
        for where, data in self._result_lines(job):
            yield self._record(data, by_key, where)
        for record in by_key.values():
            yield FailedRecord(record.key, record.line, self.missing_reason(run, job))
        self._delete_staged(run, job)

    # --- Keyed collect (base.StreamedKeyedOutput): results come unordered, each naming its key, so rows are
    # written as they come and the keys are checked against the staged index afterwards, on disk.

    def missing_reason(self, run: RunContext, job: JobState) -> str:
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
            for where, data in self._result_lines(job, uris):
                key = self._echoed_key(data, where)
                keys.writerow([key])
                reason = self._error(data)
                if reason is not None:
                    failures.writerow([key, reason])
                    failed += 1
                else:
                    rows.writerow([key, *self._columns(data.get("prediction"))])
                    predicted += 1
        self._delete_staged(run, job)
        return {"predicted": predicted, "failed": failed, "rows": predicted}

    def _echoed_key(self, data: dict[str, Any], where: str) -> str:
        instance: dict[str, Any] = data["instance"] if isinstance(data.get("instance"), dict) else {}
        key = data.get("key", instance.get(self._key_column))
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

    def _record(self, data: dict[str, Any], by_key: dict[str, StagedRecord], where: str) -> Prediction | FailedRecord:
        key = self._echoed_key(data, where)
        record = by_key.pop(key, None)
        if record is None:
            raise OutputInvalid(f"{where}: key {key!r} was not staged in this job")
        reason = self._error(data)
        if reason is not None:
            return FailedRecord(record.key, record.line, reason)
        return Prediction(record.key, record.line, [self._columns(data.get("prediction"))])

    def _columns(self, prediction: Any) -> list[str]:
        fields = self._settings.prediction_fields
        if fields and isinstance(prediction, dict):
            return [_cell(prediction.get(field)) for field in fields]
        return [_cell(prediction)]


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
    return JobState(str(job["name"]), normalise_state(raw), raw, "; ".join(messages) or None, counts)
