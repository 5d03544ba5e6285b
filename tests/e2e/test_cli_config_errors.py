"""cdk.json problems in the CLI: a syntax error is one line naming file, line and column (exit 2); a pipeline
whose own settings are invalid is refused by name when used, and the other pipelines keep working locally.

(`make synth` still refuses the whole configuration: tests/stacks/test_app.py.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batchline_local import runtime as runtime_module
from batchline_local.cli import main
from tests.e2e.conftest import SAMPLES

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("no_aws_configuration")]

BROKEN = {"keyColumn": "id", "service": {"provider": "sagemaker"}}  # no modelName
SAMPLE = str(SAMPLES / "demo-sagemaker.csv")


def use_cdk_json(monkeypatch: pytest.MonkeyPatch, path: Path, text: str) -> Path:
    path.write_text(text)
    monkeypatch.setattr(runtime_module, "CDK_JSON", path)
    return path


def with_broken_pipeline() -> str:
    document: dict[str, Any] = json.loads(runtime_module.CDK_JSON.read_text())
    document["context"]["batchline"]["pipelines"]["broken"] = BROKEN
    return json.dumps(document, indent=2)


def missing_comma() -> tuple[str, int]:
    """cdk.json with the comma after ``"keyColumn": "id"`` of the first pipeline removed, and that line's number."""
    lines = runtime_module.CDK_JSON.read_text().splitlines()
    number = next(n for n, line in enumerate(lines) if '"keyColumn": "id",' in line)
    lines[number] = lines[number].rstrip(",")
    return "\n".join(lines) + "\n", number + 2  # JSON reports the next token, on the following line


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", SAMPLE, "--pipeline", "demo-sagemaker"],
        ["local", "run", SAMPLE, "--pipeline", "demo-sagemaker"],
    ],
    ids=["validate", "local-run"],
)
def test_a_cdk_json_syntax_error_is_one_line_naming_file_line_and_column_with_exit_2(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text, line = missing_comma()
    path = use_cdk_json(monkeypatch, tmp_path / "cdk.json", text)

    code = main([*argv, *(["--out", str(tmp_path / "out")] if argv[0] == "local" else [])])
    err = capsys.readouterr().err

    assert code == 2
    assert err.count("\n") == 1, err
    assert f"{path}:{line}:" in err and "Traceback" not in err


def test_a_syntax_error_with_json_output_is_still_one_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text, line = missing_comma()
    path = use_cdk_json(monkeypatch, tmp_path / "cdk.json", text)

    code = main(["validate", SAMPLE, "--pipeline", "demo-sagemaker", "--json"])

    assert code == 2
    assert f"{path}:{line}:" in json.loads(capsys.readouterr().out)["error"]


@pytest.mark.parametrize(
    "argv",
    [["validate", SAMPLE, "--pipeline", "broken"], ["local", "run", SAMPLE, "--pipeline", "broken"]],
    ids=["validate", "local-run"],
)
def test_a_broken_pipeline_is_refused_by_name_in_one_line(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_cdk_json(monkeypatch, tmp_path / "cdk.json", with_broken_pipeline())

    code = main([*argv, *(["--out", str(tmp_path / "out")] if argv[0] == "local" else [])])
    err = capsys.readouterr().err

    assert code == 2
    assert err.count("\n") == 1, err
    assert "pipeline 'broken'" in err and "service.modelName" in err


def test_a_broken_pipeline_does_not_block_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN cdk.json with the demo pipelines and one broken pipeline
    use_cdk_json(monkeypatch, tmp_path / "cdk.json", with_broken_pipeline())

    # WHEN a good pipeline is validated and run, THEN both work as without the broken one
    assert main(["validate", SAMPLE, "--pipeline", "demo-sagemaker"]) == 0
    assert main(["local", "run", SAMPLE, "--pipeline", "demo-sagemaker", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "predictions.csv").is_file()
    assert "broken" not in capsys.readouterr().err


def test_submit_local_refuses_a_broken_pipeline_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_cdk_json(monkeypatch, tmp_path / "cdk.json", with_broken_pipeline())

    code = main(["submit", SAMPLE, "--pipeline", "broken", "--local", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err

    assert code == 2
    assert "pipeline 'broken'" in err and "service.modelName" in err and "Traceback" not in err
