"""A quiet command prints only the CLI's own lines: no handler log line ({"level": ...}), no Python warning a
handler raises (Powertools' "No application metrics to publish"), whatever way the run fails. Checked in a fresh
process, as a user runs it: pytest's own capture would swallow warnings and log records before they print."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import write_csv

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(180)


def run_cli(home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home)}  # no AWS_* variable, an empty HOME
    return subprocess.run(
        [sys.executable, "-m", "batchline_local.cli", *argv],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )


def foreign_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    """Lines neither the CLI's results (stdout) nor its own messages (stderr, each starting "batchline" or a
    progress stamp "[0:00:01]"): a handler's log line or a warning."""
    out = [line for line in done.stdout.splitlines() if line.startswith('{"level"')]
    err = [line for line in done.stderr.splitlines() if not line.startswith(("batchline", "Batchline", "["))]
    return out + err


@pytest.mark.parametrize(
    ("pipeline", "header", "rows"),
    [
        ("demo-sagemaker", ["id", "tenure", "charges"], [["", 1, 2], ["", 3, 4]]),  # every record rejected
        ("demo-bedrock", ["id", "prompt"], []),  # a header and no record (under the minimum is answered on demand)
    ],
    ids=["all-rejected", "header-only"],
)
def test_a_failed_local_run_prints_only_the_cli_lines(
    pipeline: str, header: list[str], rows: list[list[object]], tmp_path: Path, no_aws_configuration: Path
) -> None:
    upload = write_csv(tmp_path / "failing.csv", header, rows)

    done = run_cli(no_aws_configuration, "local", "run", str(upload), "--pipeline", pipeline, "--out", str(tmp_path))

    assert done.returncode == 1, done.stderr
    assert "FAILED" in done.stdout
    assert foreign_lines(done) == []


def test_a_failed_submit_local_wait_prints_only_the_cli_lines(tmp_path: Path, no_aws_configuration: Path) -> None:
    upload = write_csv(tmp_path / "failing.csv", ["id", "tenure", "charges"], [["", 1, 2]])

    done = run_cli(
        no_aws_configuration, "submit", str(upload), "--pipeline", "demo-sagemaker", "--local", "--out", str(tmp_path)
    )

    assert done.returncode == 1, done.stderr
    assert foreign_lines(done) == []
