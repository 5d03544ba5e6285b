"""Line-aligned byte ranges of large line-oriented objects: how Collect cuts one output object into units.

A range ``[start, end)`` owns every line whose first byte lies inside it: it skips the tail of a line
that began before ``start`` and reads past ``end`` to finish its own last line. The ranges of one object
therefore partition its lines exactly, whatever the line lengths. A range is read with parallel ranged GETs
(``s3io.read_range``: S3's transfer rate, not the engine, bounds a Collect unit in Lambda); only the tail of
the line straddling ``end``, if any, is read past it, by one more GET.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator
from typing import Any, BinaryIO

from batchline.layout import S3Location
from batchline.s3io import PARALLEL_GETS, SEGMENT_BYTES, read_range

_BLOCK = 1024 * 1024


def split_ranges(size: int, range_bytes: int) -> list[tuple[int, int]]:
    """``[start, end)`` ranges covering ``size`` bytes, each at most ``range_bytes`` (an empty object: none)."""
    if range_bytes < 1:
        raise ValueError("range_bytes must be positive")
    return [(start, min(start + range_bytes, size)) for start in range(0, size, range_bytes)]


def copy_lines(
    s3: Any,
    location: S3Location,
    start: int,
    end: int,
    target: BinaryIO,
    *,
    segment_bytes: int = SEGMENT_BYTES,
    parallel_gets: int = PARALLEL_GETS,
) -> int:
    """Writes the lines the range owns to ``target``; returns the bytes written."""
    first = max(start - 1, 0)  # one byte early: is ``start`` itself the beginning of a line?
    blocks = _chain(
        read_range(s3, location, first, end, segment_bytes=segment_bytes, parallel_gets=parallel_gets),
        _after(s3, location, end),
    )
    try:
        return _copy_owned(blocks, start, end, target)
    finally:
        blocks.close()  # stops the parallel reads and closes the tail's GET when the last line ended early


def _chain(*sources: Iterator[bytes]) -> Generator[bytes, None, None]:
    """The sources' blocks in turn; closing it closes the source being read (itertools.chain would not)."""
    for source in sources:
        try:
            yield from source
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()


def _after(s3: Any, location: S3Location, end: int) -> Iterator[bytes]:
    """The object's bytes from ``end`` on, streamed; the GET is made only if a line is still open at ``end``."""
    try:
        body = s3.get_object(Bucket=location.bucket, Key=location.key, Range=f"bytes={end}-")["Body"]
    except s3.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] == "InvalidRange":
            return  # ``end`` is the object's size: its last line has no newline
        raise
    try:
        while block := body.read(_BLOCK):
            yield block
    finally:
        body.close()


def _copy_owned(blocks: Iterable[bytes], start: int, end: int, target: BinaryIO) -> int:
    written = 0
    position = max(start - 1, 0)
    skipping = start > 0  # until the first newline at or after start - 1
    source = iter(blocks)
    while True:
        block = next(source, b"")
        if not block:
            return written
        offset = 0
        if skipping:
            newline = block.find(b"\n")
            if newline < 0:
                position += len(block)
                continue
            offset, skipping = newline + 1, False
            if position + offset >= end:
                return written  # the line that crossed ``start`` ran past ``end``: nothing is ours
        # Lines beginning before ``end`` are ours; the one straddling ``end`` ends at the next newline.
        limit = end - 1 - position  # index in block of the last byte we own as a line start
        if limit < len(block):
            newline = block.find(b"\n", max(limit, offset))
            if newline >= 0:
                target.write(block[offset : newline + 1])
                return written + newline + 1 - offset
            target.write(block[offset:])
            written += len(block) - offset
            position += len(block)
            return written + _finish_line(source, target)
        target.write(block[offset:])
        written += len(block) - offset
        position += len(block)


def _finish_line(source: Iterator[bytes], target: BinaryIO) -> int:
    written = 0
    for block in source:
        newline = block.find(b"\n")
        if newline >= 0:
            target.write(block[: newline + 1])
            return written + newline + 1
        target.write(block)
        written += len(block)
    return written
