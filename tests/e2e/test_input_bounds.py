"""Sizes are bounded before anything is read whole (a runtime of its own: its pipeline has a tiny bound)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batchline_local.runtime import LocalRuntime
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
