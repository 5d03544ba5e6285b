"""Peak memory of one Collect unit for every provider's output format, at two run sizes (issue 5).

For each provider, a run of N records is written to local disk, streamed, in the layout the adapters read
(the objects the local emulators write into moto): staged parts with their index sidecars, and the
service's raw output. Batchline's real ``collect.collect_unit`` then collects ONE unit of it in a child
process of its own, over a local-directory stand-in for S3 (and for Cloud Storage and Vertex AI), and the
child reports its peak RSS (``ru_maxrss``) and records/s. Before it starts, the child imports the Lambda's
handler module and makes its S3 client, as the function's init does, so the peak includes them.

One unit is what PlanCollect gives the first Map child, with the pipeline config defaults:
- SageMaker: one job reads every staged part (recordsPerFile 100,000); Collect takes runs of parts of
  collectUnitRecords (5,000,000): the unit is min(N, 5M) records.
- Amazon ML: one batch prediction takes up to 100 million records (parts of 1,000,000): min(N, 5M) too.
- Vertex AI: one job (parts of 1,000,000), results in predictions_NNNNN.jsonl (one per part here) and
  errors_00001.jsonl; a job over 5M records is collected one result file per unit: 1M records, or all N.
- Bedrock: maxRecordsPerJob is 50,000, so a run has N / 50,000 jobs; the first is measured.
- Personalize: one job, but Collect splits its .out objects into collectShardBytes (256 MiB) ranges, one
  unit each; the first is measured, then AssembleOutput's ``keyed.reconcile`` over all N keys.
Only the measured job's objects are written: a run's other Bedrock jobs have the same shape.

``make bench`` calls ``main(sizes)``; ``python -m benchmarks.collect_formats --quick`` runs 100k and 1M.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import posixpath
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from botocore.exceptions import ClientError

from benchmarks.report import peak_mb, table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lambdas"))

WORK_BUCKET = "batchline-work"
RESULTS_BUCKET = "batchline-results"
RUN_ID = "bench-run"
TARGET_MB = 256
FULL_SIZES = [1_000_000, 10_000_000]
QUICK_SIZES = [100_000, 1_000_000]
# One record in this many is answered with an error, so the failure paths stream too.
FAIL_EVERY = 1000
CHILD_TIMEOUT_SECONDS = 3600
_BLOCK = 20_000  # records formatted per write

ROLE = "arn:aws:iam::123456789012:role/bench"
AMAZONML_SCHEMA = {
    "version": "1.0",
    "targetAttributeName": "churned",
    "dataFormat": "CSV",
    "dataFileContainsHeader": False,
    "attributes": [
        {"attributeName": "age", "attributeType": "NUMERIC"},
        {"attributeName": "plan", "attributeType": "CATEGORICAL"},
        {"attributeName": "monthly_spend", "attributeType": "NUMERIC"},
        {"attributeName": "churned", "attributeType": "BINARY"},
    ],
}
# The pipelines as cdk.json declares them: only what each service requires, every limit at its default.
PIPELINES: dict[str, dict[str, Any]] = {
    "sagemaker": {
        "keyColumn": "id",
        "service": {"provider": "sagemaker", "modelName": "bench-churn", "predictionColumns": ["churn_probability"]},
    },
    "bedrock": {
        "keyColumn": "id",
        "service": {
            "provider": "bedrock",
            "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
            "roleArn": ROLE,
            "promptColumn": "prompt",
        },
    },
    "amazonml": {
        "keyColumn": "id",
        "service": {
            "provider": "amazonml",
            "mlModelId": "ml-bench-churn",
            "modelType": "BINARY",
            "dataSchema": AMAZONML_SCHEMA,
        },
    },
    "vertex": {
        "keyColumn": "id",
        "service": {
            "provider": "vertex",
            "project": "batchline-bench",
            "location": "us-central1",
            "model": "1234567890",
            "gcsPrefix": "gs://batchline-bench-staging/batchline",
            "numericColumns": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
            "predictionFields": ["label", "score"],
            "federation": {
                "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/aws",
                "serviceAccountEmail": "runner@batchline-bench.iam.gserviceaccount.com",
            },
        },
    },
    "personalize": {
        "keyColumn": "userId",
        "service": {
            "provider": "personalize",
            "recipe": "USER_PERSONALIZATION",
            "solutionVersionArn": "arn:aws:personalize:us-east-1:123456789012:solution/bench/1",
            "roleArn": ROLE,
        },
    },
}
LABELS = {
    "sagemaker": "SageMaker (CSV .out per part)",
    "bedrock": "Bedrock (JSONL .out + manifest)",
    "amazonml": "Amazon ML (gzip CSV + .manifest)",
    "vertex": "Vertex AI (predictions_*.jsonl)",
    "personalize": "Personalize (one .out shard)",
    "reconcile": "Personalize reconcile (Assemble)",
}
PROVIDERS = list(PIPELINES)


# --- Stand-ins for S3, Cloud Storage and Vertex AI over local files ---------------------------------------


class NoSuchKey(ClientError):
    pass


class _Exceptions:
    ClientError = ClientError
    NoSuchKey = NoSuchKey


class _Body:
    """A GetObject body: read(amt) and close(), limited to the requested range."""

    def __init__(self, handle: BinaryIO, remaining: int | None) -> None:
        self._handle, self._remaining = handle, remaining

    def read(self, amt: int | None = None) -> bytes:
        if self._remaining is not None:
            amt = self._remaining if amt is None else min(amt, self._remaining)
        data = self._handle.read() if amt is None else self._handle.read(amt)
        if self._remaining is not None:
            self._remaining -= len(data)
        return data

    def close(self) -> None:
        self._handle.close()


class _ListObjectsV2:
    def __init__(self, s3: LocalS3) -> None:
        self._s3 = s3

    def paginate(self, *, Bucket: str, Prefix: str = "") -> Iterator[dict[str, Any]]:  # noqa: N803 (boto3's names)
        keys = self._s3.keys(Bucket, Prefix)
        if not keys:
            yield {"KeyCount": 0}
        for start in range(0, len(keys), 1000):  # S3's page size
            page = [
                {"Key": key, "Size": self._s3.path(Bucket, key).stat().st_size} for key in keys[start : start + 1000]
            ]
            yield {"Contents": page, "KeyCount": len(page)}


class LocalS3:
    """Just the S3 client calls Collect makes, over files: bucket/key is ``root/bucket/key``."""

    exceptions = _Exceptions

    def __init__(self, root: Path) -> None:
        self._root = root

    def path(self, bucket: str, key: str) -> Path:
        return self._root / bucket / key

    def keys(self, bucket: str, prefix: str) -> list[str]:
        """Every key under the prefix, in S3's order."""
        base = self._root / bucket
        folder = base / posixpath.dirname(prefix)
        found = [path.relative_to(base).as_posix() for path in folder.rglob("*") if path.is_file()]
        return sorted(key for key in found if key.startswith(prefix))

    def get_paginator(self, operation: str) -> _ListObjectsV2:
        assert operation == "list_objects_v2", operation
        return _ListObjectsV2(self)

    def get_object(self, *, Bucket: str, Key: str, Range: str | None = None, VersionId: str | None = None) -> Any:  # noqa: N803
        path = self.path(Bucket, Key)
        if not path.is_file():
            raise NoSuchKey({"Error": {"Code": "NoSuchKey", "Message": f"no {Key}"}}, "GetObject")
        handle = path.open("rb")
        remaining = None
        if Range:
            first, _, last = Range.removeprefix("bytes=").partition("-")
            handle.seek(int(first))
            remaining = int(last) - int(first) + 1 if last else None
        return {"Body": _Body(handle, remaining), "ContentLength": path.stat().st_size}

    def head_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        path = self.path(Bucket, Key)
        if not path.is_file():
            raise ClientError({"Error": {"Code": "404", "Message": "Not Found"}}, "HeadObject")
        return {"ContentLength": path.stat().st_size}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:  # noqa: N803
        path = self.path(Bucket, Key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(Body)
        return {}

    def upload_file(self, Filename: str, Bucket: str, Key: str, ExtraArgs: Any = None) -> None:  # noqa: N803
        path = self.path(Bucket, Key)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Filename, path)

    def download_file(self, Bucket: str, Key: str, Filename: str) -> None:  # noqa: N803
        shutil.copyfile(self.path(Bucket, Key), Filename)


