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
    captured = capsys.readouterr()
    out = captured.out.strip().splitlines()

    assert code == 0
    event = json.loads(out[-1])
    assert event["detail-type"] == "Batch Prediction Succeeded"
    # Off a terminal, progress is a line per change on stderr, the last one where the run ended.
    progress = [line for line in captured.err.splitlines() if line.startswith("[")]
    assert progress and "SUCCEEDED" in progress[-1] and "read 120" in progress[-1], captured.err
    assert {p.name for p in tmp_path.iterdir()} == {
        "predictions.csv",
        "manifest.json",
        "report.html",
        "event.json",
        "orchestration.json",
        "permissions.json",
    }
    assert (tmp_path / "predictions.csv").read_text().startswith("id,churn_probability\ncust-0001,")
    assert "EMULATED" in out[0]
    # make demo says where the run's page is, and the page is there.
    assert any(line.startswith(f"report:      {tmp_path / 'report.html'} (open file://") for line in out)
    assert (tmp_path / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


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
        "report": str(tmp_path / "report.html"),
        "event": str(tmp_path / "event.json"),
        "orchestration": str(tmp_path / "orchestration.json"),
        "permissions": str(tmp_path / "permissions.json"),
    }
    assert document["orchestration"]["executions"] >= 1
    assert document["permissions"]["checked"] > 0 and document["permissions"]["denied"] == []
    assert "EMULATED" in captured.err


@pytest.mark.parametrize("as_json", [False, True])
def test_out_naming_an_existing_file_is_refused_before_the_run(
    as_json: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    argv = ["local", "run", str(SAMPLES / "demo-sagemaker.csv"), "--pipeline", "demo-sagemaker", "--out", str(taken)]

    code = main([*argv, *(["--json"] if as_json else [])])
    captured = capsys.readouterr()

    assert code == 2
    assert (
        captured.err == f"batchline: --out {taken} is a file, not a folder; name a folder for the run's outputs "
        "(it is made if missing)\n"
    )
    assert "EMULATED" not in captured.out + captured.err  # refused before the run started
    assert taken.read_text() == "mine"
    if as_json:
        assert "is a file" in json.loads(captured.out)["error"]


def test_out_under_a_file_is_refused_before_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("")
    sample = str(SAMPLES / "demo-sagemaker.csv")
    code = main(["local", "run", sample, "--pipeline", "demo-sagemaker", "--out", str(tmp_path / "file" / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "cannot make --out" in err and "Traceback" not in err


def test_a_failed_run_prints_no_raw_log_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_csv(tmp_path / "blank-keys.csv", ["id", "tenure", "charges"], [["", 1, 2], ["", 3, 4]])
    code = main(["local", "run", str(path), "--pipeline", "demo-sagemaker", "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()

    assert code == 1
    assert "FAILED" in captured.out
    assert not [line for line in (captured.out + captured.err).splitlines() if line.startswith('{"level"')]


def test_a_run_past_its_timeout_is_given_up_in_one_line_with_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = str(SAMPLES / "demo-sagemaker.csv")
    argv = ["local", "run", sample, "--pipeline", "demo-sagemaker", "--out", str(tmp_path), "--timeout", "0.01"]

    code = main([*argv, "--json"])
    captured = capsys.readouterr()

    assert code == 3
    assert captured.err.splitlines()[-1].startswith("batchline: run demo-sagemaker-")
    assert "still RUNNING after 0.01 s" in captured.err and "Traceback" not in captured.err
    assert json.loads(captured.out)["executionStatus"] == "RUNNING"


def test_an_unexpected_error_is_one_line_unless_verbose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from batchline_local.runtime import LocalRuntime

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("emulated bug")

    monkeypatch.setattr(LocalRuntime, "run_file", broken)
    argv = ["local", "run", str(SAMPLES / "demo-sagemaker.csv"), "--pipeline", "demo-sagemaker", "--out", str(tmp_path)]

    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("batchline: local run failed: unexpected error (RuntimeError: emulated bug);")
    assert err.endswith("; run with --verbose for details\n")

    with pytest.raises(RuntimeError, match="emulated bug"):  # --verbose: the traceback, as Python prints it
        main([*argv, "--verbose"])
