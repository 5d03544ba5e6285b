"""Collect throughput and peak memory: Personalize output (25 items per user) -> long keyed CSV.

Engines, same file, one core each (``taskset`` when available), each in its own process so its peak RSS
is its own:
- ``duckdb``: Batchline's real shard code (personalize_duckdb.shard_to_csv: rows, keys and failed lines);
- ``python``: the adapter's standard-library loop (PersonalizeAdapter._read_part + CsvWriter), streaming;
- ``polars``: scan_ndjson + explode + sink_csv, when polars is installed (not a Batchline dependency);
- ``pandas``: the baseline, read_json(lines=True) + explode + to_csv.

Each engine's modules are imported before its clock starts: a Lambda imports them once, at init (the
cold-start table of ``make bench`` reports import times), while every shard pays the work measured here.
pandas' import is ~0.3 s of its ~15 s; Batchline's (DuckDB and its config models) ~0.25 s of its ~1.5 s.
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.report import peak_mb

ITEMS = 25
# What each engine imports, loaded before its clock starts.
IMPORTS = {
    "duckdb": ("duckdb", "batchline.config", "batchline.adapters.personalize_duckdb"),
    "python": ("batchline.config", "batchline.adapters.personalize", "batchline.csvsafe"),
    "polars": ("polars",),
    "pandas": ("pandas",),
}


def make_output_file(path: Path, records: int) -> None:
    rng = random.Random(7)
    with path.open("w") as handle:
        for n in range(records):
            items = [f"item-{rng.randrange(100_000):06d}" for _ in range(ITEMS)]
            scores = sorted((round(rng.random(), 7) for _ in range(ITEMS)), reverse=True)
            handle.write(
                json.dumps(
                    {
                        "input": {"userId": f"u{n:08d}"},
                        "output": {"recommendedItems": items, "scores": scores},
                        "error": None,
                    }
                )
                + "\n"
            )


class _FileS3:
    """Just enough of an S3 client for open_object: get_object returns a streaming body over a local file."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def get_object(self, **_: Any) -> dict[str, Any]:
        return {"Body": self._path.open("rb")}


def run_batchline(path: Path, out: Path) -> int:
    from batchline.adapters.base import Prediction, StagedRecord
    from batchline.adapters.personalize import PersonalizeAdapter
    from batchline.csvsafe import CsvWriter
    from batchline.layout import S3Location

    settings = _settings()
    adapter = PersonalizeAdapter(settings, personalize=None, s3=_FileS3(path))  # type: ignore[arg-type]
    records = sum(1 for _ in path.open())
    by_key = {f"u{n:08d}": StagedRecord("part-00000.jsonl", f"u{n:08d}", n + 2, f"u{n:08d}") for n in range(records)}
    rows = 0
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = CsvWriter(handle, safe=True)
        writer.writerow(["userId", "rank", "item_id", "score"])
        for record in adapter._read_part(S3Location("b", "k"), by_key, "part-00000.jsonl"):
            if isinstance(record, Prediction):
                writer.writerows([[record.key, *row] for row in record.rows])
                rows += 1
    return rows


def _settings() -> Any:
    from batchline.config import parse_pipelines

    return (
        parse_pipelines(
            {
                "p": {
                    "keyColumn": "userId",
                    "service": {
                        "provider": "personalize",
                        "recipe": "USER_PERSONALIZATION",
                        "roleArn": "arn:aws:iam::123456789012:role/r",
                        "solutionVersionArn": "arn:aws:personalize:us-east-1:123456789012:solution/s/1",
                    },
                }
            }
        )
        .get("p")
        .service
    )


def run_duckdb(path: Path, out: Path) -> int:
    from batchline.adapters import personalize_duckdb

    settings = _settings()
    counts = personalize_duckdb.shard_to_csv(
        personalize_duckdb.connect(str(out.parent)),
        str(path),
        settings=settings,
        predictions_path=str(out),
        keys_path=str(out.parent / "keys.csv"),
        failed_path=str(out.parent / "failed.csv"),
        header=["userId", "rank", "item_id", "score"],
        spreadsheet_safe=True,
    )
    return counts.predicted


def run_polars(path: Path, out: Path) -> int:
    import polars as pl

    frame = pl.scan_ndjson(path).select(
        pl.col("input").struct.field("userId"),
        pl.col("output").struct.field("recommendedItems").alias("item_id"),
        pl.col("output").struct.field("scores").alias("score"),
    )
    frame = frame.with_columns(pl.int_ranges(1, pl.col("item_id").list.len() + 1).alias("rank"))
    frame.explode(["rank", "item_id", "score"]).select("userId", "rank", "item_id", "score").sink_csv(out)
    return sum(1 for _ in path.open("rb"))


