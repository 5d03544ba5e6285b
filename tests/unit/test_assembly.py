"""predictions.csv is assembled server-side: parts of 5 MiB or more are copied inside S3 (UploadPartCopy)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from batchline.assembly import MIN_PART_BYTES, Part, concatenate
from batchline.layout import S3Location
from moto import mock_aws

BUCKET = "work"


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


class Spy:
    """Counts the calls that move bytes, passing everything through to the real (moto) client."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name in ("upload_part_copy", "upload_part", "get_object", "copy"):
            self.calls.append(name)
        return attribute


def put_parts(s3: Any, sizes: list[int]) -> list[Part]:
    parts = []
    for n, size in enumerate(sizes):
        body = bytes([65 + n]) * (size - 1) + b"\n"
        s3.put_object(Bucket=BUCKET, Key=f"parts/unit-{n:05d}.csv", Body=body)
        parts.append(Part(S3Location(BUCKET, f"parts/unit-{n:05d}.csv"), size))
    return parts


def assembled(s3: Any) -> bytes:
    return bytes(s3.get_object(Bucket=BUCKET, Key="out/predictions.csv")["Body"].read())


def expected(s3: Any, parts: list[Part]) -> bytes:
    return b"".join(s3.get_object(Bucket=BUCKET, Key=p.location.key)["Body"].read() for p in parts)


def test_big_parts_are_copied_inside_s3_never_downloaded(s3: Any, tmp_path: Any) -> None:
    parts = put_parts(s3, [MIN_PART_BYTES, MIN_PART_BYTES + 10, 1000])
    spy = Spy(s3)
    result = concatenate(spy, parts, S3Location(BUCKET, "out/predictions.csv"), "text/csv", str(tmp_path))
    assert assembled(s3) == expected(s3, parts)
    assert result.copied_parts == 3 and result.uploaded_bytes == 0
    assert spy.calls == ["upload_part_copy"] * 3  # the last part may be small: it is copied too


def test_small_parts_are_gathered_until_they_make_a_valid_part(s3: Any, tmp_path: Any) -> None:
    parts = put_parts(s3, [1000, 2000, MIN_PART_BYTES, MIN_PART_BYTES + 1, 300])
    spy = Spy(s3)
    result = concatenate(spy, parts, S3Location(BUCKET, "out/predictions.csv"), "text/csv", str(tmp_path))
    assert assembled(s3) == expected(s3, parts)
    # 1000 + 2000 + the 5 MiB part behind them go up together; the next big part is copied, then the small last one.
    assert result.copied_parts == 2 and result.uploaded_bytes == 3000 + MIN_PART_BYTES
    assert list(tmp_path.iterdir()) == []  # the gathering buffer is removed


def test_one_part_is_a_plain_server_side_copy(s3: Any, tmp_path: Any) -> None:
    parts = put_parts(s3, [500])
    result = concatenate(s3, parts, S3Location(BUCKET, "out/predictions.csv"), "text/csv", str(tmp_path))
    assert assembled(s3) == expected(s3, parts) and result.copied_parts == 1
    assert s3.head_object(Bucket=BUCKET, Key="out/predictions.csv")["ContentType"] == "text/csv"


def test_a_failed_assembly_aborts_its_multipart_upload(s3: Any, tmp_path: Any) -> None:
    parts = put_parts(s3, [MIN_PART_BYTES, 10])
    missing = [*parts, Part(S3Location(BUCKET, "parts/gone.csv"), 10)]
    with pytest.raises(s3.exceptions.ClientError):
        concatenate(s3, missing, S3Location(BUCKET, "out/predictions.csv"), "text/csv", str(tmp_path))
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="out/")
