"""One object from many parts, concatenated server-side where S3 allows it.

S3 multipart uploads take parts of at least 5 MiB (the last may be smaller). Parts that big are copied
inside S3 with UploadPartCopy, so Assemble never downloads them; runs of smaller parts are downloaded and
uploaded together once they reach 5 MiB. A single part is copied with CopyObject.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from batchline.layout import S3Location
from batchline.s3io import append_object, copy_object

MIN_PART_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class Part:
    location: S3Location
    size: int


@dataclass(frozen=True)
class Assembled:
    copied_parts: int  # parts S3 copied server-side
    uploaded_bytes: int  # bytes that went through this function (small parts gathered together)


def concatenate(s3: Any, parts: list[Part], target: S3Location, content_type: str, workdir: str) -> Assembled:
    """Writes the parts, in order, as one object at ``target``."""
    if not parts:
        raise ValueError("nothing to assemble")
    if len(parts) == 1:
        copy_object(s3, parts[0].location, target, content_type)
        return Assembled(copied_parts=1, uploaded_bytes=0)
    upload_id = s3.create_multipart_upload(Bucket=target.bucket, Key=target.key, ContentType=content_type)["UploadId"]
    try:
        assembled, etags = _upload_parts(s3, parts, target, upload_id, workdir)
        s3.complete_multipart_upload(
            Bucket=target.bucket,
            Key=target.key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(etags, start=1)]},
        )
    except BaseException:
        s3.abort_multipart_upload(Bucket=target.bucket, Key=target.key, UploadId=upload_id)
        raise
    return assembled


def _upload_parts(
    s3: Any, parts: list[Part], target: S3Location, upload_id: str, workdir: str
) -> tuple[Assembled, list[str]]:
    etags: list[str] = []
    copied = uploaded = 0
    buffer_path = os.path.join(workdir, "assembly-buffer")
    buffer = open(buffer_path, "w+b")  # noqa: SIM115 - reused for every gathered run of small parts
    try:

        def flush() -> None:
            nonlocal uploaded
            size = buffer.tell()
            buffer.seek(0)
            response = s3.upload_part(
                Bucket=target.bucket, Key=target.key, UploadId=upload_id, PartNumber=len(etags) + 1, Body=buffer
            )
            etags.append(response["ETag"])
            uploaded += size
            buffer.seek(0)
            buffer.truncate()

        for number, part in enumerate(parts, start=1):
            last = number == len(parts)  # S3 lets the last part be under 5 MiB
            if buffer.tell() == 0 and (part.size >= MIN_PART_BYTES or last):
                response = s3.upload_part_copy(
                    Bucket=target.bucket,
                    Key=target.key,
                    UploadId=upload_id,
                    PartNumber=len(etags) + 1,
                    CopySource={"Bucket": part.location.bucket, "Key": part.location.key},
                )
                etags.append(response["CopyPartResult"]["ETag"])
                copied += 1
                continue
            # A small part, or a big one behind gathered small ones (which cannot stand alone): gather it.
            append_object(s3, part.location, buffer)
            if buffer.tell() >= MIN_PART_BYTES:
                flush()
        if buffer.tell() or not etags:
            flush()  # the last part may be under 5 MiB
    finally:
        buffer.close()
        os.remove(buffer_path)
    return Assembled(copied_parts=copied, uploaded_bytes=uploaded), etags
