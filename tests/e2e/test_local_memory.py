"""What a finished run leaves in the local runtime's memory: its objects' bytes stay out of the heap."""

from __future__ import annotations

import csv
from pathlib import Path

from batchline_local.runtime import BUCKETS, OBJECT_BYTES_IN_MEMORY, LocalRuntime
from tests.e2e.conftest import write_csv


def _stored(runtime: LocalRuntime) -> list[object]:
    """moto's S3 objects (every version) in the runtime's buckets."""
    from moto.s3.models import s3_backends

    from batchline_local.runtime import ACCOUNT

    backend = s3_backends[ACCOUNT]["global"]
    return [
        version
        for name in BUCKETS.values()
        for _, versions in backend.buckets[name].keys.lists()
        for version in versions
        if hasattr(version, "_value_buffer")
    ]


def test_a_finished_runs_large_objects_are_kept_out_of_the_heap(runtime: LocalRuntime, tmp_path: Path) -> None:
    # GIVEN a file whose upload, staged part, output and predictions are each larger than the in-memory bound
    rows = [[f"cust-{n:06d}", n % 72, f"{20 + n % 100}.50", n % 9, n % 5] for n in range(12_000)]
    data = write_csv(
        tmp_path / "large.csv",
        ["id", "tenure_months", "monthly_charges", "support_tickets", "late_payments"],
        rows,
    )
    assert data.stat().st_size > OBJECT_BYTES_IN_MEMORY
    # WHEN a run ends
    result = runtime.run_file(data, "demo-sagemaker")
    assert result.status == "SUCCEEDED"
    LocalRuntime.release_memory()
    # THEN every object above the bound lives in a temporary file (moto's spooled buffer has rolled over to
    # disk), the smaller ones in memory, and the predictions still read back whole
    large = [obj for obj in _stored(runtime) if obj.size > OBJECT_BYTES_IN_MEMORY]  # type: ignore[attr-defined]
    assert large, "the run stored no object above the bound"
    assert all(obj._value_buffer._rolled for obj in large)  # type: ignore[attr-defined]
    target = runtime.download(result.event["detail"]["outputs"]["predictions"], tmp_path / "p.csv")
    assert target is not None
    with target.open(newline="", encoding="utf-8") as handle:
        assert sum(1 for _ in csv.DictReader(handle)) == 12_000
