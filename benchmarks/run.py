"""`make bench`: prints Batchline's figures, measured side by side in one run (never as timed tests)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lambdas"))

from batchline.backoff import next_wait_seconds  # noqa: E402
from batchline.config import parse_pipelines  # noqa: E402

from benchmarks import collect_formats, local_run, notice, orchestration, prepare_fanout  # noqa: E402
from benchmarks.polling import HISTORY_TARGET, polling_cost  # noqa: E402
from benchmarks.report import machine, table  # noqa: E402

HANDLERS = [
    "start_run",
    "prepare_input",
    "submit_job",
    "poll_job",
    "plan_collect",
    "collect_unit",
    "assemble_output",
    "finalize_run",
    "report_failure",
    "execution_ended",
    "wake_job",
]


# Libraries worth keeping out of cold starts that do not need them: (name, top-level module).
HEAVY_LIBRARIES = (("google-auth", "google.auth"), ("duckdb", "duckdb"))


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
        heavy = [name for name, module in HEAVY_LIBRARIES if f" {module}" in done.stderr]
        rows.append([f"handlers.{handler}", f"{micros / 1000:.0f} ms", ", ".join(heavy) or "none"])
    table(
        "Handler cold import (python -X importtime, cumulative; this machine's Python)",
        ["module", "import time", "heavy libraries imported at cold start"],
        rows,
    )


def _sizes(folder: Path) -> tuple[int, int]:
    """(zipped, unzipped) bytes of an asset folder, zipped as CDK uploads it (deflate)."""
    files = [path for path in folder.rglob("*") if path.is_file()]
    with tempfile.TemporaryDirectory() as scratch:
        archive_path = Path(scratch) / "asset.zip"
        with zipfile.ZipFile(archive_path, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in files:
                archive.write(path, path.relative_to(folder))
        return archive_path.stat().st_size, sum(path.stat().st_size for path in files)


def asset_sizes() -> None:
    """Each function's zipped code and layers, from the synthesized template (``make synth`` builds it)."""
    template_path = ROOT / "cdk.out" / "Batchline.template.json"
    if not template_path.exists():
        table("Lambda assets", ["asset", "size"], [["all", "run `make synth` first to build them"]])
        return
    resources = json.loads(template_path.read_text())["Resources"]
    sizes: dict[str, tuple[int, int]] = {}

    def size_of(logical_id: str) -> tuple[int, int]:
        asset = resources[logical_id]["Metadata"]["aws:asset:path"]
        if asset not in sizes:
            sizes[asset] = _sizes(ROOT / "cdk.out" / asset)
        return sizes[asset]

    rows = []
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        name = resource["Metadata"]["aws:cdk:path"].split("/")[-2]
        layers = [layer["Ref"] for layer in resource["Properties"].get("Layers", [])]
        code = size_of(logical_id)
        parts = [code, *(size_of(layer) for layer in layers)]
        layer_names = ", ".join(
            f"{resources[layer]['Metadata']['aws:cdk:path'].split('/')[-2]} {size_of(layer)[0] / 1e6:.1f} MB"
            for layer in layers
        )
        rows.append(
            [
                name,
                f"{code[0] / 1e3:.0f} kB",
                layer_names,
                f"{sum(p[0] for p in parts) / 1e6:.1f} MB",
                f"{sum(p[1] for p in parts) / 1e6:.0f} MB",
            ]
        )
    table(
        "Lambda assets, zipped as uploaded (Lambda's limit: 250 MB unzipped with layers)",
        ["function", "code (zip)", "layers (zip)", "total zipped", "total unzipped"],
        rows,
    )