class LocalCloudStorage:
    """CloudStorage's list and lines (streamed, blank lines skipped) over files: ``root/bucket/name``."""

    def __init__(self, root: Path) -> None:
        self._s3 = LocalS3(root)

    def path(self, bucket: str, name: str) -> Path:
        return self._s3.path(bucket, name)

    def list(self, bucket: str, prefix: str) -> Iterator[str]:
        yield from self._s3.keys(bucket, prefix)

    def lines(self, bucket: str, name: str) -> Iterator[str]:
        with self.path(bucket, name).open("rb") as handle:
            for raw in handle:
                line = raw.rstrip(b"\r\n")
                if line:
                    yield line.decode("utf-8")

    def delete(self, bucket: str, name: str) -> None:
        self.path(bucket, name).unlink()


class LocalVertexJobs:
    """VertexJobs.get and find for one succeeded job whose results are in ``output_dir``."""

    def __init__(self, name: str, output_dir: str, state: str) -> None:
        self._job = {"name": name, "state": state, "outputInfo": {"gcsOutputDirectory": output_dir}}

    def get(self, name: str) -> dict[str, Any]:
        return dict(self._job)

    def find(self, label: str, value: str) -> dict[str, Any] | None:
        return dict(self._job)


# --- Runs on disk, in each provider's layout --------------------------------------------------------------


def key_of(n: int) -> str:
    return f"id-{n:09d}"


