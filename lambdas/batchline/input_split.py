"""Where a large upload can be cut so that each piece starts at a record: Prepare's fan-out plan.

A cut goes right after a newline. In JSON lines every newline ends a record. In CSV a newline inside a
quoted field does not, so the plan counts quotes: RFC 4180 doubles a quote inside a quoted field, so a
newline with an even number of quotes before it (counted from the end of the header) is outside quotes.
A quote inside an unquoted field (``ab"c``, which Python's csv accepts) flips that count; the piece that
then ends inside a quoted field notices (its parse ends in an open quote) and the run fails with the reason,
instead of staging records cut in two.

The plan reads the file once, in segments of ``piece_bytes`` read at the same time (S3 serves parallel
ranged GETs far faster than one stream), counting quotes and line ends with ``bytes.count``. Once every
segment's counts are known, the quote parity at each segment's start is too, and a short read from there
finds the first newline outside quotes: the cut. Line ends are counted the way Prepare's readers count
them (CSV: ``\\n``, ``\\r\\n`` and a lone ``\\r`` each end a line; JSON lines: only ``\\n``, since a CR is JSON
whitespace), so every piece knows the line number it starts on and errors name the same lines as a whole-file
read.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

_NEWLINE, _CR, _QUOTE = 0x0A, 0x0D, b'"'
# The cut search reads this much at a time from a segment's start (a cut is usually in the first line).
_SEARCH_BLOCK = 64 * 1024

# A reader of the file's bytes ``[start, end)`` as blocks, in order.
ReadRange = Callable[[int, int], Iterable[bytes]]


@dataclass(frozen=True)
class Cut:
    """One piece of the file: ``[start, end)`` in bytes, and the line number of its first line."""

    start: int
    end: int
    first_line: int


@dataclass(frozen=True)
class _Counts:
    """What one segment holds: quote parity, line ends, and its edge bytes (a ``\\r\\n`` may span two)."""

    quote_parity: int
    line_ends: int
    starts_with_lf: bool
    ends_with_cr: bool


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
    return start, _line_ends(head, 0, start, False)


def plan_cuts(
    read: ReadRange,
    *,
    start: int,
    first_line: int,
    size: int,
    piece_bytes: int,
    quoted: bool,
    threads: int = 1,
) -> list[Cut]:
    """Pieces of about ``piece_bytes`` covering ``[start, size)``, each beginning right after a newline.

    ``quoted`` (CSV) keeps cuts outside quotes; ``threads`` segments are read at once.
    """
    if piece_bytes < 1:
        raise ValueError("piece_bytes must be positive")
    bounds = [(offset, min(offset + piece_bytes, size)) for offset in range(start, size, piece_bytes)]
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        counts = list(pool.map(lambda bound: _count(read(*bound), lf_only=not quoted), bounds))
        # Quote parity and line number at each segment's start, from the counts of the segments before it.
        parity, line, entry = 0, first_line, []
        for index, ((segment_start, _), segment) in enumerate(zip(bounds, counts, strict=True)):
            after_cr = index > 0 and counts[index - 1].ends_with_cr
            entry.append((segment_start, parity, line, after_cr))
            parity ^= segment.quote_parity
            line += segment.line_ends - (1 if after_cr and segment.starts_with_lf else 0)
        found = list(pool.map(lambda at: _first_cut(read, at, size, quoted), entry[1:]))
    cuts: list[Cut] = []
    piece_start, piece_line = start, first_line
    for cut in found:
        if cut is None or cut[0] <= piece_start or cut[0] >= size:
            continue  # no newline outside quotes before the end, or one a longer search already passed
        cuts.append(Cut(piece_start, cut[0], piece_line))
        piece_start, piece_line = cut
    cuts.append(Cut(piece_start, size, piece_line))
    return cuts


def _count(blocks: Iterable[bytes], *, lf_only: bool = False) -> _Counts:
    parity = line_ends = 0
    first: bytes | None = None
    previous_cr = False
    for block in blocks:
        if not block:
            continue
        if first is None:
            first = block
        parity ^= block.count(_QUOTE) & 1
        line_ends += _line_ends(block, 0, len(block), previous_cr, lf_only)
        previous_cr = block[-1] == _CR and not lf_only
    return _Counts(parity, line_ends, first is not None and first[0] == _NEWLINE, previous_cr)


def _first_cut(read: ReadRange, at: tuple[int, int, int, bool], size: int, quoted: bool) -> tuple[int, int] | None:
    """The first newline at or after ``start`` with an even quote count before it: (cut offset, its line).

    ``at`` is (start, quote parity there, line number there, whether the byte before it is a ``\\r``).
    """
    start, parity, line, after_cr = at
    position = start
    for block in _blocks(read(start, size)):
        done = 0
        while (newline := block.find(b"\n", done)) >= 0:
            parity ^= block.count(_QUOTE, done, newline) & 1
            line += _line_ends(block, done, newline + 1, after_cr if done == 0 else block[done - 1] == _CR, not quoted)
            done = newline + 1
            if not quoted or parity == 0:
                return position + done, line
        parity ^= block.count(_QUOTE, done) & 1
        line += _line_ends(block, done, len(block), after_cr if done == 0 else block[done - 1] == _CR, not quoted)
        after_cr = bool(block) and block[-1] == _CR
        position += len(block)
    return None


def _blocks(source: Iterable[bytes]) -> Iterator[bytes]:
    """``source`` re-cut into blocks of at most _SEARCH_BLOCK, so a search near the start scans little."""
    for block in source:
        for offset in range(0, len(block), _SEARCH_BLOCK):
            yield block[offset : offset + _SEARCH_BLOCK]


def _line_ends(block: bytes, start: int, end: int, after_cr: bool, lf_only: bool = False) -> int:
    """Line ends in ``block[start:end]``; ``after_cr`` says the byte before ``start`` was a ``\\r``."""
    if start >= end:
        return 0
    if lf_only:
        return block.count(b"\n", start, end)
    count = block.count(b"\n", start, end) + block.count(b"\r", start, end) - block.count(b"\r\n", start, end)
    if after_cr and block[start] == _NEWLINE:
        count -= 1  # the second half of a \r\n that began before ``start``
    return count
