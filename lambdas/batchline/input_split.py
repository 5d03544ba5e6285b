"""Where a large upload can be cut so that each piece starts at a record: Prepare's fan-out plan.

A cut goes right after a newline. In JSON lines every newline ends a record. In CSV a newline inside a
quoted field does not, so the scan counts quotes: RFC 4180 doubles a quote inside a quoted field, so a
newline with an even number of quotes before it (counted from the end of the header) is outside quotes.
A quote inside an unquoted field (``ab"c``, which Python's csv accepts) flips that count; the piece that
then ends inside a quoted field notices (its parse ends in an open quote) and the run fails with the reason,
instead of staging records cut in two.

The scan reads the file once, sequentially, counting bytes with ``bytes.count`` and ``bytes.find``: it is
bound by S3's transfer rate, not by Python. It also counts line terminators the way Prepare's readers do
(``\\n``, ``\\r\\n`` and a lone ``\\r`` each end a line) so every piece knows the line number it starts on
and errors name the same lines as a whole-file read.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass

_NEWLINE, _CR, _QUOTE = 0x0A, 0x0D, b'"'


@dataclass(frozen=True)
class Cut:
    """One piece of the file: ``[start, end)`` in bytes, and the line number of its first line."""

    start: int
    end: int
    first_line: int


def csv_header_end(head: bytes) -> tuple[int, int] | None:
    """Byte offset just past the header row and the number of lines it spans, from the file's first bytes.

    None when the header cannot be located by counting quotes (it holds a bare quote) or ends without a
    ``\\n``: such a file is read whole, not cut.
    """
    parity = 0
    start = 0
    while (newline := head.find(b"\n", start)) >= 0:
        parity ^= head.count(_QUOTE, start, newline) & 1
        start = newline + 1
        if parity == 0:
            break
    else:
        return None
    text = head[:start].decode("utf-8-sig", errors="surrogateescape")
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error:
        return None
    if len(rows) != 1:
        return None  # a bare quote moved the count: the cut would not be where the header ends
    return start, _terminators(head, 0, start, False)


def plan_cuts(
    blocks: Iterable[bytes], *, start: int, first_line: int, size: int, piece_bytes: int, quoted: bool
) -> list[Cut]:
    """Pieces of about ``piece_bytes`` covering ``[start, size)``, each beginning right after a newline.

    ``blocks`` are the file's bytes from ``start`` on, in order. ``quoted`` (CSV) keeps cuts outside quotes.
    """
    if piece_bytes < 1:
        raise ValueError("piece_bytes must be positive")
    cuts: list[Cut] = []
    piece_start, piece_line = start, first_line
    target = start + piece_bytes
    position = start  # file offset of the current block
    line = first_line  # the line number of the line after the last terminator counted
    parity = 0
    previous_cr = False
    for block in blocks:
        done = 0  # bytes of this block already counted
        length = len(block)
        while target < size and position + length > target:
            search = max(target - position, done)
            line += _terminators(block, done, search, previous_cr if done == 0 else block[done - 1] == _CR)
            parity ^= block.count(_QUOTE, done, search) & 1
            done = search
            newline = block.find(b"\n", done)
            if newline < 0:
                break
            parity ^= block.count(_QUOTE, done, newline) & 1
            line += _terminators(block, done, newline + 1, previous_cr if done == 0 else block[done - 1] == _CR)
            done = newline + 1
            if quoted and parity:
                target = position + done  # inside quotes: try the next newline
                continue
            cut = position + done
            if cut >= size:
                break
            cuts.append(Cut(piece_start, cut, piece_line))
            piece_start, piece_line = cut, line
            target = cut + piece_bytes
        if done < length:
            line += _terminators(block, done, length, previous_cr if done == 0 else block[done - 1] == _CR)
            parity ^= block.count(_QUOTE, done, length) & 1
        if length:
            previous_cr = block[-1] == _CR
        position += length
    if position != size:
        raise ValueError(f"read {position - start} bytes from offset {start}, expected {size - start}")
    cuts.append(Cut(piece_start, size, piece_line))
    return cuts


def _terminators(block: bytes, start: int, end: int, after_cr: bool) -> int:
    """Line ends in ``block[start:end]``; ``after_cr`` says the byte before ``start`` was a ``\\r``."""
    if start >= end:
        return 0
    count = block.count(b"\n", start, end) + block.count(b"\r", start, end) - block.count(b"\r\n", start, end)
    if after_cr and block[start] == _NEWLINE:
        count -= 1  # the second half of a \r\n that began before ``start``
    return count
