"""Collect's fan-out for services that write one ordered output file per staged part (SageMaker, Amazon ML):
a large job is collected by several Map children, each a run of consecutive parts, into the same CSV."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchline_local.runtime import LocalRuntime, load_pipeline_context
from tests.e2e.conftest import SAMPLES, check_every_event, read_s3_csv, read_s3_json

pytestmark = pytest.mark.timeout(240)
DEMO = load_pipeline_context()


def pipelines() -> dict[str, Any]:
    """Each service with parts of 10 records: collected whole, and in units of about 25 records (2 parts)."""
    configured: dict[str, Any] = {}
    for service in ("sagemaker", "amazonml"):
        demo = DEMO[f"demo-{service}"]
        small_parts = {**demo, "service": {**demo["service"], "recordsPerFile": 10}}
        configured[f"{service}-whole"] = small_parts
        configured[f"{service}-units"] = {**small_parts, "collectUnitRecords": 25}
    return configured


@pytest.fixture(scope="module")
def runtime(validate_event: Any) -> Iterator[LocalRuntime]:
    with LocalRuntime(pipelines()) as local:
        yield local
        check_every_event(local, validate_event)


def units_of(runtime: LocalRuntime, run_id: str) -> list[dict[str, Any]]:
    invoked = runtime.invocations
    return [e["unit"] for name, e in invoked if name.endswith("CollectUnit") and e["run"]["runId"] == run_id]


def with_unscorable_rows(tmp_path: Path) -> Path:
    """The Amazon ML sample with two rows its emulated model leaves blank (age 'unknown'), in different parts."""
    lines = (SAMPLES / "demo-amazonml.csv").read_text().splitlines()
    header = lines[0].split(",")
    for line_number in (15, 62):
        cells = lines[line_number - 1].split(",")
        cells[header.index("age")] = "unknown"
        lines[line_number - 1] = ",".join(cells)
    path = tmp_path / "accounts.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("service", ["sagemaker", "amazonml"])
def test_a_job_is_collected_by_runs_of_parts_into_the_same_csv_as_one_unit(
    runtime: LocalRuntime, service: str, tmp_path: Path
) -> None:
    upload = SAMPLES / "demo-sagemaker.csv" if service == "sagemaker" else with_unscorable_rows(tmp_path)
    whole = runtime.run_file(upload, f"{service}-whole")
    split = runtime.run_file(upload, f"{service}-units")

    assert whole.event and split.event and whole.status == split.status == "SUCCEEDED"
    units = units_of(runtime, split.run_id)
    parts = [part for unit in sorted(units, key=lambda u: u["unit"]) for part in unit["parts"]]
    assert len(units) >= 4 and all(len(unit["parts"]) == 2 for unit in units[:-1])
    assert parts == sorted(parts) and len(parts) == len(set(parts))  # every part once, in order
    assert [unit["parts"] for unit in units_of(runtime, whole.run_id)] == [None]
    detail, expected = split.event["detail"], whole.event["detail"]
    assert detail["counts"] == expected["counts"]
    assert read_s3_csv(runtime, detail["outputs"]["predictions"]) == read_s3_csv(
        runtime, expected["outputs"]["predictions"]
    )
    assert len(read_s3_json(runtime, detail["outputs"]["manifest"])["parts"]) == len(units)
    if service == "amazonml":
        errors = read_s3_csv(runtime, detail["outputs"]["errors"])
        assert [(e["line"], e["stage"]) for e in errors] == [("15", "service"), ("62", "service")]
        whole_errors = read_s3_csv(runtime, expected["outputs"]["errors"])
        assert [{**e, "source_file": ""} for e in errors] == [{**e, "source_file": ""} for e in whole_errors]
