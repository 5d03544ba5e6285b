"""Every local run writes orchestration.json beside its outputs, and `batchline local run` prints it in one line.

Its figures are what Step Functions would do for the run: executions (the run's and each Distributed Map
child's), state transitions as AWS bills them (each state entered and each retry,
https://aws.amazon.com/step-functions/pricing/), the largest state in bytes, and history events of the run's
execution and of its largest child.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchline_local.runtime import LocalRuntime, load_pipeline_context
from tests.e2e.conftest import SAMPLES, write_csv

pytestmark = pytest.mark.timeout(240)
PIPELINES = {
    **load_pipeline_context(),
    "b-jobs": {
        "keyColumn": "id",
        "maxConcurrentJobs": 10,
        "service": {
            "provider": "bedrock",
            "modelId": "amazon.nova-lite-v1:0",
            "roleArn": "arn:aws:iam::123456789012:role/bedrock-batch",
            "promptTemplate": "Summarise: {text}",
            "minRecordsPerJob": 2,
            "maxRecordsPerJob": 4,
            "recordsPerFile": 4,
        },
    },
}


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(PIPELINES) as local:
        yield local


def figures_for(runtime: LocalRuntime, tmp_path: Path, records: int) -> dict[str, Any]:
    upload = write_csv(tmp_path / f"r{records}.csv", ["id", "text"], [[f"r{n}", f"text {n}"] for n in range(records)])
    result = runtime.run_file(upload, "b-jobs")
    assert result.status == "SUCCEEDED", result.event
    assert result.event is not None and len(result.event["detail"]["jobs"]) == -(-records // 4)
    return result.orchestration


def test_the_figures_match_the_run_and_grow_with_its_jobs(runtime: LocalRuntime, tmp_path: Path) -> None:
    # GIVEN one upload that makes one job and one that makes ten
    one = figures_for(runtime, tmp_path, 4)
    ten = figures_for(runtime, tmp_path, 40)

    # THEN each run's figures are plausible: the run's history is the history Step Functions returns
    for figures in (one, ten):
        assert figures["executions"] == 1 + figures["childExecutions"]
        assert figures["historyEvents"]["run"] > 20
        assert 0 < figures["historyEvents"]["largestChild"] < figures["historyEvents"]["run"] or (
            figures["childExecutions"] == 0
        )
        assert 1_000 < figures["largestStateBytes"] < 256 * 1024
        assert figures["stateTransitions"] > 10
    # AND more jobs mean more transitions and a larger history or more children, and a larger state
    assert ten["stateTransitions"] > one["stateTransitions"]
    assert (ten["historyEvents"]["run"], ten["executions"]) > (one["historyEvents"]["run"], one["executions"])
    assert ten["largestStateBytes"] > one["largestStateBytes"]


def test_run_history_figure_is_the_execution_history_length(runtime: LocalRuntime) -> None:
    result = runtime.run_file(SAMPLES / "demo-sagemaker.csv", "demo-sagemaker")

    assert result.orchestration["historyEvents"]["run"] == len(result.history)
    assert result.orchestration["executionArn"] == result.execution_arn
    entered = sum(e["type"].endswith("StateEntered") for e in result.history)
    assert result.orchestration["stateTransitions"] >= entered
