"""Line-aligned byte ranges partition an object's lines exactly, whatever the line lengths and block size."""

from __future__ import annotations

import io
from typing import Any
from unittest import mock

import pytest
from batchline import line_ranges
from batchline.layout import S3Location
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st

LOCATION = S3Location("bucket", "output/part-00000.jsonl.out")


class RangedS3:
    """get_object honouring ``bytes=a-b`` and ``bytes=a-`` as S3 does, refusing a start at or past the end (416)."""

    class exceptions:  # noqa: N801 - boto3's client attribute
        ClientError = ClientError

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.ranges: list[str] = []

    def get_object(self, Bucket: str, Key: str, Range: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        self.ranges.append(Range)
        first, _, last = Range.removeprefix("bytes=").partition("-")
        if int(first) >= len(self.data):
            raise ClientError({"Error": {"Code": "InvalidRange", "Message": "not satisfiable"}}, "GetObject")
        return {"Body": io.BytesIO(self.data[int(first) : int(last) + 1 if last else len(self.data)])}


def collect(data: bytes, range_bytes: int, segment_bytes: int = 8 * 1024 * 1024, parallel_gets: int = 8) -> list[bytes]:
    pieces = []
    for start, end in line_ranges.split_ranges(len(data), range_bytes):
        target = io.BytesIO()
        written = line_ranges.copy_lines(
            RangedS3(data), LOCATION, start, end, target, segment_bytes=segment_bytes, parallel_gets=parallel_gets
        )
        assert written == len(target.getvalue())
        pieces.append(target.getvalue())
    return pieces


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"x")), max_size=30),
    trailing_newline=st.booleans(),
    range_bytes=st.integers(min_value=1, max_value=120),
    block=st.sampled_from([1, 3, 7, 64, 1024 * 1024]),
    parallel_gets=st.integers(min_value=1, max_value=4),
)
def test_ranges_concatenate_to_the_object_and_each_holds_whole_lines(
    lines: list[bytes], trailing_newline: bool, range_bytes: int, block: int, parallel_gets: int
) -> None:
    data = b"\n".join(lines) + (b"\n" if trailing_newline and lines else b"")
    # Tiny segments and tail blocks put line ends at every block position.
    with mock.patch.object(line_ranges, "_BLOCK", block):
        pieces = collect(data, range_bytes, segment_bytes=block, parallel_gets=parallel_gets)
    assert b"".join(pieces) == data
    seen = b""
    for piece in pieces:
        seen += piece
        assert piece == b"" or piece.endswith(b"\n") or seen == data  # only the object's own end is unterminated


def test_a_line_longer_than_several_ranges_belongs_to_the_range_where_it_starts() -> None:
    data = b"a\n" + b"x" * 50 + b"\nb\n"
    pieces = collect(data, 10)
    assert pieces[0] == b"a\n" + b"x" * 50 + b"\n"
    assert pieces[1:5] == [b"", b"", b"", b""] and pieces[5] == b"b\n"


def test_each_range_reads_from_one_byte_before_its_start() -> None:
    s3 = RangedS3(b"one\ntwo\nthree\n")
    line_ranges.copy_lines(s3, LOCATION, 4, 8, io.BytesIO())
    assert s3.ranges == ["bytes=3-7"]  # its last line ends at its end: nothing past it is read


def test_a_range_reads_past_its_end_only_to_finish_its_last_line() -> None:
    s3 = RangedS3(b"one\ntwo\nthree\n")
    target = io.BytesIO()
    line_ranges.copy_lines(s3, LOCATION, 4, 10, target, segment_bytes=2, parallel_gets=3)
    assert target.getvalue() == b"two\nthree\n"
    assert s3.ranges[-1] == "bytes=10-" and sorted(s3.ranges[:-1]) == [
        "bytes=3-4",
        "bytes=5-6",
        "bytes=7-8",
        "bytes=9-9",
    ]


def test_the_last_range_of_an_object_without_a_final_newline_reads_nothing_past_the_end() -> None:
    s3 = RangedS3(b"one\ntwo")
    target = io.BytesIO()
    line_ranges.copy_lines(s3, LOCATION, 2, 7, target)
    assert target.getvalue() == b"two"  # the GET from the end was refused (416) and means: no more bytes


def test_an_empty_object_has_no_ranges_and_sizes_must_be_positive() -> None:
    assert line_ranges.split_ranges(0, 10) == []
    with pytest.raises(ValueError):
        line_ranges.split_ranges(10, 0)
