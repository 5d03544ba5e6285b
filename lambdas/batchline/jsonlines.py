"""JSON lines whose records differ only in a few whole string values, written without json.dumps per record.

Prepare writes one JSON object per input record, and for most services every object has the same shape: a
Personalize query ``{"userId": ...}``, a Bedrock record with its model body around one prompt. Encoding the
shape once and splicing in each record's strings (with the json module's own C string encoder) gives exactly the
bytes json.dumps would, at a fraction of the cost (``python -m benchmarks.prepare`` measures it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

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
