"""Outputs whose lines name their record (Personalize, Vertex AI): rows are written as the lines come, and
the keys seen are checked against the staged index afterwards, in DuckDB, with memory bounded by its
``memory_limit`` rather than by the number of records (it spills to the scratch directory).
"""

from __future__ import annotations

import glob
import os
import shutil
from dataclasses import dataclass
from typing import Any

from batchline.csvsafe import neutralise, sql_neutralise
from batchline.errors import OutputInvalid

# DuckDB's buffer pool: shards need room for two JSON read buffers of the largest line (64 MiB segment lines);
# the reconcile joins spill and run in less, leaving room for allocations the pool does not count.
MEMORY_LIMIT = "192MB"
RECONCILE_MEMORY_LIMIT = "80MB"
# Keys per hash bucket of the reconcile joins: each bucket is written to its own files in one pass, then
# checked alone, so the work grows with the keys, not with keys x buckets. Joins over 5 million keys were
# measured within RECONCILE_MEMORY_LIMIT; a million leaves room.
PARTITION_KEYS = 1_000_000
# Buckets written by one COPY: each open bucket holds a Parquet write buffer (10 million keys peaked at 178 MB
# with 16 open, 158 MB with 4); more rounds cost one more read of the index each.
BUCKETS_PER_WRITE = 4
# Batchline's one CSV dialect (csvsafe.format_row), told to DuckDB rather than detected: a quoted CR in the
# first rows would otherwise be taken for the line end.
CSV_DIALECT = "quote='\"', escape='\"', new_line='\\n', auto_detect=false, strict_mode=true"
# Columns of the keys each unit saw, and of the staged index once bucketed.
_KEY = {"key": "VARCHAR"}
_STAGED = {"line": "BIGINT", "key": "VARCHAR", "part": "VARCHAR"}


def connect(scratch: str, threads: int = 1, memory_limit: str = MEMORY_LIMIT) -> Any:
    """A DuckDB database in ``scratch`` (Lambda's /tmp), its memory capped at MEMORY_LIMIT.

    The tables live in a file so the buffer manager can evict them, and one thread is used: each thread
    holds its own JSON read buffers (two threads measured 280 MB against 156 MB for one). Collect scales
    out over Distributed Map children instead.
    """
    import duckdb

    connection = duckdb.connect(
        os.path.join(scratch, "batchline.duckdb"),
        config={
            "memory_limit": memory_limit,
            "threads": threads,
            "temp_directory": os.path.join(scratch, "duckdb-spill"),
            "preserve_insertion_order": False,  # lets large inserts and sorts stream; outputs are ordered explicitly
        },
    )
    connection.execute("SET enable_progress_bar = false")  # it would write to the function's log
    return connection


