"""The local runtime at the size of a real file, and `local serve`'s memory across runs (issue 17).

``report()`` generates a 1,000,000-row CSV, runs ``batchline local run`` on it (a SageMaker pipeline with the
service's default settings: 100,000 records per staged file) and prints the wall time and the peak memory of the
whole process tree (the CLI and the Node process that evaluates the permission checks, sampled from /proc); then
starts ``batchline local serve``, submits a 20,000-row file (in 400 files of 50 records, the demo pipeline's size)
several times from another process and prints the server's memory after each run.
``python -m benchmarks.local_run cli CDK_JSON ARGS...`` runs the CLI with the pipelines of another cdk.json (how
both measurements give the CLI their pipelines).

Environment: BENCH_LOCAL_ROWS (default 1000000), BENCH_LOCAL_REPEATS (3), BENCH_SERVE_ROWS (20000),
BENCH_SERVE_RUNS (3).
"""

from __future__ import annotations

import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = "bench-sagemaker"
# The demo's SageMaker pipeline without its demo-sized files: what a user's pipeline for a real file looks like.
PIPELINE_BODY = {
    "keyColumn": "id",
    "maxRunHours": 24,
    "service": {
        "provider": "sagemaker",
        "modelName": "batchline-demo-churn",
        "instanceType": "ml.m5.large",
        "instanceCount": 1,
        "predictionColumns": ["churn_probability"],
        "numericFeatures": True,
    },
}


def write_rows(path: Path, rows: int, seed: int = 17) -> Path:
    """A churn-style CSV of ``rows`` records (the demo's columns), the same for the same seed."""
    draw = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("id,tenure_months,monthly_charges,support_tickets,late_payments\n")
        for number in range(rows):
            handle.write(
                f"cust-{number:07d},{draw.randint(0, 72)},{draw.uniform(20, 120):.2f},"
                f"{draw.randint(0, 10)},{draw.randint(0, 6)}\n"
            )
    return path


# The same with the demo's small files (50 records each): many objects and calls per run, as in the demo pipeline.
SMALL_FILES_PIPELINE = "bench-sagemaker-small-files"


def write_cdk_json(folder: Path) -> Path:
    """The repository's cdk.json with the benchmark's pipelines only."""
    document = json.loads((ROOT / "cdk.json").read_text(encoding="utf-8"))
    small_files = {**PIPELINE_BODY, "service": {**PIPELINE_BODY["service"], "recordsPerFile": 50}}
    document["context"]["batchline"]["pipelines"] = {PIPELINE: PIPELINE_BODY, SMALL_FILES_PIPELINE: small_files}
    path = folder / "cdk.json"
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path


