"""Line-aligned byte ranges of large line-oriented objects: how Collect cuts one output object into units.

A range ``[start, end)`` owns every line whose first byte lies inside it: it skips the tail of a line
that began before ``start`` and reads past ``end`` to finish its own last line. The ranges of one object
therefore partition its lines exactly, whatever the line lengths, and each is read with one ranged GET.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from batchline.layout import S3Location

_BLOCK = 1024 * 1024


def split_ranges(size: int, range_bytes: int) -> list[tuple[int, int]]:
    """``[start, end)`` ranges covering ``size`` bytes, each at most ``range_bytes`` (an empty object: none)."""
    if range_bytes < 1:
        raise ValueError("range_bytes must be positive")
    return [(start, min(start + range_bytes, size)) for start in range(0, size, range_bytes)]


def copy_lines(s3: Any, location: S3Location, start: int, end: int, target: BinaryIO) -> int:
    """Writes the lines the range owns to ``target``; returns the bytes written."""
    first = max(start - 1, 0)  # one byte early: is ``start`` itself the beginning of a line?
    body = s3.get_object(Bucket=location.bucket, Key=location.key, Range=f"bytes={first}-")["Body"]
    try:
        return _copy_owned(body, start, end, target)
    finally:
        body.close()


def _copy_owned(body: Any, start: int, end: int, target: BinaryIO) -> int:
    written = 0
    position = max(start - 1, 0)
    skipping = start > 0  # until the first newline at or after start - 1
    while True:
        block = body.read(_BLOCK)
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
            return written + _finish_line(body, target)
        target.write(block[offset:])
        written += len(block) - offset
        position += len(block)


def _finish_line(body: Any, target: BinaryIO) -> int:
    written = 0
    while True:
        block = body.read(_BLOCK)
        if not block:
            return written
        newline = block.find(b"\n")
        if newline >= 0:
            target.write(block[: newline + 1])
            return written + newline + 1
        target.write(block)
        written += len(block)
