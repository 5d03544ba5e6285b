"""End-to-end tier: the real ASL file and handlers on the local runtime."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchline_local.runtime import LocalRuntime

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.fixture(scope="module")
def runtime(validate_event: Any) -> Iterator[LocalRuntime]:
    with LocalRuntime() as local:
        yield local
        check_every_event(local, validate_event)


def check_every_event(local: LocalRuntime, validate_event: Any) -> None:
    """Every event the runtime published in the module, not only those a test looked at, meets the schema."""
    events = local.published_events()
    assert events, "the module's runs published no event"
    for event in events:
        validate_event(event)


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_s3_csv(runtime: LocalRuntime, uri: str) -> list[dict[str, str]]:
    bucket, key = uri[5:].split("/", 1)
    body = runtime.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return list(csv.DictReader(io.StringIO(body)))


def read_s3_json(runtime: LocalRuntime, uri: str) -> dict[str, Any]:
    bucket, key = uri[5:].split("/", 1)
    return dict(json.loads(runtime.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()))


def step_inputs(runtime: LocalRuntime, step: str, run_id: str) -> list[dict[str, Any]]:
    """What a run's step was invoked with, in order: a job's steps run in their own child executions, whose
    histories are not the run's, so this reads the runtime's record of invocations."""
    return [
        payload
        for name, payload in runtime.invocations
        if name.endswith(step) and isinstance(payload, dict) and payload.get("run", {}).get("runId") == run_id
    ]


def bedrock_pipeline(*, records_per_job: int, min_records: int = 1, **settings: Any) -> dict[str, Any]:
    """A Bedrock pipeline on prompts in a ``text`` column, keyed by ``id``, with jobs of ``records_per_job``
    records (``settings`` adds pipeline-level fields such as ``maxConcurrentJobs``)."""
    return {
        "keyColumn": "id",
        **settings,
        "service": {
            "provider": "bedrock",
            "modelId": "amazon.nova-lite-v1:0",
            "roleArn": "arn:aws:iam::123456789012:role/bedrock-batch",
            "promptColumn": "text",
            "minRecordsPerJob": min_records,
            "maxRecordsPerJob": records_per_job,
            "recordsPerFile": records_per_job,
        },
    }