def quote(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Reconciled:
    failed: int  # failed lines plus staged records with no output line, written with their input lines


def reconcile(
    connection: Any,
    *,
    index_paths: list[str],
    keys_paths: list[str],
    failed_paths: list[str],
    out_path: str,
    source_name: str,
    missing_reason: str,
    spreadsheet_safe: bool = True,
    discard_inputs: bool = False,
) -> Reconciled:
    """Check the keys a job's output named against its staged index; write failed.csv rows with input lines.

    Unknown or repeated keys mean the output is not the job's: the run fails (OutputInvalid). Staged
    records no line mentions become failures (``missing_reason``, where ``{part}`` names the staged file),
    as do the lines the service answered with an error (``failed_paths``: key, reason). The units keep keys
    as the service wrote them (they are joined here), so the rows written get the spreadsheet rule here.
    ``discard_inputs`` deletes the index and keys files once they are bucketed (scratch copies the caller no
    longer needs), so the scratch directory never holds them and their buckets at once.
    """
    staged = (
        f"SELECT line, key, regexp_extract(filename, '([^/]+)\\.index\\.csv$', 1) AS part FROM read_csv("
        f"{_list(index_paths)}, header=false, columns={{'line': 'BIGINT', 'key': 'VARCHAR', 'record_id': 'VARCHAR'}}, "
        f"filename=true, {CSV_DIALECT})"
    )
    seen = f"SELECT key FROM {_csv_list(keys_paths, _KEY)}"
    safe = neutralise if spreadsheet_safe else str
    cell = sql_neutralise if spreadsheet_safe else str
    (staged_count,) = connection.execute(f"SELECT count(*) FROM ({staged})").fetchone()
    buckets = max(1, -(-staged_count // PARTITION_KEYS))
    folder = os.path.join(os.path.dirname(os.path.abspath(out_path)), "reconcile-buckets")
    shutil.rmtree(folder, ignore_errors=True)
    try:
        staged_files = _write_buckets(connection, staged, buckets, os.path.join(folder, "staged"))
        if discard_inputs:
            _remove(index_paths)
        seen_files = _write_buckets(connection, seen, buckets, os.path.join(folder, "seen"))
        if discard_inputs:
            _remove(keys_paths)
        connection.execute("CREATE OR REPLACE TABLE missing (line BIGINT, key VARCHAR, part VARCHAR)")
        for bucket in range(buckets):
            staged_part = _parquet(staged_files.get(bucket, []), _STAGED)
            seen_part = _parquet(seen_files.get(bucket, []), _KEY)
            _refuse_keys(
                connection,
                f"SELECT key FROM {seen_part} ANTI JOIN {staged_part} USING (key)",
                "the output names keys that were not staged",
            )
            _refuse_keys(
                connection,
                f"SELECT key FROM {seen_part} GROUP BY key HAVING count(*) > 1",
                "the output answers some keys more than once",
            )
            connection.execute(
                f"INSERT INTO missing SELECT line, key, part FROM {staged_part} ANTI JOIN {seen_part} USING (key)"
            )
        failed = _csv_list(failed_paths, {"key": "VARCHAR", "reason": "VARCHAR"})
        every_staged = _parquet([path for paths in staged_files.values() for path in paths], _STAGED)
        written = connection.execute(
            f"""COPY (
                SELECT {quote(safe(source_name))}, line, {cell("key")}, 'service', {cell("reason")}, NULL FROM (
                    SELECT s.line, s.key, f.reason FROM {failed} AS f JOIN {every_staged} AS s USING (key)
                    UNION ALL
                    SELECT line, key, {_reason_sql(missing_reason)} FROM missing
                ) ORDER BY line
            ) TO {quote(out_path)} (FORMAT csv, HEADER false)"""
        ).fetchone()[0]
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # /tmp outlives the invocation in a warm Lambda
    return Reconciled(failed=written)


def _remove(paths: list[str]) -> None:
    for path in paths:
        os.remove(path)


def _write_buckets(connection: Any, query: str, buckets: int, folder: str) -> dict[int, list[str]]:
    """The query's rows as Parquet files per hash bucket of their key, in one read of the query's input per
    BUCKETS_PER_WRITE buckets (each open bucket holds a write buffer); returns bucket -> files."""
    bucket = f"hash(key) % {buckets}"
    os.makedirs(folder, exist_ok=True)
    for low in range(0, buckets, BUCKETS_PER_WRITE):
        high = min(buckets, low + BUCKETS_PER_WRITE)
        selected = f"SELECT *, {bucket} AS bucket FROM ({query}) WHERE {bucket} >= {low} AND {bucket} < {high}"
        connection.execute(
            f"COPY ({selected}) TO {quote(os.path.join(folder, f'round-{low:05d}'))} "
            "(FORMAT parquet, PARTITION_BY (bucket))"
        )
    files: dict[int, list[str]] = {}
    for path in sorted(glob.glob(os.path.join(glob.escape(folder), "round-*", "bucket=*", "*.parquet"))):
        number = int(os.path.basename(os.path.dirname(path)).removeprefix("bucket="))
        files.setdefault(number, []).append(path)
    return files


def _parquet(paths: list[str], columns: dict[str, str]) -> str:
    """A relation over the Parquet files, or an empty one with the same columns when a bucket has none."""
    if not paths:
        return _empty(columns)
    return f"(SELECT {', '.join(columns)} FROM read_parquet({_list(paths)}, hive_partitioning=false))"


def _refuse_keys(connection: Any, keys_query: str, problem: str) -> None:
    """OutputInvalid naming the first few keys the query finds, if it finds any."""
    found = connection.execute(f"{keys_query} ORDER BY key LIMIT 3").fetchall()
    if found:
        raise OutputInvalid(f"{problem} (e.g. {', '.join(repr(row[0]) for row in found)})")


def _reason_sql(template: str) -> str:
    """The reason as SQL, with the staged part's file name where the template says ``{part}``."""
    return " || part || ".join(quote(piece) for piece in template.split("{part}"))


def _list(paths: list[str]) -> str:
    return "[" + ", ".join(quote(path) for path in paths) + "]"


def _csv_list(paths: list[str], columns: dict[str, str]) -> str:
    """A CSV reader over the files, or an empty relation with the same columns when there are none."""
    if not paths:
        return _empty(columns)
    spec = "{" + ", ".join(f"{quote(name)}: {quote(kind)}" for name, kind in columns.items()) + "}"
    return f"read_csv({_list(paths)}, header=false, columns={spec}, {CSV_DIALECT})"


def _empty(columns: dict[str, str]) -> str:
    """No rows, with the columns (name -> DuckDB type) a reader of no files would have had."""
    return "(SELECT " + ", ".join(f"NULL::{kind} AS {name}" for name, kind in columns.items()) + " WHERE false)"
