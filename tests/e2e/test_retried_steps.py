"""A Lambda that dies mid-Collect or mid-Finalize and is retried produces the same outputs, never a partial one."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchline_local.runtime import BUCKETS, LocalRuntime
from tests.e2e.conftest import check_every_event, read_s3_json, write_csv

pytestmark = pytest.mark.timeout(120)
HEADER = ["id", "a", "b"]
ROWS = [["k1", 1, 2], ["k2", 3, 4], ["k1", 5, 6]]  # one duplicate: errors.csv is written too


@pytest.fixture(scope="module")
def runtime(validate_event: Any) -> Iterator[LocalRuntime]:
    with LocalRuntime() as local:
        yield local
        check_every_event(local, validate_event)


def versions(runtime: LocalRuntime, uri: str) -> list[bytes]:
    bucket, key = uri[5:].split("/", 1)
    s3 = runtime.client("s3")
    listed = s3.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
    return [
        s3.get_object(Bucket=bucket, Key=key, VersionId=v["VersionId"])["Body"].read()
        for v in listed
        if v["Key"] == key
    ]


def died(result: Any) -> list[str]:
    return [
        e["lambdaFunctionFailedEventDetails"]["error"] for e in result.history if e["type"] == "LambdaFunctionFailed"
    ]


def test_collect_unit_dying_before_its_upload_is_retried_into_the_same_csv(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    runtime.crash_once("CollectUnit", target="batchline.collect.upload_file", on_call=1)
    result = runtime.run_file(write_csv(tmp_path / "collect.csv", HEADER, ROWS), "demo-sagemaker")

    assert result.status == "SUCCEEDED"
    # The unit ran inside a Distributed Map child execution: its retry shows as a second invocation.
    units = [
        e for name, e in runtime.invocations if name.endswith("CollectUnit") and e["run"]["runId"] == result.run_id
    ]
    assert [e["unit"]["unit"] for e in units] == [0, 0]
    assert result.event is not None
    outputs = result.event["detail"]["outputs"]
    (only,) = versions(runtime, outputs["predictions"])  # never a partial object under the final name
    manifest = read_s3_json(runtime, outputs["manifest"])
    assert hashlib.sha256(only).hexdigest() == manifest["parts"][0]["sha256"]


def test_assemble_dying_mid_way_is_retried_into_one_predictions_object(runtime: LocalRuntime, tmp_path: Path) -> None:
    runtime.crash_once("AssembleOutput", target="batchline.collect.concatenate", on_call=1)
    result = runtime.run_file(write_csv(tmp_path / "assemble.csv", HEADER, ROWS), "demo-sagemaker")

    assert result.status == "SUCCEEDED"
    assert "Sandbox.Timedout" in died(result)
    assert result.event is not None
    (only,) = versions(runtime, result.event["detail"]["outputs"]["predictions"])
    assert only.decode().splitlines()[0].startswith("id,")


def test_finalize_dying_between_errors_and_manifest_rewrites_the_same_files(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    runtime.crash_once("FinalizeRun", target="batchline.steps.finalize.put_bytes", on_call=1)  # manifest write
    result = runtime.run_file(write_csv(tmp_path / "finalize.csv", HEADER, ROWS), "demo-sagemaker")

    assert result.status == "SUCCEEDED"
    assert "Sandbox.Timedout" in died(result)
    assert result.event is not None
    outputs = result.event["detail"]["outputs"]
    errors = versions(runtime, outputs["errors"])
    assert len(errors) == 2 and errors[0] == errors[1]  # written by both attempts, identical
    assert len(versions(runtime, outputs["manifest"])) == 1
    assert [e["detail"]["runId"] for e in runtime.published_events()].count(result.run_id) == 1


def test_results_of_a_run_are_never_overwritten_by_another(runtime: LocalRuntime, tmp_path: Path) -> None:
    first = runtime.run_file(write_csv(tmp_path / "same.csv", HEADER, ROWS[:2]), "demo-sagemaker")
    second = runtime.run_file(write_csv(tmp_path / "same.csv", HEADER, ROWS[:1]), "demo-sagemaker")

    assert first.event and second.event
    assert first.event["detail"]["outputs"]["predictions"] != second.event["detail"]["outputs"]["predictions"]
    listed = runtime.client("s3").list_object_versions(Bucket=BUCKETS["results"], Prefix="demo-sagemaker/")
    assert all(v["IsLatest"] for v in listed["Versions"] if first.run_id in v["Key"] and "predictions" in v["Key"])
