"""s3io.concatenate_csv streams: header once then every body, through S3's multipart upload, nothing in /tmp."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from batchline.layout import S3Location
from batchline.s3io import MIN_PART_BYTES, concatenate_csv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

BUCKET = "work"
HEADER = b"source,line,key,stage,reason,detail\n"
TARGET = S3Location(BUCKET, "run/errors.csv")
# Body sizes where the part arithmetic can go wrong: empty, tiny, and either side of S3's 5 MiB part minimum
# (alone, and once the header or an earlier body has been gathered in front of it).
_EDGES = [0, 1, 2, 100] + [MIN_PART_BYTES + d for d in (-len(HEADER) - 1, -len(HEADER), -1, 0, 1)]
BODY_SIZES = st.one_of(st.sampled_from(_EDGES), st.integers(0, 2 * MIN_PART_BYTES + 10))


class Spy:
    """Records the calls that move bytes, and how many bytes the function itself read, passing them to moto."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[str] = []
        self.read_bytes = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name not in ("upload_part_copy", "upload_part", "put_object", "upload_file", "get_object"):
            return attribute

        def call(**kwargs: Any) -> Any:
            self.calls.append(name)
            response = attribute(**kwargs)
            if name == "get_object":
                self.read_bytes += int(response["ContentLength"])
            return response

        return call


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def body(n: int, size: int) -> bytes:
    """A body of ``size`` bytes, its own letter throughout so a misplaced byte shows, ending in a line end."""
    return (bytes([97 + n % 26]) * (size - 1) + b"\n") if size else b""


def put_sources(s3: Any, sizes: list[int], *, header: bytes = HEADER) -> list[S3Location]:
    sources = []
    for n, size in enumerate(sizes):
        key = f"run/prepare/shard-{n:05d}.rejected.csv"
        s3.put_object(Bucket=BUCKET, Key=key, Body=header + body(n, size))
        sources.append(S3Location(BUCKET, key))
    return sources


def result(s3: Any) -> bytes:
    return bytes(s3.get_object(Bucket=BUCKET, Key=TARGET.key)["Body"].read())


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@given(sizes=st.lists(BODY_SIZES, max_size=4))
def test_any_sources_give_the_header_once_then_every_body_in_order(
    sizes: list[int], tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path_factory.mktemp("scratch")
    monkeypatch.setenv("BATCHLINE_SCRATCH_DIR", str(scratch))
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        sources = put_sources(client, sizes)
        spy = Spy(client)

        concatenate_csv(spy, sources, TARGET, HEADER)

        assert result(client) == HEADER + b"".join(body(n, size) for n, size in enumerate(sizes))
        assert "upload_file" not in spy.calls
        assert list(scratch.iterdir()) == []
        # Never more than a part's worth read into the function per source (the rest is copied inside S3).
        assert spy.read_bytes <= len(sizes) * (MIN_PART_BYTES + 64 * 1024)
        assert client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_no_bodies_still_give_the_header(s3: Any) -> None:
    concatenate_csv(s3, put_sources(s3, [0, 0]), TARGET, HEADER)
    assert result(s3) == HEADER


def test_a_big_source_is_copied_inside_s3_after_its_header(s3: Any) -> None:
    # GIVEN a small rejected file, then one of three parts' worth
    sizes = [1000, 3 * MIN_PART_BYTES]
    spy = Spy(s3)
    concatenate_csv(spy, put_sources(s3, sizes), TARGET, HEADER)
    assert result(s3) == HEADER + body(0, 1000) + body(1, 3 * MIN_PART_BYTES)
    # THEN only the first part is gathered in the function; the big one's remainder is one ranged copy
    assert spy.calls.count("upload_part") == 1
    assert spy.calls.count("upload_part_copy") == 1
    assert spy.read_bytes < MIN_PART_BYTES + 2 * 64 * 1024


def test_a_header_of_any_length_is_skipped(s3: Any) -> None:
    long_header = b"x" * (100 * 1024) + b"\n"
    concatenate_csv(s3, put_sources(s3, [MIN_PART_BYTES + 3, 10], header=long_header), TARGET, HEADER)
    assert result(s3) == HEADER + body(0, MIN_PART_BYTES + 3) + body(1, 10)


def test_a_failure_part_way_aborts_the_upload_and_writes_nothing(s3: Any) -> None:
    sources = put_sources(s3, [2 * MIN_PART_BYTES, 10])
    sources.append(S3Location(BUCKET, "run/prepare/missing.rejected.csv"))
    with pytest.raises(s3.exceptions.ClientError):
        concatenate_csv(s3, sources, TARGET, HEADER)
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=TARGET.key)
