"""`batchline local run` writes orchestration.json beside the outputs and prints its figures in one line.

(A module of its own: the CLI starts its own local runtime, which cannot live beside another one in the process.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchline_local.cli import main
from tests.e2e.conftest import SAMPLES

pytestmark = pytest.mark.timeout(120)


def test_local_run_writes_orchestration_json_and_prints_it_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = str(SAMPLES / "demo-bedrock.csv")

    code = main(["local", "run", sample, "--pipeline", "demo-bedrock", "--out", str(tmp_path)])
    out = capsys.readouterr().out.splitlines()

    assert code == 0
    written = json.loads((tmp_path / "orchestration.json").read_text())
    assert set(written) >= {"executions", "stateTransitions", "largestStateBytes", "historyEvents"}
    assert set(written["historyEvents"]) == {"run", "largestChild"}
    [line] = [line for line in out if line.startswith("orchestration:")]
    assert f"{written['stateTransitions']} state transitions" in line
    assert f"largest state {written['largestStateBytes']} bytes" in line
    assert f"history events {written['historyEvents']['run']} (run)" in line
    assert line.endswith(str(tmp_path / "orchestration.json"))
