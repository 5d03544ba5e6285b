"""`batchline submit/runs/status/results --local` on one module-scoped local runtime, as a user drives a stack.

The commands run in the runtime's process, so they reach it with `--local`; the deployed path differs only in
where the names come from (tests/unit/test_cli_target.py).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from batchline.naming import run_id_for

from batchline_local.cli import main
from batchline_local.runtime import BUCKETS, LocalRuntime
from tests.e2e.conftest import SAMPLES, write_csv

# Every CLI test runs on a machine with no AWS configuration at all (promise 4).
pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("no_aws_configuration")]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    """Exit code, the one JSON document on stdout, and stderr."""
    code = main([*argv, "--local", "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_submit_wait_follows_a_run_to_success_and_runs_status_results_agree(
    runtime: LocalRuntime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = SAMPLES / "demo-sagemaker.csv"
    code, submitted, progress = run_cli(capsys, "submit", str(sample), "--pipeline", "demo-sagemaker", "--wait")

    assert code == 0
    run_id = submitted["runId"]
    assert (submitted["status"], submitted["executionStatus"], submitted["state"]) == (
        "SUCCEEDED",
        "SUCCEEDED",
        "RunSucceeded",
    )
    assert submitted["counts"] == {"input": 120, "sent": 120, "rejected": 0, "predicted": 120, "failed": 0}
    assert [job["status"] for job in submitted["jobs"]] == ["SUCCEEDED"]
    assert submitted["input"]["key"] == "demo-sagemaker/demo-sagemaker.csv"
    # The run ID is the one StartRun derives from the uploaded object version.
    assert run_id == run_id_for(
        "demo-sagemaker", BUCKETS["inbox"], "demo-sagemaker/demo-sagemaker.csv", submitted["input"]["versionId"]
    )
    assert progress == ""  # --json off a terminal: no progress lines, only the document

    code, listed, _ = run_cli(capsys, "runs")
    assert code == 0
    row = next(r for r in listed["runs"] if r["runId"] == run_id)
    assert (row["pipeline"], row["status"], row["counts"]["predicted"]) == ("demo-sagemaker", "SUCCEEDED", 120)

    code, status, _ = run_cli(capsys, "status", run_id)
    assert code == 0
    assert status["outputs"]["predictions"].endswith(f"demo-sagemaker/{run_id}/predictions.csv")
    assert status["outputs"]["errors"] is None and status["error"] is None
    assert status["counts"] == submitted["counts"]

    code, downloaded, _ = run_cli(capsys, "results", run_id, "-o", str(tmp_path / "p.csv"))
    assert code == 0
    rows = read_rows(tmp_path / "p.csv")
    assert downloaded["rows"] == len(rows) == 120
    with sample.open(newline="", encoding="utf-8") as handle:
        assert {row["id"] for row in rows} == {record["id"] for record in csv.DictReader(handle)}
    assert list(rows[0]) == ["id", "churn_probability"] and all(0 <= float(r["churn_probability"]) <= 1 for r in rows)


def test_a_partial_run_exits_1_and_its_errors_csv_downloads(
    runtime: LocalRuntime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "dupes.csv", ["id", "a", "b"], [["k", 1, 2], ["k", 3, 4], ["", 5, 6], ["m", 7, 8]])
    code, submitted, _ = run_cli(capsys, "submit", str(path), "--pipeline", "demo-sagemaker", "--wait")

    assert code == 1
    assert submitted["status"] == "PARTIALLY_SUCCEEDED"
    assert (submitted["counts"]["predicted"], submitted["counts"]["rejected"]) == (2, 2)

    code, downloaded, _ = run_cli(capsys, "results", submitted["runId"], "--errors", "-o", str(tmp_path))
    assert code == 0 and downloaded["path"] == str(tmp_path / "errors.csv")
    errors = read_rows(tmp_path / "errors.csv")
    assert [(e["line"], e["key"], e["stage"]) for e in errors] == [("3", "k", "prepare"), ("4", "", "prepare")]
    assert "duplicate key 'k' (first seen on line 2)" in errors[0]["reason"]

    code, downloaded, _ = run_cli(capsys, "results", submitted["runId"], "-o", str(tmp_path / "p.csv"))
    assert code == 0 and [row["id"] for row in read_rows(tmp_path / "p.csv")] == ["k", "m"]


def test_a_failed_run_reports_its_reason_and_has_no_predictions(
    runtime: LocalRuntime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "empty.csv", ["id", "prompt"], [])  # a header and no record: refused
    code, submitted, _ = run_cli(capsys, "submit", str(path), "--pipeline", "demo-bedrock", "--wait")

    assert code == 1
    assert (submitted["status"], submitted["executionStatus"], submitted["state"]) == ("FAILED", "FAILED", "RunFailed")
    assert submitted["error"]["error"] == "InputRejected"
    assert "the file has a header but no records" in submitted["error"]["cause"]

    code, status, _ = run_cli(capsys, "status", submitted["runId"])
    assert code == 1 and status["error"] == submitted["error"]

    code, missing, err = run_cli(capsys, "results", submitted["runId"], "-o", str(tmp_path / "p.csv"))
    assert code == 1 and not (tmp_path / "p.csv").exists()
    assert "has no predictions.csv" in missing["error"] and err.count("\n") == 1


def test_runs_lists_newest_first_and_filters_by_pipeline(
    runtime: LocalRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    _, bedrock, _ = run_cli(capsys, "submit", str(SAMPLES / "demo-bedrock.csv"), "--pipeline", "demo-bedrock", "--wait")
    _, personalize, _ = run_cli(
        capsys, "submit", str(SAMPLES / "demo-personalize.csv"), "--pipeline", "demo-personalize", "--wait"
    )

    code, everything, _ = run_cli(capsys, "runs", "--limit", "2")
    assert code == 0
    assert [r["runId"] for r in everything["runs"]] == [personalize["runId"], bedrock["runId"]]

    code, only_bedrock, _ = run_cli(capsys, "runs", "--pipeline", "demo-bedrock")
    assert code == 0
    assert bedrock["runId"] in [r["runId"] for r in only_bedrock["runs"]]
    assert {r["pipeline"] for r in only_bedrock["runs"]} == {"demo-bedrock"}
    row = next(r for r in only_bedrock["runs"] if r["runId"] == bedrock["runId"])
    assert (row["status"], row["counts"]["predicted"], row["input"]["key"]) == (
        "SUCCEEDED",
        120,
        "demo-bedrock/demo-bedrock.csv",
    )


def test_submit_without_wait_returns_the_run_id_of_the_upload(
    runtime: LocalRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    code, submitted, _ = run_cli(capsys, "submit", str(SAMPLES / "demo-amazonml.csv"), "--pipeline", "demo-amazonml")

    assert code == 0
    uploaded = submitted["uploaded"]
    assert submitted["runId"] == run_id_for("demo-amazonml", uploaded["bucket"], uploaded["key"], uploaded["versionId"])
    assert runtime.wait_for(submitted["runId"]).status == "SUCCEEDED"
    code, status, _ = run_cli(capsys, "status", submitted["runId"])
    assert (code, status["status"], status["counts"]["predicted"]) == (0, "SUCCEEDED", 80)


def test_human_output_names_the_run_state_counts_and_outputs(
    runtime: LocalRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["submit", str(SAMPLES / "demo-sagemaker.csv"), "--pipeline", "demo-sagemaker", "--wait", "--local"])
    out, progress = capsys.readouterr()

    assert code == 0
    # Off a terminal, progress is one stderr line per change: states as they come, then the outcome.
    lines = [line.split("] ", 1)[1] for line in progress.strip().splitlines()]
    assert lines[0] in ("starting", "PrepareInput")
    outcome = "SUCCEEDED | read 120 (sent 120, rejected 0), collected 120 of 120 | job 0: SUCCEEDED (Completed)"
    assert lines[-1] == outcome
    assert len(lines) == len(set(lines))
    assert "status:      SUCCEEDED (execution SUCCEEDED)" in out
    assert "records:     input 120, sent 120, rejected 0, predicted 120, failed 0" in out
    assert "predictions: s3://batchline-local-results/demo-sagemaker/" in out and "errors:      none" in out


def test_unknown_run_and_pipeline_are_one_line_errors_with_the_fix(
    runtime: LocalRuntime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unknown = "demo-sagemaker-" + "0" * 32
    code, document, err = run_cli(capsys, "status", unknown)
    assert code == 2
    assert err == f"batchline: no run {unknown!r} in the local runtime; list runs with `batchline runs`\n"
    assert document == {"error": err.removeprefix("batchline: ").strip()}

    code, _, err = run_cli(capsys, "results", "not-a-run")
    assert code == 2 and "'not-a-run' is not a run ID" in err

    code, _, err = run_cli(capsys, "submit", str(SAMPLES / "demo-sagemaker.csv"), "--pipeline", "nope", "--wait")
    assert code == 2 and "no pipeline named 'nope' in the local runtime (configured: demo-amazonml," in err
    listed = runtime.client("s3").list_objects_v2(Bucket=BUCKETS["inbox"], Prefix="nope/")
    assert listed.get("KeyCount") == 0  # refused before anything was uploaded

    code, _, err = run_cli(capsys, "runs", "--pipeline", "nope")
    assert code == 2 and "no pipeline named 'nope'" in err

    code, _, err = run_cli(capsys, "submit", str(tmp_path / "missing.csv"), "--pipeline", "demo-sagemaker")
    assert code == 2 and "cannot read" in err


def test_wait_gives_up_at_its_timeout_with_exit_3_and_the_run_still_running(
    runtime: LocalRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    code, submitted, err = run_cli(
        capsys, "submit", str(SAMPLES / "demo-bedrock.csv"), "--pipeline", "demo-bedrock", "--wait", "--timeout", "0"
    )

    assert code == 3
    assert (submitted["status"], submitted["executionStatus"]) == ("RUNNING", "RUNNING")
    assert f"run {submitted['runId']} still runs after 0 s" in err
    assert runtime.wait_for(submitted["runId"]).status == "SUCCEEDED"  # it went on without the CLI
