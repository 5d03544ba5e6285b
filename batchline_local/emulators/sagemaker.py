"""SageMaker Batch Transform emulator for the local runtime.

moto accepts CreateTransformJob but marks the job Completed at once and writes nothing. This fills the
gap: a job stays InProgress for a few DescribeTransformJob calls, then "runs" an emulated model over the
staged input and writes ``<input-file>.out`` objects with the DataProcessing join semantics
(InputFilter -> model -> JoinSource=Input -> OutputFilter), as the real service does.

The emulated model is a fixed logistic score of the numeric features: deterministic, and labelled as
emulated in every event and manifest (``runtime: local-emulation``). A record with a non-numeric
feature fails its whole file and the job, as a real CSV model container would: the job ends Failed with
the service's generic FailureReason, and the failed file is named only in ``SageMakerEmulator.logs``
(the job's CloudWatch log stand-in). Input is listed and read through the S3 API, so a staged part whose
latest version is a delete marker is not input, exactly as on S3.

Job state change events: each change of a job's status (InProgress at creation, then Completed, Failed or
Stopped) is handed to ``on_event`` as the "SageMaker Transform Job State Change" event SageMaker puts on the
account's default bus (``transform_job_event``; the local runtime delivers it to the stack's rule's target).
With ``job_seconds`` set, a job ends that many seconds after its creation whatever the polls (a timer thread runs
it), so a test can end a job between two polls; otherwise it ends at its ``polls_until_done``-th describe.

Instance quotas (``instance_quotas``, the applied value of "<instance type> for transform job usage" by instance
type; unset means no limit): a create that would take the type's running instances over it is refused with
ResourceLimitExceeded, worded as SageMaker words it, whether the quota is 0, full, or smaller than the request.
"""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import io
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from botocore.exceptions import ClientError
from moto.core.utils import utcnow
from moto.sagemaker.exceptions import SagemakerClientError
from moto.sagemaker.models import SageMakerModelBackend
from moto.sagemaker.responses import SageMakerResponse

from batchline_local.emulators.base import (
    MalformedLine,
    ServiceIdentity,
    list_keys,
    pipeline_of,
    s3_client,
    service_lines,
    split_s3_uri,
    strict_json,
)

_INDEX_PATTERN = re.compile(r"^\$\[(.+)\]$")


def select(fields: list[str], expression: str | None) -> list[str]:
    """Apply a SageMaker JSONPath filter of the index/slice form (``$[1:]``, ``$[0,-1]``, ``$[0,5:]``)."""
    if not expression or expression == "$":
        return list(fields)
    match = _INDEX_PATTERN.match(expression.replace(" ", ""))
    if not match:
        raise ValueError(f"emulator supports only index and slice filters, not {expression!r}")
    chosen: list[str] = []
    for part in match.group(1).split(","):
        if ":" in part:
            start, _, stop = part.partition(":")
            chosen.extend(fields[slice(int(start) if start else None, int(stop) if stop else None)])
        else:
            chosen.append(fields[int(part)])
    return chosen