def fails(n: int) -> bool:
    return n % FAIL_EVERY == FAIL_EVERY - 1


def failed_in(parts: list[tuple[str, range]]) -> int:
    return sum(fails(n) for _, numbers in parts for n in numbers)


def write_lines(handle: Any, numbers: Iterable[int], line: Callable[[int], str]) -> int:
    """Formats and writes the records' lines in blocks; returns the bytes written."""
    written, block = 0, []
    for n in numbers:
        block.append(line(n))
        if len(block) == _BLOCK:
            written += handle.write("".join(block).encode())
            block = []
    return written + handle.write("".join(block).encode())


@dataclass
class Generated:
    """One provider's run on disk and the unit to collect, with what the unit must report."""

    provider: str
    records: int
    chunk: dict[str, Any]
    staging: dict[str, Any]
    job: dict[str, Any]  # jobId, status, rawStatus
    units_in_run: int
    unit_records: int  # what the first unit holds: the whole job, or the first shard
    unit_failed: int  # of which the service answered with an error
    reconcile: dict[str, Any] | None = None  # Personalize: the AssembleOutput step over every key
    # Records and failures of what a unit may hold alone: a staged part (SageMaker, Amazon ML), by name, or a
    # result file (Vertex AI), by URI, when the job is over collectUnitRecords.
    unit_counts: dict[str, tuple[int, int]] | None = None