def _engine(engine: str, path: Path) -> dict[str, float] | None:
    """One engine in its own process, pinned to one core when taskset exists; None if it cannot run here."""
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    done = subprocess.run(
        [*pin, sys.executable, "-m", "benchmarks.collect_personalize", engine, str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'lambdas'}"},
    )
    if done.returncode != 0:
        if "ModuleNotFoundError" in done.stderr:
            return None
        raise RuntimeError(done.stderr)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _interleaved_runs(engines: tuple[str, ...], path: Path, repeats: int) -> dict[str, list[dict[str, float]] | None]:
    """Each engine ``repeats`` times, in rounds so a burst of load on this shared machine hits every engine alike;
    every run is kept (None: the engine is not installed)."""
    runs: dict[str, list[dict[str, float]] | None] = {}
    for _ in range(repeats):
        for name in engines:
            if name in runs and runs[name] is None:
                continue  # not installed
            result = _engine(name, path)
            if result is None:
                runs[name] = None
            else:
                runs.setdefault(name, [])
                runs[name].append(result)  # type: ignore[union-attr]
    return runs


def _spread(runs: list[dict[str, float]], field: str) -> tuple[float, float, float]:
    """(median, min, max) of one figure over the runs."""
    values = [run[field] for run in runs]
    return statistics.median(values), min(values), max(values)


def collect(records: int, repeats: int) -> tuple[float, float]:
    """The engine comparison; returns Batchline's median records/s and the output's bytes per record."""
    from benchmarks.collect_personalize import make_output_file

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "out.jsonl"
        make_output_file(path, records)
        file_mb = path.stat().st_size / 1e6
        results = _interleaved_runs(("duckdb", "python", "polars", "pandas"), path, repeats)
        profiles = [_engine("duckdb-profile", path) or {} for _ in range(repeats)]
    load_after = os.getloadavg()
    pandas, duckdb = results["pandas"], results["duckdb"]
    assert pandas is not None, "make bench installs pandas (the bench extra)"
    assert duckdb is not None
    pandas_wall = _spread(pandas, "records_per_second")[0]
    pandas_cpu = _spread(pandas, "records_per_cpu_second")[0]
    rows = []
    for name, runs in results.items():
        if runs is None:
            rows.append([name, "not installed", "", "", "", "", "", ""])
            continue
        wall, wall_low, wall_high = _spread(runs, "records_per_second")
        cpu, cpu_low, cpu_high = _spread(runs, "records_per_cpu_second")
        seconds, _, _ = _spread(runs, "seconds")
        cpu_seconds, cpu_seconds_low, cpu_seconds_high = _spread(runs, "cpu_seconds")
        rows.append(
            [
                name + (" (Batchline)" if name == "duckdb" else ""),
                f"{wall:,.0f} ({wall_low:,.0f}-{wall_high:,.0f})",
                f"{wall / pandas_wall:.1f}x",
                f"{cpu:,.0f} ({cpu_low:,.0f}-{cpu_high:,.0f})",
                f"{cpu / pandas_cpu:.1f}x",
                f"{seconds:.2f} s",
                f"{cpu_seconds:.2f} s ({cpu_seconds_low:.2f}-{cpu_seconds_high:.2f})",
                f"{_spread(runs, 'peak_mb')[0]:.0f} MB",
            ]
        )
    ratio = _spread(duckdb, "records_per_second")[0] / pandas_wall
    cpu_ratio = _spread(duckdb, "records_per_cpu_second")[0] / pandas_cpu
    # The ratio's own spread: DuckDB's and pandas' runs paired by round (they ran back to back).
    paired = sorted(
        d["records_per_cpu_second"] / p["records_per_cpu_second"] for d, p in zip(duckdb, pandas, strict=True)
    )
    table(
        f"Collect, Personalize output -> long CSV: {records:,} users x 25 items ({file_mb:.0f} MB), one core each, "
        f"median (min-max) of {repeats} interleaved runs, each timed after its engine's imports; {machine()}, "
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after. "
        f"Target >= 10x pandas at the median in CPU time: {cpu_ratio:.1f}x, {'met' if cpu_ratio >= 10 else 'NOT MET'} "
        f"(per round {paired[0]:.1f}-{paired[-1]:.1f}x); wall-clock {ratio:.1f}x",
        [
            "engine",
            "records/s",
            "vs pandas",
            "records/CPU-s",
            "vs pandas (CPU)",
            "wall time",
            "CPU time",
            "peak RSS",
        ],
        rows,
    )
    whole = statistics.median(profile["shard_to_csv in all"] for profile in profiles)
    table(
        f"Where DuckDB's CPU time goes in one shard (same file, median (min-max) of {repeats} runs; indented rows are "
        "the predictions statement's pieces run alone)",
        ["part", "CPU time", "share"],
        [
            [
                part,
                f"{median:.2f} s ({low:.2f}-{high:.2f})",
                f"{median / whole:.0%}",
            ]
            for part in profiles[0]
            for median, low, high in [_spread(profiles, part)]
        ],
    )
    return _spread(duckdb, "records_per_second")[0], file_mb * 1e6 / records


