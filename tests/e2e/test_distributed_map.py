"""A failed Distributed Map child fails the Map, as on AWS (ToleratedFailurePercentage 0), with its real error."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

from batchline_local.runtime import LocalRuntime
from tests.e2e.conftest import SAMPLES

pytestmark = pytest.mark.timeout(120)


def test_a_collect_unit_that_raises_fails_the_run_with_its_own_error(
    runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN a CollectUnit (a child of the CollectUnits Distributed Map) whose work raises
    assert runtime.run_file(SAMPLES / "demo-sagemaker.csv", "demo-sagemaker").status == "SUCCEEDED"
    collect_unit = importlib.import_module("handlers.collect_unit")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("emulated: unit output unreadable")

    monkeypatch.setattr(collect_unit, "collect_one_unit", broken)

    # WHEN a file runs
    result = runtime.run_file(SAMPLES / "demo-bedrock.csv", "demo-bedrock")

    # THEN the Map itself failed, as AWS fails it, and the failure event names the child's real error
    assert result.event is not None and result.event["detail"]["status"] == "FAILED"
    error = result.event["detail"]["error"]
    assert error["error"] == "States.ExceedToleratedFailureThreshold"
    assert "ValueError: emulated: unit output unreadable" in error["cause"]
    assert "left no summary" not in error["cause"]
    map_failures = [e for e in result.history if e["type"] == "MapRunFailed"]
    assert map_failures and map_failures[0]["mapRunFailedEventDetails"]["error"] == (
        "States.ExceedToleratedFailureThreshold"
    )
