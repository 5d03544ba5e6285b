"""Prepare's fan-out: a large upload is cut into shards read at once by Distributed Map children, then merged.

1. ``plan_shards`` (PrepareInput): read the header, cut the rest on record boundaries (input_split.py: the
   file's segments are read at once, PLAN_THREADS at a time) and write ``prepare/shards.json`` for the Map's
   ItemReader. A file that is small, gzipped, or whose header
   cannot be located by counting quotes is not cut: it is read whole as before.
2. ``prepare_shard`` (one child per shard): the same row checks and staging as a whole-file read, over its
   byte range only. Its parts are named after the shard (``part-00003-00000.csv``) so they sort in file
   order; its keys are spilled by a stable hash into one ``.keys`` object; a summary says what it did. A
   whole-file error (bad CSV quoting) is written into the summary, not raised: a failed Map child reaches
   the failure path as a generic Map error, and the merge step raises it by name instead.
3. ``merge_shards``: raises the first shard's error (after deleting every staged part), else finds keys
   repeated across shards, hash partition by partition on disk (duplicates.py). When there are some, the
   shards holding a repeat drop their parts and are read again with their repeats known (a second Map
   over ``prepare/redo.json``); the round after that only merges. Rejected rows are concatenated in
   file order into ``rejected.csv``.
"""

from __future__ import annotations

import bisect
import io
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, BinaryIO

from batchline.adapters.base import InputEncoder
from batchline.duplicates import PAIR, DuplicateKeys, read_pairs
from batchline.errors import InputRejected, InputTooLarge
from batchline.input_split import Cut, csv_header_end, plan_cuts
from batchline.layout import RunLayout, S3Location
from batchline.prepare import (
    ERROR_HEADER,
    FileSection,
    PrepareResult,
    RejectWriter,
    StagedPart,
    is_gzip,
    is_json_lines,
    prepare_section,
    read_header,
    temp_workdir,
)
from batchline.s3io import concatenate_csv, open_object, put_bytes, upload_file
from batchline.staging import StagedInput, discard_parts

# The header is looked for in the file's first bytes; a header longer than this means the file is read whole.
HEAD_BYTES = 1024 * 1024
# The plan reads this many segments of the upload at once (boto3 keeps 10 connections per client), in blocks
# of _READ_BLOCK: about 8 MiB of buffers in all.
PLAN_THREADS = 8
_READ_BLOCK = 1024 * 1024
_BOM = b"\xef\xbb\xbf"
# Partitions of each shard's key spill (one object per shard; the merge reads partition by partition).
KEY_PARTITIONS = 64
_ERRORS: dict[str, type[InputRejected]] = {"InputRejected": InputRejected, "InputTooLarge": InputTooLarge}


@dataclass(frozen=True)
class SourceFile:
    """The pinned upload every shard reads."""

    location: S3Location
    version_id: str | None
    size: int
    name: str

    def open(self, s3: Any, byte_range: tuple[int, int] | None = None) -> BinaryIO:
        return open_object(s3, self.location, self.version_id, byte_range)


def plan_shards(s3: Any, source: SourceFile, layout: RunLayout, *, shard_bytes: int) -> int:
    """Cut the upload into shards of about ``shard_bytes`` and write the plan; returns how many (1: not cut)."""
    if source.size <= shard_bytes:
        return 1
    with source.open(s3, (0, min(source.size, HEAD_BYTES))) as body:
        head = body.read()
    if is_gzip(head):
        return 1  # a gzip stream cannot be entered in the middle
    start = _data_start(head, source.name)
    if start is None:
        return 1
    header, data_start, first_line = start

    def read(begin: int, end: int) -> Iterator[bytes]:
        with source.open(s3, (begin, end)) as body:
            while block := body.read(_READ_BLOCK):
                yield block

    cuts = plan_cuts(
        read,
        start=data_start,
        first_line=first_line,
        size=source.size,
        piece_bytes=shard_bytes,
        quoted=not is_json_lines(source.name),
        threads=PLAN_THREADS,
    )
    if len(cuts) < 2:
        return 1
    _put_json(s3, layout.prepare_file("header.json"), header)
    items = [_plan_item(index, cut, last=index == len(cuts) - 1) for index, cut in enumerate(cuts)]
    _put_json(s3, layout.prepare_file("shards.json"), items)
    return len(cuts)