_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _feature(value: str) -> float:
    # Plain decimal numbers only: float() would also take "nan", "inf", "1_0" and Unicode whitespace.
    if not _NUMBER.fullmatch(value):
        raise ValueError(f"could not convert string to float: {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"feature out of range: {value!r}")
    return number


@functools.lru_cache(maxsize=1024)
def _weight(position: int) -> float:
    """The fixed weight of a feature position (a hash per record and feature was 15% of a 1M-row local run)."""
    return (int(hashlib.sha256(str(position).encode()).hexdigest()[:4], 16) % 200 - 100) / 100


def emulated_score(features: list[str]) -> str:
    """The emulated model: a logistic of a fixed weighted sum, so the same record always scores the same."""
    values = [_feature(value) for value in features]  # ValueError for a non-numeric feature, as a real model
    total = 0.0
    for position, value in enumerate(values):
        weight = _weight(position)
        # log-scaled so features of any magnitude move the score without saturating it
        total += weight * math.copysign(math.log1p(abs(value)), value)
    score = 1 / (1 + math.exp(-total / math.sqrt(max(len(values), 1))))
    return f"{score:.6f}"


class RecordFailed(Exception):
    pass


CSV, JSON_LINES = "text/csv", "application/jsonlines"
_JSON_NAMES = re.compile(r"^\$\[\s*'[^']*'(?:\s*,\s*'[^']*')*\s*\]$")
_JSON_CHILD = re.compile(r"^\$\.([A-Za-z_][A-Za-z0-9_]*)$")


def select_json(document: Any, expression: str | None) -> Any:
    """A SageMaker JSONPath filter on a JSON record: ``$``, ``$.name``, ``$['a','b']`` (a missing name is left out
    of a bracket selection, and fails a dot one); index and slice forms on an array."""
    if not expression or expression == "$":
        return document
    child = _JSON_CHILD.match(expression)
    if child:
        if not isinstance(document, dict) or child.group(1) not in document:
            raise ValueError(f"{expression} selects nothing in the record")
        return document[child.group(1)]
    if _JSON_NAMES.match(expression):
        if not isinstance(document, dict):
            raise ValueError(f"{expression} applies to an object, the record is {type(document).__name__}")
        names = re.findall(r"'([^']*)'", expression)
        return {name: document[name] for name in names if name in document}
    if isinstance(document, list):
        return select(document, expression)
    raise ValueError(f"emulator supports $, $.name, $['a','b'] and index filters, not {expression!r}")


def _json_features(model_input: Any) -> list[str]:
    """The emulated JSON model reads an object's values (or an array) as its features, numbers or decimal text."""
    values = list(model_input.values()) if isinstance(model_input, dict) else model_input
    if not isinstance(values, list):
        raise ValueError(f"the model takes an object or an array of features, not {type(model_input).__name__}")
    return [value if isinstance(value, str) else json.dumps(value) for value in values]


@dataclass(frozen=True)
class Processing:
    """How a job hands records to the model and writes its answers (CreateTransformJob's settings)."""

    data_processing: dict[str, str] = field(default_factory=dict)
    content_type: str = CSV
    accept: str | None = None
    batch_strategy: str = "MultiRecord"
    max_payload_mb: int | None = None
    # GenerateInferenceId: the job's start time (ISO 8601 UTC) each record's inference ID is stamped with.
    inference_time: str | None = None

    @classmethod
    def of(cls, job: Any, inference_time: str | None = None) -> Processing:
        capture = getattr(job, "data_capture_config", None) or {}
        return cls(
            data_processing=job.data_processing or {},
            content_type=job.transform_input.get("ContentType") or CSV,
            accept=job.transform_output.get("Accept"),
            batch_strategy=getattr(job, "batch_strategy", None) or "MultiRecord",
            max_payload_mb=job.max_payload_in_mb,
            inference_time=inference_time if capture.get("GenerateInferenceId") else None,
        )


def transform_file(
    data: bytes | str,
    data_processing: dict[str, str] | Processing,
    file_name: str,
    max_payload_mb: int | None = None,
    requests: list[int] | None = None,
) -> str:
    """One input file -> its ``.out`` text, or RecordFailed naming the record the model could not take.

    With ``SplitType=Line`` the service splits records on newline (LF) only
    (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_TransformInput.html); the CSV model reads
    each record as one CSV row, so a quoted cell may hold a CR but an unquoted one may not. Records go to the
    model in requests: one record each (SingleRecord), or as many consecutive records as fit in MaxPayloadInMB
    (MultiRecord; 0 means no limit, HTTP chunked encoding); a record larger than that fails its file. The number
    of records of each request is appended to ``requests``.
    """
    processing = (
        data_processing
        if isinstance(data_processing, Processing)
        else Processing(data_processing=data_processing, max_payload_mb=max_payload_mb)
    )
    if processing.content_type not in (CSV, JSON_LINES) or (processing.accept or processing.content_type) != (
        processing.content_type
    ):
        raise RecordFailed(
            f"{file_name}: the emulated model reads and answers text/csv or application/jsonlines, one format in and "
            f"out, not ContentType {processing.content_type!r} with Accept {processing.accept!r}"
        )
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        records = service_lines(raw)
    except UnicodeDecodeError as exc:
        raise RecordFailed(f"{file_name} is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    out = io.StringIO()
    for batch in _requests(records, processing, file_name):
        if requests is not None:
            requests.append(len(batch))
        for number, text in batch:
            out.write(_answer(text, processing, f"record {number} of {file_name}"))
    return out.getvalue()


def _requests(
    records: list[tuple[int, str]], processing: Processing, file_name: str
) -> Iterator[list[tuple[int, str]]]:
    """The file's records grouped into the model requests the batch strategy makes."""
    mb = 6 if processing.max_payload_mb is None else processing.max_payload_mb
    limit = mb * 1024 * 1024 or None  # 0: chunked encoding, no limit
    batch: list[tuple[int, str]] = []
    size = 0
    for number, text in records:
        length = len(text.encode("utf-8")) + 1  # the record and its LF
        if limit is not None and length > limit:
            raise RecordFailed(f"record {number} of {file_name}: larger than MaxPayloadInMB ({mb} MB)")
        if batch and (processing.batch_strategy == "SingleRecord" or (limit is not None and size + length > limit)):
            yield batch
            batch, size = [], 0
        batch.append((number, text))
        size += length
    if batch:
        yield batch


def _answer(text: str, processing: Processing, where: str) -> str:
    """One record through InputFilter -> model -> JoinSource -> OutputFilter, as its output line."""
    data_processing = processing.data_processing
    if processing.content_type == JSON_LINES:
        return _answer_json(text, processing, where)
    try:
        record = next(csv.reader([text], strict=True), [])
    except csv.Error as exc:
        raise RecordFailed(f"{where}: not a CSV row ({exc})") from None
    if not record:
        raise RecordFailed(f"{where}: empty record")
    try:
        model_input = select(record, data_processing.get("InputFilter"))
        prediction = [emulated_score(model_input)]
        joined = record + prediction if data_processing.get("JoinSource") == "Input" else prediction
        fields = select(joined, data_processing.get("OutputFilter"))
    except (ValueError, IndexError) as exc:
        raise RecordFailed(f"{where}: {exc}") from exc
    if processing.inference_time is not None:
        fields = [*fields, str(uuid.uuid4()), processing.inference_time]
    return _csv_line(fields)


def _answer_json(text: str, processing: Processing, where: str) -> str:
    """A JSON record: the model answers ``{"score": ...}``; the join adds it to an object as SageMakerOutput, or
    wraps another record as SageMakerInput (DataProcessing JoinSource)."""
    data_processing = processing.data_processing
    try:
        record = strict_json(text, 0)
    except MalformedLine as exc:
        raise RecordFailed(f"{where}: {str(exc).partition(': ')[2]}") from None
    try:
        answer = {
            "score": float(emulated_score(_json_features(select_json(record, data_processing.get("InputFilter")))))
        }
        if data_processing.get("JoinSource") == "Input":
            joined: Any = (
                {**record, "SageMakerOutput": answer}
                if isinstance(record, dict)
                else {"SageMakerInput": record, "SageMakerOutput": answer}
            )
        else:
            joined = answer
        result = select_json(joined, data_processing.get("OutputFilter"))
    except (ValueError, IndexError) as exc:
        raise RecordFailed(f"{where}: {exc}") from exc
    if processing.inference_time is not None and isinstance(result, dict):
        result = {
            **result,
            "SageMakerInferenceId": str(uuid.uuid4()),
            "SageMakerInferenceTime": processing.inference_time,
        }
    return json.dumps(result, ensure_ascii=False) + "\n"


def _csv_line(fields: list[str]) -> str:
    """One output line, every field holding a separator, quote, CR or LF quoted (csv.writer with an LF
    terminator leaves a lone CR bare, which no CSV reader can read back)."""
    quoted = ['"' + f.replace('"', '""') + '"' if any(c in f for c in ',"\r\n') else f for f in fields]
    return ",".join(quoted) + "\n"


# What CreateTransformJob refuses (SageMaker API reference): at most 16 environment variables, named
# [a-zA-Z_][a-zA-Z0-9_]{0,1023} with values up to 10,240 characters; at most 50 tags; KMS keys of
# [a-zA-Z0-9:/_-] up to 2,048 characters; MaxPayloadInMB at most 100, and MaxConcurrentTransforms x MaxPayloadInMB
# too; a BatchStrategy batches split records only (SplitType Line, RecordIO or TFRecord); JSONPath filters up to
# 63 characters; S3 URIs of (https|s3)://([^/]+)/?(.*) up to 1,024. botocore checks types and required members
# only, so these are the service's own refusals.
_ENVIRONMENT_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,1023}$")
_KMS_KEY = re.compile(r"^[a-zA-Z0-9:/_-]{0,2048}$")
_S3_URI = re.compile(r"^(https|s3)://([^/]+)/?(.*)$")
_ENUMS = {
    "batchStrategy": ("MultiRecord", "SingleRecord"),
    "transformInput.splitType": ("None", "Line", "RecordIO", "TFRecord"),
    "transformOutput.assembleWith": ("None", "Line"),
    "dataProcessing.joinSource": ("Input", "None"),
}


def _validation(message: str) -> Exception:
    from moto.sagemaker.exceptions import ValidationError

    return ValidationError(message=message)


def _check_request(request: dict[str, Any]) -> None:
    _check_environment(request.get("environment") or {})
    if len(request.get("tags") or []) > 50:
        raise _validation(
            "1 validation error detected: Value at 'tags' failed to satisfy constraint: "
            "Member must have length less than or equal to 50"
        )
    transform_input = request.get("transform_input") or {}
    transform_output = request.get("transform_output") or {}
    capture = request.get("data_capture_config") or {}
    keys = {
        "transformOutput.kmsKeyId": transform_output.get("KmsKeyId"),
        "transformResources.volumeKmsKeyId": (request.get("transform_resources") or {}).get("VolumeKmsKeyId"),
        "dataCaptureConfig.kmsKeyId": capture.get("KmsKeyId"),
    }
    for where, key in keys.items():
        if key is not None and not _KMS_KEY.match(key):
            raise _validation(
                f"1 validation error detected: Value '{key}' at '{where}' failed to "
                "satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9:/_-]*"
            )
    _check_batching(request, transform_input)
    values = {
        "batchStrategy": request.get("batch_strategy"),
        "transformInput.splitType": transform_input.get("SplitType"),
        "transformOutput.assembleWith": transform_output.get("AssembleWith"),
        "dataProcessing.joinSource": (request.get("data_processing") or {}).get("JoinSource"),
    }
    for where, value in values.items():
        if value is not None and value not in _ENUMS[where]:
            raise _validation(
                f"1 validation error detected: Value '{value}' at '{where}' failed to satisfy constraint: "
                f"Member must satisfy enum value set: [{', '.join(_ENUMS[where])}]"
            )
    for name, path in (request.get("data_processing") or {}).items():
        if name in ("InputFilter", "OutputFilter") and len(path) > 63:
            where = f"dataProcessing.{name[0].lower()}{name[1:]}"
            raise _validation(
                f"1 validation error detected: Value '{path}' at '{where}' failed to satisfy constraint: "
                "Member must have length less than or equal to 63"
            )
    if capture:
        uri = str(capture.get("DestinationS3Uri", ""))
        if len(uri) > 1024 or not _S3_URI.match(uri):
            raise _validation(
                f"1 validation error detected: Value '{uri}' at 'dataCaptureConfig.destinationS3Uri' failed to "
                "satisfy constraint: Member must satisfy regular expression pattern: (https|s3)://([^/]+)/?(.*)"
            )


def _check_environment(environment: dict[str, str]) -> None:
    if len(environment) > 16:
        raise _validation(
            "1 validation error detected: Value at 'environment' failed to satisfy "
            "constraint: Map value must satisfy constraint: [Member must have length less than "
            "or equal to 16]"
        )
    for name, value in environment.items():
        if not _ENVIRONMENT_NAME.match(name) or len(value) > 10_240:
            raise _validation(
                f"1 validation error detected: Value at 'environment' failed to satisfy "
                f"constraint: Map keys must satisfy constraint: [Member must satisfy regular "
                f"expression pattern: [a-zA-Z_][a-zA-Z0-9_]*] ({name})"
            )


def _check_batching(request: dict[str, Any], transform_input: dict[str, Any]) -> None:
    """MaxPayloadInMB 0-100, its product with MaxConcurrentTransforms at most 100, and no batching of unsplit
    files (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTransformJob.html)."""
    payload = request.get("max_payload_in_mb")
    if payload is not None and payload > 100:
        raise _validation(
            f"1 validation error detected: Value '{payload}' at 'maxPayloadInMB' failed to satisfy constraint: "
            "Member must have value less than or equal to 100"
        )
    transforms = request.get("max_concurrent_transforms")
    if transforms and transforms * (6 if payload is None else payload) > 100:
        raise _validation(
            f"MaxConcurrentTransforms ({transforms}) x MaxPayloadInMB ({6 if payload is None else payload}) "
            "cannot exceed 100 MB."
        )
    if request.get("batch_strategy") == "MultiRecord" and transform_input.get("SplitType", "None") == "None":
        raise _validation(
            "BatchStrategy MultiRecord needs records to batch: set SplitType to Line, RecordIO or TFRecord "
            "(with SplitType None each request carries one whole input object)."
        )


class ResourceLimitExceeded(SagemakerClientError):
    code = "ResourceLimitExceeded"


def limit_message(quota: str, limit: int, usage: int, delta: int) -> str:
    """ResourceLimitExceeded's message as SageMaker writes it (the numbers are the only sign of whether a slot
    can ever free; the same wording is quoted in public reports for training, processing and transform jobs)."""
    return (
        f"The account-level service limit '{quota}' is {limit} Instances, with current utilization of {usage} "
        f"Instances and a request delta of {delta} Instances. Please use AWS Service Quotas to request an increase "
        "for this quota. If AWS Service Quotas is not available, contact AWS support to request an increase for "
        "this quota."
    )


# Jobs that hold their instances: billed from start until Stopped, Completed or Failed.
_HOLDING = ("InProgress", "Stopping")


@dataclass
class _Progress:
    polls_until_done: int
    stop_requested: bool = False
    outputs: list[str] = field(default_factory=list)
    # Records of each request made to the model, in order (SingleRecord: all 1).
    requests: list[int] = field(default_factory=list)
    # The capture manifests written (DataCaptureConfig), as s3://bucket/key.
    captures: list[str] = field(default_factory=list)


class SageMakerEmulator:
    """Patches moto's SageMaker backend while active (use as a context manager)."""

    def __init__(
        self,
        polls_until_done: int = 2,
        *,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        job_seconds: float | None = None,
    ) -> None:
        self.polls_until_done = polls_until_done
        self.on_event = on_event  # each job state change, as the service's event
        self.job_seconds = job_seconds  # when set, a job ends this long after its creation, whatever the polls
        self._lock = threading.RLock()
        self.jobs: dict[str, _Progress] = {}
        self.create_calls = 0
        # Applied quota "<instance type> for transform job usage", in instances, by type (tests set it).
        self.instance_quotas: dict[str, int] = {}
        # The job's CloudWatch log lines (/aws/sagemaker/TransformJobs): where a failed file is named.
        self.logs: dict[str, list[str]] = {}
        self._stack = ExitStack()

    def __enter__(self) -> SageMakerEmulator:
        emulator = self
        original_create = SageMakerModelBackend.create_transform_job
        original_describe = SageMakerModelBackend.describe_transform_job

        def create(backend: SageMakerModelBackend, transform_job_name: str, **kwargs: Any) -> Any:
            if transform_job_name in backend.transform_jobs:
                from moto.sagemaker.exceptions import ResourceInUseException

                raise ResourceInUseException(
                    f"Job name must be unique within an AWS account and region, and a job with this name "
                    f"already exists ({transform_job_name})"
                )
            _check_request(kwargs)
            emulator._check_quota(backend, kwargs.get("transform_resources") or {})
            emulator.create_calls += 1
            job = original_create(backend, transform_job_name, **kwargs)
            job.transform_job_status = "InProgress"
            # Not started nor ended yet: DescribeTransformJob leaves out the times it does not know.
            job.transform_start_time = job.transform_end_time = None
            progress = emulator.jobs[transform_job_name] = _Progress(emulator.polls_until_done)
            emulator._announce(job)
            if emulator.job_seconds is not None:
                timer = threading.Timer(emulator.job_seconds, emulator._end, args=(job, progress))
                timer.daemon = True
                timer.start()
            return job

        def describe(backend: SageMakerModelBackend, transform_job_name: str) -> Any:
            progress = emulator.jobs.get(transform_job_name)
            job = backend.transform_jobs.get(transform_job_name)
            if progress is not None and job is not None:
                with emulator._lock:
                    if job.transform_job_status == "InProgress" and job.transform_start_time is None:
                        job.transform_start_time = utcnow()  # on its instances at the first look
                    if job.transform_job_status in ("InProgress", "Stopping") and (
                        emulator.job_seconds is None or progress.stop_requested
                    ):
                        progress.polls_until_done -= 1
                        if progress.polls_until_done <= 0:
                            emulator._end(job, progress)
            return original_describe(backend, transform_job_name)

        def stop(response: SageMakerResponse) -> Any:
            name = response._get_param("TransformJobName")
            job = response.sagemaker_backend.transform_jobs.get(name)
            if job is None:
                from moto.sagemaker.exceptions import ValidationError

                raise ValidationError(message=f"Could not find transform job '{name}'.")
            if job.transform_job_status == "InProgress":
                job.transform_job_status = "Stopping"
                emulator.jobs.setdefault(name, _Progress(1)).stop_requested = True
            from moto.core.responses import EmptyResult

            return EmptyResult()

        self._stack.enter_context(mock.patch.object(SageMakerModelBackend, "create_transform_job", create))
        self._stack.enter_context(mock.patch.object(SageMakerModelBackend, "describe_transform_job", describe))
        self._stack.enter_context(mock.patch.object(SageMakerResponse, "stop_transform_job", stop, create=True))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _check_quota(self, backend: SageMakerModelBackend, resources: dict[str, Any]) -> None:
        instance_type = str(resources.get("InstanceType", ""))
        limit = self.instance_quotas.get(instance_type)
        if limit is None:
            return
        delta = int(resources.get("InstanceCount", 1))
        usage = sum(
            int(job.transform_resources.get("InstanceCount", 1))
            for job in backend.transform_jobs.values()
            if job.transform_job_status in _HOLDING and job.transform_resources.get("InstanceType") == instance_type
        )
        if usage + delta > limit:
            raise ResourceLimitExceeded(limit_message(f"{instance_type} for transform job usage", limit, usage, delta))

    def _end(self, job: Any, progress: _Progress) -> None:
        """The job ends (Stopped if a stop was asked, else it runs), once, and says so."""
        with self._lock:
            if job.transform_job_status not in ("InProgress", "Stopping"):
                return
            if job.transform_start_time is None:
                job.transform_start_time = utcnow()
            if progress.stop_requested:
                job.transform_job_status = "Stopped"
            else:
                self._run(job, progress)
            job.transform_end_time = utcnow()
            job.batchline_ended_at = time.time()
        self._announce(job)

    def _announce(self, job: Any) -> None:
        if self.on_event is not None:
            self.on_event(transform_job_event(job))

    @staticmethod
    def _identity(job: Any) -> ServiceIdentity | None:
        """SageMaker reads the input and writes the output as the model's execution role (CreateModel's
        ExecutionRoleArn); a job whose model is unknown here has no role to check."""
        from moto.sagemaker.models import sagemaker_backends

        _, _, _, region, account, _ = job.arn.split(":", 5)
        model = sagemaker_backends[account][region]._models.get(job.model_name)
        role = getattr(model, "execution_role_arn", None)
        if role is None:
            return None
        pipeline = pipeline_of(job.transform_input["DataSource"]["S3DataSource"]["S3Uri"])
        return ServiceIdentity("sagemaker.amazonaws.com", pipeline, role_arn=role, source_arn=job.arn)

    def _run(self, job: Any, progress: _Progress) -> None:
        """Every input file in turn: a bad record fails its file (no ``.out``) and, at the end, the job;
        the other files' outputs stay, as the service does
        (https://docs.aws.amazon.com/sagemaker/latest/dg/batch-transform.html, "Batch Transform Errors")."""
        s3 = s3_client(self._identity(job))
        source = job.transform_input["DataSource"]["S3DataSource"]
        in_bucket, in_prefix = split_s3_uri(source["S3Uri"])
        out_bucket, out_prefix = split_s3_uri(job.transform_output["S3OutputPath"])
        log = self.logs.setdefault(job.transform_job_name, [])
        processing = Processing.of(job, _iso(job.transform_start_time))
        failed = 0
        inputs: list[str] = []
        for key in list_keys(s3, in_bucket, in_prefix):  # S3Prefix: every object under it
            relative = key[len(in_prefix) :].lstrip("/")
            data = s3.get_object(Bucket=in_bucket, Key=key)["Body"].read()
            if job.transform_input.get("CompressionType") == "Gzip":
                data = gzip.decompress(data)
            inputs.append(relative)
            try:
                body = transform_file(data, processing, relative, requests=progress.requests)
            except RecordFailed as exc:
                failed += 1  # no .out for a failed file, as on the real service
                log += [f"{in_bucket}/{key}: ClientError: 400", f"{in_bucket}/{key}: Message: emulated: {exc}"]
                continue
            out_key = f"{out_prefix.rstrip('/')}/{relative}.out"
            s3.put_object(Bucket=out_bucket, Key=out_key, Body=body.encode("utf-8"))
            progress.outputs.append(out_key)
        if job.data_capture_config:
            try:
                self._capture(s3, job, progress, inputs)
            except ClientError as exc:  # the model's role may not write the destination: the job fails
                failed += 1
                uri = job.data_capture_config["DestinationS3Uri"]
                log.append(
                    f"data capture to {uri}: {exc.response['Error']['Code']}: {exc.response['Error']['Message']}"
                )
        if failed:
            job.transform_job_status = "Failed"
            # The service's words: which file and record failed is in the job's logs, never in the reason.
            job.failure_reason = FAILURE_REASON
        else:
            job.transform_job_status = "Completed"

    @staticmethod
    def _capture(s3: Any, job: Any, progress: _Progress, inputs: list[str]) -> None:
        """DataCaptureConfig: manifests of the job's input objects and of the outputs it wrote, under
        ``<DestinationS3Uri>/input/`` and ``/output/`` by the hour the job started (yyyy/mm/dd/hh), each a JSON
        array of a ``{"prefix": ...}`` object then the objects' names under that prefix
        (https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture-batch.html). The guide gives no
        manifest file name: the emulator names it after the job (Batchline never reads it)."""
        bucket, prefix = split_s3_uri(job.data_capture_config["DestinationS3Uri"])
        hour = job.transform_start_time.strftime("%Y/%m/%d/%H")
        in_prefix = job.transform_input["DataSource"]["S3DataSource"]["S3Uri"]
        out_prefix = job.transform_output["S3OutputPath"]
        out_key_prefix = split_s3_uri(out_prefix)[1].rstrip("/") + "/"
        listings = {
            "input": [in_prefix.rstrip("/") + "/", *inputs],
            "output": [out_prefix.rstrip("/") + "/", *(key[len(out_key_prefix) :] for key in progress.outputs)],
        }
        for kind, (source, *names) in listings.items():
            key = f"{prefix.rstrip('/')}/{kind}/{hour}/{job.transform_job_name}.jsonl".lstrip("/")
            body = json.dumps([{"prefix": source}, *names])
            s3.put_object(Bucket=bucket, Key=key, Body=body.encode("utf-8"))
            progress.captures.append(f"s3://{bucket}/{key}")


def _iso(moment: Any) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None


def transform_job_event(job: Any) -> dict[str, Any]:
    """The "SageMaker Transform Job State Change" event for the job's current status, as SageMaker sends it to the
    default bus: ``detail`` mirrors DescribeTransformJob (times in epoch milliseconds), ``FailureReason`` when it
    failed. https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html"""
    _, _, _, region, account, _ = job.arn.split(":", 5)
    created = getattr(job, "creation_time", None)
    detail: dict[str, Any] = {
        "TransformJobName": job.transform_job_name,
        "TransformJobArn": job.arn,
        "TransformJobStatus": job.transform_job_status,
        "ModelName": job.model_name,
        "TransformInput": job.transform_input,
        "TransformOutput": job.transform_output,
        "TransformResources": job.transform_resources,
        "CreationTime": _epoch_ms(created),
        "Tags": {tag["Key"]: tag["Value"] for tag in getattr(job, "tags", None) or [] if "Key" in tag},
    }
    if job.transform_job_status == "Failed":
        detail["FailureReason"] = getattr(job, "failure_reason", None) or FAILURE_REASON
    started = _epoch_ms(getattr(job, "transform_start_time", None))
    if started is not None:
        detail["TransformStartTime"] = started
    end = getattr(job, "batchline_ended_at", None)
    if isinstance(end, float):
        detail["TransformEndTime"] = int(end * 1000)
    return {
        "version": "0",
        "id": f"local-{time.time_ns()}",
        "detail-type": "SageMaker Transform Job State Change",
        "source": "aws.sagemaker",
        "account": account,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": region,
        "resources": [job.arn],
        "detail": detail,
    }


def _epoch_ms(value: Any) -> int | None:
    from datetime import datetime

    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value).timestamp() * 1000)
        except ValueError:
            return None
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return None


# DescribeTransformJob's FailureReason when the model answered a record with a 4xx, as real jobs report it.
FAILURE_REASON = "ClientError: See job logs for more information"
