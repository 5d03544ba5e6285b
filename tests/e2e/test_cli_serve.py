"""`batchline local serve`: commands from other processes reach the local runtime through --endpoint-url."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import SAMPLES

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(180)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, server: subprocess.Popen[str], seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert server.poll() is None, server.communicate()[1]
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"batchline local serve did not listen on {port} within {seconds} s")


def test_commands_in_other_processes_run_a_file_through_the_served_runtime(tmp_path: Path) -> None:
    # GIVEN `batchline local serve` in its own process
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("AWS_ENDPOINT_URL", "AWS_PROFILE")}
    server = subprocess.Popen(
        [sys.executable, "-m", "batchline_local.cli", "local", "serve", "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, server)
        endpoint = ["--endpoint-url", f"http://127.0.0.1:{port}", "--region", "us-east-1", "--json"]

        def cli(*argv: str) -> dict:
            done = subprocess.run(
                [sys.executable, "-m", "batchline_local.cli", *argv, *endpoint],
                cwd=REPO_ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            return dict(json.loads(done.stdout))

        # WHEN another process submits a file and waits, then downloads the predictions
        submitted = cli("submit", str(SAMPLES / "demo-sagemaker.csv"), "--pipeline", "demo-sagemaker", "--wait")
        downloaded = cli("results", submitted["runId"], "-o", str(tmp_path / "p.csv"))
    finally:
        server.send_signal(signal.SIGTERM)
        _, served_log = server.communicate(timeout=60)

    # THEN the served runtime started the run from the upload alone, ran it, and stopped cleanly on SIGTERM
    assert (submitted["status"], submitted["counts"]["predicted"]) == ("SUCCEEDED", 120)
    with (tmp_path / "p.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert downloaded["rows"] == len(rows) == 120 and rows[0]["id"] == "cust-0001"
    assert f"run {submitted['runId']} started" in served_log
    assert server.returncode == 0
