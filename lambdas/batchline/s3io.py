"""Streaming S3 reads and whole-object writes that never expose a partial object under its final key."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import mmap
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

from batchline.errors import ServiceRequestFailed
from batchline.layout import S3Location

# Parallel ranged reads: one GET streams at ~50-90 MB/s in Lambda, several at once multiply that (S3's own
# advice: https://docs.aws.amazon.com/whitepapers/latest/s3-optimizing-performance-best-practices/use-byte-range-fetches.html).
# 8 GETs of 8 MiB segments hold at most 72 MiB of buffers and stay within boto3's 10 pooled connections.
SEGMENT_BYTES = 8 * 1024 * 1024
PARALLEL_GETS = 8
_STREAM_BLOCK = 1024 * 1024


def open_object(
    s3: Any, location: S3Location, version_id: str | None = None, byte_range: tuple[int, int] | None = None
) -> BinaryIO:
    """The object's body as a stream: bytes arrive as they are read, nothing is held whole.

    ``byte_range`` is ``(start, end)``, end excluded: only those bytes are read.
    """
    if byte_range is not None and byte_range[1] <= byte_range[0]:
        return io.BufferedReader(io.BytesIO(b""))  # type: ignore[arg-type]  # S3 has no empty range
    body = s3.get_object(**_get_arguments(location, version_id, byte_range))["Body"]
    return io.BufferedReader(_RawStream(body), buffer_size=1024 * 1024)


def _get_arguments(location: S3Location, version_id: str | None, byte_range: tuple[int, int] | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"Bucket": location.bucket, "Key": location.key}
    if version_id:
        kwargs["VersionId"] = version_id
    if byte_range is not None:
        kwargs["Range"] = f"bytes={byte_range[0]}-{byte_range[1] - 1}"
    return kwargs


def read_range(
    s3: Any,
    location: S3Location,
    start: int,
    end: int,
    *,
    version_id: str | None = None,
    segment_bytes: int = SEGMENT_BYTES,
    parallel_gets: int = PARALLEL_GETS,
) -> Iterator[bytes]:
    """Bytes ``[start, end)`` of an object, in order, in blocks of at most 1 MiB: the same bytes as one GET.

    The range is read in segments of ``segment_bytes``, ``parallel_gets`` ranged GETs at a time. A segment's
    blocks are yielded once it and every one before it has arrived, and the next GET starts only when a segment
    is taken, so at most ``parallel_gets + 1`` segments are held, whatever the range's size. Segments live in
    anonymous memory maps, handed back to the OS as each is used up: as bytes objects they were kept by malloc's
    per-thread arenas (a 256 MiB shard's read then left ~150 MB that DuckDB could not use). A range of one
    segment, or ``parallel_gets=1``, is one GET streamed. An object shorter than ``end`` raises: a range past
    the end is the caller's mistake, not something to hide.
    """
    if segment_bytes < 1 or parallel_gets < 1:
        raise ValueError("segment_bytes and parallel_gets must be positive")

    if end - start <= segment_bytes or parallel_gets == 1:
        yield from _streamed(s3, location, version_id, (start, end))
        return

    bounds = iter([(offset, min(offset + segment_bytes, end)) for offset in range(start, end, segment_bytes)])
    pool = ThreadPoolExecutor(max_workers=parallel_gets, thread_name_prefix="s3-range")
    pending: deque[Future[mmap.mmap]] = deque()
    try:
        for bound in bounds:
            pending.append(pool.submit(_segment, s3, location, version_id, bound))
            if len(pending) == parallel_gets:
                break
        while pending:
            with pending.popleft().result() as segment:
                following = next(bounds, None)
                if following is not None:
                    pending.append(pool.submit(_segment, s3, location, version_id, following))
                for offset in range(0, len(segment), _STREAM_BLOCK):
                    yield segment[offset : offset + _STREAM_BLOCK]
    finally:
        for future in pending:
            future.cancel()  # the reader stopped early (or a GET failed): start nothing more
        pool.shutdown(wait=True)
        for future in pending:
            if not future.cancelled() and future.exception() is None:
                future.result().close()


def _streamed(s3: Any, location: S3Location, version_id: str | None, bound: tuple[int, int]) -> Iterator[bytes]:
    """One GET of the range, streamed in blocks."""
    got = 0
    with open_object(s3, location, version_id, bound) as body:
        while block := body.read(_STREAM_BLOCK):
            got += len(block)
            yield block
    _check_length(got, bound, location)


def _segment(s3: Any, location: S3Location, version_id: str | None, bound: tuple[int, int]) -> mmap.mmap:
    """One GET of the range into an anonymous memory map (closed, and so given back, by the reader)."""
    segment = mmap.mmap(-1, bound[1] - bound[0])
    try:
        body = s3.get_object(**_get_arguments(location, version_id, bound))["Body"]
        try:
            got = 0
            while got < len(segment) and (block := body.read(min(_STREAM_BLOCK, len(segment) - got))):
                segment[got : got + len(block)] = block
                got += len(block)
        finally:
            body.close()
        _check_length(got, bound, location)
    except BaseException:
        segment.close()
        raise
    return segment


def _check_length(got: int, bound: tuple[int, int], location: S3Location) -> None:
    if got != bound[1] - bound[0]:
        raise ServiceRequestFailed(f"S3 returned {got} bytes for bytes {bound[0]}-{bound[1] - 1} of {location.uri}")


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


# S3 multipart limits: every part but the last is at least 5 MiB, a copied part at most 5 GiB, 10,000 parts.
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html
MIN_PART_BYTES = 5 * 1024 * 1024
MAX_PART_BYTES = 5 * 1024 * 1024 * 1024
MAX_PARTS = 10_000


def concatenate_csv(s3: Any, sources: list[S3Location], target: S3Location, header: bytes) -> None:
    """One CSV object from several that each start with a header line: ``header`` once, then every body in order.

    Nothing goes through /tmp and memory stays under one 5 MiB part: a multipart upload whose parts are copied
    inside S3 (UploadPartCopy, with a byte range after each source's header) wherever a stretch of a source can
    stand as a part (5 MiB or more, or the end of the object), and whose other parts gather the header and the
    small stretches as they are read. A result under 5 MiB is one PutObject. The upload is aborted on failure.
    """
    writer = _StreamedObject(s3, target, "text/csv")
    try:
        writer.write(header)
        for number, location in enumerate(sources, start=1):
            start, size = _body_range(s3, location)
            last = number == len(sources)
            while start < size:
                if writer.buffered == 0 and (size - start >= MIN_PART_BYTES or last):
                    end = min(size, start + MAX_PART_BYTES)
                    writer.copy(location, start, end)
                else:
                    # Fill the gathered part up to 5 MiB, so what follows can be copied.
                    end = min(size, start + MIN_PART_BYTES - writer.buffered)
                    with open_object(s3, location, byte_range=(start, end)) as body:
                        for block in iter(lambda: body.read(1024 * 1024), b""):
                            writer.write(block)
                start = end
        writer.finish()
    except BaseException:
        writer.abort()
        raise


def _body_range(s3: Any, location: S3Location) -> tuple[int, int]:
    """(where the body starts after the first line, the object's size)."""
    size = int(s3.head_object(Bucket=location.bucket, Key=location.key)["ContentLength"])
    if size == 0:
        return 0, 0
    with open_object(s3, location, byte_range=(0, min(size, 64 * 1024))) as head:
        first = head.readline()
    if not first.endswith(b"\n") and len(first) < size:  # a header line longer than 64 KiB: read it whole
        with open_object(s3, location) as body:
            first = body.readline()
    return len(first), size


class _StreamedObject:
    """An object written as a multipart upload started on the first full part; under 5 MiB, one PutObject."""

    def __init__(self, s3: Any, target: S3Location, content_type: str) -> None:
        self._s3 = s3
        self._target = target
        self._content_type = content_type
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._etags: list[str] = []

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def write(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= MIN_PART_BYTES:
            self._flush()

    def copy(self, source: S3Location, start: int, end: int) -> None:
        """Bytes ``[start, end)`` of ``source`` as the next part, copied inside S3 (nothing gathered before it)."""
        assert not self._buffer, "a copied part cannot follow gathered bytes"
        response = self._s3.upload_part_copy(
            **self._part(),
            CopySource={"Bucket": source.bucket, "Key": source.key},
            CopySourceRange=f"bytes={start}-{end - 1}",
        )
        self._etags.append(response["CopyPartResult"]["ETag"])

    def finish(self) -> None:
        if self._upload_id is None:
            put_bytes(self._s3, self._target, bytes(self._buffer), self._content_type)
            return
        if self._buffer:
            self._flush()  # the last part may be under 5 MiB
        self._s3.complete_multipart_upload(
            Bucket=self._target.bucket,
            Key=self._target.key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(self._etags, 1)]},
        )

    def abort(self) -> None:
        if self._upload_id is not None:
            self._s3.abort_multipart_upload(Bucket=self._target.bucket, Key=self._target.key, UploadId=self._upload_id)

    def _flush(self) -> None:
        response = self._s3.upload_part(**self._part(), Body=bytes(self._buffer))
        self._etags.append(response["ETag"])
        self._buffer.clear()

    def _part(self) -> dict[str, Any]:
        if self._upload_id is None:
            self._upload_id = self._s3.create_multipart_upload(
                Bucket=self._target.bucket, Key=self._target.key, ContentType=self._content_type
            )["UploadId"]
        if len(self._etags) >= MAX_PARTS:
            raise ServiceRequestFailed(f"{self._target.uri} would need more than {MAX_PARTS} multipart parts")
        return {
            "Bucket": self._target.bucket,
            "Key": self._target.key,
            "UploadId": self._upload_id,
            "PartNumber": len(self._etags) + 1,
        }


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
