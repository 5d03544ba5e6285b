"""SageMaker Batch Transform emulator for the local runtime.

moto accepts CreateTransformJob but marks the job Completed at once and writes nothing. This fills the
gap: a job stays InProgress for a few DescribeTransformJob calls, then "runs" an emulated model over the
staged input and writes ``<input-file>.out`` objects with the DataProcessing join semantics
(InputFilter -> model -> JoinSource=Input -> OutputFilter), as the real service does.

The emulated model is a fixed logistic score of the numeric features: deterministic, and labelled as
emulated in every event and manifest (``runtime: local-emulation``). A record with a non-numeric
feature fails its whole file and the job, as a real CSV model container would.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from moto.s3.models import s3_backends
from moto.sagemaker.models import SageMakerModelBackend
from moto.sagemaker.responses import SageMakerResponse

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


def emulated_score(features: list[str]) -> str:
    """The emulated model: a logistic of a fixed weighted sum, so the same record always scores the same."""
    values = [float(value) for value in features]  # ValueError for a non-numeric feature, as a real model
    total = 0.0
    for position, value in enumerate(values):
        weight = (int(hashlib.sha256(str(position).encode()).hexdigest()[:4], 16) % 200 - 100) / 100
        # log-scaled so features of any magnitude move the score without saturating it
        total += weight * math.copysign(math.log1p(abs(value)), value)
    score = 1 / (1 + math.exp(-total / math.sqrt(max(len(values), 1))))
    return f"{score:.6f}"


class RecordFailed(Exception):
    pass


def transform_file(text: str, data_processing: dict[str, str], file_name: str) -> str:
    """One input file -> its ``.out`` text, or RecordFailed naming the record the model could not take."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for number, record in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not record:
            continue
        model_input = select(record, data_processing.get("InputFilter"))
        try:
            prediction = [emulated_score(model_input)]
        except ValueError as exc:
            raise RecordFailed(f"record {number} of {file_name}: {exc}") from exc
        joined = record + prediction if data_processing.get("JoinSource") == "Input" else prediction
        writer.writerow(select(joined, data_processing.get("OutputFilter")))
    return out.getvalue()


@dataclass
class _Progress:
    polls_until_done: int
    stop_requested: bool = False
    outputs: list[str] = field(default_factory=list)


class SageMakerEmulator:
    """Patches moto's SageMaker backend while active (use as a context manager)."""

    def __init__(self, polls_until_done: int = 2) -> None:
        self.polls_until_done = polls_until_done
        self.jobs: dict[str, _Progress] = {}
        self.create_calls = 0
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
            emulator.create_calls += 1
            job = original_create(backend, transform_job_name, **kwargs)
            job.transform_job_status = "InProgress"
            emulator.jobs[transform_job_name] = _Progress(emulator.polls_until_done)
            return job

        def describe(backend: SageMakerModelBackend, transform_job_name: str) -> Any:
            progress = emulator.jobs.get(transform_job_name)
            job = backend.transform_jobs.get(transform_job_name)
            if progress is not None and job is not None and job.transform_job_status in ("InProgress", "Stopping"):
                progress.polls_until_done -= 1
                if progress.polls_until_done <= 0:
                    if progress.stop_requested:
                        job.transform_job_status = "Stopped"
                    else:
                        emulator._run(backend.account_id, job, progress)
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

    def _run(self, account_id: str, job: Any, progress: _Progress) -> None:
        s3 = s3_backends[account_id]["global"]
        source = job.transform_input["DataSource"]["S3DataSource"]["S3Uri"]
        in_bucket, in_prefix = source[5:].split("/", 1)
        out_bucket, out_prefix = job.transform_output["S3OutputPath"][5:].split("/", 1)
        failures: list[str] = []
        for key in _keys(s3, in_bucket, in_prefix):
            relative = key[len(in_prefix) :].lstrip("/")
            text = s3.get_object(in_bucket, key).value.decode("utf-8")
            try:
                body = transform_file(text, job.data_processing or {}, relative)
            except RecordFailed as exc:
                failures.append(str(exc))
                continue  # no .out for a failed file, as on the real service
            out_key = f"{out_prefix.rstrip('/')}/{relative}.out"
            s3.put_object(out_bucket, out_key, body.encode("utf-8"))
            progress.outputs.append(out_key)
        if failures:
            job.transform_job_status = "Failed"
            job.failure_reason = (
                "ClientError: emulated model could not score "
                + "; ".join(failures[:3])
                + (f" (and {len(failures) - 3} more files)" if len(failures) > 3 else "")
            )
        else:
            job.transform_job_status = "Completed"


def _keys(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    for key in sorted(s3.get_bucket(bucket).keys.keys()):
        if key.startswith(prefix):
            yield key
