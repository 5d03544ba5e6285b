"""Logs and metrics of real runs: every log line names its run and pipeline; EMF metrics match the event."""

from __future__ import annotations

import importlib
import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from batchline_local.runtime import LocalRuntime
from tests.e2e.conftest import SAMPLES, write_csv

pytestmark = pytest.mark.timeout(120)


def metric_documents(runtime: LocalRuntime, run_id: str) -> list[dict[str, Any]]:
    return [document for document in runtime.metrics if document.get("run_id") == run_id]


def total(documents: list[dict[str, Any]], name: str) -> float:
    return sum(sum(document[name]) for document in documents if name in document)


@pytest.fixture
def handler_logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The handlers' JSON log lines at INFO while the test runs (they share the Powertools "batchline" logger)."""
    importlib.import_module("handlers.prepare_input")  # the logger exists once a handler module is imported
    python_logger = logging.getLogger("batchline")
    handler: logging.StreamHandler[Any] = python_logger.powertools_handler  # type: ignore[attr-defined]
    buffer = io.StringIO()
    previous_stream, previous_level = handler.setStream(buffer), python_logger.level
    python_logger.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    finally:
        python_logger.setLevel(previous_level)
        handler.setStream(previous_stream)  # type: ignore[arg-type]


def test_a_run_reports_its_records_duration_and_polls_for_its_pipeline(runtime: LocalRuntime) -> None:
    result = runtime.run_file(SAMPLES / "demo-sagemaker.csv", "demo-sagemaker")

    assert result.event is not None and result.status == "SUCCEEDED"
    documents = metric_documents(runtime, result.run_id)
    for document in documents:
        [directive] = document["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "Batchline"
        assert sorted(map(sorted, directive["Dimensions"])) == [["pipeline", "service"], ["service"]]
        assert (document["pipeline"], document["service"]) == ("demo-sagemaker", "batchline")
    counts = result.event["detail"]["counts"]
    assert (total(documents, "RecordsIn"), total(documents, "RecordsPredicted")) == (counts["input"], 120)
    assert (total(documents, "RecordsFailed"), total(documents, "RecordsRejected")) == (0, 0)
    assert total(documents, "RunDuration") == result.event["detail"]["timings"]["durationSeconds"]
    run_polls = [
        payload
        for name, payload in runtime.invocations
        if name.endswith("PollJob") and payload["run"]["runId"] == result.run_id
    ]
    assert run_polls and total(documents, "Polls") == len(run_polls)
    # Every submit and poll reports the run's age: the heartbeat the stale-run alarm watches.
    assert sum(len(document.get("RunAge", [])) for document in documents) == len(run_polls) + 1


def test_a_rejected_file_reports_its_rejected_records_on_the_failure_path(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "blank-keys.csv", ["id", "tenure", "charges"], [["", 1, 2], ["", 3, 4]])
    result = runtime.run_file(path, "demo-sagemaker")

    assert result.event is not None and result.event["detail"]["status"] == "FAILED"
    documents = metric_documents(runtime, result.run_id)
    assert total(documents, "RecordsRejected") == 2 and total(documents, "RecordsPredicted") == 0


def test_an_upload_under_an_unknown_prefix_mints_no_metric(runtime: LocalRuntime, tmp_path: Path) -> None:
    result = runtime.run_file(write_csv(tmp_path / "x.csv", ["id"], [["a"]]), "no-such-pipeline")

    assert result.event is not None and result.event["detail"]["error"]["error"] == "UnknownPipeline"
    assert metric_documents(runtime, result.run_id) == []
    assert all(document["pipeline"] != "no-such-pipeline" for document in runtime.metrics)


def test_every_log_line_of_a_run_names_its_run_and_pipeline(
    runtime: LocalRuntime, handler_logs: Callable[[], list[dict[str, Any]]], tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "logged.csv", ["id", "tenure", "charges"], [["a", 1, 2], ["b", 3, 4]])
    result = runtime.run_file(path, "demo-sagemaker")

    assert result.status == "SUCCEEDED"
    lines = [line for line in handler_logs() if line.get("function_name")]  # written inside an invocation
    functions = {line["function_name"].removeprefix("batchline-local-") for line in lines}
    assert {
        "StartRun",
        "PrepareInput",
        "SubmitJob",
        "PollJob",
        "PlanCollect",
        "AssembleOutput",
        "FinalizeRun",
    } <= functions
    for line in lines:
        assert line.get("pipeline") == "demo-sagemaker", line
        # Only StartRun's first line comes before the run ID exists (it is derived from the object's HEAD).
        if line["message"] != "upload received":
            assert line.get("run_id") == result.run_id, line
