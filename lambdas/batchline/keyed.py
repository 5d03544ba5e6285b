"""Outputs whose lines name their record (Personalize, Vertex AI): rows are written as the lines come, and
the keys seen are checked against the staged index afterwards, in DuckDB, with memory bounded by its
``memory_limit`` rather than by the number of records (it spills to the scratch directory).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from batchline.errors import OutputInvalid

MEMORY_LIMIT = "192MB"


def connect(scratch: str, threads: int | None = None) -> Any:
    """A DuckDB connection capped at MEMORY_LIMIT, spilling to ``scratch`` (Lambda's /tmp)."""
    import duckdb

    threads = threads or max(1, min(4, os.cpu_count() or 1))
    connection = duckdb.connect(
        config={"memory_limit": MEMORY_LIMIT, "threads": threads, "temp_directory": scratch},
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
) -> Reconciled:
    """Check the keys a job's output named against its staged index; write failed.csv rows with input lines.

    Unknown or repeated keys mean the output is not the job's: the run fails (OutputInvalid). Staged
    records no line mentions become failures (``missing_reason``, where ``{part}`` names the staged file),
    as do the lines the service answered with an error (``failed_paths``: key, reason).
    """
    staged = (
        f"read_csv({_list(index_paths)}, header=false, columns={{'line': 'BIGINT', 'key': 'VARCHAR', "
        "'record_id': 'VARCHAR'}, filename=true, quote='\"', escape='\"', auto_detect=false)"
    )
    connection.execute(
        f"CREATE OR REPLACE TEMP TABLE staged AS SELECT line, key, "
        f"regexp_extract(filename, '([^/]+)\\.index\\.csv$', 1) AS part FROM {staged}"
    )
    seen = _csv_list(keys_paths, "{'key': 'VARCHAR'}")
    connection.execute(f"CREATE OR REPLACE TEMP TABLE seen AS SELECT key FROM {seen}")
    unknown = connection.execute("SELECT key FROM seen ANTI JOIN staged USING (key) ORDER BY key LIMIT 3").fetchall()
    if unknown:
        shown = ", ".join(repr(row[0]) for row in unknown)
        raise OutputInvalid(f"the output names keys that were not staged (e.g. {shown})")
    repeated = connection.execute(
        "SELECT key FROM seen GROUP BY key HAVING count(*) > 1 ORDER BY key LIMIT 3"
    ).fetchall()
    if repeated:
        shown = ", ".join(repr(row[0]) for row in repeated)
        raise OutputInvalid(f"the output answers some keys more than once (e.g. {shown})")
    failed = _csv_list(failed_paths, "{'key': 'VARCHAR', 'reason': 'VARCHAR'}")
    written = connection.execute(
        f"""COPY (
            SELECT {quote(source_name)}, line, key, 'service', reason, NULL FROM (
                SELECT s.line, s.key, f.reason FROM {failed} AS f JOIN staged AS s USING (key)
                UNION ALL
                SELECT line, key, {_reason_sql(missing_reason)} FROM staged ANTI JOIN seen USING (key)
            ) ORDER BY line
        ) TO {quote(out_path)} (FORMAT csv, HEADER false)"""
    ).fetchone()[0]
    return Reconciled(failed=written)


def _reason_sql(template: str) -> str:
    """The reason as SQL, with the staged part's file name where the template says ``{part}``."""
    return " || part || ".join(quote(piece) for piece in template.split("{part}"))


def _list(paths: list[str]) -> str:
    return "[" + ", ".join(quote(path) for path in paths) + "]"


def _csv_list(paths: list[str], columns: str) -> str:
    """A CSV reader over the files, or an empty relation with the same columns when there are none."""
    names = columns.strip("{}").split(",")
    if not paths:
        empty = ", ".join(f"NULL::VARCHAR AS {name.split(':')[0].strip().strip(chr(39))}" for name in names)
        return f"(SELECT {empty} WHERE false)"
    return f"read_csv({_list(paths)}, header=false, columns={columns}, quote='\"', escape='\"', auto_detect=false)"
