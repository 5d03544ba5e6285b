"""The one ASL file: valid per asl-validator, and its error names match the code's exceptions."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from batchline import errors

ROOT = Path(__file__).resolve().parents[2]
ASL = ROOT / "statemachine" / "batch_prediction.asl.json"
VALIDATOR = ROOT / "node_modules" / ".bin" / "asl-validator"


def test_asl_file_passes_asl_validator() -> None:
    if not VALIDATOR.exists():
        pytest.fail("asl-validator is not installed: run `make setup` (npm ci)")
    completed = subprocess.run([str(VALIDATOR), "--json-path", str(ASL)], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_retry_and_catch_names_are_real_exception_classes() -> None:
    definition = json.loads(ASL.read_text())
    named = {
        name
        for state in definition["States"].values()
        for rule in state.get("Retry", []) + state.get("Catch", [])
        for name in rule["ErrorEquals"]
        if not name.startswith(("States.", "Lambda.", "Sandbox.", "Runtime."))  # service-defined names
    }
    assert named, "the flow should retry on our named errors"
    for name in named:
        assert issubclass(getattr(errors, name), errors.BatchlineError), name


def test_every_task_that_can_fail_is_caught() -> None:
    definition = json.loads(ASL.read_text())
    for name, state in definition["States"].items():
        if state["Type"] == "Task":
            assert any("States.ALL" in rule["ErrorEquals"] for rule in state.get("Catch", [])), name


def test_placeholders_are_the_ones_the_stack_and_local_runtime_fill() -> None:
    placeholders = set(re.findall(r"\$\{(\w+)\}", ASL.read_text()))
    assert placeholders == {
        "PrepareInputFunctionArn",
        "SubmitJobFunctionArn",
        "WakeJobFunctionArn",
        "PollJobFunctionArn",
        "PlanCollectFunctionArn",
        "CollectUnitFunctionArn",
        "AssembleOutputFunctionArn",
        "FinalizeRunFunctionArn",
        "ReportFailureFunctionArn",
        "EventBusName",
        "EventDeadLetterQueueUrl",
        "WorkBucketName",
    }