class RunWriter:
    """Writes a run's staged parts, index sidecars and service output under one folder."""

    def __init__(self, folder: Path, provider: str, records: int) -> None:
        from batchline.layout import RunLayout

        self.folder, self.provider, self.records = folder, provider, records
        self.s3 = LocalS3(folder / "s3")
        self.gcs = LocalCloudStorage(folder / "gcs")
        self.pipeline = parse(provider)
        self.layout = RunLayout(self.pipeline.name, RUN_ID, WORK_BUCKET, RESULTS_BUCKET)

    def open(self, key: str, mode: str = "wb") -> Any:
        path = self.s3.path(WORK_BUCKET, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open(mode)

    def jobs(self, encoder: Any, input_line: Callable[[int], str]) -> list[list[tuple[str, range]]]:
        """Parts of recordsPerFile grouped into jobs by Prepare's own grouping: [[(part name, records)]]."""
        from batchline.prepare import StagedPart, chunk_parts

        per_file, line_bytes = encoder.max_records_per_file, len(input_line(0).encode())
        ranges = [range(lo, min(lo + per_file, self.records)) for lo in range(0, self.records, per_file)]
        names = [f"part-{index:05d}{encoder.suffix}" for index in range(len(ranges))]
        parts = [StagedPart(name, "", "", len(r), len(r) * line_bytes) for name, r in zip(names, ranges, strict=True)]
        groups = chunk_parts(parts, encoder.limits, "bench.csv")
        return [[(names[i], ranges[i]) for i in group] for group in groups]

    def stage(
        self,
        parts: list[tuple[str, range]],
        jobs: int,
        input_line: Callable[[int], str],
        record_id: Callable[[int], str],
    ) -> dict[str, Any]:
        """Job 0's staged input (where its job reads it) and every part's index; returns the chunk."""
        from batchline.adapters.base import Chunk

        prefix = self.layout.job_input_prefix(0, jobs)
        for name, numbers in parts:
            with self.open(prefix.key + name) as handle:
                write_lines(handle, numbers, input_line)
            with self.open(self.layout.index_for(name).key) as handle:
                write_lines(handle, numbers, lambda n: f"{n + 2},{key_of(n)},{record_id(n)}\n")
        records = sum(len(numbers) for _, numbers in parts)
        return Chunk(0, prefix, self.layout.job_output_prefix(0), records).to_json()


def parse(provider: str) -> Any:
    """The provider's bench pipeline; BENCH_COLLECT_UNIT_RECORDS overrides collectUnitRecords (to see small units)."""
    from batchline.config import parse_pipelines

    config = dict(PIPELINES[provider])
    if os.environ.get("BENCH_COLLECT_UNIT_RECORDS"):
        config["collectUnitRecords"] = int(os.environ["BENCH_COLLECT_UNIT_RECORDS"])
    return parse_pipelines({f"bench-{provider}": config}).get(f"bench-{provider}")


def generate_sagemaker(run: RunWriter) -> Generated:
    """Staged ``key,features`` CSV; ``<part>.out`` with ``key,prediction`` (DataProcessing's join) per part."""
    from batchline.adapters.sagemaker import SageMakerCsvEncoder

    def input_line(n: int) -> str:
        return f"{key_of(n)},{n % 72},{20 + n % 9000 / 100:.2f},{n % 11},{n % 5}\n"

    jobs = run.jobs(SageMakerCsvEncoder(run.pipeline.service), input_line)
    chunk = run.stage(jobs[0], len(jobs), input_line, key_of)
    output = run.layout.job_output_prefix(0).key
    for name, numbers in jobs[0]:
        with run.open(f"{output}{name}.out") as handle:
            write_lines(handle, numbers, lambda n: f"{key_of(n)},{n * 7919 % 1_000_000 / 1e6:.6f}\n")
    return Generated(
        "sagemaker",
        run.records,
        chunk,
        {"keyHeader": "id", "featureColumns": ["tenure_months", "monthly_charges", "support_tickets", "late_payments"]},
        {"jobId": "bench-run-0", "status": "SUCCEEDED", "rawStatus": "Completed"},
        units_in_run=len(jobs),
        unit_records=chunk["records"],
        unit_failed=0,  # the model answers every record: SageMaker fails whole files, not records
        unit_counts={name: (len(numbers), 0) for name, numbers in jobs[0]},
    )


def generate_bedrock(run: RunWriter) -> Generated:
    """Staged ``{recordId, modelInput}`` lines; ``<job-id>/<part>.out`` in no order, plus manifest.json.out."""
    from batchline.adapters.bedrock import MANIFEST, BedrockJsonEncoder

    settings = run.pipeline.service

    def body(n: int) -> str:
        prompt = f"In two sentences, explain topic {n % 5000} to a curious ten-year-old."
        return json.dumps(
            {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": settings.max_tokens,
                "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
            }
        )

    def input_line(n: int) -> str:
        return f'{{"recordId": "R{n:011d}", "modelInput": {body(n)}}}\n'

    answer = json.dumps("It is a long story, told simply: " + "words that a model might return, " * 12)

    def output_line(n: int) -> str:
        if fails(n):
            error = '{"errorCode": 400, "errorMessage": "Malformed input request, please reformat your input"}'
            return f'{{"recordId": "R{n:011d}", "modelInput": {body(n)}, "error": {error}}}\n'
        model_output = (
            f'{{"id": "msg_{n:020d}", "type": "message", "role": "assistant", "model": "claude-3-haiku-20240307", '
            f'"content": [{{"type": "text", "text": {answer}}}], "stop_reason": "end_turn", '
            f'"usage": {{"input_tokens": 24, "output_tokens": 96}}}}'
        )
        return f'{{"recordId": "R{n:011d}", "modelInput": {body(n)}, "modelOutput": {model_output}}}\n'

    jobs = run.jobs(BedrockJsonEncoder(settings), input_line)
    chunk = run.stage(jobs[0], len(jobs), input_line, lambda n: f"R{n:011d}")
    output = run.layout.job_output_prefix(0).key + "abcdef123456/"
    succeeded = 0
    for name, numbers in jobs[0]:
        with run.open(f"{output}{name}.out") as handle:
            write_lines(handle, reversed(numbers), output_line)  # Bedrock keeps no order
        succeeded += sum(1 for n in numbers if not fails(n))
    total = chunk["records"]
    manifest = {
        "totalRecordCount": total,
        "processedRecordCount": total,
        "successRecordCount": succeeded,
        "errorRecordCount": total - succeeded,
    }
    with run.open(output + MANIFEST) as handle:
        handle.write(json.dumps(manifest).encode())
    return Generated(
        "bedrock",
        run.records,
        chunk,
        {"keyHeader": "id", "modelFamily": settings.resolved_family},
        {
            "jobId": "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdef123456",
            "status": "PARTIAL",
            "rawStatus": "PartiallyCompleted",
        },
        units_in_run=len(jobs),
        unit_records=chunk["records"],
        unit_failed=failed_in(jobs[0]),
    )


def generate_amazonml(run: RunWriter) -> Generated:
    """Staged CSV in schema order; gzip CSV results (header, rowId first, blank = unscored) and a .manifest."""
    from batchline.adapters.amazonml import AmazonMLCsvEncoder, batch_schema

    schema = batch_schema(AMAZONML_SCHEMA, "id")
    plans = ("basic", "plus", "pro")

    def input_line(n: int) -> str:
        return f"{18 + n % 60},{plans[n % 3]},{10 + n % 20000 / 100:.2f},,{key_of(n)}\n"

    def result_line(n: int) -> str:
        if fails(n):
            return "\n"
        score = n * 7919 % 1_000_000 / 1e6
        return f"{key_of(n)},{int(score > 0.5)},{score:.6E}\n"

    jobs = run.jobs(AmazonMLCsvEncoder(run.pipeline.service, schema), input_line)
    chunk = run.stage(jobs[0], len(jobs), input_line, key_of)
    output = run.layout.job_output_prefix(0).key + "batch-prediction/"
    bp_id = "bp-bench-run-0"
    manifest = {}
    for name, numbers in jobs[0]:
        result_key = f"{output}result/{bp_id}-{name}.gz"
        with run.open(result_key) as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) as handle:
            handle.write(b"tag,bestAnswer,score\n")  # the rowId column, as Amazon ML heads it
            write_lines(handle, numbers, result_line)
        input_uri = f"s3://{WORK_BUCKET}/{run.layout.job_input_prefix(0, len(jobs)).key}{name}"
        manifest[input_uri] = f"s3://{WORK_BUCKET}/{result_key}"
    with run.open(f"{output}{bp_id}.manifest") as handle:
        handle.write(json.dumps(manifest).encode())
    return Generated(
        "amazonml",
        run.records,
        chunk,
        {"keyHeader": "id", "dataSchema": schema},
        {"jobId": bp_id, "status": "SUCCEEDED", "rawStatus": "COMPLETED"},
        units_in_run=len(jobs),
        unit_records=chunk["records"],
        unit_failed=failed_in(jobs[0]),
        unit_counts={name: (len(numbers), failed_in([(name, numbers)])) for name, numbers in jobs[0]},
    )


