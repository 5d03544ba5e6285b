"""Ctrl-C ends a `local run` at once for every provider: exit 130 and one line saying what became of the run, never
a traceback. Checked in a fresh process sent SIGINT, as a terminal sends it (to the whole process group: the IAM
evaluator's node child gets it too)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(240)
STOPPED = "batchline: interrupted: the run was stopped, and its emulated AWS state ended with the local runtime"


def as_foreground_job() -> None:
    """SIGINT as a terminal's foreground job has it. Tests started as a background job of a non-interactive shell
    (a CI runner's `make test &`) inherit SIGINT ignored, and a Python started so installs no handler for it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(tmp_path: Path, pipeline: str, *flags: str) -> subprocess.Popen[str]:
    sample = REPO_ROOT / "samples" / f"{pipeline}.csv"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}  # no AWS_* variable, an empty HOME
    return subprocess.Popen(
        [sys.executable, "-m", "batchline_local.cli", "local", "run", str(sample), "--pipeline", pipeline]
        + ["--out", str(tmp_path / "out"), *flags],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a shell gives a foreground job
        preexec_fn=as_foreground_job,
    )


def interrupt_when(process: subprocess.Popen[str], marker: str) -> tuple[str, str]:
    """Read stdout until ``marker`` shows, send SIGINT to the group, and collect what is left (with a deadline)."""
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if marker in line:
            break
    else:
        pytest.fail(f"the run never printed {marker!r}: {''.join(seen)[-2000:]}")
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=120)
    return "".join(seen) + out, err


@pytest.mark.parametrize("provider", ["sagemaker", "personalize", "bedrock", "amazonml", "vertex"])
def test_ctrl_c_while_the_job_runs_stops_the_run_with_one_line_and_exit_130(tmp_path: Path, provider: str) -> None:
    # GIVEN a local run whose job was just submitted (--verbose shows the handlers' log lines on stdout)
    process = start(tmp_path, f"demo-{provider}", "--verbose")

    # WHEN Ctrl-C comes
    _, err = interrupt_when(process, '"job submitted"')

    # THEN the command ends with 130 and one line, and no outputs of a half run are left behind
    assert process.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == STOPPED
    assert not (tmp_path / "out" / "predictions.csv").exists()


def test_ctrl_c_while_the_local_runtime_starts_is_one_line_too(tmp_path: Path) -> None:
    process = start(tmp_path, "demo-vertex")

    _, err = interrupt_when(process, "Batchline local run")

    assert process.returncode == 130
    # One line: the run's fate when the runtime had begun, a bare "interrupted" when the signal came just before.
    (line,) = err.strip().splitlines()
    assert line in (STOPPED, "batchline: interrupted")


def test_ctrl_c_while_submit_wait_follows_its_own_local_run_says_the_run_ended_with_it(tmp_path: Path) -> None:
    sample = REPO_ROOT / "samples" / "demo-vertex.csv"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "batchline_local.cli", "submit", str(sample), "--pipeline", "demo-vertex"]
        + ["--local", "--wait", "--out", str(tmp_path / "out")],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=as_foreground_job,
    )
    assert process.stderr is not None
    seen = []
    for line in process.stderr:  # progress lines: one per change, off a terminal
        seen.append(line)
        if "RunJobs" in line:
            break
    else:
        pytest.fail(f"the run never reached RunJobs: {''.join(seen)[-2000:]}")
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)

    assert process.returncode == 130
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == STOPPED
