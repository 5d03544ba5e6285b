"""Collect's fan-out end to end: Personalize output split into byte-range shards, one Distributed Map child
each, reassembled into the same predictions.csv a single unit produces."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from batchline_local.runtime import LocalRuntime
from tests.e2e.conftest import check_every_event, read_s3_csv, read_s3_json, write_csv

pytestmark = pytest.mark.timeout(240)
SERVICE = {
    "provider": "personalize",
    "recipe": "USER_PERSONALIZATION",
    "solutionVersionArn": "arn:aws:personalize:us-east-1:123456789012:solution/fanout/abc",
    "roleArn": "arn:aws:iam::123456789012:role/personalize-batch",
    "numResults": 3,
    "recordsPerFile": 50,  # three input parts, so three .out objects
}
PIPELINES = {
    # ~150-byte output lines: 1 KiB shards put about seven users in each Map child.
    "p-sharded": {"keyColumn": "userId", "collectShardBytes": 1024, "service": SERVICE},
    "p-whole": {"keyColumn": "userId", "service": SERVICE},
}
USERS = [f"user-{n:03d}" for n in range(120)]
USERS[10], USERS[64], USERS[101] = "error-user-a", "dropped-user-b", "error-user-c"


@pytest.fixture(scope="module")
def runtime(validate_event: Any) -> Iterator[LocalRuntime]:
    with LocalRuntime(PIPELINES) as local:
        yield local
        check_every_event(local, validate_event)


@pytest.fixture(scope="module")
def runs(runtime: LocalRuntime, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = write_csv(tmp_path_factory.mktemp("fanout") / "users.csv", ["userId"], [[u] for u in USERS])
    return {name: runtime.run_file(path, name, timeout_seconds=200) for name in PIPELINES}


def units_of(runtime: LocalRuntime, run_id: str) -> list[dict[str, Any]]:
    invoked = runtime.invocations
    return [e["unit"] for name, e in invoked if name.endswith("CollectUnit") and e["run"]["runId"] == run_id]


def test_large_output_is_collected_by_many_shards_into_the_same_csv_as_one_unit(
    runtime: LocalRuntime, runs: dict[str, Any]
) -> None:
    sharded, whole = runs["p-sharded"], runs["p-whole"]
    assert sharded.status == whole.status == "SUCCEEDED"
    shards = units_of(runtime, sharded.run_id)
    assert len(shards) > 3 * 5 and len({u["outputKey"] for u in shards}) == 3  # several byte ranges per .out
    assert all(u["end"] - u["start"] <= 1024 for u in shards)
    assert len(units_of(runtime, whole.run_id)) == 3  # default 256 MiB shards: one unit per .out object
    assert sharded.event and whole.event
    rows = read_s3_csv(runtime, sharded.event["detail"]["outputs"]["predictions"])
    expected = read_s3_csv(runtime, whole.event["detail"]["outputs"]["predictions"])
    assert sorted(map(tuple, (r.values() for r in rows))) == sorted(map(tuple, (r.values() for r in expected)))
    assert len(rows) == (120 - 3) * 3 and list(rows[0]) == ["userId", "rank", "item_id", "score"]


def test_service_errors_and_missing_lines_are_failed_records_with_their_input_lines(
    runtime: LocalRuntime, runs: dict[str, Any]
) -> None:
    detail = runs["p-sharded"].event["detail"]
    assert detail["status"] == "PARTIALLY_SUCCEEDED"
    assert detail["counts"] == {"input": 120, "sent": 120, "rejected": 0, "predicted": 117, "failed": 3}
    errors = read_s3_csv(runtime, detail["outputs"]["errors"])
    assert [(e["line"], e["key"]) for e in errors] == [
        ("12", "error-user-a"),
        ("66", "dropped-user-b"),
        ("103", "error-user-c"),
    ]
    assert "cannot score 'error-user-a'" in errors[0]["reason"]
    assert errors[1]["reason"] == "Personalize returned no output line for it (part-00001.jsonl)"
    assert runs["p-whole"].event["detail"]["counts"] == detail["counts"]


def test_manifest_lists_each_part_with_rows_and_a_checksum_that_match_the_assembled_file(
    runtime: LocalRuntime, runs: dict[str, Any]
) -> None:
    outputs = runs["p-sharded"].event["detail"]["outputs"]
    manifest = read_s3_json(runtime, outputs["manifest"])
    bucket, key = outputs["predictions"][5:].split("/", 1)
    body = runtime.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    parts = manifest["parts"]
    assert len(parts) > 3 and sum(p["bytes"] for p in parts) == len(body)
    assert sum(p["records"] for p in parts) == 117 and sum(p["rows"] for p in parts) == 117 * 3
    offset = 0
    for part in parts:
        piece = body[offset : offset + part["bytes"]]
        assert hashlib.sha256(piece).hexdigest() == part["sha256"]
        assert piece.count(b"\n") == part["rows"] + (1 if part["unit"] == 0 else 0)  # unit 0 carries the header
        offset += part["bytes"]
