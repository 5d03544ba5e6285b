"""What the run report's summary costs FinalizeRun: time and peak memory to read predictions.csv and errors.csv
of 1 and 10 million rows as FinalizeRun does (one streamed pass each, batchline.summary), and to draw report.html.

Each size runs in its own process (peak RSS is per process), pinned to one core when taskset exists (a Lambda of
1,769 MB has one vCPU). The figures are CPU seconds of that process, which a machine shared with other work does
not inflate as it does wall-clock time (both are printed). The files are made once in a temporary folder and read
from disk: S3's streaming adds its transfer time (about 100 MB/s in a Lambda) on top, printed as an estimate.

    .venv/bin/python -m benchmarks.report_summary            # 1M and 10M rows
    .venv/bin/python -m benchmarks.report_summary --rows 100000

Measured 2026-12-06 (AMD EPYC, 2 cores shared with other work, Python 3.11): predictions.csv of 3 columns,
1M rows 2.8 s CPU, 10M rows 27.4 s; errors.csv 1M 2.6 s, 10M 26.6 s; peak RSS 35 MB at both sizes (32 MB
after imports); report.html 52 KB drawn in 0.2 s. A run's predictions and errors together have about one row
per input record, so a 10-million-record run costs FinalizeRun about half a minute of its one vCPU plus the reads.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lambdas"))

from benchmarks.report import machine, peak_mb, table  # noqa: E402

# The shape measured: a SageMaker-like key and score, a class label, and a free-text column whose values are
# mostly distinct (the worst case for the bounded top-values table).
HEADER = ["id", "score", "label", "note"]
LABELS = ("churn", "stay", "unsure", "<b>risky</b>")
S3_MB_PER_SECOND = 100.0


def make_files(folder: Path, rows: int) -> tuple[Path, Path]:
    """predictions.csv and errors.csv of ``rows`` rows each (errors as Prepare's and Collect's reasons read)."""
    rng = random.Random(17)
    predictions = folder / f"predictions-{rows}.csv"
    errors = folder / f"errors-{rows}.csv"
    with predictions.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        for index in range(rows):
            writer.writerow(
                [
                    f"k{index}",
                    f"{rng.random():.6f}",
                    LABELS[index % len(LABELS)],
                    f"note {rng.randrange(rows)}" if index % 10 else "",
                ]
            )
    with errors.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["source_file", "line", "key", "stage", "reason", "record"])
        for index in range(rows):
            if index % 3:
                reason = f"duplicate key 'k{index}' (first seen on line {index + 1})"
                writer.writerow(["in.csv", index + 2, f"k{index}", "prepare", reason, f"k{index},1,2"])
            else:
                writer.writerow(["in.csv", index + 2, f"k{index}", "service", "job j-1 ended with status Failed", ""])
    return predictions, errors


def measure(predictions: Path, errors: Path) -> dict[str, float]:
    """In this process: the summary of both files, then the page (as FinalizeRun does)."""
    from batchline.report import render_report
    from batchline.summary import RunSummary, summarize_errors, summarize_predictions

    baseline = peak_mb()
    started, cpu = time.perf_counter(), time.process_time()
    with predictions.open(newline="", encoding="utf-8") as handle:
        columns = summarize_predictions(csv.reader(handle))
    predictions_seconds, predictions_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    with errors.open(newline="", encoding="utf-8") as handle:
        reasons = summarize_errors(csv.reader(handle))
    errors_seconds, errors_cpu = time.perf_counter() - started, time.process_time() - cpu
    summary = RunSummary(predictions=columns, errors=reasons)
    started = time.perf_counter()
    page = render_report({"runId": "bench", "status": "SUCCEEDED", "summary": summary.dump(), "jobs": []})
    report_seconds = time.perf_counter() - started
    return {
        "predictionsSeconds": predictions_seconds,
        "predictionsCpu": predictions_cpu,
        "errorsSeconds": errors_seconds,
        "errorsCpu": errors_cpu,
        "reportSeconds": report_seconds,
        "reportBytes": len(page.encode()),
        "manifestSummaryBytes": len(json.dumps(summary.dump())),
        "peakMb": peak_mb(),
        "baselineMb": baseline,
        "bins": sum(len(c.histogram) for c in columns.columns),
        "approximate": sum(c.approximate for c in columns.columns),
    }


def _in_process(predictions: Path, errors: Path) -> dict[str, float]:
    command = [sys.executable, "-m", "benchmarks.report_summary", "--measure", str(predictions), str(errors)]
    if shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
    output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument("--measure", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for count in args.rows:
            predictions, errors = make_files(Path(folder), count)
            figures = _in_process(predictions, errors)
            megabytes = (predictions.stat().st_size + errors.stat().st_size) / 1e6
            rows.append(
                [
                    f"{count:,}",
                    f"{predictions.stat().st_size / 1e6:.0f} MB + {errors.stat().st_size / 1e6:.0f} MB",
                    f"{figures['predictionsCpu']:.1f} s ({figures['predictionsSeconds']:.1f} s wall)",
                    f"{figures['errorsCpu']:.1f} s ({figures['errorsSeconds']:.1f} s wall)",
                    f"{megabytes / S3_MB_PER_SECOND:.1f} s",
                    f"{figures['reportSeconds']:.2f} s ({figures['reportBytes'] / 1e3:.0f} KB)",
                    f"{figures['peakMb']:.0f} MB (after imports {figures['baselineMb']:.0f})",
                ]
            )
            os.remove(predictions)
            os.remove(errors)
    table(
        f"Run report summary: one streamed pass per file, one core ({machine()})",
        [
            "rows",
            "predictions.csv + errors.csv",
            "predictions.csv (3 columns), CPU",
            "errors.csv, CPU",
            "+ S3 read (est.)",
            "report.html",
            "peak RSS",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
