"""Legacy Amazon Machine Learning batch predictions: a DataSource first, then the BatchPrediction.

The caller-chosen IDs are the idempotency keys (a retry with the same ID and parameters is accepted;
different parameters raise IdempotentParameterMismatchException). Results are gzip CSV in input order,
one record per row, with the rowId first; a blank line is a record that could not be scored.

The rowId is generated (``R<sequence>``, in a column of its own) and mapped back to the key through the
staged index: the user's key is never sent, so a key with a comma, a quote or a line break cannot break
the service's one-observation-per-line CSV. A feature cell with a line break cannot be carried either:
that record is refused at Prepare.
The service is closed to new customers: their 403 becomes a failure that says exactly that.
https://docs.aws.amazon.com/machine-learning/latest/dg/reading-the-batchprediction-output-files.html

Submit creates the DataSource and the BatchPrediction together: Amazon ML holds a request back until the
operations it depends on complete (a DataSource in PENDING can be used for CreateBatchPrediction), so nothing
is left to create later, and describe and stop only read. Only the submitting function needs create rights.
https://docs.aws.amazon.com/machine-learning/latest/dg/dependency-management-of-asynchronous-operations.html
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

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
    translate_client_error,
)
from batchline.clock import iso
from batchline.config import AmazonMLSettings
from batchline.errors import (
    InputRejected,
    JobConflict,
    JobNotFound,
    OutputInvalid,
    ServiceRequestFailed,
    ServiceUnavailable,
)
from batchline.layout import S3Location
from batchline.lines import CsvLineWriter
from batchline.naming import job_name_for
from batchline.s3io import list_keys, open_object

_STATUS = {
    "PENDING": JobStatus.PENDING,
    "INPROGRESS": JobStatus.RUNNING,
    "COMPLETED": JobStatus.SUCCEEDED,
    "FAILED": JobStatus.FAILED,
    "DELETED": JobStatus.STOPPED,
}
# 100 million records or 1 TB per batch prediction (Amazon ML limits).
LIMITS = JobLimits(max_records_per_job=100_000_000, max_bytes_per_job=1024**4)


def normalise_status(raw: str) -> JobStatus:
    return _STATUS.get(raw.upper().replace("_", "").replace(" ", ""), JobStatus.RUNNING)


ROW_ID = "batchline_row_id"
# The result file's first column when the schema names a rowId: Amazon ML heads it "tag", whatever the attribute's
# name (https://docs.aws.amazon.com/machine-learning/latest/dg/reading-the-batchprediction-output-files.html).
TAG_COLUMN = "tag"
BINARY_COLUMNS = ("bestAnswer", "score")
REGRESSION_COLUMNS = ("score",)


@dataclass(frozen=True)
class _ResultRow:
    """One scored result line: its tag (the staged record's rowId) and our result columns' cells, in order."""

    tag: str
    scores: list[str]


_END = _ResultRow("", [])  # no more lines in the result file


def _csv_records(text: io.TextIOWrapper) -> Iterator[list[str]]:
    # skipinitialspace: the guide's own examples put a space after each comma ("1_star, 2_stars").
    return csv.reader(text, skipinitialspace=True)


def _score_columns(header: list[str], location: S3Location) -> list[str]:
    """The score columns' names of a result header, after the tag (our schema always names a rowId)."""
    names = [name.strip(" ") for name in header]
    if not names:
        raise OutputInvalid(f"{location.uri}: the result has no header line")
    if names[0] == TAG_COLUMN:
        return names[1:]
    raise OutputInvalid(f"{location.uri}: the result header starts {names[0]!r}, not {TAG_COLUMN!r} (the rowId)")


def _listed(names: list[str]) -> str:
    return ", ".join(repr(name) for name in names) or "none"


def record_id_for(sequence: int) -> str:
    """The rowId of the record staged at ``sequence``: plain ASCII, distinct for distinct sequences."""
    return f"R{sequence:011d}"


def batch_schema(training_schema: dict[str, Any], key_column: str) -> dict[str, Any]:
    """The training schema plus a rowId column of its own, so every result line names its staged record.

    The key (``key_column``) is not sent: it stays out of the data unless the model takes it as an attribute.
    """
    attributes = list(training_schema.get("attributes", []))
    names = {attribute["attributeName"] for attribute in attributes}
    row_id = ROW_ID
    while row_id in names:
        row_id += "_"
    attributes.append({"attributeName": row_id, "attributeType": "CATEGORICAL"})
    schema = {key: value for key, value in training_schema.items() if key not in ("rowId", "attributes")}
    return {
        **schema,
        "version": schema.get("version", "1.0"),
        "dataFormat": "CSV",
        "rowId": row_id,
        "dataFileContainsHeader": False,
        "attributes": attributes,
    }


class AmazonMLCsvEncoder:
    """Writes each record's columns in the schema's attribute order (the target may be absent: left empty)."""

    suffix = ".csv"
    content_type = "text/csv"
    limits = LIMITS
    max_bytes_per_file = 100 * 1024**3

    def __init__(self, settings: AmazonMLSettings, schema: dict[str, Any]) -> None:
        self.max_records_per_file = settings.records_per_file
        self._schema = schema
        self._names: list[str] = []
        self._indexes: list[int | None] = []
        self._row_id_position = 0
        self._key_index = 0
        self._csv = CsvLineWriter()

    def start(self, header: list[str], key_index: int) -> dict[str, Any]:
        row_id = self._schema["rowId"]
        names = [attribute["attributeName"] for attribute in self._schema["attributes"]]
        target = self._schema.get("targetAttributeName")
        missing = [name for name in names if name not in header and name not in (target, row_id)]
        if missing:
            raise InputRejected(f"the model's schema needs columns that are not in the header: {', '.join(missing)}")
        self._names = names
        self._indexes = [header.index(name) if name in header and name != row_id else None for name in names]
        self._row_id_position = names.index(row_id)
        self._key_index = key_index
        return {"keyHeader": header[key_index], "dataSchema": self._schema}

    def encode(self, row: list[str], sequence: int) -> EncodedRecord:
        cells = ["" if index is None else row[index] for index in self._indexes]
        for name, cell in zip(self._names, cells, strict=True):
            if "\n" in cell or "\r" in cell:
                raise RecordRejected(f"column {name!r} holds a line break; Amazon ML reads one record per line")
        record_id = record_id_for(sequence)
        cells[self._row_id_position] = record_id
        return EncodedRecord(self._csv.line(cells), record_id)


class AmazonMLAdapter:
    provider = "amazonml"

    def __init__(self, settings: AmazonMLSettings, key_column: str, machinelearning: Any, s3: Any) -> None:
        self._settings = settings
        self._key_column = key_column
        self._ml = machinelearning
        self._s3 = s3
        self._classes: list[str] | None = None  # MULTICLASS without classNames: read once from a result header

    def input_encoder(self) -> AmazonMLCsvEncoder:
        training = self._settings.data_schema
        if training is None:
            model = self._call(self._ml.get_ml_model, MLModelId=self._settings.ml_model_id, Verbose=True)
            training = json.loads(model.get("Schema") or "{}")
            if not training.get("attributes"):
                raise InputRejected(
                    f"model {self._settings.ml_model_id} reports no schema; set dataSchema in the config"
                )
        return AmazonMLCsvEncoder(self._settings, batch_schema(training, self._key_column))

    def job_id(self, run: RunContext) -> str:
        return "bp-" + job_name_for(run.run_id, suffix=f"-{run.chunk.index}")[3:]

    def _data_source_id(self, job_id: str) -> str:
        return "ds-" + job_id[3:]

    def submit(self, run: RunContext) -> JobState:
        """Create the DataSource and the BatchPrediction on it (the service queues the prediction until the
        DataSource is ready). The IDs are the idempotency keys: a retried Submit creates nothing new."""
        job_id = self.job_id(run)
        source_id = self._data_source_id(job_id)
        self._call(
            self._ml.create_data_source_from_s3,
            DataSourceId=source_id,
            DataSourceName=f"batchline {run.pipeline.name} {run.run_id}"[:1024],
            DataSpec={
                "DataLocationS3": run.chunk.input_prefix.uri,
                "DataSchema": json.dumps(run.staging["dataSchema"]),
            },
            ComputeStatistics=False,
        )
        self._call(
            self._ml.create_batch_prediction,
            BatchPredictionId=job_id,
            BatchPredictionName=f"batchline {run.pipeline.name}"[:1024],
            MLModelId=self._settings.ml_model_id,
            BatchPredictionDataSourceId=source_id,
            OutputUri=run.chunk.output_prefix.uri,
        )
        if self._settings.tags:  # AddTags replaces a key's value: a retried Submit tags the same objects again
            tags = [{"Key": key, "Value": value} for key, value in self._settings.tags.items()]
            for resource_id, resource_type in ((source_id, "DataSource"), (job_id, "BatchPrediction")):
                self._call(self._ml.add_tags, ResourceId=resource_id, ResourceType=resource_type, Tags=tags)
        return self.describe(run, job_id)

    def describe(self, run: RunContext, job_id: str) -> JobState:
        """The batch prediction's state (queued behind its DataSource, it reads PENDING); creates nothing."""
        try:
            return self._prediction_state(job_id)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                raise JobNotFound(f"Amazon ML has no batch prediction {job_id}: it was never created") from exc
            raise _translate(exc) from exc

    def _prediction_state(self, job_id: str) -> JobState:
        described = self._ml.get_batch_prediction(BatchPredictionId=job_id)
        counts = {
            name: int(described[field])
            for name, field in (("total", "TotalRecordCount"), ("invalid", "InvalidRecordCount"))
            if described.get(field) is not None
        }
        raw = described["Status"]
        return JobState(
            job_id, normalise_status(raw), raw, described.get("Message") or None, counts, figures(described)
        )

    def stop(self, run: RunContext, job_id: str) -> bool:
        return False  # Amazon ML offers no way to stop a batch prediction (only to delete it)

    def release(self, run: RunContext, job: JobState) -> None:
        """Delete the BatchPrediction and its DataSource (base.ReleasesServiceObjects; called once the job has ended).

        Amazon ML only marks them DELETED (Get* still answers); the staged input and the results in S3 stay. One
        already gone is fine (a retried end, or a Submit that never got to create it)."""
        if not self._settings.delete_service_objects:
            return
        job_id = self.job_id(run)
        problems = []
        for operation, parameters in (
            (self._ml.delete_batch_prediction, {"BatchPredictionId": job_id}),
            (self._ml.delete_data_source, {"DataSourceId": self._data_source_id(job_id)}),
        ):
            try:
                operation(**parameters)
            except ClientError as exc:
                error = exc.response["Error"]
                if error["Code"] != "ResourceNotFoundException":
                    problems.append(f"{next(iter(parameters.values()))}: {error['Code']}: {error.get('Message', '')}")
        if problems:
            raise ServiceRequestFailed("Amazon ML did not delete " + "; ".join(problems))

    def result_columns(self, run: RunContext) -> list[str]:
        """bestAnswer,score / score, or one column per class: the configured classNames, else the class labels of
        the run's first result header (the same file for every unit of the run, so their columns agree)."""
        if self._settings.model_type == "BINARY":
            return list(BINARY_COLUMNS)
        if self._settings.model_type == "REGRESSION":
            return list(REGRESSION_COLUMNS)
        if self._settings.class_names:
            return list(self._settings.class_names)
        if self._classes is None:
            first = self._first_result(run)
            try:
                self._classes = [] if first is None else _score_columns(self._header(first), first)
            except OutputInvalid:
                self._classes = []  # read_results reports the header, where Collect records a unit's error
        return list(self._classes)

    def read_results(
        self, run: RunContext, job: JobState, staged: Iterator[StagedRecord]
    ) -> Iterator[Prediction | FailedRecord]:
        """Results follow input order within each file; the rowId column confirms every match."""
        result_by_part = self._result_files(run.chunk.output_prefix)
        if result_by_part is None:
            raise OutputInvalid(f"expected one .manifest under {run.chunk.output_prefix.uri}, found none")
        current_part: str | None = None
        rows: Iterator[_ResultRow | None] = iter(())
        columns = self.result_columns(run)
        for record in staged:
            if record.part != current_part:
                self._finish(rows, current_part)
                current_part = record.part
                result_uri = result_by_part.get(record.part)
                rows = iter(()) if result_uri is None else self._result_rows(S3Location.parse(result_uri), columns)
            row = next(rows, _END)
            if row is _END:
                yield FailedRecord(record.key, record.line, f"Amazon ML returned no result line ({record.part})")
            elif row is None:
                yield FailedRecord(record.key, record.line, "Amazon ML could not score this record (blank result line)")
            elif row.tag != record.record_id:
                raise OutputInvalid(
                    f"result for {record.part} has rowId {row.tag!r} where "
                    f"the staged record (line {record.line}) had {record.record_id!r}"
                )
            elif not any(score for score in row.scores):
                # Never a prediction of blank scores: the record failed and errors.csv says so.
                yield FailedRecord(record.key, record.line, "Amazon ML gave this record no score (empty result cells)")
            else:
                yield Prediction(record.key, record.line, [row.scores])
        self._finish(rows, current_part)

    def check_outputs(self, run: RunContext) -> None:
        """Nothing to check up front: the manifest maps each staged file to its result, and read_results checks
        each result's lines against its file."""

    def _result_files(self, output_prefix: S3Location) -> dict[str, str] | None:
        """Staged part name -> its result file, from the job's manifest; None when the job wrote no manifest."""
        manifest_keys = [key for key in list_keys(self._s3, output_prefix) if key.endswith(".manifest")]
        if not manifest_keys:
            return None
        if len(manifest_keys) > 1:
            raise OutputInvalid(f"expected one .manifest under {output_prefix.uri}, found {len(manifest_keys)}")
        with open_object(self._s3, S3Location(output_prefix.bucket, manifest_keys[0])) as body:
            # {"s3://.../input/part-00000.csv": "s3://.../batch-prediction/result/bp-...-part-00000.csv.gz"}
            return {posixpath.basename(source): result for source, result in json.loads(body.read()).items()}

    def _first_result(self, run: RunContext) -> S3Location | None:
        """The first result file of the run's first job that wrote one (job-00000 unless it failed)."""
        jobs_root = posixpath.dirname(run.chunk.output_prefix.key.rstrip("/")) + "/"
        manifests = sorted(
            key
            for key in list_keys(self._s3, S3Location(run.chunk.output_prefix.bucket, jobs_root))
            if key.endswith(".manifest")
        )
        for key in manifests:
            prefix = S3Location(run.chunk.output_prefix.bucket, key.rsplit("batch-prediction/", 1)[0])
            results = self._result_files(prefix) or {}
            if results:
                return S3Location.parse(results[min(results)])
        return None

    def _open_result(self, location: S3Location) -> io.TextIOWrapper:
        return io.TextIOWrapper(gzip.GzipFile(fileobj=open_object(self._s3, location)), encoding="utf-8", newline="")

    def _header(self, location: S3Location) -> list[str]:
        with self._open_result(location) as text:
            return next(_csv_records(text), [])

    def _result_rows(self, location: S3Location, columns: list[str]) -> Iterator[_ResultRow | None]:
        """The result's CSV records, read as CSV (a quoted cell may hold a line break), by the header's names.

        A blank line is an empty record, which csv.reader yields as ``[]``: a record Amazon ML could not score
        (yielded as None).
        """
        with self._open_result(location) as text:
            records = _csv_records(text)
            header = next(records, [])
            indexes = self._score_indexes(_score_columns(header, location), columns, location)
            width = len(header)
            for values in records:
                if not any(value.strip() for value in values):
                    yield None
                    continue
                if len(values) > width:
                    raise OutputInvalid(f"{location.uri}: a result line has {len(values)} cells, the header {width}")
                cells = [value.strip(" ") for value in values] + [""] * (width - len(values))
                yield _ResultRow(cells[0], [cells[1 + index] for index in indexes])

    def _score_indexes(self, found: list[str], columns: list[str], location: S3Location) -> list[int]:
        """Where each of our result columns is among the header's score columns; a mismatch fails the run, naming
        the file and both lists, rather than leaving cells blank."""
        model_type = self._settings.model_type
        if len(set(found)) != len(found):
            raise OutputInvalid(f"{location.uri}: the result header repeats a column: {_listed(found)}")
        if model_type == "MULTICLASS" and set(found) != set(columns):
            source = "classNames in the config" if self._settings.class_names else "classes of the run's first result"
            raise OutputInvalid(
                f"{location.uri}: the classes in the result header ({_listed(found)}) are not the {source} "
                f"({_listed(columns)}); set classNames to the model's classes, or leave it out to take them from "
                "the header"
            )
        missing = [column for column in columns if column not in found]
        if missing:
            raise OutputInvalid(
                f"{location.uri}: a {model_type} result header has {_listed(found)}, without {_listed(missing)}"
            )
        return [found.index(column) for column in columns]

    @staticmethod
    def _finish(rows: Iterator[_ResultRow | None], part: str | None) -> None:
        if part is not None and next(rows, _END) is not _END:
            raise OutputInvalid(f"the result for {part} has more lines than the staged input")

    def _call(self, operation: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return dict(operation(**kwargs))
        except ClientError as exc:
            raise _translate(exc) from exc


def figures(described: dict[str, Any]) -> dict[str, Any]:
    """GetBatchPrediction's own figures under JOB_FIGURES' names: its times (botocore gives them as datetimes),
    ComputeTime (approximate CPU milliseconds, COMPLETED only) in seconds, and LogUri (a presigned link that
    expires)."""
    found: dict[str, Any] = {}
    for name, field in (("createdAt", "CreatedAt"), ("startedAt", "StartedAt"), ("endedAt", "FinishedAt")):
        moment = described.get(field)
        if isinstance(moment, datetime):
            found[name] = iso(moment)
    if described.get("ComputeTime") is not None:
        found["computeSeconds"] = int(described["ComputeTime"]) / 1000
    if described.get("LogUri"):
        found["logUri"] = str(described["LogUri"])
    return found


def _translate(exc: ClientError) -> Exception:
    code = exc.response["Error"]["Code"]
    message = exc.response["Error"].get("Message", "")
    if code == "IdempotentParameterMismatchException":
        return JobConflict(f"Amazon ML already has this ID with different parameters: {message}")
    if code == "AccessDeniedException" or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 403:
        if "no longer available" in message.lower():
            return ServiceUnavailable(
                "Amazon Machine Learning is no longer available to new customers; this account cannot use it "
                f"(AWS said: {message}). Use a SageMaker pipeline instead."
            )
        return ServiceUnavailable(f"access to Amazon ML was denied: {message}")
    return translate_client_error(exc, "Amazon ML", frozenset({"LimitExceededException"}))
