"""Stage records the way Prepare does (the real encoder's lines, the index of line, key and record ID) in moto's
S3, so an adapter's read_results can be driven with outputs shaped like the service's."""

from __future__ import annotations

from typing import Any

from batchline.adapters.base import EncodedRecord, InputEncoder, StagedRecord
from batchline.collect import staged_records
from batchline.csvsafe import format_row
from batchline.layout import RunLayout, S3Location

HOSTILE_KEYS = [
    "plain",
    "a-0",
    "R00000000000",  # shaped like a generated record ID
    "cr\rinside",
    "lf\ninside",
    "crlf\r\ninside",
    "ls\u2028inside",
    "nel\u0085inside",
    "nul\x00inside",
    'quote"inside',
    "comma,inside",
    " spaces around ",
    "=x",
    "'=x",
    "é 漢字 😀",
]


def stage(
    s3: Any,
    layout: RunLayout,
    input_prefix: S3Location,
    encoder: InputEncoder,
    rows: list[list[str]],
    *,
    part: str,
    key_index: int = 0,
    first_line: int = 2,
    first_sequence: int = 0,
) -> list[EncodedRecord]:
    """Encodes ``rows`` (after ``encoder.start``) into one staged part and its index; returns the encoded records."""
    encoded = [encoder.encode(row, first_sequence + n) for n, row in enumerate(rows)]
    s3.put_object(
        Bucket=input_prefix.bucket, Key=input_prefix.key + part, Body="".join(r.text for r in encoded).encode()
    )
    index = "".join(
        format_row([str(first_line + n), row[key_index], record.record_id])
        for n, (row, record) in enumerate(zip(rows, encoded, strict=True))
    )
    location = layout.index_for(part)
    s3.put_object(Bucket=location.bucket, Key=location.key, Body=index.encode())
    return encoded


def staged(s3: Any, layout: RunLayout, input_prefix: S3Location) -> list[StagedRecord]:
    return list(staged_records(s3, layout, input_prefix))
