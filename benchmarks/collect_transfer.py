"""Collect's transfer in Lambda: one GET against parallel ranged GETs, through Batchline's real ``copy_lines``.

In Lambda a CollectUnit's bound is S3's transfer rate, not the engine: one GET streams at about 50-90 MB/s, and
a 256 MiB shard's read takes seconds that the engine's work (``make bench``'s Collect table) does not. Here a
fake S3 serves each GET at a fixed rate per connection after a first-byte latency, with boto3's 10 pooled
connections as the limit, so the figures are the schedule's, not this machine's network: no AWS account is
needed to reproduce them. What the fake leaves out: a Lambda's own network ceiling across connections (several
hundred MB/s per function, more with more memory) and S3's variance between requests.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from benchmarks.report import table

RATE = 80e6  # bytes/s per connection, within the 50-90 MB/s a Lambda sees on one GET
FIRST_BYTE = 0.03  # seconds before a GET's first byte (S3's typical time to first byte)
POOL = 10  # boto3's default max_pool_connections: GETs beyond this wait for a connection


class _Exceptions:
    ClientError = ClientError


class _ThrottledBody:
    """A GetObject body that never delivers faster than RATE since its GET began; close() frees the connection."""

    def __init__(self, data: memoryview, rate: float, release: threading.Semaphore) -> None:
        self._data, self._rate, self._release = data, rate, release
        self._sent = 0
        self._began = time.perf_counter()
        self._open = True

    def read(self, amt: int | None = None) -> bytes:
        if amt is None:
            return b"".join(iter(lambda: self.read(1024 * 1024), b""))
        chunk = bytes(self._data[self._sent : self._sent + amt])
        self._sent += len(chunk)
        due = self._began + self._sent / self._rate
        if (wait := due - time.perf_counter()) > 0:
            time.sleep(wait)
        return chunk

    def close(self) -> None:
        if self._open:
            self._open = False
            self._release.release()


class ThrottledS3:
    """One object's GetObject (``bytes=a-b``, ``bytes=a-``, 416 past the end), each GET at ``rate`` per connection."""

    exceptions = _Exceptions

    def __init__(self, data: bytes, rate: float = RATE, first_byte: float = FIRST_BYTE, pool: int = POOL) -> None:
        self._data = memoryview(data)
        self._rate, self._first_byte = rate, first_byte
        self._connections = threading.Semaphore(pool)
        self.gets = 0

    def get_object(self, *, Bucket: str, Key: str, Range: str = "bytes=0-") -> dict[str, Any]:  # noqa: N803 - boto3's
        first, _, last = Range.removeprefix("bytes=").partition("-")
        if int(first) >= len(self._data):
            raise ClientError({"Error": {"Code": "InvalidRange", "Message": "not satisfiable"}}, "GetObject")
        self._connections.acquire()
        self.gets += 1
        time.sleep(self._first_byte)
        stop = min(int(last) + 1, len(self._data)) if last else len(self._data)
        return {"Body": _ThrottledBody(self._data[int(first) : stop], self._rate, self._connections)}


def make_lines(size: int) -> bytes:
    """About ``size`` bytes of Personalize-shaped lines (~740 bytes each, the 25-item output's length)."""
    line = b'{"input": {"userId": "u%08d"}, "output": {"recommendedItems": [' + b'"item-000000", ' * 24
    line += b'"item-000000"], "scores": [' + b"0.1234567, " * 24 + b'0.1234567]}, "error": null}\n'
    count = size // len(line % 0) + 1
    return b"".join(line % n for n in range(count))


def one_read(data: bytes, parallel_gets: int, segment_bytes: int) -> tuple[float, int]:
    """(seconds, GETs) to copy the lines of the whole object into a local file, as a CollectUnit does."""
    from batchline.layout import S3Location
    from batchline.line_ranges import copy_lines

    s3 = ThrottledS3(data)
    with tempfile.TemporaryDirectory() as folder, (Path(folder) / "shard.jsonl").open("wb") as target:
        start = time.perf_counter()
        written = copy_lines(
            s3,
            S3Location("work", "output/part-00000.jsonl.out"),
            0,
            len(data),
            target,
            segment_bytes=segment_bytes,
            parallel_gets=parallel_gets,
        )
        seconds = time.perf_counter() - start
    assert written == len(data)
    return seconds, s3.gets


