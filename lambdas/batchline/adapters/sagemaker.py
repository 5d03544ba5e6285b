"""SageMaker Batch Transform on headerless CSV or JSON lines, joined back to each record's key.

Staged lines carry the key beside the features, and DataProcessing keeps the key away from the model and brings
it back in the output, so Collect checks every output line against the record at its position:
- CSV, ``key,feature1,...,featureN``: InputFilter ``$[1:]`` drops the key before inference, JoinSource ``Input``
  appends the prediction to the original line, and OutputFilter keeps the key and the prediction values;
- JSON lines, ``{"key": ..., "features": {<column>: <value>, ...}}``: InputFilter ``$.features`` sends the model
  only the object of the feature columns, JoinSource ``Input`` adds its answer as ``SageMakerOutput``, and
  OutputFilter ``$['key','SageMakerOutput']`` keeps the two.
https://docs.aws.amazon.com/sagemaker/latest/dg/batch-transform-data-processing.html
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import posixpath
import re
from collections.abc import Iterator
from dataclasses import replace
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
    QuotaReading,
    RecordRejected,
    RunContext,
    StagedRecord,
    translate_client_error,
)
from batchline.clock import iso
from batchline.config import SageMakerDataCapture, SageMakerSettings
from batchline.csvsafe import NUMBER_PATTERN
from batchline.errors import InputRejected, JobConflict, JobNotFound, OutputInvalid
from batchline.layout import S3Location
from batchline.lines import CsvLineWriter
from batchline.naming import job_name_for
from batchline.s3io import csv_rows, list_keys, open_object

_STATUS = {
    "inprogress": JobStatus.RUNNING,
    "stopping": JobStatus.RUNNING,  # still billed and still running until it reaches Stopped
    "completed": JobStatus.SUCCEEDED,
    "failed": JobStatus.FAILED,
    "stopped": JobStatus.STOPPED,
}
RUN_ID_TAG = "batchline:run-id"
# How a failure reason names a record: its position in a staged file (as the model container reports it).
# A plain decimal number, as a CSV-reading model parses it (float() would also take "nan", "inf", "1_0").
_DECIMAL = re.compile(NUMBER_PATTERN)
_RECORD_POSITION = re.compile(r"record (\d+) of ([A-Za-z0-9._-]+\.(?:csv|jsonl))")
JSON_LINES = "application/jsonlines"
# The staged JSON line's fields: the key (kept from the model by the InputFilter) and the model's input.
JSON_KEY, JSON_FEATURES = "key", "features"
# What SageMaker adds to each output record when DataCaptureConfig.GenerateInferenceId is on: the last two CSV
# values, or these JSON fields (https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture-batch.html).
INFERENCE_ID_FIELDS = ("SageMakerInferenceId", "SageMakerInferenceTime")
INFERENCE_ID_COLUMNS = ["sagemaker_inference_id", "sagemaker_inference_time"]
# The capture's place when the pipeline names none: in the work bucket, beside the pipeline's runs (run IDs are
# <pipeline>-<hex digest>, never this name), where the stack already lets the model's execution role write.
DATA_CAPTURE_FOLDER = "data-capture"
# ResourceLimitExceeded's message is the only place SageMaker says whether a slot can free: "The account-level
# service limit 'ml.p3.2xlarge for transform job usage' is 0 Instances, with current utilization of 0 Instances
# and a request delta of 1 Instances. Please use AWS Service Quotas to request an increase for this quota..."
# (the wording of every public report since 2019; no API returns these numbers). Read only when all of it
# matches; anything else waits for a slot, bounded by the run's deadline.
_ACCOUNT_LIMIT = re.compile(
    r"service limit '(?P<name>[^']+)' is (?P<limit>\d+) (?P<unit>\w+), "
    r"with current utilization of (?P<usage>\d+) (?P=unit) and a request delta of (?P<delta>\d+) (?P=unit)"
)


def normalise_status(raw: str) -> JobStatus:
    """Map TransformJobStatus; an unknown value keeps the run polling (its deadline still bounds it)."""
    return _STATUS.get(raw.replace(" ", "").replace("_", "").lower(), JobStatus.RUNNING)


class SageMakerCsvEncoder:
    suffix = ".csv"
    content_type = "text/csv"
    # One job reads every staged file; files bound what one bad record costs, not the job.
    limits = JobLimits()
    max_bytes_per_file = 10 * 1024**3

    def __init__(self, settings: SageMakerSettings) -> None:
        self._features = settings.feature_columns
        self.max_records_per_file = settings.records_per_file
        # MaxPayloadInMB 0 is chunked encoding, with no size limit.
        self._max_bytes = settings.max_payload_in_mb * 1024 * 1024 or None
        self._csv = CsvLineWriter()
        self._numeric = settings.numeric_features
        self._key_index = 0
        self._feature_indexes: list[int] = []
        self._header: list[str] = []

    def start(self, header: list[str], key_index: int) -> dict[str, Any]:
        self._key_index = key_index
        self._header = header
        if self._features is None:
            self._feature_indexes = [i for i in range(len(header)) if i != key_index]
        else:
            # Only the model's columns, in the model's order: the staged line is key, then exactly those.
            missing = [name for name in self._features if name not in header]
            if missing:
                raise InputRejected(f"featureColumns not in the header: {', '.join(missing)}")
            self._feature_indexes = [header.index(name) for name in self._features]
        return {
            "keyHeader": header[key_index],
            "featureColumns": [header[i] for i in self._feature_indexes],
        }

    def encode(self, row: list[str], sequence: int) -> EncodedRecord:
        if any("\n" in cell or "\r" in cell for cell in row):
            raise RecordRejected("a cell contains a line break, which SageMaker's line split cannot carry")
        if self._numeric:
            self._check_numbers(row)
        text = self._csv.line([row[self._key_index], *(row[i] for i in self._feature_indexes)])
        self._check_size(text)
        return EncodedRecord(text, row[self._key_index])

    def _check_size(self, text: str) -> None:
        """A record over MaxPayloadInMB fails its whole file in the job (SingleRecord or MultiRecord alike: no
        request can carry it), so it fails only itself here."""
        # A character is at most 4 bytes in UTF-8: most records need no encoding to know they fit.
        limit = self._max_bytes
        if limit is not None and len(text) * 4 > limit and len(text.encode("utf-8")) > limit:
            raise RecordRejected(f"record is larger than MaxPayloadInMB ({limit // 1048576} MB)")

    def _check_numbers(self, row: list[str]) -> None:
        """numericFeatures: one bad cell would fail its whole file in the job, so it fails only its record here."""
        for index in self._feature_indexes:
            cell = row[index]
            if _DECIMAL.fullmatch(cell) is None or not math.isfinite(float(cell)):
                raise RecordRejected(f"column {self._header[index]!r} is not a finite decimal number: {cell!r}")


class SageMakerJsonLinesEncoder(SageMakerCsvEncoder):
    """``{"key": <key>, "features": {<feature column>: <value>, ...}}`` a line: the InputFilter sends the model the
    features object only. Values are numbers with numericFeatures (checked here, as for CSV), strings otherwise."""

    suffix = ".jsonl"
    content_type = JSON_LINES

    def encode(self, row: list[str], sequence: int) -> EncodedRecord:
        if self._numeric:
            self._check_numbers(row)
        features = {self._header[i]: _json_number(row[i]) if self._numeric else row[i] for i in self._feature_indexes}
        key = row[self._key_index]
        # JSON escapes line breaks, so a cell may hold them; SageMaker splits records on LF only.
        text = json.dumps({JSON_KEY: key, JSON_FEATURES: features}, ensure_ascii=False) + "\n"
        self._check_size(text)
        return EncodedRecord(text, key)


def _json_number(text: str) -> int | float:
    """A decimal checked by _check_numbers, as a JSON number: integers exactly, others as the nearest double."""
    try:
        return int(text)
    except ValueError:
        return float(text)


class SageMakerAdapter:
    provider = "sagemaker"

    def __init__(self, settings: SageMakerSettings, sagemaker: Any, s3: Any) -> None:
        self._settings = settings
        self._sagemaker = sagemaker
        self._s3 = s3

    def input_encoder(self) -> SageMakerCsvEncoder:
        if self._settings.content_type == JSON_LINES:
            return SageMakerJsonLinesEncoder(self._settings)
        return SageMakerCsvEncoder(self._settings)

    @property
    def _json(self) -> bool:
        return self._settings.content_type == JSON_LINES

    def job_id(self, run: RunContext) -> str:
        return job_name_for(run.run_id, suffix=f"-{run.chunk.index}")

    def create_request(self, run: RunContext) -> dict[str, Any]:
        """The CreateTransformJob request for this run (deterministic: a retry sends the same one)."""
        settings = self._settings
        request: dict[str, Any] = {
            "TransformJobName": self.job_id(run),
            "ModelName": settings.model_name,
            "BatchStrategy": settings.batch_strategy,
            "MaxPayloadInMB": settings.max_payload_in_mb,
            "ModelClientConfig": {
                "InvocationsTimeoutInSeconds": settings.invocation_timeout_seconds,
                "InvocationsMaxRetries": settings.invocation_max_retries,
            },
            "TransformInput": {
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": run.chunk.input_prefix.uri}},
                "ContentType": settings.content_type,
                "CompressionType": "None",
                # One record a line, in and out: what BatchStrategy needs, and what the join by position reads.
                "SplitType": "Line",
            },
            "TransformOutput": {
                "S3OutputPath": run.chunk.output_prefix.uri,
                "Accept": settings.content_type,
                "AssembleWith": "Line",
            },
            "TransformResources": {
                "InstanceType": settings.instance_type,
                "InstanceCount": settings.instance_count,
            },
            "DataProcessing": self._data_processing(run),
            "Tags": [
                *({"Key": key, "Value": value} for key, value in settings.tags.items()),
                {"Key": RUN_ID_TAG, "Value": run.run_id[:256]},
                {"Key": "batchline:pipeline", "Value": run.pipeline.name},
            ],
        }
        if settings.max_concurrent_transforms:
            request["MaxConcurrentTransforms"] = settings.max_concurrent_transforms
        if settings.environment:
            request["Environment"] = dict(settings.environment)
        if settings.output_kms_key_id:
            request["TransformOutput"]["KmsKeyId"] = settings.output_kms_key_id
        if settings.volume_kms_key_id:
            request["TransformResources"]["VolumeKmsKeyId"] = settings.volume_kms_key_id
        if settings.data_capture is not None:
            request["DataCaptureConfig"] = _data_capture(settings.data_capture, run)
        return request

    def _data_processing(self, run: RunContext) -> dict[str, str]:
        if self._json:
            # With inference IDs the whole joined record is kept: the guide does not say whether SageMaker adds
            # them before or after the OutputFilter, and a filter naming them too is over the API's 63 characters.
            keep = "$" if self._inference_ids else f"$['{JSON_KEY}','SageMakerOutput']"
            return {"InputFilter": f"$.{JSON_FEATURES}", "JoinSource": "Input", "OutputFilter": keep}
        feature_count = len(run.staging["featureColumns"])
        return {
            "InputFilter": "$[1:]",
            "JoinSource": "Input",
            # Joined line = key, features..., predictions: keep the key and everything after the features.
            "OutputFilter": f"$[0,{feature_count + 1}:]",
        }

    def submit(self, run: RunContext) -> JobState:
        request = self.create_request(run)
        try:
            self._sagemaker.create_transform_job(**request)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code == "ResourceInUse":
                # A previous attempt created it: find it, and make sure it is the same job.
                return self._existing(run, request)
            raise _translate(exc, request["TransformJobName"]) from exc
        return self.describe(run, request["TransformJobName"])

    def _existing(self, run: RunContext, request: dict[str, Any]) -> JobState:
        name = request["TransformJobName"]
        described = self._call("describe_transform_job", name, TransformJobName=name)
        same = (
            described.get("ModelName") == request["ModelName"]
            and described["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
            == request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
        )
        if not same:
            raise JobConflict(
                f"transform job {name} exists but was created for another model or input; "
                "it cannot be reused for this run"
            )
        return self._usable_state(run, described)

    def describe(self, run: RunContext, job_id: str) -> JobState:
        try:
            described = self._sagemaker.describe_transform_job(TransformJobName=job_id)
        except ClientError as exc:
            if _no_such_job(exc):
                raise JobNotFound(f"SageMaker has no transform job {job_id}: it was never created") from exc
            raise _translate(exc, job_id) from exc
        return self._usable_state(run, described)

    def _usable_state(self, run: RunContext, described: dict[str, Any]) -> JobState:
        """The job's state, read for what the run can still use.

        One bad record fails its whole file and the job, while the other files' ``.out`` stay: a Failed job
        that left output is PARTIAL, so Collect keeps those files' predictions and fails only the records of
        the files without output. A record position in the reason is given as its input line too.
        """
        state = _state(described)
        if state.message:
            state = replace(state, message=self._with_input_lines(run, state.message))
        if state.status is JobStatus.FAILED and self._outputs(run):
            state = replace(state, status=JobStatus.PARTIAL)
        return state

    def _with_input_lines(self, run: RunContext, reason: str) -> str:
        """``record N of part-00000.csv`` -> ``input line L (record N of part-00000.csv)``, from the staged index."""
        lines: dict[tuple[int, str], int | None] = {}
        for match in _RECORD_POSITION.finditer(reason):
            position, part = int(match.group(1)), match.group(2)
            lines[(position, part)] = self._input_line(run, part, position)

        def located(match: re.Match[str]) -> str:
            line = lines.get((int(match.group(1)), match.group(2)))
            return match.group(0) if line is None else f"input line {line} ({match.group(0)})"

        return _RECORD_POSITION.sub(located, reason)

    def _input_line(self, run: RunContext, part: str, position: int) -> int | None:
        """The input line of the staged part's record at ``position`` (from 1), or None when not known."""
        if posixpath.basename(part) != part or position < 1:
            return None
        try:
            with io.TextIOWrapper(
                open_object(self._s3, run.layout.index_for(part)), encoding="utf-8", newline=""
            ) as text:
                row = next(itertools.islice(csv.reader(text), position - 1, None), None)
        except ClientError:
            return None  # no such staged part: the reason is kept as the service wrote it
        return int(row[0]) if row else None

    def stop(self, run: RunContext, job_id: str) -> bool:
        state = self.describe(run, job_id)  # raises for a job that was never created
        if not state.status.is_terminal and state.raw_status != "Stopping":
            self._call("stop_transform_job", job_id, TransformJobName=job_id)
        return True

    def result_columns(self, run: RunContext) -> list[str]:
        return [*self._settings.prediction_columns, *(INFERENCE_ID_COLUMNS if self._inference_ids else [])]

    @property
    def _inference_ids(self) -> bool:
        return self._settings.data_capture is not None and self._settings.data_capture.generate_inference_id

    def read_results(
        self, run: RunContext, job: JobState, staged: Iterator[StagedRecord]
    ) -> Iterator[Prediction | FailedRecord]:
        """Walk each staged part given beside its ``.out`` file; records keep their order within a file.

        ``staged`` may be some of the chunk's parts (a Collect unit): outputs of other parts are theirs, and
        outputs matching no staged part at all are refused by ``check_outputs`` when Collect is planned.
        """
        outputs = self._outputs(run)
        columns = list(self._settings.prediction_columns)
        for part_name, records in itertools.groupby(staged, key=lambda record: record.part):
            output_key = outputs.get(part_name + ".out")
            if output_key is None:
                reason = f"SageMaker wrote no output for staged file {part_name} (the job failed on it)"
                if job.message:
                    reason = f"{reason}: {job.message}"
                for record in records:
                    yield FailedRecord(record.key, record.line, reason)
                continue
            location = S3Location(run.layout.work_bucket, output_key)
            if self._json:
                rows = _json_rows(self._s3, location, columns, self._inference_ids, part_name)
                yield from _join_part(records, rows, part_name)
            else:
                expected = len(columns) + (len(INFERENCE_ID_COLUMNS) if self._inference_ids else 0)
                yield from _join_part(
                    records, (_csv_row(row, expected) for row in csv_rows(self._s3, location) if row), part_name
                )

    def check_outputs(self, run: RunContext) -> None:
        staged = {posixpath.basename(key) + ".out" for key in list_keys(self._s3, run.chunk.input_prefix)}
        strays = sorted(set(self._outputs(run)) - staged)
        if strays:
            raise OutputInvalid(f"output files match no staged input: {', '.join(strays)}")

    def _outputs(self, run: RunContext) -> dict[str, str]:
        """``<part>.out`` -> its key, for every output file of the chunk."""
        return {
            posixpath.basename(key): key for key in list_keys(self._s3, run.chunk.output_prefix) if key.endswith(".out")
        }

    def _call(self, operation: str, job_name: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return getattr(self._sagemaker, operation)(**kwargs)  # type: ignore[no-any-return]
        except ClientError as exc:
            raise _translate(exc, job_name) from exc


# One output record as read: its key, then its values, or the reason they cannot be used.
OutputRow = tuple[str, list[str] | str]


def _csv_row(row: list[str], expected_values: int) -> OutputRow:
    values = row[1:]
    if len(values) != expected_values:
        return row[0], f"model returned {len(values)} values, predictionColumns names {expected_values}"
    return row[0], values


def _json_rows(
    s3: Any, location: S3Location, columns: list[str], inference_ids: bool, part_name: str
) -> Iterator[OutputRow]:
    """Each output line as (key, values). A line that is not the joined object cannot be placed: OutputInvalid."""
    with io.TextIOWrapper(open_object(s3, location), encoding="utf-8", newline="\n") as text:
        for number, line in enumerate(text, start=1):
            if not line.strip():
                continue
            try:
                joined = json.loads(line)
            except ValueError:
                joined = None
            if not isinstance(joined, dict) or not isinstance(joined.get(JSON_KEY), str):
                raise OutputInvalid(f"{part_name}.out line {number} is not the joined record DataProcessing writes")
            values = _json_values(joined.get("SageMakerOutput"), columns)
            if inference_ids and isinstance(values, list):
                values += [_cell(joined.get(name)) for name in INFERENCE_ID_FIELDS]
            yield joined[JSON_KEY], values


def _json_values(answer: Any, columns: list[str]) -> list[str] | str:
    """The model's answer for one record as the predictionColumns' values, or why it is not one."""
    if isinstance(answer, dict):
        missing = [name for name in columns if name not in answer]
        if missing:
            found = ", ".join(sorted(answer)) or "none"
            return f"model answer has no {', '.join(missing)} (predictionColumns); its fields: {found}"
        return [_cell(answer[name]) for name in columns]
    if isinstance(answer, list):
        if len(answer) != len(columns):
            return f"model returned {len(answer)} values, predictionColumns names {len(columns)}"
        return [_cell(value) for value in answer]
    if answer is None:
        return "model returned no answer (no SageMakerOutput)"
    if len(columns) != 1:
        return f"model returned 1 value, predictionColumns names {len(columns)}"
    return [_cell(answer)]


def _cell(value: Any) -> str:
    """A JSON value as a CSV cell: text as it is, other scalars as JSON writes them, structures as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False)


def _join_part(
    records: Iterator[StagedRecord], outputs: Iterator[OutputRow], part_name: str
) -> Iterator[Prediction | FailedRecord]:
    """Output records in the order of the part's staged records, each checked to carry its record's key."""
    for position, record in enumerate(records, start=1):
        row = next(outputs, None)
        if row is None:
            yield FailedRecord(record.key, record.line, f"no prediction returned (output of {part_name} ended early)")
            continue
        key, values = row
        if key != record.key:
            raise OutputInvalid(f"{part_name}.out record {position} has key {key!r} where the input had {record.key!r}")
        if isinstance(values, str):
            yield FailedRecord(record.key, record.line, values)
        else:
            yield Prediction(record.key, record.line, [values])
    if next(outputs, None) is not None:
        raise OutputInvalid(f"{part_name}.out has more records than the staged input")


def _data_capture(capture: SageMakerDataCapture, run: RunContext) -> dict[str, Any]:
    """DataCaptureConfig: the pipeline's destination, or the work bucket's place for it (data_capture_location)."""
    config: dict[str, Any] = {"DestinationS3Uri": capture.destination_s3_uri or data_capture_location(run).uri}
    if capture.kms_key_id:
        config["KmsKeyId"] = capture.kms_key_id
    if capture.generate_inference_id:
        config["GenerateInferenceId"] = True
    return config


def data_capture_location(run: RunContext) -> S3Location:
    """Where a pipeline's jobs write their capture when it names no destination."""
    return S3Location(run.layout.work_bucket, f"{run.pipeline.name}/{DATA_CAPTURE_FOLDER}/")


def _state(described: dict[str, Any]) -> JobState:
    raw = described["TransformJobStatus"]
    return JobState(
        job_id=described["TransformJobName"],
        status=normalise_status(raw),
        raw_status=raw,
        message=described.get("FailureReason") or None,
        figures=job_figures(described),
    )


def job_figures(described: dict[str, Any]) -> dict[str, Any]:
    """DescribeTransformJob's own figures: its creation, start and end times, and the compute they bill.

    SageMaker bills each instance from TransformStartTime to TransformEndTime (DescribeTransformJob), so
    computeSeconds is that interval times InstanceCount: instance-seconds, only once both times are known.
    """
    times = {
        "createdAt": described.get("CreationTime"),
        "startedAt": described.get("TransformStartTime"),
        "endedAt": described.get("TransformEndTime"),
    }
    figures: dict[str, Any] = {name: iso(value) for name, value in times.items() if isinstance(value, datetime)}
    start, end = times["startedAt"], times["endedAt"]
    if isinstance(start, datetime) and isinstance(end, datetime) and end >= start:
        instances = int(described.get("TransformResources", {}).get("InstanceCount", 1))
        figures["computeSeconds"] = round((end - start).total_seconds() * instances, 3)
    return figures


def _no_such_job(exc: ClientError) -> bool:
    """DescribeTransformJob's answer for a name no job has: ResourceNotFound as documented, or the
    ValidationException "Could not find transform job ..." the service sends in practice (no other field says so;
    a miss here is reported as a failed look, never read as "never created")."""
    error = exc.response["Error"]
    code, message = error.get("Code"), error.get("Message", "")
    return code == "ResourceNotFound" or (code == "ValidationException" and message.startswith("Could not find"))


def read_limit(message: str) -> QuotaReading | None:
    """The numbers of a ResourceLimitExceeded message, or None when it does not carry all of them."""
    match = _ACCOUNT_LIMIT.search(message)
    if match is None:
        return None
    return QuotaReading(match["name"], int(match["limit"]), int(match["usage"]), int(match["delta"]))


def _translate(exc: ClientError, job_name: str) -> Exception:
    return translate_client_error(
        exc,
        f"SageMaker ({job_name})",
        frozenset({"ResourceLimitExceeded"}),
        read_limit,
        "Ask for more in Service Quotas (service Amazon SageMaker, the quota named here), or set the pipeline's "
        "instanceType to one the account has quota for, or lower its instanceCount.",
    )
