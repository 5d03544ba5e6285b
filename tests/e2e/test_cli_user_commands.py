"""What a new user met in the commands (issue 17): `results -o DIR/` makes the folder, `runs` has a pipeline
column and stays aligned past 48-character run IDs, a bad `--limit` is refused, `--version` answers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from batchline_local.cli import main
from batchline_local.runtime import LocalRuntime
from tests.e2e.conftest import SAMPLES, write_csv

# Every CLI test runs on a machine with no AWS configuration at all (promise 4).
pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("no_aws_configuration")]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    """Exit code, the one JSON document on stdout, and stderr."""
    code = main([*argv, "--local", "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


@pytest.fixture(scope="module")
def partial_run(runtime: LocalRuntime, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A run with predictions and errors (a duplicate key)."""
    path = write_csv(tmp_path_factory.mktemp("upload") / "dupes.csv", ["id", "a", "b"], [["k", 1, 2], ["k", 3, 4]])
    code = main(["submit", str(path), "--pipeline", "demo-sagemaker", "--wait", "--local", "--json"])
    assert code == 1
    executions = runtime.client("stepfunctions").list_executions(stateMachineArn=runtime.state_machine_arn)
    return str(executions["executions"][0]["name"])  # newest first


@pytest.mark.parametrize("relative", [True, False], ids=["relative", "absolute"])
def test_results_into_a_missing_folder_with_a_trailing_slash_makes_the_folder(
    relative: bool,
    partial_run: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    out = "sub/" if relative else f"{tmp_path / 'sub'}/"

    code, downloaded, _ = run_cli(capsys, "results", partial_run, "--errors", "-o", out)

    assert code == 0
    assert (tmp_path / "sub").is_dir()
    assert (tmp_path / "sub" / "errors.csv").read_text().startswith("source_file,line,key")
    assert Path(downloaded["path"]).resolve() == tmp_path / "sub" / "errors.csv"


def test_results_into_an_existing_folder_or_a_file_name(
    partial_run: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "there").mkdir()
    assert run_cli(capsys, "results", partial_run, "-o", str(tmp_path / "there"))[0] == 0
    assert (tmp_path / "there" / "predictions.csv").is_file()

    assert run_cli(capsys, "results", partial_run, "-o", str(tmp_path / "new" / "p.csv"))[0] == 0
    assert (tmp_path / "new" / "p.csv").is_file()


def test_runs_has_a_pipeline_column_and_stays_aligned_past_48_character_run_ids(
    runtime: LocalRuntime, partial_run: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN runs of a pipeline whose run IDs are longer than 48 characters, beside a shorter one's
    code = main(
        ["submit", str(SAMPLES / "demo-personalize.csv"), "--pipeline", "demo-personalize", "--wait", "--local"]
    )
    assert code == 0
    capsys.readouterr()

    # WHEN they are listed as a table
    assert main(["runs", "--local"]) == 0
    lines = capsys.readouterr().out.splitlines()

    # THEN every column starts where its heading does, and the pipeline has its own column
    header, rows = lines[0], lines[1:]
    assert re.split(r"\s+", header.strip())[:3] == ["RUN", "PIPELINE", "STATUS"]
    assert any(len(row.split()[0]) > 48 for row in rows)
    for heading in ("PIPELINE", "STATUS", "STARTED"):
        column = header.index(heading)
        for row in rows:
            assert row[column - 1] == " " and row[column] != " ", (heading, row)
    assert {row.split()[1] for row in rows} >= {"demo-personalize", "demo-sagemaker"}
    for row in rows:
        assert row.split()[0].startswith(row.split()[1] + "-")


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_runs_refuses_a_limit_under_one_in_one_line(limit: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["runs", "--local", "--limit", limit])
    err = capsys.readouterr().err

    assert code == 2
    assert err.count("\n") == 1 and "--limit" in err, err


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exited:
        main(["--version"])

    assert exited.value.code == 0
    assert capsys.readouterr().out == f"batchline {version('batchline')}\n"