VERTEX_JOB = "projects/batchline-bench/locations/us-central1/batchPredictionJobs/1234567890"


def vertex_output_dir() -> str:
    return f"gs://batchline-bench-staging/batchline/bench-vertex/{RUN_ID}/job-00000/output/prediction-m-2026_01_01"


def generate_vertex(run: RunWriter) -> Generated:
    """Staged instance lines; in "GCS", ``predictions_NNNNN.jsonl`` ({key, prediction}) and ``errors_00001``."""
    from batchline.adapters.google_apis import split_gcs_uri
    from batchline.adapters.vertex import VertexJsonEncoder

    def instance(n: int) -> str:
        return (
            f'"sepal_length": {4 + n % 40 / 10}, "sepal_width": {2 + n % 25 / 10}, '
            f'"petal_length": {1 + n % 60 / 10}, "petal_width": {n % 25 / 10}'
        )

    def input_line(n: int) -> str:
        return f'{{"id": "{key_of(n)}", {instance(n)}}}\n'

    def prediction_line(n: int) -> str:
        if fails(n):
            return ""
        score = n * 7919 % 10_000 / 10_000
        label = "yes" if score > 0.5 else "no"
        return f'{{"key": "{key_of(n)}", "prediction": {{"score": {score}, "label": "{label}"}}}}\n'

    def error_line(n: int) -> str:
        if not fails(n):
            return ""
        return f'{{"instance": {{"id": "{key_of(n)}", {instance(n)}}}, "error": {{"code": 3, "message": "invalid"}}}}\n'

    jobs = run.jobs(VertexJsonEncoder(run.pipeline.service, "id"), input_line)
    chunk = run.stage(jobs[0], len(jobs), input_line, key_of)
    bucket, prefix = split_gcs_uri(vertex_output_dir() + "/")
    for number, (_, numbers) in enumerate(jobs[0], start=1):
        path = run.gcs.path(bucket, f"{prefix}predictions_{number:05d}.jsonl")
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            write_lines(handle, numbers, prediction_line)
    with run.gcs.path(bucket, f"{prefix}errors_00001.jsonl").open("wb") as handle:
        write_lines(handle, range(chunk["records"]), error_line)
    files = {
        f"gs://{bucket}/{prefix}predictions_{number:05d}.jsonl": (len(numbers) - failed_in([(name, numbers)]), 0)
        for number, (name, numbers) in enumerate(jobs[0], start=1)
    }
    failed = failed_in(jobs[0])
    return Generated(
        "vertex",
        run.records,
        chunk,
        {"keyHeader": "id"},
        {"jobId": VERTEX_JOB, "status": "SUCCEEDED", "rawStatus": "JOB_STATE_SUCCEEDED"},
        units_in_run=len(jobs),
        unit_records=chunk["records"],
        unit_failed=failed,
        unit_counts={**files, f"gs://{bucket}/{prefix}errors_00001.jsonl": (failed, failed)},
    )


