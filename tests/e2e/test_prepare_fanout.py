"""Prepare's fan-out end to end: a large upload cut into record-aligned shards, one Distributed Map child
each, merged into the same staged input, rejected rows and predictions a whole-file Prepare produces."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchline_local.runtime import BUCKETS, LocalRuntime, load_pipeline_context
from tests.e2e.conftest import SAMPLES, check_every_event, read_s3_csv

pytestmark = pytest.mark.timeout(300)
SERVICE = {
    "provider": "sagemaker",
    "modelName": "batchline-demo-churn",
    "instanceType": "ml.m5.large",
    "instanceCount": 1,
    "predictionColumns": ["churn_probability"],
    "recordsPerFile": 40,
}
PIPELINES = {
    # ~25-byte rows: 1 KiB shards put about forty records in each Map child.
    "s-sharded": {"keyColumn": "id", "prepareShardBytes": 1024, "maxConcurrentPreparers": 3, "service": SERVICE},
    "s-whole": {"keyColumn": "id", "service": SERVICE},
}


def with_demo_pipelines_cut() -> dict[str, Any]:
    """These pipelines, and every demo pipeline twice: as configured, and cut into shards of 512 bytes."""
    demo = load_pipeline_context()
    return {**PIPELINES, **demo, **{f"{name}-cut": {**p, "prepareShardBytes": 512} for name, p in demo.items()}}


@pytest.fixture(scope="module")
def runtime(validate_event: Any) -> Iterator[LocalRuntime]:
    with LocalRuntime(with_demo_pipelines_cut()) as local:
        yield local
        check_every_event(local, validate_event)


def messy_rows() -> list[list[str]]:
    """400 records with what a cut must not break: quoted newlines and commas, CRLF, bad rows, repeats."""
    rows = [[f"cust-{n:04d}", str(n % 37), f"{n * 1.5:.1f}"] for n in range(400)]
    rows[5][1] = "3"  # plain
    rows[50][0] = 'cust-0050"q'  # a doubled quote inside a quoted field
    for n in range(60, 400, 45):
        rows[n][2] = f"{n}.0\nsecond line, with a comma"  # a quoted newline, near every cut (not a number)
    rows[120][0] = ""  # blank key
    rows[200] = rows[200][:2]  # ragged
    rows[310][0] = "cust-0007"  # repeats a key of another shard
    rows[311][0] = "cust-0310x"
    rows[312][0] = "cust-0310x"  # repeats the key of the row before it (same shard)
    return rows


@pytest.fixture(scope="module")
def upload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fanout") / "customers.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(["id", "tenure", "charges"])
        writer.writerows(messy_rows())
    return path


@pytest.fixture(scope="module")
def runs(runtime: LocalRuntime, upload: Path) -> dict[str, Any]:
    return {name: runtime.run_file(upload, name, timeout_seconds=240) for name in PIPELINES}


def shard_calls(runtime: LocalRuntime, run_id: str) -> list[dict[str, Any]]:
    return [
        event["shard"]
        for name, event in runtime.invocations
        if name.endswith("PrepareInput") and event.get("step") == "shard" and event["run"]["runId"] == run_id
    ]


def test_a_large_upload_is_prepared_by_many_shards_into_the_same_results_as_one_read(
    runtime: LocalRuntime, runs: dict[str, Any]
) -> None:
    sharded, whole = runs["s-sharded"], runs["s-whole"]
    assert sharded.status == whole.status == "SUCCEEDED"
    calls = shard_calls(runtime, sharded.run_id)
    first_round = sorted((item for item in calls if "repeats" not in item), key=lambda item: item["index"])
    assert [item["index"] for item in first_round] == list(range(len(first_round)))
    assert len(first_round) >= 8 and all(item["end"] - item["start"] <= 1024 + 64 for item in first_round)
    assert [item["start"] for item in first_round[1:]] == [item["end"] for item in first_round[:-1]]
    assert not shard_calls(runtime, whole.run_id)
    detail, expected = sharded.event["detail"], whole.event["detail"]
    assert (
        detail["counts"]
        == expected["counts"]
        == {
            "input": 400,
            "sent": 388,
            "rejected": 12,
            "predicted": 388,
            "failed": 0,
        }
    )
    rows = read_s3_csv(runtime, detail["outputs"]["predictions"])
    assert rows == read_s3_csv(runtime, expected["outputs"]["predictions"])
    assert len(rows) == 388 and len({row["id"] for row in rows}) == 388
    assert 'cust-0050"q' in {row["id"] for row in rows}


def test_rejected_rows_name_the_same_lines_and_reasons_as_one_read(runtime: LocalRuntime, runs: dict[str, Any]) -> None:
    errors = read_s3_csv(runtime, runs["s-sharded"].event["detail"]["outputs"]["errors"])
    whole = read_s3_csv(runtime, runs["s-whole"].event["detail"]["outputs"]["errors"])
    # Each pipeline has its inbox prefix; everything else matches row for row.
    assert [{**e, "source_file": ""} for e in errors] == [{**e, "source_file": ""} for e in whole]
    assert all(e["source_file"].endswith("s-sharded/customers.csv") for e in errors)
    # Line numbers count the physical lines of quoted newlines before each row, as an editor shows them.
    line_break = "a cell contains a line break, which SageMaker's line split cannot carry"
    assert [(int(e["line"]), e["key"], e["reason"]) for e in errors] == [
        (62, "cust-0060", line_break),
        (108, "cust-0105", line_break),
        (124, "", "blank key"),
        (154, "cust-0150", line_break),
        (200, "cust-0195", line_break),
        (206, "cust-0200", "row has 2 fields, the header has 3"),
        (246, "cust-0240", line_break),
        (292, "cust-0285", line_break),
        (318, "cust-0007", "duplicate key 'cust-0007' (first seen on line 9)"),
        (320, "cust-0310x", "duplicate key 'cust-0310x' (first seen on line 319)"),
        (338, "cust-0330", line_break),
        (384, "cust-0375", line_break),
    ]


def test_only_the_shards_holding_a_repeated_key_are_read_again(runtime: LocalRuntime, runs: dict[str, Any]) -> None:
    calls = shard_calls(runtime, runs["s-sharded"].run_id)
    first_round = sorted((item for item in calls if "repeats" not in item), key=lambda item: item["index"])
    again = [item for item in calls if "repeats" in item]
    starts = [item["firstLine"] for item in first_round] + [10**9]
    holding = {
        index for index in range(len(first_round)) for line in (318, 320) if starts[index] <= line < starts[index + 1]
    }
    assert {item["index"] for item in again} == holding and 1 <= len(holding) <= 2  # the repeats' lines
    assert all(item["expectInput"] > 0 for item in again)
    staged = runtime.client("s3").list_objects_v2(
        Bucket=BUCKETS["work"], Prefix=f"s-sharded/{runs['s-sharded'].run_id}/input/"
    )
    names = [obj["Key"].rsplit("/", 1)[1] for obj in staged["Contents"]]
    assert names == sorted(names) and all(name.startswith("part-000") and name.count("-") == 2 for name in names)


def test_a_file_broken_late_fails_naming_its_line_and_stages_nothing(
    runtime: LocalRuntime, validate_event: Any, tmp_path: Path
) -> None:
    path = tmp_path / "broken.csv"
    lines = ["id,tenure,charges"] + [f"cust-{n:04d},{n},{n}.5" for n in range(300)]
    lines[250] = 'cust-0249,1,"2.5"x'  # a quote closed in the middle of a field: not CSV
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = runtime.run_file(path, "s-sharded", timeout_seconds=240)

    assert result.status == "FAILED" and result.event is not None
    validate_event(result.event)
    error = result.event["detail"]["error"]
    assert error["error"] == "InputRejected"
    assert error["cause"].endswith("broken.csv: line 251: cannot be parsed as CSV: ',' expected after '\"'")
    assert len(shard_calls(runtime, result.run_id)) >= 5
    staged = runtime.client("s3").list_objects_v2(Bucket=BUCKETS["work"], Prefix=f"s-sharded/{result.run_id}/input/")
    assert staged.get("KeyCount", 0) == 0


def test_json_lines_are_cut_on_any_newline(runtime: LocalRuntime, tmp_path: Path) -> None:
    path = tmp_path / "customers.jsonl"
    records = [{"id": f"cust-{n:04d}", "tenure": n % 37, "charges": n * 1.5} for n in range(200)]
    records[150]["tenure"] = "two\nlines"  # escaped in JSON: not a record boundary (nor a number: rejected)
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")

    result = runtime.run_file(path, "s-sharded", timeout_seconds=240)

    assert result.status == "SUCCEEDED" and result.event is not None
    assert len(shard_calls(runtime, result.run_id)) >= 5
    detail = result.event["detail"]
    assert detail["counts"] == {"input": 200, "sent": 199, "rejected": 1, "predicted": 199, "failed": 0}
    rows = read_s3_csv(runtime, detail["outputs"]["predictions"])
    assert [row["id"] for row in rows] == [record["id"] for record in records if record["id"] != "cust-0150"]
    errors = read_s3_csv(runtime, detail["outputs"]["errors"])
    assert [(e["line"], e["key"]) for e in errors] == [("151", "cust-0150")]


@pytest.mark.parametrize(
    "pipeline", ["demo-sagemaker", "demo-personalize", "demo-bedrock", "demo-amazonml", "demo-vertex"]
)
def test_every_service_gets_the_same_results_from_a_cut_upload(runtime: LocalRuntime, pipeline: str) -> None:
    sample = SAMPLES / f"{pipeline}.csv"
    whole = runtime.run_file(sample, pipeline, timeout_seconds=240)
    cut = runtime.run_file(sample, f"{pipeline}-cut", timeout_seconds=240)

    assert whole.status == cut.status == "SUCCEEDED" and whole.event and cut.event
    assert len(shard_calls(runtime, cut.run_id)) >= 2 and not shard_calls(runtime, whole.run_id)
    assert cut.event["detail"]["counts"] == whole.event["detail"]["counts"]
    rows = read_s3_csv(runtime, cut.event["detail"]["outputs"]["predictions"])
    # Same rows; Vertex and Bedrock results arrive in the service's order, so compare as sorted lists.
    assert sorted(map(str, rows)) == sorted(
        map(str, read_s3_csv(runtime, whole.event["detail"]["outputs"]["predictions"]))
    )
