"""Parallel ranged GETs give the same bytes as one GET, in order, holding a bounded number of segments."""

from __future__ import annotations

import io
import threading
from typing import Any

import pytest
from batchline import s3io
from batchline.errors import ServiceRequestFailed
from batchline.layout import S3Location
from hypothesis import given, settings
from hypothesis import strategies as st

LOCATION = S3Location("bucket", "output/part-00000.jsonl.out")


class RangedS3:
    """get_object honouring ``bytes=a-b`` and ``bytes=a-`` as S3 does (b past the end is cut to the end);
    counts the GETs made, thread-safely."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.gets = 0
        self._lock = threading.Lock()

    def get_object(self, Bucket: str, Key: str, Range: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        first, _, last = Range.removeprefix("bytes=").partition("-")
        with self._lock:
            self.gets += 1
        stop = int(last) + 1 if last else len(self.data)
        return {"Body": io.BytesIO(self.data[int(first) : stop])}


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=300),
    bounds=st.tuples(st.integers(0, 300), st.integers(0, 300)),
    segment_bytes=st.integers(min_value=1, max_value=64),
    parallel_gets=st.integers(min_value=1, max_value=9),
)
def test_any_range_read_in_parallel_segments_is_the_same_bytes_as_one_get(
    data: bytes, bounds: tuple[int, int], segment_bytes: int, parallel_gets: int
) -> None:
    start, end = sorted(min(bound, len(data)) for bound in bounds)
    blocks = list(
        s3io.read_range(RangedS3(data), LOCATION, start, end, segment_bytes=segment_bytes, parallel_gets=parallel_gets)
    )
    one_get = s3io.open_object(RangedS3(data), LOCATION, byte_range=(start, end)).read()
    assert b"".join(blocks) == one_get == data[start:end]
    assert all(blocks)  # no empty block: an empty read means the end to every reader


def test_at_most_parallel_gets_plus_one_segments_are_held_while_the_reader_is_slow() -> None:
    # GIVEN a 100-segment range read 4 GETs at a time
    s3 = RangedS3(bytes(range(256)) * 4)
    reader = s3io.read_range(s3, LOCATION, 0, 1000, segment_bytes=10, parallel_gets=4)
    # WHEN the reader takes one segment at a time THEN the GETs made run at most 5 segments ahead of it
    for taken in range(1, 101):
        next(reader)
        assert s3.gets - taken <= 4
    assert next(reader, None) is None and s3.gets == 100


def test_a_reader_that_stops_early_starts_no_more_gets() -> None:
    s3 = RangedS3(b"x" * 1000)
    reader = s3io.read_range(s3, LOCATION, 0, 1000, segment_bytes=10, parallel_gets=4)
    next(reader)
    reader.close()
    made = s3.gets
    assert made <= 5
    assert s3.gets == made


@pytest.mark.parametrize("parallel_gets", [1, 2])
def test_an_object_shorter_than_the_range_fails_by_name(parallel_gets: int) -> None:
    with pytest.raises(ServiceRequestFailed, match="returned (5|25) bytes"):
        list(s3io.read_range(RangedS3(b"x" * 25), LOCATION, 0, 30, segment_bytes=10, parallel_gets=parallel_gets))


def test_one_get_at_a_time_is_one_streamed_get_of_the_whole_range() -> None:
    s3 = RangedS3(b"x" * 1000)
    assert b"".join(s3io.read_range(s3, LOCATION, 10, 990, segment_bytes=10, parallel_gets=1)) == b"x" * 980
    assert s3.gets == 1


def test_segment_size_and_parallel_gets_must_be_positive() -> None:
    with pytest.raises(ValueError):
        list(s3io.read_range(RangedS3(b"x"), LOCATION, 0, 1, segment_bytes=0))
    with pytest.raises(ValueError):
        list(s3io.read_range(RangedS3(b"x"), LOCATION, 0, 1, parallel_gets=0))