def cli_command(cdk_json: Path, *argv: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks.local_run", "cli", str(cdk_json), *argv]


# --- memory of a process tree, from /proc ------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def rss_mb(pid: int) -> float:
    """One process's resident memory in MB (0 once it has ended)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    tree, total, pending = _children(), 0.0, [pid]
    while pending:
        current = pending.pop()
        total += rss_mb(current)
        pending.extend(tree.get(current, []))
    return total


class PeakSampler(threading.Thread):
    """Samples a process tree's memory every ``interval`` seconds and keeps the largest sum."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak = pid, interval, 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            self.peak = max(self.peak, tree_rss_mb(self.pid))


# --- the measurements ----------------------------------------------------------------------------------


def measure_run(rows: int, repeats: int) -> list[dict[str, float]]:
    """Wall seconds, CPU seconds and peak tree memory of ``batchline local run`` on ``rows`` records."""
    results = []
    with tempfile.TemporaryDirectory(prefix="batchline-bench-local-") as folder:
        base = Path(folder)
        data = write_rows(base / "records.csv", rows)
        cdk_json = write_cdk_json(base)
        # Not counted: the first run synthesizes the stack for this pipeline (kept under .build/templates/).
        warm_up = write_rows(base / "warm-up.csv", 10)
        subprocess.run(
            cli_command(cdk_json, "local", "run", str(warm_up), "--pipeline", PIPELINE, "--out", str(base / "warm")),
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
        for repeat in range(repeats):
            command = cli_command(cdk_json, "local", "run", str(data), "--pipeline", PIPELINE, "--json")
            command += ["--out", str(base / f"out-{repeat}")]
            before = os.times()
            started = time.monotonic()
            process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            sampler = PeakSampler(process.pid)
            sampler.start()
            output, _ = process.communicate()
            wall = time.monotonic() - started
            sampler.done.set()
            sampler.join()
            after = os.times()
            cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
            summary = json.loads(output)
            predicted = summary.get("counts", summary.get("event", {}).get("detail", {}).get("counts", {}))
            results.append(
                {
                    "wall": wall,
                    "cpu": cpu,
                    "peak": sampler.peak,
                    "ok": float(process.returncode == 0),
                    "predicted": float(predicted.get("predicted", -1)),
                }
            )
    return results


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def measure_serve(rows: int, runs: int, pipeline: str = SMALL_FILES_PIPELINE) -> dict[str, Any]:
    """The served runtime's memory (its process tree) idle, then after each run submitted from another process."""
    with tempfile.TemporaryDirectory(prefix="batchline-bench-serve-") as folder:
        base = Path(folder)
        data = write_rows(base / "records.csv", rows)
        cdk_json = write_cdk_json(base)
        port = _free_port()
        env = {key: value for key, value in os.environ.items() if key not in ("AWS_ENDPOINT_URL", "AWS_PROFILE")}
        # What the served runtime's banner tells a user to export in the other shell.
        env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1")
        server = subprocess.Popen(
            cli_command(cdk_json, "local", "serve", "--port", str(port)),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 180
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("batchline local serve did not start") from None
                    time.sleep(0.5)
            time.sleep(2)
            figures: dict[str, Any] = {"idle": tree_rss_mb(server.pid), "after": [], "peak": 0.0}
            endpoint = ["--endpoint-url", f"http://127.0.0.1:{port}", "--region", "us-east-1", "--json"]
            for _ in range(runs):
                sampler = PeakSampler(server.pid)
                sampler.start()
                submitted = subprocess.run(
                    cli_command(cdk_json, "submit", str(data), "--pipeline", pipeline, "--wait", *endpoint),
                    cwd=ROOT,
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                sampler.done.set()
                sampler.join()
                status = json.loads(submitted.stdout).get("status") if submitted.returncode == 0 else "ERROR"
                if status == "ERROR":
                    print(submitted.stderr.strip()[-2000:], file=sys.stderr)
                time.sleep(3)  # the watcher's after-run release runs at its next turn
                figures["after"].append((status, tree_rss_mb(server.pid)))
                figures["peak"] = max(figures["peak"], sampler.peak)
            return figures
        finally:
            server.terminate()
            server.wait(timeout=60)


def report() -> None:
    from benchmarks.report import table

    rows = int(os.environ.get("BENCH_LOCAL_ROWS", "1000000"))
    repeats = int(os.environ.get("BENCH_LOCAL_REPEATS", "3"))
    runs = measure_run(rows, repeats)

    def spread(field: str) -> str:
        values = [run[field] for run in runs]
        return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"

    all_ok = all(run["ok"] and run["predicted"] == rows for run in runs)
    table(
        f"batchline local run, {rows:,} rows, SageMaker with default settings (median of {repeats}, min-max; "
        "targets: < 180 s wall, < 1536 MB peak)",
        ["wall s", "CPU s", "peak MB (process tree)", "every row predicted"],
        [[spread("wall"), spread("cpu"), spread("peak"), "yes" if all_ok else "NO"]],
    )
    serve_rows = int(os.environ.get("BENCH_SERVE_ROWS", "20000"))
    serve_runs = int(os.environ.get("BENCH_SERVE_RUNS", "3"))
    served = measure_serve(serve_rows, serve_runs)
    table(
        f"batchline local serve: memory of its process tree, idle and after each {serve_rows:,}-row run "
        "(50 records per file; every run's objects stay in the emulated S3)",
        ["when", "run", "MB"],
        [["idle", "", f"{served['idle']:.0f}"]]
        + [[f"after run {n}", status, f"{mb:.0f}"] for n, (status, mb) in enumerate(served["after"], 1)]
        + [["peak during the runs", "", f"{served['peak']:.0f}"]],
    )


def _run_cli(cdk_json: str, argv: list[str]) -> int:
    """The CLI as the user runs it, with ``cdk_json``'s pipelines instead of the repository's."""
    sys.path.insert(0, str(ROOT / "lambdas"))
    import batchline_local.runtime as runtime

    runtime.CDK_JSON = Path(cdk_json)
    from batchline_local.cli import main

    return main(argv)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "cli":
        sys.exit(_run_cli(sys.argv[2], sys.argv[3:]))
    report()