def generate_personalize(run: RunWriter) -> Generated:
    """Staged ``{"userId"}`` lines; ``<part>.out`` echoing the input with 25 items and scores (errors too).

    While the .out objects are written, the keys and failed lines each collectShardBytes range owns are
    written beside them: what every shard's unit would leave for AssembleOutput's reconcile.
    """
    from batchline.adapters.personalize import PersonalizeJsonEncoder

    shard_bytes = run.pipeline.collect_shard_bytes
    outputs = []
    for variant in range(997):  # distinct recommendation lists, cycled (a pure-Python generator at 10M lines)
        items = [f"item-{(variant * 7919 + rank * 104729) % 100_000:06d}" for rank in range(25)]
        scores = [round(0.9 - rank * 0.03 - variant / 1e6, 7) for rank in range(25)]
        outputs.append(json.dumps({"recommendedItems": items, "scores": scores}))

    def input_line(n: int) -> str:
        return f'{{"userId": "{key_of(n)}"}}\n'

    def output_line(n: int) -> str:
        if fails(n):
            return f'{{"input": {{"userId": "{key_of(n)}"}}, "output": null, "error": "User not found"}}\n'
        return f'{{"input": {{"userId": "{key_of(n)}"}}, "output": {outputs[n % 997]}, "error": null}}\n'

    jobs = run.jobs(PersonalizeJsonEncoder(run.pipeline.service), input_line)
    chunk = run.stage(jobs[0], len(jobs), input_line, key_of)
    output = run.layout.job_output_prefix(0).key
    sidecars = run.folder / "shards"
    sidecars.mkdir()
    keys_paths, failed_paths, first_shard = [], [], (0, 0)
    for name, numbers in jobs[0]:
        with run.open(f"{output}{name}.out") as handle:
            shard, position, keys, failed = -1, 0, None, None
            for n in numbers:
                line = output_line(n).encode()
                if position // shard_bytes != shard:  # this line starts in the next shard
                    shard = position // shard_bytes
                    for sidecar in (keys, failed):
                        if sidecar:
                            sidecar.close()
                    keys_paths.append(str(sidecars / f"{name}-{shard:03d}.keys.csv"))
                    failed_paths.append(str(sidecars / f"{name}-{shard:03d}.failed.csv"))
                    keys, failed = open(keys_paths[-1], "w"), open(failed_paths[-1], "w")  # noqa: SIM115
                assert keys is not None and failed is not None
                keys.write(key_of(n) + "\n")
                if fails(n):
                    failed.write(f"{key_of(n)},Personalize: User not found\n")
                if name == jobs[0][0][0] and shard == 0:
                    first_shard = (first_shard[0] + 1, first_shard[1] + fails(n))
                handle.write(line)
                position += len(line)
            for sidecar in (keys, failed):
                if sidecar:
                    sidecar.close()
    index_paths = [str(run.s3.path(WORK_BUCKET, run.layout.index_for(name).key)) for name, _ in jobs[0]]
    generated = Generated(
        "personalize",
        run.records,
        chunk,
        {"keyHeader": "userId", "queryField": "userId"},
        {
            "jobId": "arn:aws:personalize:us-east-1:123456789012:batch-inference-job/bench",
            "status": "SUCCEEDED",
            "rawStatus": "ACTIVE",
        },
        units_in_run=len(jobs),
        unit_records=first_shard[0],
        unit_failed=first_shard[1],
    )
    generated.reconcile = {
        "index": index_paths,
        "keys": keys_paths,
        "failed": [path for path in failed_paths if os.path.getsize(path) > 0],
        "failedRows": sum(fails(n) for n in range(chunk["records"])),
    }
    return generated


GENERATORS: dict[str, Callable[[RunWriter], Generated]] = {
    "sagemaker": generate_sagemaker,
    "bedrock": generate_bedrock,
    "amazonml": generate_amazonml,
    "vertex": generate_vertex,
    "personalize": generate_personalize,
}


# --- The measured child --------------------------------------------------------------------------------------


def adapter_for(provider: str, pipeline: Any, s3: LocalS3, gcs_root: Path) -> Any:
    """The provider's adapter as batchline.adapters.adapter_for builds it, over the local stand-ins."""
    settings = pipeline.service
    if provider == "sagemaker":
        from batchline.adapters.sagemaker import SageMakerAdapter

        return SageMakerAdapter(settings, None, s3)
    if provider == "bedrock":
        from batchline.adapters.bedrock import BedrockAdapter

        return BedrockAdapter(settings, None, s3)
    if provider == "amazonml":
        from batchline.adapters.amazonml import AmazonMLAdapter

        return AmazonMLAdapter(settings, pipeline.key_column, None, s3)
    if provider == "vertex":
        from batchline.adapters.vertex import VertexAdapter

        jobs = LocalVertexJobs(VERTEX_JOB, vertex_output_dir(), "JOB_STATE_SUCCEEDED")
        return VertexAdapter(settings, pipeline.key_column, jobs, LocalCloudStorage(gcs_root), s3)  # type: ignore[arg-type]
    from batchline.adapters.personalize import PersonalizeAdapter

    return PersonalizeAdapter(settings, None, s3)


def context(provider: str, generated: dict[str, Any], folder: Path) -> tuple[Any, Any, Any, Any]:
    """(adapter, RunContext, JobState, local S3) of a generated run, as the flow rebuilds them from the state."""
    from batchline.adapters.base import Chunk, JobState, JobStatus, RunContext
    from batchline.layout import RunLayout

    pipeline = parse(provider)
    s3 = LocalS3(folder / "s3")
    run = RunContext(
        run_id=RUN_ID,
        pipeline=pipeline,
        layout=RunLayout(pipeline.name, RUN_ID, WORK_BUCKET, RESULTS_BUCKET),
        staging=generated["staging"],
        chunk=Chunk.from_json(generated["chunk"]),
    )
    job = generated["job"]
    state = JobState(job["jobId"], JobStatus(job["status"]), job["rawStatus"])
    return adapter_for(provider, pipeline, s3, folder / "gcs"), run, state, s3