def measure(size_mib: int, repeats: int, parallel: tuple[int, ...] = (2, 4, 8)) -> list[dict[str, Any]]:
    """One GET and each parallel setting ``repeats`` times, interleaved so drift hits every setting alike."""
    from batchline.s3io import SEGMENT_BYTES

    data = make_lines(size_mib * 1024 * 1024)[: size_mib * 1024 * 1024]
    settings = [("one GET", 1, SEGMENT_BYTES), *((f"{n} at once", n, SEGMENT_BYTES) for n in parallel)]
    runs: dict[str, list[float]] = {label: [] for label, _, _ in settings}
    gets: dict[str, int] = {}
    for _ in range(repeats):
        for label, parallel_gets, segment_bytes in settings:
            seconds, gets[label] = one_read(data, parallel_gets, segment_bytes)
            runs[label].append(seconds)
    rows = []
    for label, parallel_gets, segment_bytes in settings:
        seconds = runs[label]
        rows.append(
            {
                "setting": label,
                "parallel_gets": parallel_gets,
                "segment_mib": segment_bytes / 2**20,
                "gets": gets[label],
                "median": statistics.median(seconds),
                "min": min(seconds),
                "max": max(seconds),
                "mb_per_second": len(data) / statistics.median(seconds) / 1e6,
            }
        )
    return rows


def make_csv(size: int) -> bytes:
    """About ``size`` bytes of SageMaker-shaped output lines (key, then the model's values)."""
    line = b"cust-%08d,0.12345678,0.87654321,label-a\n"
    count = size // len(line % 0) + 1
    return b"".join(line % n for n in range(count))


def adapter_parse_rate(data: bytes, reader: str) -> float:
    """Bytes/s at which an adapter's own reader (s3io.csv_rows or json_lines) parses an object whose bytes arrive
    at once (no transfer time): if it is below one GET's rate, the parse is the bound and parallel GETs cannot help."""
    from batchline import s3io
    from batchline.layout import S3Location

    s3 = ThrottledS3(data, rate=float("inf"), first_byte=0.0)
    location = S3Location("work", "output/part-00000.out")
    start = time.perf_counter()
    rows = sum(1 for _ in (s3io.csv_rows if reader == "csv" else s3io.json_lines)(s3, location))
    seconds = time.perf_counter() - start
    assert rows > 0
    return len(data) / seconds


def measure_adapters(size_mib: int, repeats: int) -> list[dict[str, Any]]:
    """The parse rate of each whole-object reader, ``repeats`` times, interleaved."""
    inputs = {
        "csv_rows (SageMaker)": ("csv", make_csv(size_mib * 2**20)),
        "json_lines (Bedrock, Personalize whole files)": ("json", make_lines(size_mib * 2**20)),
    }
    rates: dict[str, list[float]] = {label: [] for label in inputs}
    for _ in range(repeats):
        for label, (reader, data) in inputs.items():
            rates[label].append(adapter_parse_rate(data, reader))
    return [
        {"reader": label, "median": statistics.median(r), "min": min(r), "max": max(r)} for label, r in rates.items()
    ]


def report_adapters(rows: list[dict[str, Any]], size_mib: int, repeats: int) -> None:
    table(
        f"Why the other adapters read with one GET: their readers' parse rate on a {size_mib} MiB output, bytes "
        f"arriving at once, against one GET's {RATE / 1e6:.0f} MB/s; median and spread of {repeats} runs",
        ["reader", "parse MB/s (median)", "min-max", "one GET / parse"],
        [
            [
                row["reader"],
                f"{row['median'] / 1e6:.1f}",
                f"{row['min'] / 1e6:.1f}-{row['max'] / 1e6:.1f}",
                f"{RATE / row['median']:.1f}x",
            ]
            for row in rows
        ],
    )


def report(rows: list[dict[str, Any]], size_mib: int, repeats: int) -> None:
    base = rows[0]["median"]
    table(
        f"Collect's read of one {size_mib} MiB shard into /tmp (line_ranges.copy_lines), fake S3 at "
        f"{RATE / 1e6:.0f} MB/s per connection, {FIRST_BYTE * 1000:.0f} ms to first byte, {POOL} connections; "
        f"median and spread of {repeats} interleaved runs",
        ["reads", "segment", "GETs", "median", "min-max", "MB/s (median)", "vs one GET"],
        [
            [
                row["setting"],
                "streamed" if row["parallel_gets"] == 1 else f"{row['segment_mib']:.0f} MiB",
                str(row["gets"]),
                f"{row['median']:.2f} s",
                f"{row['min']:.2f}-{row['max']:.2f} s",
                f"{row['mb_per_second']:.0f}",
                f"{base / row['median']:.1f}x",
            ]
            for row in rows
        ],
    )


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lambdas"))
    size, repeats = 256, 5
    report(measure(size, repeats), size, repeats)
    report_adapters(measure_adapters(64, repeats), 64, repeats)
