"""`batchline validate`: Prepare's checks locally, nothing uploaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchline_local.cli import main
from tests.e2e.conftest import SAMPLES, write_csv


def test_a_clean_file_validates_with_its_job_count(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SAMPLES / "demo-bedrock.csv"), "--pipeline", "demo-bedrock", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["records"], report["sent"], report["rejected"], report["jobs"]) == (120, 120, 0, 1)


def test_rejections_are_listed_with_line_and_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_csv(tmp_path / "bad.csv", ["id", "a", "b"], [["k", 1, 2], ["k", 3, 4], ["", 5, 6]])
    assert main(["validate", str(path), "--pipeline", "demo-sagemaker"]) == 1
    out = capsys.readouterr().out
    assert "records 3, would send 1, rejected 2, service jobs 1" in out
    assert "line 3: duplicate key 'k' (first seen on line 2)" in out and "line 4: blank key" in out


def test_a_file_under_the_service_minimum_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_csv(tmp_path / "few.csv", ["id", "prompt"], [["a", "hello"]])
    assert main(["validate", str(path), "--pipeline", "demo-bedrock", "--json"]) == 1
    assert "needs at least 100 per job" in json.loads(capsys.readouterr().out)["error"]


def test_unknown_pipeline_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SAMPLES / "demo-sagemaker.csv"), "--pipeline", "nope"]) == 2
    assert "no pipeline named 'nope'" in capsys.readouterr().err