def collect_transfer(repeats: int) -> float:
    """Collect's read of one shard (collectShardBytes' default, 256 MiB) from a throttled fake S3, one GET against
    parallel ranged GETs; returns the median bytes/s of the setting Collect uses (s3io.PARALLEL_GETS)."""
    from batchline.s3io import PARALLEL_GETS

    from benchmarks import collect_transfer as bench

    size = int(os.environ.get("BENCH_TRANSFER_MIB", "256"))
    rows = bench.measure(size, repeats)
    bench.report(rows, size, repeats)
    adapters_mib = int(os.environ.get("BENCH_ADAPTER_READ_MIB", "64"))
    bench.report_adapters(bench.measure_adapters(adapters_mib, repeats), adapters_mib, repeats)
    return next(row["mb_per_second"] for row in rows if row["parallel_gets"] == PARALLEL_GETS) * 1e6


def fan_out(
    records_per_second: float, bytes_per_record: float, reconcile_keys_per_second: float, read_bytes_per_second: float
) -> None:
    """What a 50-million-record Personalize output costs with the fan-out the state machine uses."""
    pipeline = parse_pipelines(
        {
            "p": {
                "keyColumn": "userId",
                "service": {
                    "provider": "personalize",
                    "recipe": "USER_PERSONALIZATION",
                    "solutionVersionArn": "arn:aws:personalize:us-east-1:123456789012:solution/s/1",
                },
            }
        }
    ).get("p")
    records = 50_000_000
    total_bytes = records * bytes_per_record
    shards = -(-int(total_bytes) // pipeline.collect_shard_bytes)
    per_shard = records / shards
    waves = -(-shards // pipeline.max_concurrent_collectors)
    # The shard's read at the parallel ranged GETs' rate measured above, and the part's upload at ~80 MB/s.
    transfer = pipeline.collect_shard_bytes / read_bytes_per_second + pipeline.collect_shard_bytes / 80e6
    shard_seconds = per_shard / records_per_second + transfer
    # Assemble: the reconcile at the rate measured over the most keys (its work grows linearly with them),
    # the keys files' download (~12 bytes a key at ~80 MB/s), then one UploadPartCopy per part (~0.3 s each).
    reconcile_seconds = records / reconcile_keys_per_second + records * 12 / 80e6
    assemble_seconds = reconcile_seconds + 0.3 * shards
    total = waves * shard_seconds + assemble_seconds
    table(
        f"Collect of {records:,} Personalize records ({total_bytes / 1e9:.0f} GB of .out) on the Distributed Map "
        f"(target: within 15 minutes: {total / 60:.1f} min, {'met' if total <= 900 else 'NOT MET'})",
        ["quantity", "value"],
        [
            ["shard size (collectShardBytes)", f"{pipeline.collect_shard_bytes / 2**20:.0f} MiB"],
            ["shards (Map children)", f"{shards}"],
            ["children at once (maxConcurrentCollectors)", f"{pipeline.max_concurrent_collectors}"],
            ["waves", f"{waves}"],
            ["records per shard", f"{per_shard:,.0f}"],
            [
                "one shard: rows at measured one-core rate + transfer",
                f"{shard_seconds:.0f} s (read at {read_bytes_per_second / 1e6:.0f} MB/s: ranged GETs, fake S3 above)",
            ],
            ["reconcile rate measured (keys/s, largest run above)", f"{reconcile_keys_per_second:,.0f}"],
            ["assemble: reconcile + UploadPartCopy per part", f"{assemble_seconds:.0f} s"],
            ["wall time, estimated from the measured rate", f"{total / 60:.1f} min"],
        ],
    )


def collect_at_scale(formats: dict[str, list[collect_formats.Row]]) -> None:
    """100 million records (Amazon ML's per-job maximum) of the services Collect splits into runs of parts."""
    pipeline = parse_pipelines({"p": {"keyColumn": "id", "service": {"provider": "sagemaker", "modelName": "m"}}}).get(
        "p"
    )
    records, unit = 100_000_000, pipeline.collect_unit_records
    units = -(-records // unit)
    waves = -(-units // pipeline.max_concurrent_collectors)
    rows = []
    for step in ("sagemaker", "amazonml"):
        largest = max(formats[step], key=lambda row: row.records)
        rate = largest.unit_records / largest.seconds
        unit_seconds = unit / rate
        # Assemble: one UploadPartCopy per unit's part (~0.3 s each); these outputs need no key reconcile.
        total = waves * unit_seconds + 0.3 * units
        rows.append(
            [
                collect_formats.LABELS[step],
                f"{rate:,.0f}",
                f"{units} x {unit:,}",
                f"{waves} of {unit_seconds:.0f} s",
                f"{total / 60:.1f} min ({'fits' if total <= 900 else 'DOES NOT FIT'} in 15; one unit: "
                f"{records / rate / 60:.0f} min)",
            ]
        )
    table(
        f"Collect of {records:,} records on the Distributed Map, runs of staged parts ({unit:,} records a unit, "
        f"{pipeline.max_concurrent_collectors} at once), from the one-unit rates measured above",
        ["format", "records/s (one unit)", "units", "waves", "wall time, estimated"],
        rows,
    )


def prepare(quick: bool) -> None:
    from benchmarks import prepare as bench

    sizes = bench.sizes_for(quick)
    table(bench.title(sizes), bench.HEADER, bench.run(sizes, list(bench.FORMATS)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Batchline's measured figures, side by side.")
    parser.add_argument("--quick", action="store_true", help="memory runs at 100k and 1M records instead of 1M and 10M")
    parser.add_argument(
        "--collect-only",
        action="store_true",
        help="only the Collect engine comparison and the parallel ranged GETs (a few minutes)",
    )
    parser.add_argument(
        "--local-only",
        action="store_true",
        help="only the local runtime: a 1,000,000-row `local run` and `local serve`'s memory (about 15 minutes)",
    )
    args = parser.parse_args()
    if args.local_only:
        local_run.report()
        sys.exit(0)
    repeats = int(os.environ.get("BENCH_REPEATS", "5"))
    if args.collect_only:
        collect(int(os.environ.get("BENCH_RECORDS", "200000")), repeats)
        collect_transfer(repeats)
        sys.exit(0)
    polling()
    notice.report()
    orchestration_jobs = [
        int(n) for n in os.environ.get("BENCH_ORCH_JOBS", "1,100" if args.quick else "1,100,1000").split(",")
    ]
    orchestration.report(
        orchestration.measure(orchestration_jobs, int(os.environ.get("BENCH_ORCH_REPEATS", "3"))),
        orchestration.measure_before(orchestration_jobs),
    )
    import_times()
    asset_sizes()
    flat_default = "100000,1000000" if args.quick else "1000000,10000000"
    flat_sizes = [int(n) for n in os.environ.get("BENCH_FLAT_RECORDS", flat_default).split(",")]
    rate, bytes_per_record = collect(int(os.environ.get("BENCH_RECORDS", "200000")), repeats)
    read_rate = collect_transfer(repeats)
    formats = collect_formats.main(flat_sizes)
    largest = max(formats["reconcile"], key=lambda row: row.records)
    fan_out(rate, bytes_per_record, largest.records / largest.seconds, read_rate)
    collect_at_scale(formats)
    prepare(args.quick)
    prepare_fanout.report(prepare_fanout.measure(1_000_000 if args.quick else 10_000_000, shards=8))
    local_run.report()
