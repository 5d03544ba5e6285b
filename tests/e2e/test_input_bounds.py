"""Sizes are bounded before anything is read whole (a runtime of its own: its pipeline has a tiny bound)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from batchline import prepare

from batchline_local.runtime import BUCKETS, LocalRuntime
from tests.e2e.conftest import write_csv

pytestmark = pytest.mark.timeout(120)
HEADER = ["id", "tenure", "charges"]


def test_a_file_over_the_size_bound_is_refused_before_it_is_read(tmp_path: Path, validate_event: Any) -> None:
    pipelines = {
        "small": {
            "keyColumn": "id",
            "maxInputBytes": 64,
            "service": {"provider": "sagemaker", "modelName": "m", "predictionColumns": ["p"]},
        }
    }
    with LocalRuntime(pipelines) as local:
        result = local.run_file(write_csv(tmp_path / "big.csv", HEADER, [[f"k{n}", n, n] for n in range(20)]), "small")
    assert result.event is not None
    validate_event(result.event)
    assert result.event["detail"]["error"]["error"] == "InputRejected"
    assert "over this pipeline's maxInputBytes (64)" in result.event["detail"]["error"]["cause"]


def test_a_file_too_large_for_prepares_time_ends_in_one_failure_event_with_nothing_staged(
    tmp_path: Path, validate_event: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a Prepare that checks its time every 90 records and needs more margin than a function ever has left
    monkeypatch.setattr(prepare, "CHECK_EVERY_RECORDS", 90)
    monkeypatch.setattr(prepare, "STOP_MARGIN_SECONDS", 10_000.0)
    pipelines = {
        "big": {
            "keyColumn": "id",
            "service": {"provider": "sagemaker", "modelName": "m", "predictionColumns": ["p"], "recordsPerFile": 20},
        }
    }
    upload = write_csv(tmp_path / "huge.csv", HEADER, [[f"k{n}", n, n] for n in range(200)])
    with LocalRuntime(pipelines) as local:
        result = local.run_file(upload, "big")
        s3 = local.client("s3")
        staged_prefix = f"big/{result.run_id}/input/"
        work = s3.list_objects_v2(Bucket=BUCKETS["work"], Prefix=staged_prefix).get("Contents", [])
        deleted = s3.list_object_versions(Bucket=BUCKETS["work"], Prefix=staged_prefix).get("DeleteMarkers", [])
        inbox = s3.list_objects_v2(Bucket=BUCKETS["inbox"], Prefix="big/")["Contents"]
        prepares = [name for name, _ in local.invocations if name.endswith("PrepareInput")]
    # THEN one failure event names the file, the line reached and what to do; the run was not retried
    assert result.status == "FAILED"
    assert result.event is not None
    validate_event(result.event)
    error = result.event["detail"]["error"]
    assert error["error"] == "InputTooLarge"
    assert "huge.csv: line 91: Prepare stopped after reading 90 records" in error["cause"]
    assert "Split it into files of at most about" in error["cause"]
    assert len(prepares) == 1
    # AND the parts staged before the stop (four finished, the last two still held back) were deleted; the
    # upload is where it was
    assert work == []
    assert len(deleted) == 2
    assert [item["Key"] for item in inbox] == ["big/huge.csv"]
