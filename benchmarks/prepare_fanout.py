"""Prepare's fan-out, measured step by step: the plan's scan, each shard, the merge; then what 100M records cost.

Runs the real steps (steps.prepare: prepare_run planning the cuts, prepare_one_shard per shard, merge_prepared_shards)
on a generated Amazon ML input with a local-folder stand-in for S3 that honours ranged GETs. Each step runs in its
own process, so each peak RSS is one function's. One key in 50,000 is repeated in a later shard, so the merge
finds repeats across shards and the shards holding them are read a second time, as in a real run.

    python -m benchmarks.prepare_fanout                 # 10M records, 8 shards (what `make bench` runs)
    python -m benchmarks.prepare_fanout --records 1000000
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.prepare import FORMATS, ROOT, _FileS3, make_input
from benchmarks.report import peak_mb, table

FORMAT = "amazonml"
MEMORY_TARGET_MB = 256
LAMBDA_SECONDS = 900
REPEAT_EVERY = 50_000


class _RangedBody(io.RawIOBase):
    def __init__(self, path: Path, start: int, end: int | None) -> None:
        self._handle = path.open("rb")
        self._handle.seek(start)
        self._left = (end - start) if end is not None else None

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._left is not None:
            size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._handle.read(size)
        if self._left is not None:
            self._left -= len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._handle.close()
        super().close()


class _FolderS3(_FileS3):
    """The upload in ``inbox``; every other bucket is a folder. Ranged GETs, puts and deletes work."""

    def _path(self, bucket: str, key: str) -> Path:
        return self._source if bucket == "inbox" else self._uploads / bucket / key

    def get_object(self, **request: Any) -> dict[str, Any]:
        path = self._path(request["Bucket"], request["Key"])
        if path == self._source:
            self.reads += 1
        start, end = 0, None
        if "Range" in request:
            first, last = request["Range"].removeprefix("bytes=").split("-")
            start, end = int(first), (int(last) + 1 if last else None)
        return {"Body": _RangedBody(path, start, end)}

    def put_object(self, **request: Any) -> dict[str, Any]:
        path = self._path(request["Bucket"], request["Key"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(request["Body"])
        return {}

    def delete_objects(self, **request: Any) -> dict[str, Any]:
        for item in request["Delete"]["Objects"]:
            self._path(request["Bucket"], item["Key"]).unlink(missing_ok=True)
        return {}


def _with_repeats(path: Path, records: int) -> int:
    """Give one row in REPEAT_EVERY of the second half the key of a row half a file earlier (keys are u<n>).

    Rewritten line by line: the benchmark's own memory stays small, and a child inherits its parent's peak RSS.
    """
    half = records // 2
    repeated = set(range(half, records, REPEAT_EVERY))
    target = path.with_suffix(".tmp")
    with path.open("rb") as source, target.open("wb") as out:
        out.write(source.readline())  # the header
        for row, line in enumerate(source):
            if row in repeated:
                line = b"u%010d," % (row - half) + line.split(b",", 1)[1]
            out.write(line)
    target.replace(path)
    return len(repeated)


def step(name: str, folder: Path, source: Path, shard_bytes: int, argument: str) -> dict[str, Any]:
    """One step in this process; the run's state travels in ``folder/state.json`` between processes."""
    from batchline.config import Deployment, parse_pipelines
    from batchline.state import PreparingRun, RunStart
    from batchline.steps.prepare import merge_prepared_shards, prepare_one_shard, prepare_run

    from benchmarks.prepare import _Clients

    _, service = FORMATS[FORMAT]
    pipelines = parse_pipelines({FORMAT: {"keyColumn": "id", "prepareShardBytes": shard_bytes, "service": service}})
    deployment = Deployment("inbox", "work", "results", "bus", "bench")
    s3 = _FolderS3(source, folder / "s3")
    clients = _Clients(s3)
    state_path = folder / "state.json"
    startup = peak_mb()
    began = time.perf_counter()
    if name == "single":
        pipelines = parse_pipelines(
            {FORMAT: {"keyColumn": "id", "prepareShardBytes": 10 * 1024**3, "service": service}}
        )
    if name in ("plan", "single"):
        event = {
            "runId": "bench",
            "pipeline": FORMAT,
            "input": {
                "bucket": "inbox",
                "key": f"{FORMAT}/{source.name}",
                "versionId": "v1",
                "size": source.stat().st_size,
            },
            "startedAt": "2026-01-01T00:00:00Z",
        }
        result = prepare_run(
            RunStart.model_validate(event), pipelines=pipelines, deployment=deployment, clients=clients
        ).dump()
        if name == "plan":
            state_path.write_text(json.dumps(result))
        else:
            result = {"counts": result["counts"], "reads": s3.reads}
    elif name == "shard":
        run = json.loads(state_path.read_text())
        item = json.loads(argument)
        result = prepare_one_shard(
            PreparingRun.model_validate(run), item, pipelines=pipelines, deployment=deployment, clients=clients
        )
    else:
        run = json.loads(state_path.read_text())
        result = merge_prepared_shards(
            PreparingRun.model_validate(run), pipelines=pipelines, deployment=deployment, clients=clients
        ).dump()
        state_path.write_text(json.dumps(result))
    return {"seconds": time.perf_counter() - began, "peak_mb": peak_mb(), "startup_mb": startup, "result": result}


