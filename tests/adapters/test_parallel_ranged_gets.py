"""Collect's parallel ranged GETs against moto's S3: the request shapes S3 accepts, and the 416 at an object's end."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from batchline.layout import S3Location
from batchline.line_ranges import copy_lines, split_ranges
from batchline.s3io import read_range
from moto import mock_aws

LOCATION = S3Location("batchline-work", "output/part-00000.jsonl.out")


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=LOCATION.bucket)
        yield client


def test_ranges_read_in_parallel_segments_partition_the_objects_lines(s3: Any) -> None:
    # GIVEN an object of lines of many lengths, the last without a newline
    data = b"".join(b"%d:" % n + b"x" * (n % 37) + b"\n" for n in range(400)) + b"tail"
    s3.put_object(Bucket=LOCATION.bucket, Key=LOCATION.key, Body=data)
    # WHEN it is cut into ranges and each is read in 64-byte segments, 4 GETs at a time
    pieces = []
    for start, end in split_ranges(len(data), 1000):
        target = io.BytesIO()
        copy_lines(s3, LOCATION, start, end, target, segment_bytes=64, parallel_gets=4)
        pieces.append(target.getvalue())
    # THEN the ranges hold whole lines and together the object, the last range ending at its end (S3's 416)
    assert b"".join(pieces) == data
    assert all(piece.endswith(b"\n") for piece in pieces[:-1])


def test_a_segmented_read_is_the_same_bytes_as_one_get(s3: Any) -> None:
    data = bytes(range(256)) * 40
    s3.put_object(Bucket=LOCATION.bucket, Key=LOCATION.key, Body=data)
    one_get = s3.get_object(Bucket=LOCATION.bucket, Key=LOCATION.key, Range="bytes=100-9999")["Body"].read()
    assert b"".join(read_range(s3, LOCATION, 100, 10000, segment_bytes=1000, parallel_gets=3)) == one_get
