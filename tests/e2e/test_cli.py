"""``batchline local run``: files written, last stdout line is the event, exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchline_local.cli import main
from tests.e2e.conftest import SAMPLES, write_csv

# Every CLI test runs on a machine with no AWS configuration at all (promise 4).
pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("no_aws_configuration")]


def test_successful_run_writes_outputs_and_prints_the_event_last(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "local",
            "run",
            str(SAMPLES / "demo-sagemaker.csv"),
            "--pipeline",
            "demo-sagemaker",
            "--out",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out.strip().splitlines()

    assert code == 0
    event = json.loads(out[-1])
    assert event["detail-type"] == "Batch Prediction Succeeded"
    assert {p.name for p in tmp_path.iterdir()} == {"predictions.csv", "manifest.json", "event.json"}
    assert (tmp_path / "predictions.csv").read_text().startswith("id,churn_probability\ncust-0001,")
    assert "EMULATED" in out[0]


def test_partial_run_exits_1_and_writes_errors_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_csv(tmp_path / "dupes.csv", ["id", "a"], [["k", 1], ["k", 2]])
    code = main(["local", "run", str(path), "--pipeline", "demo-sagemaker", "--out", str(tmp_path / "out")])

    assert code == 1
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["detail"]["status"] == "PARTIALLY_SUCCEEDED"
    assert "duplicate key 'k'" in (tmp_path / "out" / "errors.csv").read_text()


def test_unknown_pipeline_exits_2_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["local", "run", str(SAMPLES / "demo-sagemaker.csv"), "--pipeline", "nope", "--out", str(tmp_path)])
    assert code == 2
    assert "no pipeline named 'nope'" in capsys.readouterr().err


def test_unreadable_file_exits_2_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "local",
            "run",
            str(tmp_path / "missing.csv"),
            "--pipeline",
            "demo-sagemaker",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert "cannot read" in capsys.readouterr().err


def test_json_output_is_one_document_with_the_event_and_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = str(SAMPLES / "demo-sagemaker.csv")
    code = main(["local", "run", sample, "--pipeline", "demo-sagemaker", "--out", str(tmp_path), "--json"])
    captured = capsys.readouterr()

    assert code == 0
    document = json.loads(captured.out)  # the whole of stdout
    assert document["event"]["detail"]["counts"]["predicted"] == 120
    assert document["files"] == {
        "predictions": str(tmp_path / "predictions.csv"),
        "errors": None,
        "manifest": str(tmp_path / "manifest.json"),
        "event": str(tmp_path / "event.json"),
    }
    assert "EMULATED" in captured.err
