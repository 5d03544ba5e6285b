"""CSV cells that a spreadsheet would run as formulas are neutralised before they are written.

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed with ``'`` so
Excel, LibreOffice and Google Sheets show it as text (OWASP "CSV injection"). Numbers such as ``-0.25``
or ``+3`` are left alone: predictions stay numeric. Pipelines whose CSVs only feed programs can turn this
off with ``spreadsheetSafe: false``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from typing import Any

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def neutralise(cell: str) -> str:
    if cell and cell[0] in _TRIGGERS and not _is_number(cell):
        return "'" + cell
    return cell


# A cell that may need neutralising, in already-written CSV text (quoted or not).
_RISKY = re.compile(r'(?:^|,)"?[=+\-@\t\r]', re.MULTILINE)


class CsvWriter:
    """csv.writer with Batchline's dialect (LF line ends) and, when ``safe``, neutralised cells."""

    def __init__(self, handle: Any, *, safe: bool) -> None:
        self._handle = handle
        self._writer = csv.writer(handle, lineterminator="\n")
        self._safe = safe
        self._buffer = io.StringIO()
        self._buffered = csv.writer(self._buffer, lineterminator="\n")

    def writerow(self, row: Iterable[Any]) -> None:
        cells = [str(cell) if cell is not None else "" for cell in row]
        self._writer.writerow([neutralise(cell) for cell in cells] if self._safe else cells)

    def writerows(self, rows: list[list[str]]) -> None:
        """Many rows of strings at C speed: cells are checked one by one only when the text looks risky."""
        if not self._safe:
            self._writer.writerows(rows)
            return
        self._buffer.seek(0)
        self._buffer.truncate()
        self._buffered.writerows(rows)
        text = self._buffer.getvalue()
        if _RISKY.search(text):
            for row in rows:
                self.writerow(row)
        else:
            self._handle.write(text)
