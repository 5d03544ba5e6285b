"""Personalize output -> keyed CSV with DuckDB, the engine chosen by measurement (``make bench``).

On 200,000 users x 25 recommendations, one core, DuckDB's streaming JSON reader and CSV writer beat pandas
(read_json + explode + to_csv), polars and a standard-library loop; ``make bench`` prints the ratios of the
run. Everything here streams: a shard's JSON lines are read once for the predictions and once, projected to
the echoed key and the error, for the key list; DuckDB spills to the scratch directory above
``keyed.MEMORY_LIMIT``. What made it fast, measured with DuckDB's profiler: scores are kept as the JSON
number text (formatting 5 million doubles cost a third of the CSV writer's time), and every per-record
expression is evaluated before UNNEST multiplies the rows by 25.

Personalize echoes the query value (the record's key, staged as ``userId``/``itemId``) on every output line,
so predictions need no join; the keys each shard saw are written out and checked against the staged index
once all shards are done (``batchline.keyed.reconcile``): lines missing, unknown or repeated.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from batchline.config import PersonalizeSettings
from batchline.csvsafe import TRIGGER_CLASS, format_row, sql_neutralise
from batchline.errors import OutputInvalid
from batchline.keyed import connect as connect
from batchline.keyed import quote as _quote

RECOMMENDATION_LINE_BYTES = 16 * 1024**2
SEGMENT_LINE_BYTES = 64 * 1024**2  # about 5 million user IDs, Personalize's most per segment


@dataclass(frozen=True)
class ShardCounts:
    records: int  # output lines in the shard
    predicted: int
    failed: int
    rows: int  # CSV rows written (long form: one per recommendation)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _reader(path: str, settings: PersonalizeSettings, *, with_output: bool) -> str:
    field = settings.query_field
    columns = {"input": f"STRUCT({_ident(field)} VARCHAR)", "error": "JSON"}
    if field not in columns:
        columns[field] = "VARCHAR"  # Item-Attribute-Affinity echoes its query at the top level
    if with_output:
        columns["output"] = (
            "STRUCT(recommendedItems VARCHAR[], scores JSON[], recommendedUsers VARCHAR[], usersList VARCHAR[], "
            "theme VARCHAR, itemsThemeRelevanceScores JSON[])"
        )
    spec = ", ".join(f"{_quote(name)}: {_quote(kind)}" for name, kind in columns.items())
    # The reader buffers twice the largest line it accepts, so this bounds memory: a recommendation line is a
    # few kB, but a segment line lists up to millions of users.
    largest_line = SEGMENT_LINE_BYTES if settings.is_segment_job else RECOMMENDATION_LINE_BYTES
    return (
        f"read_json({_quote(path)}, format='newline_delimited', columns={{{spec}}}, "
        f"maximum_object_size={largest_line}, ignore_errors=false)"
    )


def _key_expression(settings: PersonalizeSettings) -> str:
    field = _ident(settings.query_field)
    return f"coalesce(input.{field}, {field})" if settings.query_field != "input" else f"input.{field}"


# An error counts when it says something: null, "" and {} are Personalize's "no error".
_HAS_ERROR = "(error IS NOT NULL AND error::VARCHAR NOT IN ('null', '\"\"', '{}', '[]', 'false'))"
_REASON = "'Personalize: ' || CASE WHEN json_type(error) = 'VARCHAR' THEN error->>'$' ELSE error::VARCHAR END"


def _safe(expression: str, safe: bool) -> str:
    if not safe:
        return expression
    return sql_neutralise(expression)


def _safe_list(expression: str, safe: bool) -> str:
    """A list with its risky cells neutralised; one check per record, since risky items are rare."""
    if not safe:
        return expression
    # Each cell starts after a newline in the joined text (measured cheaper than a (^|\n) alternative).
    trigger = TRIGGER_CLASS.replace("'", "''")
    risky = f"regexp_matches(chr(10) || array_to_string({expression}, chr(10)), '\\n{trigger}')"
    neutralised = f"list_transform({expression}, lambda cell: {_safe('cell', True)})"
    return f"CASE WHEN {risky} THEN {neutralised} ELSE {expression} END"


# Scores are read as JSON number text and written as such: no double -> text conversion, which measured as
# the most expensive step of the CSV writer. A score sent as a string is cast (one check per record).
def _scores(field: str) -> str:
    return (
        f"CASE WHEN contains(output.{field}::VARCHAR, '\"') THEN output.{field}::DOUBLE[]::VARCHAR[] "
        f"ELSE output.{field}::VARCHAR[] END"
    )


_SCORES = _scores("scores")


def _prediction_query(source: str, settings: PersonalizeSettings, safe: bool) -> str:
    """The prediction rows of the lines without an error.

    Everything per record (the key's and cells' neutralisation, the empty-list fallbacks) is computed in the
    inner query, before UNNEST multiplies the rows: evaluated after it, the key's check alone cost 8% more.
    """
    key = _safe(_key_expression(settings), safe)
    records = f"FROM {_reader(source, settings, with_output=True)} WHERE NOT {_HAS_ERROR}"
    if settings.is_segment_job:
        users = "coalesce(output.recommendedUsers, output.usersList, [])"
        if settings.output_format == "long":
            # One row per user; a record with no users still gets one (empty) row. A segment line can list
            # millions of users, so its cells are checked one by one rather than joined into one string.
            listed = f"CASE WHEN len({users}) > 0 THEN {users} ELSE [NULL] END"
            rows = f"SELECT key, unnest(users) AS user FROM (SELECT {key} AS key, {listed} AS users {records})"
            return f"SELECT key, {_safe('user', safe)} FROM ({rows})"
        joined_users = _safe(f"nullif(array_to_string({users}, '|'), '')", safe)
        return f"SELECT {key}, {joined_users} {records}"
    items = "coalesce(output.recommendedItems, [])"
    # Theme jobs score each item by its relevance to the record's theme, which becomes the last column.
    themed = settings.generates_themes
    scores = f"coalesce({_scores('itemsThemeRelevanceScores') if themed else _SCORES}, [])"
    theme = f", {_safe('output.theme', safe)}" if themed else ""
    if settings.output_format == "long":
        present = f"len({items}) > 0"
        # A record with no recommendations still gets one row; scores past the last item are dropped and
        # missing ones left empty (UNNEST pads the shorter list).
        lists = ", ".join(
            [
                f"CASE WHEN {present} THEN generate_series(1, len({items})) ELSE [NULL] END AS ranks",
                f"CASE WHEN {present} THEN {_safe_list(items, safe)} ELSE [NULL] END AS items",
                f"CASE WHEN {present} THEN {scores}[1:len({items})] ELSE [NULL] END AS scores",
            ]
        )
        per_record = f"SELECT {key} AS key, {lists}{theme + ' AS theme' if themed else ''} {records}"
        last = ", theme" if themed else ""
        return f"SELECT key, unnest(ranks), unnest(items), unnest(scores){last} FROM ({per_record})"
    joined_items = _safe(f"nullif(array_to_string({items}, '|'), '')", safe)
    joined_scores = f"nullif(array_to_string({scores}[1:len({items})], '|'), '')"
    return f"SELECT {key}, {joined_items}, {joined_scores}{theme} {records}"


@contextmanager
def _unreadable_output_is_invalid() -> Iterator[None]:
    """Not JSON, a line over the size bound, a score that is no number: retrying cannot help, so the run fails."""
    import duckdb

    try:
        yield
    except (duckdb.InvalidInputException, duckdb.ConversionException) as exc:
        raise OutputInvalid(f"Personalize output is not readable JSON lines: {exc}") from exc


@_unreadable_output_is_invalid()
def shard_to_csv(
    connection: Any,
    source: str,
    *,
    settings: PersonalizeSettings,
    predictions_path: str,
    keys_path: str,
    failed_path: str,
    header: list[str] | None,
    spreadsheet_safe: bool,
) -> ShardCounts:
    """One shard of .out lines -> prediction rows, the keys seen (key) and the failed lines (key, reason)."""
    key = _key_expression(settings)
    connection.execute(
        f"CREATE OR REPLACE TEMP TABLE seen AS SELECT {key} AS key, "
        f"CASE WHEN {_HAS_ERROR} THEN {_REASON} END AS reason FROM {_reader(source, settings, with_output=False)}"
    )
    missing = connection.execute("SELECT count(*) FROM seen WHERE key IS NULL").fetchone()[0]
    if missing:
        raise OutputInvalid(f"{missing} Personalize output line(s) do not echo {settings.query_field}")
    records = connection.execute("SELECT count(*) FROM seen").fetchone()[0]
    connection.execute(f"COPY (SELECT key FROM seen) TO {_quote(keys_path)} (FORMAT csv, HEADER false)")
    failed = connection.execute(
        f"COPY (SELECT key, reason FROM seen WHERE reason IS NOT NULL) TO {_quote(failed_path)} "
        "(FORMAT csv, HEADER false)"
    ).fetchone()[0]
    query = _prediction_query(source, settings, spreadsheet_safe)
    # DuckDB writes the header from column aliases (quoted as CSV needs), unless two names differ only by case,
    # which it would rename: then the header is written first and the rows copied after it.
    aliased = bool(header) and len({name.lower() for name in header or []}) == len(header or [])
    if aliased:
        names = ", ".join(_ident(name) for name in header or [])
        query = f"SELECT * FROM ({query}) AS shard({names})"
    body_path = predictions_path + ".body" if header and not aliased else predictions_path
    rows = connection.execute(
        f"COPY ({query}) TO {_quote(body_path)} (FORMAT csv, HEADER {'true' if aliased else 'false'})"
    ).fetchone()[0]
    if header and not aliased:
        _prepend_header(body_path, predictions_path, header)
    return ShardCounts(records=records, predicted=records - failed, failed=failed, rows=rows)


def _prepend_header(body_path: str, path: str, header: list[str]) -> None:
    """The first shard carries the file's header (in Batchline's one CSV dialect)."""
    import shutil

    with open(path, "wb") as target, open(body_path, "rb") as body:
        target.write(format_row(header).encode())
        shutil.copyfileobj(body, target, 1024 * 1024)
    os.remove(body_path)
