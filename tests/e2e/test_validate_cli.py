"""`batchline validate`: Prepare's checks locally, nothing uploaded."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from batchline_local.cli import main
from tests.e2e.conftest import SAMPLES, write_csv

REPO_ROOT = Path(__file__).resolve().parents[2]

# Every CLI test runs on a machine with no AWS configuration at all (promise 4).
pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("no_aws_configuration")]


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


def test_a_file_under_the_bedrock_batch_minimum_is_valid_as_one_on_demand_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "few.csv", ["id", "prompt"], [["a", "hello"]])
    assert main(["validate", str(path), "--pipeline", "demo-bedrock", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["records"], report["sent"], report["jobs"]) == (1, 1, 1)


def test_unknown_pipeline_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SAMPLES / "demo-sagemaker.csv"), "--pipeline", "nope"]) == 2
    assert "no pipeline named 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("pipeline", "records"),
    [("demo-sagemaker", 120), ("demo-personalize", 40), ("demo-bedrock", 120), ("demo-vertex", 60)],
)
def test_every_provider_validates_on_a_machine_with_no_aws_configuration(
    pipeline: str, records: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(SAMPLES / f"{pipeline}.csv"), "--pipeline", pipeline, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["records"], report["rejected"], report["error"]) == (records, 0, None)


def test_amazon_ml_without_a_data_schema_names_what_it_needs_from_aws(capsys: pytest.CaptureFixture[str]) -> None:
    # The demo model's schema lives in Amazon ML: reading it is the one check that needs AWS.
    assert main(["validate", str(SAMPLES / "demo-amazonml.csv"), "--pipeline", "demo-amazonml", "--json"]) == 2
    captured = capsys.readouterr()
    error = json.loads(captured.out)["error"]
    assert "ml-demo-churn-binary" in error and "dataSchema" in error and "no AWS region" in error
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "missing.csv", "--pipeline", "demo-sagemaker"],
        ["validate", str(SAMPLES / "demo-sagemaker.csv"), "--pipeline", "nope"],
        ["validate", str(SAMPLES / "demo-sagemaker.csv")],  # no --pipeline: argparse's own usage error
    ],
)
def test_json_output_is_one_json_document_on_every_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main([*argv, "--json"])
    except SystemExit as exit_:  # argparse exits by itself
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    assert code == 2
    assert json.loads(captured.out)["error"]
    assert "Traceback" not in captured.err


def truncated_gzip(path: Path) -> Path:
    whole = gzip.compress((SAMPLES / "demo-sagemaker.csv").read_bytes())
    path.write_bytes(whole[: len(whole) // 2])
    return path


def gzip_with_trailing_junk(path: Path) -> Path:
    path.write_bytes(gzip.compress((SAMPLES / "demo-sagemaker.csv").read_bytes()) + b"not gzip at all")
    return path


@pytest.mark.parametrize("damaged", [truncated_gzip, gzip_with_trailing_junk])
@pytest.mark.parametrize("as_json", [False, True])
def test_a_damaged_gzip_is_refused_in_one_line_naming_the_file(
    damaged: Any, as_json: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = damaged(tmp_path / "upload.csv.gz")
    code = main(["validate", str(path), "--pipeline", "demo-sagemaker", *(["--json"] if as_json else [])])
    captured = capsys.readouterr()

    assert code == 1
    assert "Traceback" not in captured.out + captured.err
    if as_json:
        report = json.loads(captured.out)
        assert report["file"] == str(path) and report["error"]
    else:
        # Prepare's refusal (the report's "refused:" line) or the CLI's own one line on stderr
        lines = (captured.out + captured.err).splitlines()
        said = [line for line in lines if line.strip().startswith(("refused:", "batchline:"))]
        assert len(said) == 1 and "upload.csv.gz" in said[0]
        assert "gzip" in said[0] and "Error" not in said[0]  # in words, not an exception's name


def test_an_unexpected_error_is_one_line_and_verbose_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import batchline.validation

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("emulated bug")

    monkeypatch.setattr(batchline.validation, "validate_file", broken)
    argv = ["validate", str(SAMPLES / "demo-sagemaker.csv"), "--pipeline", "demo-sagemaker"]

    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "emulated bug" in err and "run with --verbose for details" in err

    assert main([*argv, "--verbose"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "emulated bug" in err


def test_validate_in_a_fresh_process_needs_no_aws_configuration(no_aws_configuration: Path) -> None:
    # Nothing of this process (imports, sessions, the tier's settings) helps: only PATH and an empty HOME.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(no_aws_configuration)}
    sample = str(SAMPLES / "demo-bedrock.csv")
    done = subprocess.run(
        [sys.executable, "-m", "batchline_local.cli", "validate", sample, "--pipeline", "demo-bedrock", "--json"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sent"] == 120