def _data_start(head: bytes, source_name: str) -> tuple[list[str], int, int] | None:
    """The header, the byte where records start and the line number there; None when not found in ``head``.

    The header is parsed by the same code as a whole-file read, so a bad header fails the same way there.
    """
    if is_json_lines(source_name):
        # Records start at byte 0; the header is the first object's fields, which needs a whole first line.
        last_newline = head.rfind(b"\n")
        if last_newline < 0:
            return None
        try:
            header = read_header(io.BytesIO(head[: last_newline + 1]), source_name)
        except InputRejected:
            return None
        # A shard is decoded as plain UTF-8, so the first one starts after a byte order mark, as a whole read does.
        return header, len(_BOM) if head.startswith(_BOM) else 0, 1
    found = csv_header_end(head)
    if found is None:
        return None
    end, lines = found
    try:
        header = read_header(io.BytesIO(head[:end]), source_name)
    except InputRejected:
        return None
    return header, end, 1 + lines


def _plan_item(index: int, cut: Cut, *, last: bool) -> dict[str, Any]:
    return {"index": index, "start": cut.start, "end": cut.end, "firstLine": cut.first_line, "last": last}


def shard_summary_file(index: int) -> str:
    return f"shard-{index:05d}.json"


def prepare_shard(
    s3: Any,
    source: SourceFile,
    layout: RunLayout,
    item: dict[str, Any],
    *,
    key_column: str,
    encoder: InputEncoder,
    spreadsheet_safe: bool,
    time_left: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """Stage one shard and write its summary; returns the summary (a whole-file error is in ``error``)."""
    index = int(item["index"])
    header = _get_json(s3, layout.prepare_file("header.json"))
    section = FileSection(index, header, int(item["firstLine"]), int(item["end"]), bool(item["last"]))
    name = f"shard-{index:05d}"
    summary: dict[str, Any] = {"index": index, "firstLine": section.first_line, "error": None}
    # The first read spills every key for the merge; a second read knows the repeats instead.
    with (
        temp_workdir() as workdir,
        (
            nullcontext() if item.get("repeats") else DuplicateKeys(workdir, partitions=KEY_PARTITIONS, stable=True)
        ) as keys,
    ):
        rejected_path = os.path.join(workdir, "rejected.csv")
        staged = StagedInput(s3, layout, encoder.content_type)
        try:
            with open(rejected_path, "w", encoding="utf-8", newline="") as rejected_file:
                rejects = RejectWriter(rejected_file, source.name, spreadsheet_safe=spreadsheet_safe)
                result = prepare_section(
                    lambda: source.open(s3, (int(item["start"]), int(item["end"]))),
                    section,
                    source_name=source.name,
                    key_column=key_column,
                    encoder=encoder,
                    rejects=rejects,
                    parts=staged,
                    workdir=workdir,
                    remember=keys.add if keys is not None else None,
                    repeats=_repeats(s3, layout, item) if item.get("repeats") else None,
                    time_left=time_left,
                )
            expected = item.get("expectInput")
            if expected is not None and result.input_records != expected:
                staged.discard()
                raise InputRejected(f"{source.name}: the file changed while it was being read; upload it again")
        except InputRejected as exc:
            summary["error"] = {"type": type(exc).__name__, "message": str(exc)}
        else:
            summary.update(_result_summary(result, staged.parts))
            if result.rejected:
                location = layout.prepare_file(f"{name}.rejected.csv")
                upload_file(s3, rejected_path, location, "text/csv")
                summary["rejected"] = location.key
            if keys is not None:
                location, path = layout.prepare_file(f"{name}.keys"), os.path.join(workdir, "keys.bin")
                with open(path, "wb") as spilled:
                    lengths = keys.write_spill(spilled)
                upload_file(s3, path, location, "application/octet-stream")
                summary["keys"] = {"key": location.key, "lengths": lengths}
    _put_json(s3, layout.prepare_file(shard_summary_file(index)), summary)
    return summary


def _result_summary(result: PrepareResult, parts: list[StagedPart]) -> dict[str, Any]:
    return {
        "counts": result.counts,
        "staging": result.staging,
        "parts": [{"name": part.name, "records": part.records, "bytes": part.bytes} for part in parts],
    }


def _repeats(s3: Any, layout: RunLayout, item: dict[str, Any]) -> Iterator[tuple[int, int]]:
    with open_object(s3, S3Location(layout.work_bucket, item["repeats"])) as body:
        yield from read_pairs(body)


@dataclass
class MergedShards:
    """What the shards staged, in file order, as the rest of the run needs it."""

    counts: dict[str, int]
    staging: dict[str, Any]
    parts: list[StagedPart]
    rejected: bool


def merge_shards(s3: Any, source: SourceFile, layout: RunLayout, *, shards: int, round_: int) -> MergedShards | int:
    """Merge the shards' summaries. Returns the merged result, or the number of shards to read again.

    Raises the earliest shard's whole-file error after deleting every part the shards staged.
    """
    summaries = [_get_json(s3, layout.prepare_file(shard_summary_file(index))) for index in range(shards)]
    failed = [summary for summary in summaries if summary.get("error")]
    if failed:
        discard_parts(s3, layout, [part["name"] for summary in summaries for part in summary.get("parts", [])])
        error = failed[0]["error"]
        raise _ERRORS.get(error["type"], InputRejected)(error["message"])
    if round_ == 1:
        redo = _plan_repeats(s3, layout, summaries)
        if redo:
            discard_parts(s3, layout, [part["name"] for item in redo for part in summaries[item["index"]]["parts"]])
            _put_json(s3, layout.prepare_file("redo.json"), redo)
            return len(redo)
    counts = {name: sum(summary["counts"][name] for summary in summaries) for name in ("input", "sent", "rejected")}
    parts = [
        StagedPart(part["name"], "", "", part["records"], part["bytes"])
        for summary in summaries
        for part in summary["parts"]
    ]
    rejected = _merge_rejected(s3, layout, summaries)
    return MergedShards(counts, summaries[0]["staging"], parts, rejected)


def _plan_repeats(s3: Any, layout: RunLayout, summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Find keys repeated anywhere in the file; write each affected shard's repeats; return its redo items."""
    plan = {item["index"]: item for item in _get_json(s3, layout.prepare_file("shards.json"))}
    starts = [summary["firstLine"] for summary in summaries]
    redo: list[dict[str, Any]] = []
    with temp_workdir() as workdir, DuplicateKeys(workdir, partitions=KEY_PARTITIONS, stable=True) as keys:
        spills = []
        for summary in summaries:
            path = os.path.join(workdir, f"shard-{summary['index']:05d}.keys")
            with (
                open_object(s3, S3Location(layout.work_bucket, summary["keys"]["key"])) as body,
                open(path, "wb") as local,
            ):
                shutil.copyfileobj(body, local, _READ_BLOCK)
            spills.append((path, summary["keys"]["lengths"]))
        handles = [open(path, "rb") for path, _ in spills]  # noqa: SIM115 (closed below)
        try:
            # Partition by partition, shard after shard: each partition sees its keys in line order.
            offsets = [0] * len(spills)
            for partition in range(KEY_PARTITIONS):
                for shard, (handle, (_, lengths)) in enumerate(zip(handles, spills, strict=True)):
                    length = lengths[partition]
                    if length:
                        handle.seek(offsets[shard])
                        keys.add_spill(partition, handle, length)
                        offsets[shard] += length
        finally:
            for handle in handles:
                handle.close()
            for path, _ in spills:
                os.remove(path)
        current: int | None = None
        out: BinaryIO | None = None
        for line, first in keys.duplicates():  # in line order, so shard by shard
            shard = bisect.bisect_right(starts, line) - 1
            if shard != current:
                if out is not None:
                    out.close()
                    _upload_repeats(s3, layout, workdir, redo[-1])
                current = shard
                key = layout.prepare_file(f"shard-{shard:05d}.repeats").key
                redo.append({**plan[shard], "repeats": key, "expectInput": summaries[shard]["counts"]["input"]})
                out = open(os.path.join(workdir, f"shard-{shard:05d}.repeats"), "wb")  # noqa: SIM115
            assert out is not None
            out.write(PAIR.pack(line, first))
        if out is not None:
            out.close()
            _upload_repeats(s3, layout, workdir, redo[-1])
    return redo


def _upload_repeats(s3: Any, layout: RunLayout, workdir: str, item: dict[str, Any]) -> None:
    path = os.path.join(workdir, f"shard-{item['index']:05d}.repeats")
    upload_file(s3, path, S3Location(layout.work_bucket, item["repeats"]), "application/octet-stream")
    os.remove(path)


def _merge_rejected(s3: Any, layout: RunLayout, summaries: list[dict[str, Any]]) -> bool:
    """Every shard's rejected rows, in file order, under one header, as the run's rejected.csv."""
    sources = [S3Location(layout.work_bucket, s["rejected"]) for s in summaries if s.get("rejected")]
    if not sources:
        return False
    concatenate_csv(s3, sources, layout.rejected, ERROR_HEADER)
    return True


def _put_json(s3: Any, location: S3Location, value: Any) -> None:
    put_bytes(s3, location, json.dumps(value).encode(), "application/json")


def _get_json(s3: Any, location: S3Location) -> Any:
    with open_object(s3, location) as body:
        return json.load(body)
