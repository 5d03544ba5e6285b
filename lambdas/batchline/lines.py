"""Staged input lines, written as the json and csv modules would, without their per-record overhead.

Prepare writes one line per input record. JSON: for most services every object has the same shape (a
Personalize query ``{"userId": ...}``, a Bedrock record with its model body around one prompt), so the shape
is encoded once and each record's strings spliced in with the json module's own C string encoder. CSV: most
rows need no quoting, so they are joined directly and only the others go through csvsafe's quoting. Either way
the bytes are exactly what the modules would write (``python -m benchmarks.prepare`` measures the difference).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

from batchline.csvsafe import format_row

# Strings no record can produce in an encoded line: a control character is always escaped by the encoder.
_SLOT = "\x00batchline-slot-{}\x00"
# Values the template is checked with against json.dumps before it is trusted.
_PROBES = ('quote " backslash \\ newline \n tab \t nul \x00', "é ü 漢字 \u2028 😀", "")


class JsonLineTemplate:
    """``render(*values)`` == ``json.dumps(build(*values), ensure_ascii=False) + "\\n"``, when compile allowed it."""

    def __init__(self, pieces: list[str], order: list[int]) -> None:
        self._pieces = pieces  # literal JSON text around the slots, len(order) + 1 pieces
        self._order = order  # which value fills each slot, in the order the slots appear

    @classmethod
    def compile(cls, build: Callable[..., Any], slots: int) -> JsonLineTemplate | None:
        """A template for ``build``, or None when some value does not land as one whole JSON string of its own
        (inside a longer string, repeated, used as a key...): the caller then encodes each record itself."""
        names = [_SLOT.format(n) for n in range(slots)]
        text = json.dumps(build(*names), ensure_ascii=False)
        found = []
        for number, name in enumerate(names):
            encoded = encode_basestring(name)
            if text.count(encoded) != 1:
                return None
            found.append((text.index(encoded), number, len(encoded)))
        found.sort()
        pieces, order, position = [], [], 0
        for start, number, length in found:
            pieces.append(text[position:start])
            order.append(number)
            position = start + length
        pieces.append(text[position:] + "\n")
        template = cls(pieces, order)
        for probe in _PROBES:
            values = [f"{probe}{n}" for n in range(slots)]
            if template.render(*values) != json.dumps(build(*values), ensure_ascii=False) + "\n":
                return None
        return template

    def render(self, *values: str) -> str:
        pieces, order = self._pieces, self._order
        out = [pieces[0]]
        for index, number in enumerate(order):
            out.append(encode_basestring(values[number]))
            out.append(pieces[index + 1])
        return "".join(out)


# Cells that must be quoted (a comma is found by counting).
_CSV_SPECIAL = re.compile('["\r\n]')


class CsvLineWriter:
    """``line(cells)`` == ``csvsafe.format_row(cells)``: Batchline's one CSV dialect (CR always quoted)."""

    def line(self, cells: list[str]) -> str:
        joined = ",".join(cells)
        # No cell holds a comma (the join made them all), a quote or a line break: nothing is quoted.
        # A lone empty cell is the exception: csv writes it as "" so the line is not blank.
        if joined.count(",") == len(cells) - 1 and _CSV_SPECIAL.search(joined) is None and joined:
            return joined + "\n"
        return format_row(cells)