def run_pandas(path: Path, out: Path) -> int:
    import pandas as pd

    frame = pd.read_json(path, lines=True)
    frame["userId"] = frame["input"].map(lambda value: value["userId"])
    frame["item_id"] = frame["output"].map(lambda value: value["recommendedItems"])
    frame["score"] = frame["output"].map(lambda value: value["scores"])
    frame["rank"] = frame["item_id"].map(lambda items: list(range(1, len(items) + 1)))
    long = frame[["userId", "rank", "item_id", "score"]].explode(["rank", "item_id", "score"])
    long.to_csv(out, index=False)
    return len(frame)


class _TimedConnection:
    """A DuckDB connection that adds up the CPU time of each of shard_to_csv's statements, by what it does."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self.cpu: dict[str, float] = {}

    def execute(self, sql: str) -> Any:
        kind = (
            "keys and errors: JSON read 1 (input, error)"
            if sql.startswith("CREATE")
            else "predictions: JSON read 2, UNNEST, CSV writer"
            if "unnest" in sql
            else "key list and failed lines written, counts"
        )
        start = time.process_time()
        result = self._connection.execute(sql)
        self.cpu[kind] = self.cpu.get(kind, 0.0) + time.process_time() - start
        return result


def profile_duckdb(path: Path) -> dict[str, float]:
    """Where DuckDB's CPU time goes on one shard: shard_to_csv's statements timed as they run, then the
    predictions statement taken apart by running its pieces alone (the JSON reader; the query without the
    CSV writer, each column still computed)."""
    import duckdb  # noqa: F401 - imported before the clock, as in measure()
    from batchline.adapters import personalize_duckdb
    from batchline.keyed import quote

    settings = _settings()
    out = Path(tempfile.mkdtemp())
    connection = _TimedConnection(personalize_duckdb.connect(str(out)))
    start = time.process_time()
    personalize_duckdb.shard_to_csv(
        connection,
        str(path),
        settings=settings,
        predictions_path=str(out / "predictions.csv"),
        keys_path=str(out / "keys.csv"),
        failed_path=str(out / "failed.csv"),
        header=["userId", "rank", "item_id", "score"],
        spreadsheet_safe=True,
    )
    shares = {"shard_to_csv in all": time.process_time() - start, **connection.cpu}
    reader = personalize_duckdb._reader(str(path), settings, with_output=True)
    query = personalize_duckdb._prediction_query(str(path), settings, True)
    unsafe = personalize_duckdb._prediction_query(str(path), settings, False)
    raw = connection._connection
    for label, sql in (
        (
            "  of which the JSON reader (output's lists)",
            f"SELECT sum(len(output.recommendedItems)), sum(len(output.scores)) FROM {reader}",
        ),
        (
            "  of which the query without the CSV writer",
            f"SELECT count(#1), count(#2), count(#3), count(#4) FROM ({query})",
        ),
        (
            "  the same, spreadsheetSafe off, written",
            f"COPY ({unsafe}) TO {quote(str(out / 'unsafe.csv'))} (FORMAT csv)",
        ),
    ):
        start = time.process_time()
        raw.execute(sql).fetchall()
        shares[label] = time.process_time() - start
    shutil.rmtree(out)
    return shares


def measure(engine: str, path: Path) -> dict[str, float]:
    """Run one engine in this process (called in a child process by main)."""
    out = Path(tempfile.mkdtemp()) / "predictions.csv"
    for module in IMPORTS[engine]:
        importlib.import_module(module)
    start = time.perf_counter()
    cpu_start = time.process_time()
    runner = {
        "duckdb": run_duckdb,
        "python": run_batchline,
        "polars": run_polars,
        "pandas": run_pandas,
    }[engine]
    records = runner(path, out)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    csv_mb = out.stat().st_size / 1e6
    shutil.rmtree(out.parent)  # 5 runs of 4 engines would leave a few GB in /tmp
    return {
        "records": records,
        "seconds": seconds,
        "records_per_second": records / seconds,
        # CPU time is the engine's own work: on a shared machine wall time also counts waiting for the core.
        "cpu_seconds": cpu_seconds,
        "records_per_cpu_second": records / cpu_seconds,
        "peak_mb": peak_mb(),
        "csv_mb": csv_mb,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("engine", choices=["duckdb", "python", "polars", "pandas", "duckdb-profile"])
    parser.add_argument("file", type=Path)
    args = parser.parse_args()
    if args.engine == "duckdb-profile":
        sys.stdout.write(json.dumps(profile_duckdb(args.file)) + "\n")
    else:
        sys.stdout.write(json.dumps(measure(args.engine, args.file)) + "\n")
