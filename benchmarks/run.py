"""`make bench`: prints Batchline's figures, measured side by side in one run (never as timed tests)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lambdas"))

from batchline.backoff import next_wait_seconds  # noqa: E402
from batchline.config import parse_pipelines  # noqa: E402

from benchmarks.polling import HISTORY_TARGET, polling_cost  # noqa: E402

HANDLERS = [
    "start_run",
    "prepare_input",
    "submit_job",
    "poll_job",
    "collect_output",
    "finalize_run",
    "report_failure",
    "execution_ended",
]


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    print(f"\n{title}")
    print("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


def polling() -> None:
    pipeline = parse_pipelines({"p": {"keyColumn": "id", "service": {"provider": "sagemaker", "modelName": "m"}}}).get(
        "p"
    )
    rows = []
    for label, seconds in (("10 minutes", 600), ("6 hours", 6 * 3600), ("7 days", 7 * 86400)):
        cost = polling_cost(seconds, pipeline)
        worst = next_wait_seconds(seconds, minimum=pipeline.min_poll_seconds, maximum=pipeline.max_poll_seconds)
        met = cost.history_events < HISTORY_TARGET and (seconds <= 600 or worst <= 0.1 * seconds)
        rows.append(
            [
                label,
                str(cost.polls),
                str(cost.history_events),
                f"{worst} s ({worst / seconds:.1%})",
                "met" if met else "NOT MET",
            ]
        )
    table(
        f"Polling (back-off: a tenth of elapsed, {pipeline.min_poll_seconds}-{pipeline.max_poll_seconds} s; "
        f"targets: < {HISTORY_TARGET} history events, notice <= 10% of job time)",
        ["job length", "polls", "history events", "worst notice delay", "target"],
        rows,
    )


def import_times() -> None:
    rows = []
    env = {**os.environ, "PYTHONPATH": str(ROOT / "lambdas"), "POWERTOOLS_TRACE_DISABLED": "true"}
    for handler in HANDLERS:
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import handlers.{handler}"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        total = [line for line in done.stderr.splitlines() if line.rstrip().endswith(f"handlers.{handler}")]
        micros = int(total[-1].split("|")[1]) if total else 0
        google = "google.auth" in done.stderr
        rows.append([f"handlers.{handler}", f"{micros / 1000:.0f} ms", "yes" if google else "no"])
    table(
        "Handler cold import (python -X importtime, cumulative; this machine's Python)",
        ["module", "import time", "imports google-auth"],
        rows,
    )


def asset_sizes() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        code = Path(folder) / "code.zip"
        with zipfile.ZipFile(code, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in (ROOT / "lambdas").rglob("*"):
                if path.is_file() and "layer" not in path.parts and "__pycache__" not in path.parts:
                    archive.write(path, path.relative_to(ROOT / "lambdas"))
        rows.append(["function code (all 8 functions share it)", f"{code.stat().st_size / 1e3:.0f} kB"])
    layers = sorted((ROOT / "cdk.out").glob("asset.*/python")) if (ROOT / "cdk.out").exists() else []
    for layer in layers:
        size = sum(p.stat().st_size for p in layer.rglob("*") if p.is_file())
        rows.append([f"dependency layer (unzipped, {layer.parent.name[:14]})", f"{size / 1e6:.0f} MB"])
    if not layers:
        rows.append(["dependency layer", "run `make synth` first to build it"])
    table("Lambda assets", ["asset", "size"], rows)


def collect(records: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "out.jsonl"
        from benchmarks.collect_personalize import make_output_file

        make_output_file(path, records)
        results = {}
        for engine in ("batchline", "pandas"):
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.collect_personalize", engine, str(path)],
                capture_output=True,
                text=True,
                cwd=ROOT,
                check=True,
                env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'lambdas'}"},
            )
            results[engine] = json.loads(done.stdout.strip().splitlines()[-1])
    ratio = results["batchline"]["records_per_second"] / results["pandas"]["records_per_second"]
    rows = [
        [engine, f"{r['records_per_second']:,.0f}", f"{r['seconds']:.1f} s", f"{r['peak_mb']:.0f} MB"]
        for engine, r in results.items()
    ]
    table(
        f"Collect, Personalize output -> long CSV, {records:,} records x 25 items, one core "
        f"(target: >= 10x pandas; measured {ratio:.1f}x: {'met' if ratio >= 10 else 'NOT MET'})",
        ["engine", "records/s", "time", "peak RSS"],
        rows,
    )


def prepare(quick: bool) -> None:
    from benchmarks import prepare as bench

    sizes = bench.sizes_for(quick)
    table(bench.title(sizes), bench.HEADER, bench.run(sizes, list(bench.FORMATS)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Batchline's measured figures, side by side.")
    parser.add_argument("--quick", action="store_true", help="Prepare at 100k and 1M records instead of 1M and 10M")
    args = parser.parse_args()
    polling()
    import_times()
    asset_sizes()
    collect(int(os.environ.get("BENCH_RECORDS", "200000")))
    prepare(args.quick)
