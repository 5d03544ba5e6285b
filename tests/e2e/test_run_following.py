"""Following a local run: no fixed wall-clock limit while it moves; a stuck execution is named, not awaited forever."""

from __future__ import annotations

import importlib
import time
from typing import Any

import pytest

from batchline_local.runtime import LocalRuntime, RunStillRunning
from tests.e2e.conftest import SAMPLES

pytestmark = pytest.mark.timeout(120)
SAMPLE = SAMPLES / "demo-sagemaker.csv"


def test_a_run_longer_than_the_stall_limit_is_not_cut_while_its_handlers_work(
    runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN polls that take longer than the (shortened) limit, as a big file's Prepare or Collect does
    assert runtime.run_file(SAMPLE, "demo-sagemaker").status == "SUCCEEDED"  # handler modules imported
    poll_job = importlib.import_module("handlers.poll_job")
    real_handler = poll_job.handler

    def slow_handler(event: Any, context: Any) -> Any:
        time.sleep(1.0)  # over three times the limit below, in one stretch
        return real_handler(event, context)

    monkeypatch.setattr(poll_job, "handler", slow_handler)

    # WHEN the run is followed with a limit of 0.3 s of standing still
    started = time.monotonic()
    result = runtime.run_file(SAMPLE, "demo-sagemaker", stall_seconds=0.3)

    # THEN it runs to its end, well past that limit
    assert result.status == "SUCCEEDED" and result.event is not None
    assert time.monotonic() - started > 1.0


def test_a_wall_clock_limit_given_by_the_caller_is_kept(runtime: LocalRuntime) -> None:
    with pytest.raises(RunStillRunning, match=r"still RUNNING after 0.01 s") as raised:
        runtime.run_file(SAMPLE, "demo-sagemaker", timeout_seconds=0.01)
    assert runtime.wait_for(raised.value.run_id).status == "SUCCEEDED"