def _lambda_init(handler: str) -> float:
    """Imports the handler module and makes its S3 client, as the function's init does; returns RSS in MB."""
    import importlib

    module = importlib.import_module(f"handlers.{handler}")
    _ = module.clients.s3
    return peak_mb()


def own_peak_mb() -> float:
    """This process image's own high-water RSS. Linux starts a child's ru_maxrss at its spawner's current
    RSS, so the two differ only when the spawner was the larger: then this is the step's figure."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def generate(spec: dict[str, Any]) -> dict[str, Any]:
    """Writes the run and plans it as PlanCollect does; returns the specs of the steps to measure."""
    from batchline.collect import plan_units

    folder, provider = Path(spec["folder"]), spec["provider"]
    generated = GENERATORS[provider](RunWriter(folder, provider, spec["records"]))
    collect = {
        "step": "collect",
        "provider": provider,
        "folder": str(folder),
        "chunk": generated.chunk,
        "staging": generated.staging,
        "job": generated.job,
    }
    adapter, run, job, s3 = context(provider, collect, folder)
    units = plan_units(
        s3,
        adapter,
        [(run, job)],
        shard_bytes=run.pipeline.collect_shard_bytes,
        unit_records=run.pipeline.collect_unit_records,
    )
    unit_records, unit_failed = generated.unit_records, generated.unit_failed
    measured = units[0]
    counts = generated.unit_counts
    if counts and len(units) > 1:
        # A job over collectUnitRecords: units are runs of its parts or its result files; measure the largest.
        def held(unit: Any) -> tuple[str, ...]:
            return unit.parts if unit.parts is not None else (unit.output_key,)

        measured = max(units, key=lambda unit: sum(counts[name][0] for name in held(unit)))
        unit_records = sum(counts[name][0] for name in held(measured))
        unit_failed = sum(counts[name][1] for name in held(measured))
    collect["unit"] = measured.to_json()
    return {
        "collect": collect,
        "unitRecords": unit_records,
        "unitsInRun": generated.units_in_run * len(units),
        "expected": {"predicted": unit_records - unit_failed, "failed": unit_failed},
        "reconcile": generated.reconcile and {"step": "reconcile", "folder": str(folder), **generated.reconcile},
    }


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs in its own process: one CollectUnit, or AssembleOutput's reconcile; its peak RSS is the step's."""
    folder = Path(spec["folder"])
    os.environ["BATCHLINE_SCRATCH_DIR"] = str(folder / "scratch")
    if spec["step"] == "generate":
        return generate(spec)
    step: Callable[[], dict[str, Any]]
    if spec["step"] == "reconcile":
        baseline = _lambda_init("assemble_output")
        from batchline import keyed

        def step() -> dict[str, Any]:
            result = keyed.reconcile(
                keyed.connect(str(folder / "scratch"), memory_limit=keyed.RECONCILE_MEMORY_LIMIT),
                index_paths=spec["index"],
                keys_paths=spec["keys"],
                failed_paths=spec["failed"],
                out_path=str(folder / "scratch" / "reconciled.csv"),
                source_name="s3://inbox/bench.csv",
                missing_reason="Personalize returned no output line for it ({part})",
            )
            return {"failed": result.failed}
    else:
        baseline = _lambda_init("collect_unit")
        from batchline.collect import CollectUnit, collect_unit

        adapter, run, job, s3 = context(spec["provider"], spec, folder)

        def step() -> dict[str, Any]:
            return collect_unit(
                s3,
                adapter,
                run,
                job,
                CollectUnit.from_json(spec["unit"]),
                key_header=spec["staging"]["keyHeader"],
                source_name="s3://inbox/bench.csv",
                spreadsheet_safe=run.pipeline.spreadsheet_safe,
            )

    start = time.perf_counter()
    try:
        summary = step()
    except Exception as exc:  # the step's own failure (DuckDB out of memory) is a result to report
        summary = {"crashed": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "peak_mb": peak_mb(),
        "own_peak_mb": own_peak_mb(),
        "baseline_mb": baseline,
        "summary": summary,
    }


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'lambdas'}",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.collect_formats", "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=CHILD_TIMEOUT_SECONDS,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{spec['step']} child failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# --- Parent: generate, measure, clean up (all in children: this process stays small, see own_peak_mb) ----------


@dataclass
class Row:
    step: str
    records: int
    unit_records: int
    units_in_run: int
    seconds: float
    peak_mb: float  # ru_maxrss
    own_peak_mb: float  # VmHWM
    baseline_mb: float
    crashed: str | None = None  # the step raised (the peak is the one it reached)

    @property
    def inherited(self) -> bool:
        """ru_maxrss started at the spawner's RSS and never went above it: it is not this step's peak."""
        return self.peak_mb > self.own_peak_mb + 1

    @property
    def peak(self) -> float:
        return self.own_peak_mb if self.inherited else self.peak_mb


