"""Every CSV Batchline writes: one quoting rule, and reversible spreadsheet safety.

Quoting: a cell holding a comma, a quote, CR or LF is quoted (RFC 4180). csv.writer before Python 3.13 leaves
a lone CR unquoted when the line terminator is LF, and every CSV reader then ends the record there, so rows
with a CR are formatted here instead of trusting the interpreter's version.

Spreadsheet safety (OWASP "CSV injection"): a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab, a
carriage return or an apostrophe, and is not a plain decimal number, is written with one ``'`` in front.
Excel, LibreOffice and Google Sheets then show it as text. Escaping the apostrophe too makes the rule
reversible: ``=x`` is written ``'=x`` and ``'=x`` is written ``''=x``, so removing one leading ``'`` from
every cell that starts with one (``restore``) gives back the original exactly. Numbers such as ``-0.25``,
``+3`` or ``1e-5`` stay as they are, so predictions stay numeric. Pipelines whose CSVs only feed programs can
turn this off with ``spreadsheetSafe: false``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from typing import Any

# First characters that make a spreadsheet read a cell as a formula, plus the escape character itself.
TRIGGERS = frozenset("=+-@\t\r'")
# A plain decimal number: left alone even when it starts with a sign. The same pattern runs in DuckDB (RE2).
NUMBER_PATTERN = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_NUMBER = re.compile(NUMBER_PATTERN)
# The trigger set as a regular expression class, for RE2 (DuckDB) and for scanning written text.
TRIGGER_CLASS = r"[=+\-@\t\r']"


def neutralise(cell: str) -> str:
    if cell and cell[0] in TRIGGERS and _NUMBER.fullmatch(cell) is None:
        return "'" + cell
    return cell


def restore(cell: str) -> str:
    """The original value of a cell ``neutralise`` wrote (the rule documented in the README)."""
    return cell[1:] if cell.startswith("'") else cell


def sql_neutralise(expression: str) -> str:
    """``neutralise`` as a DuckDB expression over a VARCHAR ``expression`` (NULL stays NULL)."""
    trigger = TRIGGER_CLASS.replace("'", "''")
    return (
        f"CASE WHEN regexp_matches({expression}, '^{trigger}') "
        f"AND NOT regexp_full_match({expression}, '{NUMBER_PATTERN}') "
        f"THEN '''' || {expression} ELSE {expression} END"
    )


_NEEDS_QUOTES = re.compile('[,"\r\n]')


def _cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if _NEEDS_QUOTES.search(text) else text


def format_row(cells: list[str]) -> str:
    """One CSV record ending in LF: cells with a comma, quote, CR or LF quoted, whatever the Python version."""
    if len(cells) == 1 and not cells[0]:
        return '""\n'  # a lone empty cell must not make a blank line, which readers skip
    return ",".join(_cell(cell) for cell in cells) + "\n"


# A cell that may need neutralising, in already-written CSV text (quoted or not).
_RISKY = re.compile(r'(?:^|,)"?' + TRIGGER_CLASS, re.MULTILINE)


class CsvWriter:
    """Writes rows with Batchline's dialect (LF line ends, CR always quoted) and, when ``safe``, neutralised cells."""

    def __init__(self, handle: Any, *, safe: bool) -> None:
        self._handle = handle
        self._safe = safe
        self._buffer = io.StringIO()
        self._buffered = csv.writer(self._buffer, lineterminator="\n")

    def writerow(self, row: Iterable[Any]) -> None:
        cells = [str(cell) if cell is not None else "" for cell in row]
        self._handle.write(format_row([neutralise(cell) for cell in cells] if self._safe else cells))

    def writerows(self, rows: list[list[str]]) -> None:
        """Many rows of strings at C speed: cells are checked one by one only when the text needs it."""
        self._buffer.seek(0)
        self._buffer.truncate()
        self._buffered.writerows(rows)
        text = self._buffer.getvalue()
        if "\r" in text or (self._safe and _RISKY.search(text)):
            for row in rows:
                self.writerow(row)
        else:
            self._handle.write(text)
