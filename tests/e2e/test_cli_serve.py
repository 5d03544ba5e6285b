"""`batchline local serve`: commands from other processes reach the local runtime through --endpoint-url."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

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


# Starts the CLI with the pipelines of another cdk.json (the served runtime reads runtime.CDK_JSON at start):
# the test edits its own copy, never the repository's file.
_CLI_WITH_CONFIG = (
    "import sys; from pathlib import Path; import batchline_local.runtime as runtime; "
    "runtime.CDK_JSON = Path(sys.argv[1]); from batchline_local.cli import main; sys.exit(main(sys.argv[2:]))"
)


class _Lines:
    """What a process writes on a stream, line by line, readable while it runs."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, seconds: float, after: int = 0) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = [line for line in self.lines[after:] if text in line]
            if found:
                return found[0]
            time.sleep(0.2)
        raise AssertionError(f"no line with {text!r} within {seconds} s; got: {self.lines[after:]}")


@pytest.mark.timeout(420)
def test_served_runtime_reloads_cdk_json_and_keeps_the_last_good_configuration(tmp_path: Path) -> None:
    # GIVEN `batchline local serve` on a copy of cdk.json
    config = tmp_path / "cdk.json"
    document = json.loads((REPO_ROOT / "cdk.json").read_text(encoding="utf-8"))
    config.write_text(json.dumps(document, indent=2), encoding="utf-8")
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("AWS_ENDPOINT_URL", "AWS_PROFILE")}
    server = subprocess.Popen(
        [sys.executable, "-c", _CLI_WITH_CONFIG, str(config), "local", "serve", "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = _Lines(server.stderr)
    endpoint = ["--endpoint-url", f"http://127.0.0.1:{port}", "--region", "us-east-1", "--json"]

    def submit(pipeline: str) -> dict:
        done = subprocess.run(
            [sys.executable, "-c", _CLI_WITH_CONFIG, str(config), "submit", str(SAMPLES / "demo-sagemaker.csv")]
            + ["--pipeline", pipeline, "--wait", *endpoint],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=150,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, served.lines
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "batchline local serve did not listen"
                time.sleep(0.2)

        # WHEN cdk.json is broken (a missing comma) while serving
        text = json.dumps(document, indent=2)
        broken = text.replace('"keyColumn": "id",', '"keyColumn": "id"', 1)
        config.write_text(broken, encoding="utf-8")
        complaint = served.wait_for("not reloaded", 30)
        # THEN one line names the file, line and column, and the previous pipelines still run
        error_line = next(n for n, line in enumerate(broken.splitlines(), 1) if line.endswith('"keyColumn": "id"'))
        assert f"cdk.json:{error_line + 1}:" in complaint and "previous configuration stays" in complaint
        assert submit("demo-sagemaker")["status"] == "SUCCEEDED"

        # WHEN the file is fixed, with a new pipeline in it
        seen = len(served.lines)
        pipelines = document["context"]["batchline"]["pipelines"]
        pipelines["churn-copy"] = json.loads(json.dumps(pipelines["demo-sagemaker"]))
        config.write_text(json.dumps(document, indent=2), encoding="utf-8")
        reloaded = served.wait_for("reloaded:", 240, after=seen)
        # THEN the fix is picked up: the new pipeline runs end to end
        assert "churn-copy" in reloaded and "not reloaded" not in reloaded
        run = submit("churn-copy")
        assert (run["status"], run["counts"]["predicted"]) == ("SUCCEEDED", 120)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=90)
    assert server.returncode == 0, served.lines