def _child(name: str, folder: Path, source: Path, shard_bytes: int, argument: str = "") -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.prepare_fanout",
            "--child",
            name,
            str(folder),
            str(source),
            str(shard_bytes),
            argument,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'lambdas'}", "BATCHLINE_SCRATCH_DIR": str(folder)},
    )
    if done.returncode:
        raise SystemExit(f"prepare fan-out step {name} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure(records: int, shards: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-fanout-", dir="/tmp" if os.path.isdir("/tmp") else None) as tmp:
        folder = Path(tmp)
        source = folder / "input.csv"
        make_input(source, records, "csv")
        repeats = _with_repeats(source, records)
        size = source.stat().st_size
        shard_bytes = -(-size // shards)
        plan = _child("plan", folder, source, shard_bytes)
        fan_out = plan["result"]["fanOut"]
        items = json.loads((folder / "s3" / "work" / FORMAT / "bench" / "prepare" / "shards.json").read_text())
        first = [_child("shard", folder, source, shard_bytes, json.dumps(item)) for item in items]
        merge = _child("merge", folder, source, shard_bytes)
        again: list[dict[str, Any]] = []
        if "fanOut" in merge["result"]:
            redo = json.loads((folder / "s3" / "work" / FORMAT / "bench" / "prepare" / "redo.json").read_text())
            again = [_child("shard", folder, source, shard_bytes, json.dumps(item)) for item in redo]
            final = _child("merge", folder, source, shard_bytes)
        else:
            final = merge
        expected = {"input": records, "sent": records - repeats, "rejected": repeats}
        if final["result"]["counts"] != expected:
            raise SystemExit(f"fan-out counts {final['result']['counts']}, expected {expected}")
        single = _child("single", folder, source, shard_bytes)
        if single["result"]["counts"] != expected:
            raise SystemExit(f"whole-file counts {single['result']['counts']}, expected {expected}")
    return {
        "records": records,
        "bytes": size,
        "shards": fan_out["shards"],
        "repeats": repeats,
        "plan": plan,
        "first": first,
        "merge": merge,
        "again": again,
        "final": final,
        "single": single,
    }


def report(m: dict[str, Any]) -> None:
    records, size = m["records"], m["bytes"]
    shard_seconds = [s["seconds"] for s in m["first"]]
    shard_records = records / m["shards"]
    shard_rate = shard_records / (sum(shard_seconds) / len(shard_seconds))
    scan_rate = size / m["plan"]["seconds"]
    merge_seconds = m["merge"]["seconds"]
    merge_rate = records / merge_seconds
    finished = m["final"]["seconds"] if m["again"] else 0.0
    again = max((s["seconds"] for s in m["again"]), default=0.0)
    # With every shard running at once (the Map's concurrency), the wall time is the slowest child of each round.
    fanned_wall = m["plan"]["seconds"] + max(shard_seconds) + merge_seconds + again + finished
    single = m["single"]
    single_rate = records / single["seconds"]
    peaks = {
        "one function": single["peak_mb"],
        "plan": m["plan"]["peak_mb"],
        "shard (largest)": max(s["peak_mb"] for s in m["first"] + m["again"]),
        "merge (duplicates across shards)": m["merge"]["peak_mb"],
        "merge (parts into jobs)": m["final"]["peak_mb"],
    }
    rows = [
        ["input", f"{records:,} records, {size / 1e6:,.0f} MB, {m['repeats']} keys repeated far apart"],
        [
            "one function, whole file (read twice: it repeats keys)",
            f"{single['seconds']:.1f} s, {single_rate:,.0f} records/s, {single['result']['reads']} reads",
        ],
        ["plan: header + cut scan (in PrepareInput)", f"{m['plan']['seconds']:.1f} s, {scan_rate / 1e6:,.0f} MB/s"],
        [
            "shards (Map children), each",
            f"{m['shards']} x {shard_records:,.0f} records: {min(shard_seconds):.1f}-{max(shard_seconds):.1f} s, "
            f"{shard_rate:,.0f} records/s",
        ],
        ["merge: keys across shards", f"{merge_seconds:.1f} s, {merge_rate:,.0f} keys/s"],
        ["second read of the shards holding a repeat", f"{len(m['again'])} shards, slowest {again:.1f} s"],
        ["final merge: rejected rows, parts into jobs", f"{finished:.1f} s"],
        [
            "fan-out wall time with every shard at once",
            f"{fanned_wall:.1f} s: {single['seconds'] / fanned_wall:.1f}x faster than one function",
        ],
    ]
    rows += [
        [
            f"peak RSS, {name}",
            f"{peak:.0f} MB ({'met' if peak <= MEMORY_TARGET_MB else 'NOT MET'}: <= {MEMORY_TARGET_MB} MB)",
        ]
        for name, peak in peaks.items()
    ]
    # 100 million Amazon ML records (the service's maximum per batch prediction) at these measured rates.
    big = 100_000_000
    big_bytes = big * size / records
    default_shard = 512 * 1024**2
    big_shards = -(-int(big_bytes) // default_shard)
    waves = -(-big_shards // 20)
    per_shard = big / big_shards / shard_rate
    fanned = big_bytes / scan_rate + waves * per_shard + big / merge_rate
    rows += [
        [
            "100M records: shards of 512 MiB (default), 20 at once",
            f"{big_shards} shards, {waves} wave(s) of {per_shard:.0f} s",
        ],
        [
            "100M records: plan + shards + merge at the rates above",
            f"{fanned / 60:.1f} min, plus S3's transfer for the plan's scan ({big_bytes / 1e9:.1f} GB, 8 GETs at once)",
        ],
        [
            "100M records in one function at its rate above",
            f"{big / single_rate / 60:.1f} min ({'fits' if big / single_rate < LAMBDA_SECONDS else 'does not fit'} "
            f"in {LAMBDA_SECONDS / 60:.0f})",
        ],
    ]
    table(f"Prepare fan-out, {FORMAT} input, each step in its own process", ["step", "measured"], rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, folder, source, shard_bytes, *rest = args.child
        outcome = step(name, Path(folder), Path(source), int(shard_bytes), rest[0] if rest else "")
        outcome.pop("result") if name == "shard" else None
        sys.stdout.write(json.dumps(outcome) + "\n")
    else:
        report(measure(args.records, args.shards))
