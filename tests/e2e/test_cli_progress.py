"""`submit --wait` shows records read and collected so far, the jobs running and the time elapsed, as the `local
run` panel does: one line per change off a terminal (stderr), read from the summaries the run's steps leave in the
work bucket."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchline_local.cli import main
from batchline_local.progress import RecordCounter
from batchline_local.runs import describe_run
from batchline_local.runtime import LocalRuntime, load_pipeline_context
from batchline_local.target import local_target
from tests.e2e.conftest import SAMPLES, write_csv

pytestmark = [pytest.mark.timeout(240), pytest.mark.usefixtures("no_aws_configuration")]
PIPELINES = {
    **load_pipeline_context(),
    # Cut into shards of 2 KiB (Prepare reads them in parallel, each leaving a summary) and Collect units of 50.
    "sm-cut": {
        **load_pipeline_context()["demo-sagemaker"],
        "prepareShardBytes": 2048,
        "collectUnitRecords": 50,
    },
}


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(PIPELINES) as local:
        yield local


def test_submit_wait_prints_records_read_and_collected_and_jobs_running(
    runtime: LocalRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["submit", str(SAMPLES / "demo-sagemaker.csv"), "--pipeline", "demo-sagemaker", "--wait", "--local"])

    lines = capsys.readouterr().err.splitlines()
    assert code == 0
    assert all(re.match(r"\[\d+:\d\d:\d\d\] ", line) for line in lines), lines  # elapsed first, on every line
    assert len(lines) == len(set(line.split("] ", 1)[1] for line in lines))  # a line per change, not per look
    assert any("| jobs 1 running of 1 |" in line for line in lines), lines
    assert "SUCCEEDED | read 120 (sent 120, rejected 0), collected 120 of 120 | job 0: SUCCEEDED" in lines[-1]


def test_the_records_so_far_are_read_from_the_summaries_the_steps_leave(runtime: LocalRuntime, tmp_path: Path) -> None:
    # GIVEN a run cut into Prepare shards and Collect units (each leaves a summary in the work bucket)
    rows = [[f"c-{n:04d}", n % 60, 20.5 + n % 50, n % 9, n % 4] for n in range(300)]
    header = ["id", "tenure_months", "monthly_charges", "support_tickets", "late_payments"]
    result = runtime.run_file(write_csv(tmp_path / "cut.csv", header, rows), "sm-cut")
    assert result.event is not None and result.event["detail"]["status"] == "SUCCEEDED"
    target = local_target(runtime)
    ended = describe_run(target, result.run_id)
    layout = target.layout("sm-cut", result.run_id)
    s3 = target.client("s3")
    for prefix in (layout.prepare_prefix.key + "shard-", layout.collect_prefix.key + "unit-"):
        keys = [item["Key"] for item in s3.list_objects_v2(Bucket=layout.work_bucket, Prefix=prefix)["Contents"]]
        assert len([key for key in keys if key.endswith(".json")]) > 1, keys  # really cut in pieces

    # WHEN the counter looks at the run as it was while Prepare read it, and while Collect wrote it
    def running_in(state: str, counts: dict[str, Any]) -> Any:
        history = dataclasses.replace(ended.history, state=state, prepared=None, outcome=None)
        view = dataclasses.replace(ended, execution_status="RUNNING", manifest=None, history=history)
        if counts:
            view.history.prepared = {"jobsFile": "x", "counts": counts}
        return view

    reading = RecordCounter(target).look(running_in("PrepareShards", {}))
    staged = {"input": 300, "sent": 300, "rejected": 0}
    collecting = RecordCounter(target).look(running_in("CollectUnits", staged))

    # THEN the shards' summaries give every record read, and the units' every record collected
    assert reading.read == 300 and reading.collected is None
    assert (collecting.read, collecting.sent, collecting.collected) == (300, 300, 300)
    assert collecting.describe() == "read 300 (sent 300, rejected 0), collected 300 of 300"
