"""A local run whose execution stops moving is given up by name (its own module: it needs a runtime of its own,
and one runtime lives in a process at a time)."""

from __future__ import annotations

import threading

import pytest

from batchline_local.runtime import LocalRuntime, RunStillRunning, load_pipeline_context
from tests.e2e.conftest import SAMPLES

pytestmark = pytest.mark.timeout(120)
SAMPLE = SAMPLES / "demo-sagemaker.csv"


def test_an_execution_that_stops_moving_is_given_up_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an interpreter stuck in a Wait state: no handler runs, nothing happens (a pipeline that polls only,
    # so its job waits in WaitBeforePoll, not for an end event)
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    release = threading.Event()
    polling = {"demo-sagemaker": {**load_pipeline_context()["demo-sagemaker"], "jobEvents": False}}

    with LocalRuntime(polling) as runtime:
        # After the runtime's own patch of the Wait state (it shortens waits), so this one wins.
        monkeypatch.setattr(WaitFunction, "_wait_interval", lambda _self, env, wait_seconds: release.wait(60))
        # WHEN the run is followed with a stall limit of 0.5 s
        with pytest.raises(
            RunStillRunning, match=r"stopped moving: RUNNING with nothing happening for 0.5 s"
        ) as raised:
            runtime.run_file(SAMPLE, "demo-sagemaker", stall_seconds=0.5)

        # THEN it was given up by name, and goes on once the interpreter does
        release.set()
        assert runtime.wait_for(raised.value.run_id).status == "SUCCEEDED"