def measure(provider: str, records: int, scratch: Path) -> list[Row]:
    """Generate the provider's run, collect its first unit (and reconcile, for Personalize); clean up."""
    folder = Path(tempfile.mkdtemp(prefix=f"collect-{provider}-", dir=scratch))
    try:
        (folder / "scratch").mkdir()
        plan = run_child({"step": "generate", "provider": provider, "records": records, "folder": str(folder)})
        result = run_child(plan["collect"])
        summary = result["summary"]
        wrong = any(summary.get(name) != value for name, value in plan["expected"].items())
        if "error" in summary or ("crashed" not in summary and wrong):
            raise AssertionError(f"{provider} at {records:,}: expected {plan['expected']}, the unit reported {summary}")
        unit = plan["unitRecords"], plan["unitsInRun"]
        rows = [Row(provider, records, *unit, result["seconds"], *_memory(result), summary.get("crashed"))]
        if plan["reconcile"]:
            result = run_child(plan["reconcile"])
            summary = result["summary"]
            if "crashed" not in summary and summary["failed"] != plan["reconcile"]["failedRows"]:
                raise AssertionError(f"reconcile at {records:,}: {summary}, expected {plan['reconcile']['failedRows']}")
            rows.append(
                Row("reconcile", records, records, 1, result["seconds"], *_memory(result), summary.get("crashed"))
            )
        return rows
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _memory(result: dict[str, Any]) -> tuple[float, float, float]:
    return result["peak_mb"], result["own_peak_mb"], result["baseline_mb"]


def flat_verdict(small: float, large: float) -> bool:
    """Flat: the larger run's peak within max(10%, 16 MB) of the smaller run's."""
    return large - small <= max(0.1 * small, 16)


def main(sizes: list[int], providers: list[str] | None = None) -> dict[str, list[Row]]:
    """Measures every provider (and Personalize's reconcile) at each size, prints one table, returns the rows."""
    sizes = sorted(sizes)
    scratch = Path(os.environ.get("BENCH_SCRATCH_DIR") or tempfile.gettempdir())
    measured: dict[str, list[Row]] = {}
    for provider in providers or PROVIDERS:
        for records in sizes:
            for row in measure(provider, records, scratch):
                measured.setdefault(row.step, []).append(row)
            print(f"  measured {provider} at {records:,} records", file=sys.stderr)
    lines: list[list[str]] = []
    crashes: list[str] = []
    for step, rows in measured.items():
        for row in rows:
            flat = "-"
            if row is rows[-1] and len(rows) > 1:
                flat = "flat" if flat_verdict(rows[0].peak, row.peak) else "GROWS"
                flat += f" ({row.peak - rows[0].peak:+.0f} MB)"
                if any(other.crashed for other in rows):
                    flat = "n/a (crashed)"
            if row.crashed:
                crashes.append(f"  ! {LABELS[step]} at {row.records:,} records raised {row.crashed}")
            lines.append(
                [
                    LABELS[step],
                    f"{row.records:,}",
                    f"{row.unit_records:,} (1 of {row.units_in_run})",
                    f"{row.seconds:.1f}" + (" !" if row.crashed else ""),
                    "crashed" if row.crashed else f"{row.unit_records / row.seconds:,.0f}",
                    f"{row.peak:.0f}{'*' if row.inherited else ''} (init {row.baseline_mb:.0f})",
                    "pass" if row.peak <= TARGET_MB and not row.crashed else "FAIL",
                    flat,
                ]
            )
    table(
        f"Collect peak memory, one unit per provider format (targets: <= {TARGET_MB} MB; flat = largest run's peak "
        "within max(10%, 16 MB) of the smallest's)",
        [
            "step",
            "records",
            "unit records (of run)",
            "seconds",
            "records/s",
            "peak RSS MB",
            f"<={TARGET_MB} MB",
            "flat",
        ],
        lines,
    )
    print(
        "  Unit = one job (Bedrock: maxRecordsPerJob 50,000), one Personalize .out shard (collectShardBytes 256 MiB),"
        "\n  or, in a job over collectUnitRecords (5M), a run of parts (SageMaker, Amazon ML), a result file (Vertex);"
        "\n  reconcile = AssembleOutput's keyed.reconcile over every key of the run. init = RSS after the handler's"
        "\n  import and S3 client. S3, GCS and Vertex AI are local-file stand-ins (no boto3 transfer buffers)."
    )
    for crash in crashes:
        print(crash)
    if any(row.inherited for rows in measured.values() for row in rows):
        print("  * the child's ru_maxrss began at its spawner's RSS: its own high-water mark (VmHWM) is shown.")
    return measured


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"run {QUICK_SIZES} records instead of {FULL_SIZES}")
    parser.add_argument("--records", type=int, nargs="+", help="run sizes to measure (overrides --quick)")
    parser.add_argument("--providers", nargs="+", choices=PROVIDERS, help="only these providers")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.stdout.write(json.dumps(child(json.loads(args.child))) + "\n")
    else:
        main(args.records or (QUICK_SIZES if args.quick else FULL_SIZES), args.providers)
