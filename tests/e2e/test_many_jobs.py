"""A run of hundreds of jobs on the local runtime, which refuses what Step Functions refuses (256 KiB states,
25,000-event histories): it must stay far within both. Its own module: it starts its own runtime."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchline_local.runtime import LocalRuntime
from tests.e2e.conftest import write_csv

pytestmark = pytest.mark.timeout(300)


def test_a_run_of_300_bedrock_jobs_stays_within_step_functions_limits(tmp_path: Path) -> None:
    # GIVEN 30,000 prompts and at most 100 records per Bedrock job: 300 jobs, 20 at a time
    pipelines = {
        "b300": {
            "keyColumn": "id",
            "maxConcurrentJobs": 20,
            "service": {
                "provider": "bedrock",
                "modelId": "amazon.nova-lite-v1:0",
                "roleArn": "arn:aws:iam::123456789012:role/bedrock-batch",
                "promptColumn": "text",
                "maxRecordsPerJob": 100,
                "recordsPerFile": 100,
            },
        }
    }
    upload = write_csv(tmp_path / "b300.csv", ["id", "text"], [[f"k{n}", f"prompt {n}"] for n in range(30_000)])
    with LocalRuntime(pipelines) as runtime:
        result = runtime.run_file(upload, "b300")

    # THEN every record is predicted, and the run's own execution stays as small as a one-job run's
    assert result.event is not None
    detail = result.event["detail"]
    assert detail["status"] == "SUCCEEDED" and detail["jobCount"] == 300
    assert detail["counts"] == {"input": 30_000, "sent": 30_000, "rejected": 0, "predicted": 30_000, "failed": 0}
    figures = result.orchestration
    assert figures["childExecutions"] == 600  # 300 jobs and 300 Collect units
    assert figures["historyEvents"]["run"] < 100 and figures["historyEvents"]["largestChild"] < 100
    assert figures["largestStateBytes"] < 32 * 1024
