"""What Step Functions does for a run of 1, 100 and 1,000 jobs, from real runs on the local runtime: the largest
state (Step Functions refuses one past 256 KiB), the history events of the run's own execution and of its largest
child (25,000 is the limit of each), executions and state transitions (what is billed).

The runs are Bedrock runs of two records a job (``maxRecordsPerJob`` 2), so the number of jobs, not the size of
the upload, is what grows. ``--before`` also runs the same uploads on the code before jobs ran in child
executions (commit BEFORE_CODE: RunJobs an inline Map over ``$.prepared.chunks``), with the local runtime that
first enforced the limits and counted these figures (BEFORE_RUNTIME); it needs the repository's git history.

    python -m benchmarks.orchestration [--jobs 1,100,1000] [--repeats 3] [--before]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
JOBS = (1, 100, 1_000)
RECORDS_PER_JOB = 2
# The state machine and handlers before each job ran in its own child execution (the parent of cd7a37e), and the
# runtime branch that added the 256 KiB / 25,000-event limits and these figures (merged with cd7a37e in 1ee9dda;
# it changes only batchline_local/, which 4f83e6e does not touch).
BEFORE_CODE = "4f83e6e"
BEFORE_RUNTIME = "c8bd728"
PIPELINE = {
    "keyColumn": "id",
    "maxConcurrentJobs": 40,
    "service": {
        "provider": "bedrock",
        "modelId": "amazon.nova-lite-v1:0",
        "roleArn": "arn:aws:iam::123456789012:role/bedrock-batch",
        "promptColumn": "text",
        "minRecordsPerJob": 1,
        "maxRecordsPerJob": RECORDS_PER_JOB,
        "recordsPerFile": RECORDS_PER_JOB,
    },
}
FIGURES = ("executions", "childExecutions", "stateTransitions", "largestStateBytes", "runEvents", "childEvents")


def run_once(runtime: Any, folder: Path, jobs: int) -> dict[str, Any]:
    """One real run of ``jobs`` jobs; its figures, its outcome and its wall time. Only LocalRuntime.run_file and
    RunResult.orchestration are used, so the same function runs on the code of BEFORE_CODE."""
    path = folder / f"jobs-{jobs}-{time.time_ns()}.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["id", "text"])
        writer.writerows([f"k{n}", f"prompt {n}"] for n in range(RECORDS_PER_JOB * jobs))
    started = time.monotonic()
    result = runtime.run_file(path, "orchestration")
    seconds = time.monotonic() - started
    figures = result.orchestration
    detail = (result.event or {}).get("detail") or {}
    polls = [p for name, p in runtime.invocations if name.endswith("PollJob") and p.get("run", {}).get("runId")]
    polls = [p for p in polls if p["run"]["runId"] == result.run_id and p.get("step") != "jobError"]
    # The execution's own error: the code before did not bring an uncaught failure to a failure event.
    described = runtime.client("stepfunctions").describe_execution(executionArn=result.execution_arn)
    return {
        "jobs": jobs,
        "status": result.status,
        "error": described.get("error") or "",
        "cause": (described.get("cause") or "")[:160],
        "predicted": ((detail.get("counts") or {}).get("predicted")),
        "seconds": seconds,
        "executions": figures.get("executions", 0),
        "childExecutions": figures.get("childExecutions", 0),
        "stateTransitions": figures.get("stateTransitions", 0),
        "largestStateBytes": figures.get("largestStateBytes", 0),
        "runEvents": figures.get("historyEvents", {}).get("run", 0),
        "childEvents": figures.get("historyEvents", {}).get("largestChild", 0),
        "pollsPerJob": len(polls) / jobs,
    }


def measure(jobs: list[int], repeats: int) -> list[dict[str, Any]]:
    """Each size ``repeats`` times in one runtime, the median of each figure and of the wall time; once from 100
    jobs (the figures do not vary between runs, and 1,000 jobs take about three minutes here)."""
    from batchline_local.runtime import LocalRuntime

    rows = []
    with tempfile.TemporaryDirectory() as scratch, LocalRuntime({"orchestration": PIPELINE}) as runtime:
        for count in jobs:
            runs = [run_once(runtime, Path(scratch), count) for _ in range(repeats if count < 100 else 1)]
            row = dict(runs[0])
            for key in (*FIGURES, "seconds", "pollsPerJob"):
                row[key] = statistics.median(run[key] for run in runs)
            row["runs"] = len(runs)
            # Timestamps in the outcome event make the largest state vary by a few bytes; say when more varies.
            row["varied"] = [
                key for key in FIGURES if max(r[key] for r in runs) - min(r[key] for r in runs) > 0.01 * row[key]
            ]
            rows.append(row)
    return rows


def measure_before(jobs: list[int]) -> list[dict[str, Any]] | str:
    """The same runs on the code of BEFORE_CODE, in a subprocess on an export of it; a reason when it cannot run."""
    with tempfile.TemporaryDirectory() as scratch:
        tree = Path(scratch)
        try:
            for commit, paths in ((BEFORE_CODE, []), (BEFORE_RUNTIME, ["batchline_local"])):
                archive = subprocess.run(
                    ["git", "archive", commit, *paths], cwd=ROOT, capture_output=True, check=True
                ).stdout
                subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            return f"not measured: the git history of {BEFORE_CODE} and {BEFORE_RUNTIME} is not here ({exc})"
        (tree / "benchmarks" / "orchestration.py").write_bytes(Path(__file__).read_bytes())
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.orchestration",
                "--json",
                "--repeats",
                "1",
                "--jobs",
                ",".join(map(str, jobs)),
            ],
            cwd=tree,
            capture_output=True,
            text=True,
            # Its own packages first: the editable install maps `batchline` to this tree's lambdas.
            env={**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'lambdas'}"},
        )
        if done.returncode != 0:
            return f"not measured: the run on {BEFORE_CODE} failed: {done.stderr.strip().splitlines()[-1:]}"
        return list(json.loads(done.stdout.strip().splitlines()[-1]))


def _kib(size: float) -> str:
    return f"{size / 1024:.1f} KiB"


def _seconds(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def _executions(row: dict[str, Any]) -> str:
    children = row["childExecutions"]
    return f"{row['executions']:g} ({children:g} {'child' if children == 1 else 'children'})"


def _status(row: dict[str, Any]) -> str:
    return row["status"] if not row["error"] else f"{row['status']} ({row['error']})"


def report(after: list[dict[str, Any]], before: list[dict[str, Any]] | str | None) -> None:
    from batchline.config import parse_pipelines

    from benchmarks.polling import EVENTS_PER_POLL, FIXED_EVENTS, HISTORY_TARGET, polling_cost
    from benchmarks.report import table

    header = [
        "jobs",
        "code",
        "source",
        "outcome",
        "largest state",
        "run history",
        "largest child history",
        "executions",
        "state transitions",
        "wall time",
    ]

    def cells(row: dict[str, Any], code: str, source: str) -> list[str]:
        return [
            f"{row['jobs']:,}",
            code,
            source,
            _status(row),
            _kib(row["largestStateBytes"]),
            f"{row['runEvents']:g}",
            f"{row['childEvents']:g}",
            _executions(row),
            f"{row['stateTransitions']:g}",
            _seconds(row["seconds"]),
        ]

    rows = []
    for row in after:
        runs = f"real run, median of {row['runs']}" if row["runs"] > 1 else "real run"
        rows.append(cells(row, "now", runs + (f" (varied: {', '.join(row['varied'])})" if row["varied"] else "")))
    if isinstance(before, list):
        rows += [cells(row, f"before ({BEFORE_CODE})", "real run") for row in before]
    targets = "targets: largest state <= 32 KiB at 1,000 jobs, run history <= 2,000 events; limits 256 KiB, 25,000"
    table(
        f"Orchestration per run, Bedrock at {RECORDS_PER_JOB} records a job, each job polled "
        f"{after[0]['pollsPerJob']:g} time(s) by the emulator ({targets})",
        header,
        rows,
    )
    if isinstance(before, str):
        print(f"  before: {before}")
    largest = next((row for row in after if row["jobs"] >= 1_000), after[-1])
    state_ok = largest["largestStateBytes"] <= 32 * 1024
    print(
        f"  at {largest['jobs']:,} jobs: largest state {_kib(largest['largestStateBytes'])} "
        f"({'met' if state_ok else 'NOT MET'}), run history {largest['runEvents']:g} events "
        f"({'met' if largest['runEvents'] <= 2_000 else 'NOT MET'})"
    )

    # A job's child for a long job: the real back-off's polls, with the events counted per poll in polling.py.
    pipeline = parse_pipelines({"p": PIPELINE}).get("p")
    week = polling_cost(7 * 86_400, pipeline)
    measured = after[0]
    fixed = measured["childEvents"] - EVENTS_PER_POLL * measured["pollsPerJob"]
    table(
        f"A job's child execution (target: < {HISTORY_TARGET:,} events for a 7-day job)",
        ["job", "source", "polls", "history events"],
        [
            [
                f"{measured['pollsPerJob']:g} poll(s)",
                "real run above (largest child)",
                f"{measured['pollsPerJob']:g}",
                f"{measured['childEvents']:g} ({fixed:g} outside the polls + {EVENTS_PER_POLL} a poll; "
                f"polling.py counts {FIXED_EVENTS}: {'agrees' if fixed == FIXED_EVENTS else 'DIFFERS'})",
            ],
            [
                "7 days",
                f"benchmarks/polling.py (counted: {FIXED_EVENTS} + {EVENTS_PER_POLL} a poll)",
                f"{week.polls}",
                f"{week.history_events:,} ({'met' if week.history_events < HISTORY_TARGET else 'NOT MET'})",
            ],
        ],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", default=",".join(map(str, JOBS)), help="job counts, comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="runs per size under 100 jobs (median)")
    parser.add_argument("--before", action="store_true", help=f"also run the code of {BEFORE_CODE}")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON (used for --before)")
    args = parser.parse_args(argv)
    jobs = [int(n) for n in args.jobs.split(",")]
    if str(ROOT / "lambdas") not in sys.path:
        sys.path.insert(1, str(ROOT / "lambdas"))
    after = measure(jobs, args.repeats)
    if args.json:
        print(json.dumps(after))
        return
    report(after, measure_before(jobs) if args.before else None)


if __name__ == "__main__":
    main()
