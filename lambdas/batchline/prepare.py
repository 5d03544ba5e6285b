"""Prepare: read the uploaded CSV once, refuse bad rows with reasons, stage the rest for the service.

Every input record ends up in exactly one place: a staged part (sent) or rejected.csv (rejected).
Whole-file problems (empty, header only, no key column, unparseable CSV) raise InputRejected, and anything
already staged is discarded first, so a failed Prepare leaves no part behind.

The read stages parts and writes rejected rows in line order while spilling every key to disk (duplicates.py).
Repeated keys are rare, so staging is optimistic: when the spill shows no repeat, that one read was all. When it
shows one, a later occurrence was staged as if new, so what was staged and rejected is discarded and the file is
read again with the repeats known. Only files that repeat a key pay that second read, parse and staging (measured
in benchmarks/prepare.py); memory stays flat with the input's size either way.

One function has 15 minutes. A read that would not finish in them stops while there is still time to clean up
(InputTooLarge, naming the line reached and the size of file that fits), rather than being killed mid-part and
retried, which would cost the same quarter hour again for the same end.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import itertools
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from batchline.adapters.base import EncodedRecord, InputEncoder, JobLimits, RecordRejected
from batchline.csvsafe import CsvWriter, format_row
from batchline.duplicates import DuplicateKeys
from batchline.errors import InputRejected, InputTooLarge

ERROR_COLUMNS = ["source_file", "line", "key", "stage", "reason", "record"]
# The header line of every error CSV (rejected.csv, failed.csv, errors.csv): no column needs quoting.
ERROR_HEADER = (",".join(ERROR_COLUMNS) + "\n").encode()
_GZIP_MAGIC = b"\x1f\x8b"
# csv's default field limit (128 KiB) would fail the whole file on one huge cell; records are
# bounded by the service's payload instead, and a larger cell is rejected as a row.
_FIELD_LIMIT = 16 * 1024 * 1024
csv.field_size_limit(_FIELD_LIMIT)
# The read checks the function's remaining time every this many records, and stops when less than
# STOP_MARGIN_SECONDS are left: enough to delete what was staged and report the failure.
CHECK_EVERY_RECORDS = 10_000
STOP_MARGIN_SECONDS = 60.0


@dataclass(frozen=True)
class FileSection:
    """A byte range of an upload that starts at a record boundary: what one child of Prepare's fan-out reads.

    It carries what the rest of the file knows: the header (from the first lines), the line number of its
    first line, and where it ends (for messages); the last section ends where the file does. Record
    sequences start at ``first_line`` so they stay unique across sections, and parts are named after the
    section so they sort in file order.
    """

    index: int
    header: list[str]
    first_line: int
    end_byte: int
    last: bool

    @property
    def part_prefix(self) -> str:
        return f"part-{self.index:05d}-"


@dataclass
class StagedPart:
    name: str
    path: str
    index_path: str
    records: int
    bytes: int


class PartSink(Protocol):
    """Where Prepare hands each finished part, in order (the flow uploads it under the run's input prefix)."""

    def add(self, part: StagedPart) -> None: ...

    def discard(self) -> None:
        """Drop every part added so far: Prepare is about to stage again, or the file failed part-way."""
        ...


@dataclass
class PrepareResult:
    input_records: int = 0
    sent: int = 0
    rejected: int = 0
    parts: list[StagedPart] = field(default_factory=list)
    key_header: str = ""
    staging: dict[str, Any] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        return {"input": self.input_records, "sent": self.sent, "rejected": self.rejected}


def open_text(source: BinaryIO, *, whole_file: bool = True, newline: str = "") -> io.TextIOWrapper:
    """Text view of an upload: gunzips by magic bytes, drops a UTF-8 BOM, keeps bad bytes as surrogates.

    Bad bytes are kept (not replaced) so the row they sit in can be rejected with a reason instead of
    being silently altered. A byte range from the middle of a file (``whole_file=False``) is neither
    gunzipped nor stripped of a leading U+FEFF: that would be a character of a record. ``newline`` is
    TextIOWrapper's: ``""`` for CSV (the csv module finds record ends itself), ``"\\n"`` for JSON lines.
    """
    buffered = source if isinstance(source, io.BufferedReader) else io.BufferedReader(source)  # type: ignore[arg-type,type-var]
    if whole_file and is_gzip(buffered.peek(2)):
        buffered = io.BufferedReader(_Gunzipped(buffered))
    encoding = "utf-8-sig" if whole_file else "utf-8"
    return io.TextIOWrapper(buffered, encoding=encoding, errors="surrogateescape", newline=newline)


class Unreadable(Exception):
    """The bytes of an upload cannot be read on from here (a gzip stream cut short or corrupt)."""


class _Gunzipped(io.RawIOBase):
    """A gzip stream whose errors say what is wrong with the file, in words, as Unreadable."""

    def __init__(self, compressed: BinaryIO) -> None:
        self._gzip = gzip.GzipFile(fileobj=compressed)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            return self._gzip.readinto(buffer)
        except EOFError as exc:
            raise Unreadable(
                "the gzip data ends before its end marker: the file was cut short (an interrupted upload or "
                "copy?); upload the whole file again"
            ) from exc
        except gzip.BadGzipFile as exc:
            raise Unreadable(
                f"bytes after the end of the gzip data are not gzip ({exc}); compress the file again"
            ) from exc
        except (OSError, zlib.error) as exc:
            raise Unreadable(f"the gzip data is corrupt ({exc}); compress the file again") from exc


def is_gzip(head: bytes) -> bool:
    return head[:2] == _GZIP_MAGIC


_UNDECODABLE = re.compile("[\udc80-\udcff]")


def _has_bad_bytes(row: list[str]) -> bool:
    """True when a cell holds bytes that were not UTF-8 (kept as surrogate escapes by open_text)."""
    # One search over the joined cells: joining cannot create or hide a surrogate, and it is 3x faster.
    return _UNDECODABLE.search("".join(row)) is not None


def _row_text(row: list[str]) -> str:
    """The original record for errors.csv (undecodable bytes shown as U+FFFD): a JSON line as it was written,
    a CSV row re-quoted in Batchline's dialect."""
    text = row.text if isinstance(row, JsonLine) else format_row(row)[:-1]
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


class JsonLine(list[str]):
    """The cells of one JSON-lines record, with the line as it was written (errors.csv shows that)."""

    def __init__(self, cells: list[str], text: str) -> None:
        super().__init__(cells)
        self.text = text


class RejectWriter:
    """Rows Prepare refuses, as CSV with the file, line, key and reason."""

    def __init__(self, handle: io.TextIOBase, source_file: str, *, spreadsheet_safe: bool = True) -> None:
        self._handle = handle
        self._start = handle.tell()
        self._writer = CsvWriter(handle, safe=spreadsheet_safe)
        self._writer.writerow(ERROR_COLUMNS)
        self._source = source_file
        self.count = 0

    def reset(self) -> None:
        """Drop every row written so far, keeping the header (the handle must be seekable: a file, a StringIO)."""
        self._handle.seek(self._start)
        self._handle.truncate()
        self._writer.writerow(ERROR_COLUMNS)
        self.count = 0

    def reject(self, line: int, key: str, reason: str, row: list[str]) -> None:
        safe_key = key.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        self._writer.writerow([self._source, line, safe_key, "prepare", reason, _row_text(row)])
        self.count += 1


class PartWriter:
    """Writes staged records into numbered local part files, handing each finished part to ``on_part``.

    Beside each part goes an index (CSV: source line, key, record ID), so Collect can name the key and
    line of every record without parsing the service's input format.

    The last two finished parts are held back until ``close``: when the very last one is smaller than the
    service's minimum per job (50,050 Bedrock records make parts of 50,000 and 50), the two are merged or
    evened out, so any count of records at or above the minimum can be split into jobs.
    """

    def __init__(
        self,
        directory: str,
        encoder: InputEncoder,
        on_part: Callable[[StagedPart], None],
        *,
        name_prefix: str = "part-",
    ):
        self._directory = directory
        self._name_prefix = name_prefix
        self._suffix = encoder.suffix
        self._max_records = encoder.max_records_per_file
        self._max_bytes = encoder.max_bytes_per_file
        self._min_records = encoder.limits.min_records_per_job
        self._on_part = on_part
        self._index = 0
        self._records = 0
        self._bytes = 0
        self._data: io.BufferedWriter | None = None
        self._index_file: io.BufferedWriter | None = None
        # Bytes of each record in the open part's data and index files, and in each held part's.
        self._sizes: list[tuple[int, int]] = []
        self._held: list[tuple[StagedPart, list[tuple[int, int]]]] = []
        self.parts: list[StagedPart] = []

    def write(self, record: EncodedRecord, key: str, source_line: int) -> None:
        data = record.text.encode("utf-8")
        if self._data is not None and self._bytes + len(data) > self._max_bytes:
            self._finish()
        if self._data is None:
            self._open()
        assert self._data is not None and self._index_file is not None
        index = format_row([str(source_line), key, record.record_id]).encode("utf-8")
        self._data.write(data)
        self._index_file.write(index)
        self._sizes.append((len(data), len(index)))
        self._records += 1
        self._bytes += len(data)
        if self._records >= self._max_records:
            self._finish()

    def close(self) -> None:
        if self._data is not None:
            self._finish()
        if len(self._held) == 2 and self._held[1][0].records < self._min_records:
            self._even_out()
        while self._held:
            self._hand_on()

    def abandon(self) -> None:
        """Close and remove the part being written and the held ones, after a failure (handed ones are the sink's)."""
        if self._data is not None and self._index_file is not None:
            for handle in (self._data, self._index_file):
                handle.close()
                os.remove(handle.name)
            self._data = self._index_file = None
        for part, _ in self._held:
            os.remove(part.path)
            os.remove(part.index_path)
        self._held = []

    def _open(self) -> None:
        self._name = f"{self._name_prefix}{self._index:05d}{self._suffix}"
        # Kept open across write() calls until the part is full; _finish closes both.
        self._data = open(os.path.join(self._directory, self._name), "wb")  # noqa: SIM115
        self._index_file = open(os.path.join(self._directory, self._name + ".index.csv"), "wb")  # noqa: SIM115
        self._records = self._bytes = 0
        self._sizes = []

    def _finish(self) -> None:
        assert self._data is not None and self._index_file is not None
        self._data.close()
        self._index_file.close()
        part = StagedPart(self._name, self._data.name, self._index_file.name, self._records, self._bytes)
        self._data = self._index_file = None
        self._index += 1
        self._held.append((part, self._sizes))
        self._sizes = []
        if len(self._held) > 2:
            self._hand_on()

    def _hand_on(self) -> None:
        part, _ = self._held.pop(0)
        self.parts.append(part)
        self._on_part(part)  # from here on the part is the sink's

    def _even_out(self) -> None:
        """The last part is under the minimum: merge it into the one before, or move records across so both
        hold about half, within the per-file bounds; when neither fits, chunk_parts says why."""
        (first, first_sizes), (last, last_sizes) = self._held
        sizes = first_sizes + last_sizes
        records, total = len(sizes), first.bytes + last.bytes
        if records <= self._max_records and total <= self._max_bytes:
            # Everything into the first part, after its own records.
            for path, last_path in ((first.path, last.path), (first.index_path, last.index_path)):
                with open(path, "ab") as target, open(last_path, "rb") as rest:
                    shutil.copyfileobj(rest, target)
                os.remove(last_path)
            self._held = [(StagedPart(first.name, first.path, first.index_path, records, total), sizes)]
            self._index -= 1
            return
        keep = -(-records // 2)
        kept_bytes = sum(size for size, _ in sizes[:keep])
        if records - keep < self._min_records or max(kept_bytes, total - kept_bytes) > self._max_bytes:
            return
        # The first part's records from ``keep`` on move to the front of the last part.
        data_cut, index_cut = kept_bytes, sum(size for _, size in sizes[:keep])
        for path, cut, last_path in ((first.path, data_cut, last.path), (first.index_path, index_cut, last.index_path)):
            with open(path, "r+b") as source, open(last_path + ".moved", "wb") as moved:
                source.seek(cut)
                shutil.copyfileobj(source, moved)
                source.truncate(cut)
                with open(last_path, "rb") as rest:
                    shutil.copyfileobj(rest, moved)
            os.replace(last_path + ".moved", last_path)
        self._held = [
            (StagedPart(first.name, first.path, first.index_path, keep, kept_bytes), sizes[:keep]),
            (StagedPart(last.name, last.path, last.index_path, records - keep, total - kept_bytes), sizes[keep:]),
        ]


def chunk_parts(parts: list[StagedPart], limits: JobLimits, source_name: str) -> list[list[int]]:
    """Split staged parts into jobs that respect the service's per-job minimum and maxima.

    Parts are small next to a job, so spreading them evenly over the fewest jobs that fit keeps every
    job far above the minimum; an input under the minimum is refused before anything is billed, unless the
    service answers such a job another way (``below_minimum_allowed``).
    """
    total_records = sum(part.records for part in parts)
    if total_records < limits.min_records_per_job and not limits.below_minimum_allowed:
        raise InputRejected(
            f"{source_name}: {total_records} valid records, but this service needs at least "
            f"{limits.min_records_per_job} per job; add records or use a different pipeline"
        )
    total_bytes = sum(part.bytes for part in parts)
    jobs = max(
        1,
        -(-total_records // limits.max_records_per_job),
        -(-total_bytes // limits.max_bytes_per_job),
    )
    target = total_records / jobs  # each job's even share
    groups: list[list[int]] = []
    current: list[int] = []
    filled = filled_bytes = 0
    for index, part in enumerate(parts):
        full = filled >= target
        too_many = filled + part.records > limits.max_records_per_job
        too_big = filled_bytes + part.bytes > limits.max_bytes_per_job
        if current and (full or too_many or too_big):
            groups.append(current)
            current, filled, filled_bytes = [], 0, 0
        current.append(index)
        filled += part.records
        filled_bytes += part.bytes
    if current:
        groups.append(current)
    for group in groups:
        records = sum(parts[i].records for i in group)
        if records < limits.min_records_per_job and not limits.below_minimum_allowed:
            raise InputRejected(
                f"{source_name}: cannot split {total_records} records into jobs of at least "
                f"{limits.min_records_per_job} and at most {limits.max_records_per_job}; "
                "lower recordsPerFile so parts are smaller than a job"
            )
    return groups


def prepare_records(
    open_source: Callable[[], BinaryIO],
    *,
    source_name: str,
    key_column: str,
    encoder: InputEncoder,
    rejects: RejectWriter,
    parts: PartSink,
    workdir: str,
    time_left: Callable[[], float] | None = None,
) -> PrepareResult:
    """Validate and stage one upload (CSV, or JSON lines when the name says so). Pure but for ``workdir``.

    ``time_left`` gives the seconds the function has left (Lambda's remaining time); without it the read is
    not timed.

    ``open_source`` is called once, or twice when a key repeats, and must return the same bytes each time (an
    S3 object version, a file). A repeated key is rejected on each later occurrence naming the first line,
    exactly as if every key were kept in memory. On any failure, ``parts`` and ``rejects`` are emptied first.
    """
    clock = _Clock(time_left) if time_left is not None else None
    read = functools.partial(_stage_pass, open_source, source_name, key_column, encoder, rejects, parts, workdir)
    try:
        with DuplicateKeys(workdir) as keys:
            header, first = read(remember=keys.add, repeats=iter(()), clock=clock)
            if first.input_records == 0:
                raise InputRejected(f"{source_name}: the file has a header but no records")
            repeats = keys.duplicates()
            repeat = next(repeats, None)
            if repeat is None:
                return first
            # The first read staged later occurrences of a key as new ones: start over, knowing the repeats.
            parts.discard()
            rejects.reset()
            _, second = read(
                remember=None, repeats=itertools.chain([repeat], repeats), header_was=header, clock=clock, reads=2
            )
        if second.input_records != first.input_records:
            raise _changed(source_name)
        return second
    except BaseException:
        _discard(parts, rejects)
        raise


def prepare_section(
    open_source: Callable[[], BinaryIO],
    section: FileSection,
    *,
    source_name: str,
    key_column: str,
    encoder: InputEncoder,
    rejects: RejectWriter,
    parts: PartSink,
    workdir: str,
    remember: Callable[[str, int], None] | None,
    repeats: Iterator[tuple[int, int]] | None = None,
    time_left: Callable[[], float] | None = None,
) -> PrepareResult:
    """Validate and stage one section of a large upload: the work of one child of Prepare's fan-out.

    ``open_source`` returns the section's bytes only. Duplicate keys span sections, so they are not looked
    for here: the first read gives ``remember`` every key, the merge step finds the repeats across sections,
    and a section that has some is read again with its ``repeats`` (line, first line) known. On
    InputRejected, ``parts`` and ``rejects`` are emptied first, as for a whole file.
    """
    clock = _Clock(time_left) if time_left is not None else None
    read = functools.partial(_stage_pass, open_source, source_name, key_column, encoder, rejects, parts, workdir)
    try:
        _, result = read(remember=remember, repeats=repeats or iter(()), clock=clock, section=section)
        return result
    except BaseException:
        _discard(parts, rejects)
        raise


def _discard(parts: PartSink, rejects: RejectWriter) -> None:
    """Nothing stays staged after a failed read, whatever failed; the original error is the one reported."""
    try:
        parts.discard()
        rejects.reset()
    except Exception:  # noqa: BLE001 - the read's own error is re-raised by the caller
        logging.getLogger(__name__).exception("could not discard what a failed read staged")


def _changed(source_name: str) -> InputRejected:
    return InputRejected(f"{source_name}: the file changed while it was being read; upload it again")


def _stage_pass(
    open_source: Callable[[], BinaryIO],
    source_name: str,
    key_column: str,
    encoder: InputEncoder,
    rejects: RejectWriter,
    sink: PartSink,
    workdir: str,
    *,
    remember: Callable[[str, int], None] | None,
    repeats: Iterator[tuple[int, int]],
    header_was: list[str] | None = None,
    clock: _Clock | None = None,
    reads: int = 1,
    section: FileSection | None = None,
) -> tuple[list[str], PrepareResult]:
    """One read: each row is rejected (its own problem, a known repeat, the encoder's refusal) or staged.

    The first read gives ``remember`` the key of every row that passes the row checks (staged or refused by the
    encoder: either way a later row with its key is a repeat). A second read gets the ``repeats`` found from
    those keys and the first read's header, and raises when the file no longer matches them.
    """
    with open_source() as source:
        records = _records(source, source_name, section)
        header = next(records)[1]
        if header_was is not None and header != header_was:
            raise _changed(source_name)
        if key_column not in header:
            raise InputRejected(
                f"{source_name}: key column {key_column!r} is not in the header "
                f"(columns: {', '.join(header) or 'none'})"
            )
        key_index = header.index(key_column)
        result = PrepareResult(key_header=key_column, staging=encoder.start(header, key_index))
        parts = PartWriter(workdir, encoder, sink.add, name_prefix=section.part_prefix if section else "part-")
        sequence_base = section.first_line if section else 0
        repeat = next(repeats, None)
        read_started = time.monotonic()
        try:
            for line, row, problem in records:
                result.input_records += 1
                if clock is not None and result.input_records % CHECK_EVERY_RECORDS == 0:
                    clock.stop_if_out_of_time(source_name, line, result.input_records, read_started, reads)
                key, reason = _checked_row(row, problem, header, key_index)
                if reason is None:
                    if remember is not None:
                        remember(key, line)
                    if repeat is not None and repeat[0] == line:
                        reason = f"duplicate key {key!r} (first seen on line {repeat[1]})"
                        repeat = next(repeats, None)
                if reason is None:
                    try:
                        parts.write(encoder.encode(row, sequence_base + result.sent), key, line)
                    except RecordRejected as exc:
                        reason = str(exc)
                if reason is not None:
                    rejects.reject(line, key, reason, row)
                else:
                    result.sent += 1
            if repeat is not None:
                raise _changed(source_name)  # a repeat the file no longer has
            parts.close()
        except BaseException:
            parts.abandon()
            raise
    result.parts = parts.parts
    result.rejected = rejects.count
    return header, result


class _Clock:
    """The function's remaining time, read while the file streams: stop while there is time to clean up."""

    def __init__(self, time_left: Callable[[], float]) -> None:
        self._time_left = time_left
        self._started = time.monotonic()

    def stop_if_out_of_time(self, source_name: str, line: int, records: int, read_started: float, reads: int) -> None:
        seconds_left = self._time_left()
        if seconds_left >= STOP_MARGIN_SECONDS:
            return
        now = time.monotonic()
        read_seconds = max(now - read_started, 1e-3)
        usable = now - self._started + seconds_left - STOP_MARGIN_SECONDS
        # What this read's rate would get through in one function, with a fifth spare; a file that repeats a
        # key is read twice.
        fits = max(1, int(records / read_seconds * usable * 0.8 / reads))
        twice = " (it repeats a key, so it is read twice)" if reads > 1 else ""
        raise InputTooLarge(
            f"{source_name}: line {line}: Prepare stopped after reading {records:,} records in {read_seconds:.0f} s "
            f"with {seconds_left:.0f} s of its time left: the file is too large to prepare in one function{twice}. "
            f"Split it into files of at most about {fits:,} records and upload them one by one"
        )


def _checked_row(row: list[str], problem: str | None, header: list[str], key_index: int) -> tuple[str, str | None]:
    """The row's key and why it is refused (None when it may be staged); the same answer in every read."""
    key = "" if problem or key_index >= len(row) else row[key_index]
    return key, problem or _row_problem(row, header, key)


def _records(source: BinaryIO, source_name: str, section: FileSection | None = None) -> Records:
    json_lines = is_json_lines(source_name)
    # A CR is JSON whitespace, so JSON lines end at LF only; the csv module finds CSV record ends itself.
    text = open_text(source, whole_file=section is None, newline="\n" if json_lines else "")
    records = _jsonl_records(text, source_name, section) if json_lines else _csv_records(text, source_name, section)
    return _readable(records, text, source_name, whole_file=section is None)


def _readable(records: Records, text: io.TextIOWrapper, source_name: str, *, whole_file: bool) -> Records:
    """The records, after a check that the file is UTF-8 text; bytes that cannot be read fail the file by line."""
    line = 0
    try:
        if whole_file:
            _check_encoding(text.buffer.peek(_ENCODING_PROBE_BYTES)[:_ENCODING_PROBE_BYTES], source_name)  # type: ignore[attr-defined]
        for record in records:
            line = record[0]
            yield record
    except Unreadable as exc:
        where = f"reading stopped after line {line}" if line else "reading stopped at the start"
        raise InputRejected(f"{source_name}: {where}: {exc}") from exc


_ENCODING_PROBE_BYTES = 64
_NOT_UTF8 = "the file is not UTF-8 text"


def _check_encoding(head: bytes, source_name: str) -> None:
    """Refuse, by name, the encodings a spreadsheet or an editor commonly saves instead of UTF-8 (UTF-16, with or
    without its byte order mark). A NUL here and there is a character of a record, not a sign of UTF-16."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputRejected(
            f"{source_name}: line 1: {_NOT_UTF8}: it starts with a UTF-16 byte order mark; save it as UTF-8"
        )
    even, odd = head[0::2].count(0), head[1::2].count(0)
    if len(head) >= 8 and max(even, odd) >= len(head) // 4:
        raise InputRejected(
            f"{source_name}: line 1: {_NOT_UTF8}: every other byte is NUL, so it looks like UTF-16 without a byte "
            "order mark; save it as UTF-8"
        )


def read_header(source: BinaryIO, source_name: str) -> list[str]:
    """The header a whole-file read finds (CSV: the first row; JSON lines: the first object's fields)."""
    return next(_records(source, source_name))[1]


# A record source yields (line, header) first, then (line where the record starts, cells, problem or None).
Records = Iterator[tuple[int, list[str], str | None]]


def is_json_lines(source_name: str) -> bool:
    return source_name.lower().removesuffix(".gz").endswith((".jsonl", ".ndjson"))


_SECOND_BOM = (
    "holds a byte order mark (U+FEFF) after the first: the file was saved with two of them, or joined from "
    "files that each had one; save it as UTF-8 with at most one"
)


def _checked_header(header: list[str], source_name: str) -> list[str]:
    if _has_bad_bytes(header):
        raise InputRejected(f"{source_name}: line 1 (header) is not valid UTF-8")
    if any("\ufeff" in name for name in header):
        raise InputRejected(f"{source_name}: line 1 (header) {_SECOND_BOM}")
    header = [name.strip() for name in header]
    if len(set(header)) != len(header):
        duplicated = sorted({name for name in header if header.count(name) > 1})
        raise InputRejected(f"{source_name}: line 1 (header) repeats column names: {', '.join(duplicated)}")
    return header


def _csv_records(text: io.TextIOWrapper, source_name: str, section: FileSection | None = None) -> Records:
    reader = csv.reader(text, strict=True)
    if section is None:
        try:
            header = next(reader)
        except StopIteration:
            raise InputRejected(f"{source_name}: the file is empty (no header row)") from None
        except (csv.Error, UnicodeError) as exc:
            raise InputRejected(f"{source_name}: line 1 (header) cannot be read as CSV: {exc}") from exc
        yield 1, _checked_header(header, source_name), None
        first_line = 1  # line numbers as an editor shows them: the header is line 1
    else:
        yield section.first_line, section.header, None
        first_line = section.first_line
    next_line = first_line + reader.line_num
    while True:
        line = next_line
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if section is not None and not section.last and str(exc) == "unexpected end of data":
                raise InputRejected(_split_inside_field(source_name, line, section)) from exc
            # A malformed quote poisons the rest of the stream: stop and say where.
            raise InputRejected(f"{source_name}: line {line}: cannot be parsed as CSV: {exc}") from exc
        next_line = first_line + reader.line_num
        if row:  # a blank line is not a record
            yield line, row, None


def _split_inside_field(source_name: str, line: int, section: FileSection) -> str:
    return (
        f"{source_name}: line {line}: a quoted field is still open at byte {section.end_byte:,}, where Prepare "
        f"split the file to read its parts in parallel. The split is chosen outside quotes by counting them, so a "
        f"'\"' inside an unquoted field (between lines {section.first_line} and {line}) moved it: quote that field "
        "(RFC 4180), or upload files smaller than the pipeline's prepareShardBytes, which are read whole"
    )


# What json.dumps(value, ensure_ascii=False) does, without building a new encoder for every cell.
_JSON_TEXT = json.JSONEncoder(ensure_ascii=False).encode


def _json_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    kind = type(value)
    if kind is int or (kind is float and math.isfinite(value)):
        return repr(value)  # json writes ints and finite floats as their repr
    return _JSON_TEXT(value)


class _RepeatedField(ValueError):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused when it repeats a field: json.loads would silently keep the last value."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        repeated = next(name for name, _ in pairs if name in seen or seen.add(name))  # type: ignore[func-returns-value]
        raise _RepeatedField(f"the object repeats the field {repeated!r}, so its value is ambiguous")
    return value


_DECODE = json.JSONDecoder(object_pairs_hook=_object).decode


def _jsonl_records(text: io.TextIOWrapper, source_name: str, section: FileSection | None = None) -> Records:
    """JSON lines: the first object's fields are the header; later objects must have the same fields.

    Lines end at LF only (``text`` does not split at CR, which JSON allows as whitespace, nor at U+2028).
    Field names are compared without surrounding spaces, as CSV headers are. A section of the file gets the
    header found in the file's first object.
    """
    header: list[str] | None = None
    fields: set[str] = set()
    if section is not None:
        header, fields = section.header, set(section.header)
        yield 0, header, None
    for line, raw in enumerate(text, start=section.first_line if section else 1):
        if not raw.strip():
            continue
        written = raw[:-1] if raw.endswith("\n") else raw
        written = written[:-1] if written.endswith("\r") else written
        if header is None and raw.startswith("\ufeff"):
            raise InputRejected(f"{source_name}: line {line} (first record) {_SECOND_BOM}")
        as_written = JsonLine([written], written)
        if _UNDECODABLE.search(raw):
            if header is None:
                raise InputRejected(f"{source_name}: line {line} (first record) is not valid UTF-8")
            yield line, as_written, "line contains bytes that are not valid UTF-8"
            continue
        try:
            value = _DECODE(raw)
        except ValueError as exc:
            reason = str(exc) if isinstance(exc, _RepeatedField) else f"not valid JSON: {exc}"
            if header is None:
                raise InputRejected(f"{source_name}: line {line} (first record): {reason}") from exc
            yield line, as_written, reason
            continue
        if not isinstance(value, dict):
            if header is None:
                raise InputRejected(f"{source_name}: line {line} (first record) is not a JSON object")
            yield line, as_written, f"not a JSON object but {type(value).__name__}"
            continue
        if header is None:
            header = _checked_header([str(name) for name in value], source_name)
            fields = set(header)
            yield 0, header, None
        if value.keys() != fields:
            stripped = {name.strip(): cell for name, cell in value.items()}
            if len(stripped) == len(value) and stripped.keys() == fields:
                value = stripped
            else:
                yield line, as_written, _fields_differ(list(value), header)
                continue
        yield line, JsonLine([_json_cell(value[name]) for name in header], written), None
    if header is None:
        raise InputRejected(f"{source_name}: the file is empty (no JSON record)")


def _fields_differ(names: list[str], header: list[str]) -> str:
    stripped = [name.strip() for name in names]
    if len(set(stripped)) != len(stripped):
        return f"field names differ only in surrounding spaces: {sorted(names)}"
    extra, missing = sorted(set(stripped) - set(header)), sorted(set(header) - set(stripped))
    return f"fields differ from the first record (extra: {extra}, missing: {missing})"


def _row_problem(row: list[str], header: list[str], key: str) -> str | None:
    if len(row) != len(header):
        return f"row has {len(row)} fields, the header has {len(header)}"
    if _has_bad_bytes(row):
        return "row contains bytes that are not valid UTF-8"
    if not key.strip():
        return "blank key"
    return None


def temp_workdir() -> tempfile.TemporaryDirectory[str]:
    from batchline.s3io import scratch_dir

    return tempfile.TemporaryDirectory(prefix="batchline-", dir=scratch_dir())
