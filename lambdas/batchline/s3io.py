"""Streaming S3 reads and whole-object writes that never expose a partial object under its final key."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any, BinaryIO

from batchline.errors import ServiceRequestFailed
from batchline.layout import S3Location


def open_object(
    s3: Any, location: S3Location, version_id: str | None = None, byte_range: tuple[int, int] | None = None
) -> BinaryIO:
    """The object's body as a stream: bytes arrive as they are read, nothing is held whole.

    ``byte_range`` is ``(start, end)``, end excluded: only those bytes are read.
    """
    kwargs: dict[str, Any] = {"Bucket": location.bucket, "Key": location.key}
    if version_id:
        kwargs["VersionId"] = version_id
    if byte_range is not None:
        start, end = byte_range
        if end <= start:
            return io.BufferedReader(io.BytesIO(b""))  # type: ignore[arg-type]  # S3 has no empty range
        kwargs["Range"] = f"bytes={start}-{end - 1}"
    body = s3.get_object(**kwargs)["Body"]
    return io.BufferedReader(_RawStream(body), buffer_size=1024 * 1024)


class _RawStream(io.RawIOBase):
    """Adapts botocore's StreamingBody to the io stack (gzip, TextIOWrapper, csv)."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._body.close()
        super().close()


def csv_rows(s3: Any, location: S3Location) -> Iterator[list[str]]:
    """An object's CSV rows, streamed (UTF-8)."""
    with io.TextIOWrapper(open_object(s3, location), encoding="utf-8", newline="") as text:
        yield from csv.reader(text)


def json_lines(s3: Any, location: S3Location) -> Iterator[tuple[int, Any]]:
    """An object's JSON lines, streamed, with their line numbers; blank lines are skipped.

    Lines end at LF only, as the services write them: a CR is JSON whitespace, and U+2028 may sit raw in a string.
    """
    with io.TextIOWrapper(open_object(s3, location), encoding="utf-8", newline="\n") as text:
        for number, line in enumerate(text, start=1):
            if line.strip():
                yield number, json.loads(line)


def append_object(s3: Any, location: S3Location, target: BinaryIO, *, skip_header: bool = False) -> int:
    """Streams an object onto the end of an open file (download_fileobj would seek to its own offsets).

    ``skip_header`` leaves out the object's first line. Returns the bytes appended.
    """
    written = 0
    with open_object(s3, location) as body:
        if skip_header:
            body.readline()
        for block in iter(lambda: body.read(1024 * 1024), b""):
            target.write(block)
            written += len(block)
    return written


def concatenate_csv(s3: Any, sources: list[S3Location], target: S3Location, header: bytes) -> None:
    """One CSV object from several that each start with ``header``: the header once, then every body in order."""
    with tempfile.TemporaryDirectory(prefix="batchline-", dir=scratch_dir()) as workdir:
        path = os.path.join(workdir, "concatenated.csv")
        with open(path, "wb") as merged:
            merged.write(header)
            for location in sources:
                append_object(s3, location, merged, skip_header=True)
        upload_file(s3, path, target, "text/csv")


def object_exists(s3: Any, location: S3Location) -> bool:
    try:
        s3.head_object(Bucket=location.bucket, Key=location.key)
    except s3.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def list_keys(s3: Any, prefix: S3Location) -> Iterator[str]:
    """Every key under a prefix, in S3's (lexicographic) order."""
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=prefix.bucket, Prefix=prefix.key):
        for item in page.get("Contents", []):
            yield item["Key"]


def list_objects(s3: Any, prefix: S3Location) -> Iterator[tuple[str, int]]:
    """(key, size) of every object under a prefix, in S3's (lexicographic) order."""
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=prefix.bucket, Prefix=prefix.key):
        for item in page.get("Contents", []):
            yield item["Key"], int(item["Size"])


def upload_file(s3: Any, path: str, location: S3Location, content_type: str) -> None:
    """Uploads a finished local file; S3 shows the object only once the upload completes."""
    s3.upload_file(path, location.bucket, location.key, ExtraArgs={"ContentType": content_type})


def copy_object(s3: Any, source: S3Location, target: S3Location, content_type: str | None = None) -> None:
    """Server-side copy (objects over 5 GB use multipart copy inside boto3's managed transfer)."""
    extra = {"ContentType": content_type, "MetadataDirective": "REPLACE"} if content_type else None
    s3.copy({"Bucket": source.bucket, "Key": source.key}, target.bucket, target.key, ExtraArgs=extra)


def delete_objects(s3: Any, bucket: str, keys: list[str]) -> None:
    """Deletes keys in batches of 1,000 (DeleteObjects' limit); raises if S3 refuses any key.

    DeleteObjects answers 200 even when some keys fail, listing them under ``Errors``, so they are checked.
    On a versioned bucket this adds delete markers; the versions themselves stay until the lifecycle rule.
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html
    """
    for start in range(0, len(keys), 1000):
        batch = [{"Key": key} for key in keys[start : start + 1000]]
        answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        if answer.get("Errors"):
            first = answer["Errors"][0]
            raise ServiceRequestFailed(
                f"S3 did not delete {len(answer['Errors'])} objects in {bucket}, "
                f"first {first.get('Key')}: {first.get('Code')} {first.get('Message')}"
            )


def put_bytes(s3: Any, location: S3Location, data: bytes, content_type: str) -> None:
    s3.put_object(Bucket=location.bucket, Key=location.key, Body=data, ContentType=content_type)


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def scratch_dir() -> str:
    """Lambda's /tmp, or the system temp dir elsewhere."""
    return os.environ.get("BATCHLINE_SCRATCH_DIR") or ("/tmp" if os.path.isdir("/tmp") else ".")
