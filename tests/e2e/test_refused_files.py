"""Files refused as a whole on the local runtime: the failure event counts every record, nothing stays staged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchline_local.runtime import BUCKETS, LocalRuntime, load_pipeline_context
from tests.e2e.conftest import check_every_event, read_s3_csv, write_csv

pytestmark = pytest.mark.timeout(120)
PIPELINES = {
    **load_pipeline_context(),
    "b-min": {
        "keyColumn": "id",
        "service": {
            "provider": "bedrock",
            "modelId": "amazon.nova-lite-v1:0",
            "roleArn": "arn:aws:iam::123456789012:role/bedrock-batch",
            "promptColumn": "text",
            "minRecordsPerJob": 4,
            "onDemandBelowMinimum": False,  # a file under the minimum is refused, not answered on demand
            "maxRecordsPerJob": 10,
            "recordsPerFile": 10,
        },
    },
}


@pytest.fixture(scope="module")
def runtime(validate_event: Any) -> Iterator[LocalRuntime]:
    with LocalRuntime(PIPELINES) as local:
        yield local
        check_every_event(local, validate_event)


def staged_keys(runtime: LocalRuntime, run_id: str) -> list[str]:
    listing = runtime.client("s3").list_objects_v2(Bucket=BUCKETS["work"])
    return [item["Key"] for item in listing.get("Contents", []) if f"/{run_id}/" in item["Key"]]


def test_a_file_under_the_job_minimum_counts_every_record_and_leaves_nothing_staged(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    # GIVEN 3 valid prompts and 2 blank keys, for a service that needs at least 4 records per job
    rows = [["a", "x"], ["", "y"], ["b", "z"], ["", "w"], ["c", "v"]]
    result = runtime.run_file(write_csv(tmp_path / "few.csv", ["id", "text"], rows), "b-min")

    assert result.status == "FAILED" and result.event is not None
    detail = result.event["detail"]
    assert "3 valid records, but this service needs at least 4" in detail["error"]["cause"]
    assert detail["counts"] == {"input": 5, "sent": 3, "rejected": 2, "predicted": 0, "failed": 3}
    assert [row["line"] for row in read_s3_csv(runtime, detail["outputs"]["errors"])] == ["3", "5"]
    assert not [key for key in staged_keys(runtime, detail["runId"]) if "/input/" in key or "/index/" in key]


def test_a_count_just_over_a_whole_job_is_split_into_jobs_over_the_minimum(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    # 11 records, at most 10 per file and per job, at least 4 per job: parts of 10 and 1 used to be refused
    rows = [[f"k{n}", f"prompt {n}"] for n in range(11)]
    result = runtime.run_file(write_csv(tmp_path / "eleven.csv", ["id", "text"], rows), "b-min")

    assert result.event is not None
    detail = result.event["detail"]
    assert detail["status"] == "SUCCEEDED", detail.get("error")
    assert len(detail["jobs"]) == 2
    assert detail["counts"] == {"input": 11, "sent": 11, "rejected": 0, "predicted": 11, "failed": 0}
    assert sorted(row["id"] for row in read_s3_csv(runtime, detail["outputs"]["predictions"])) == sorted(
        f"k{n}" for n in range(11)
    )
