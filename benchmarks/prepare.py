"""Prepare throughput and peak memory per provider format, at two input sizes (is memory flat?).

Runs the real Prepare step (steps.prepare.prepare_run: one read with the duplicate check on disk, encoding, parts, index
sidecars, rejected.csv, job grouping) over generated local inputs, with a local-file stand-in for S3: reads come
from the generated file and "uploads" are hard links into a temp folder. The keys are unique, so the reads column
must say 1 (only a file that repeats a key is read twice). Each run is its own process, so its peak RSS
(ru_maxrss) is its own; the startup column is RSS after imports, before the input is touched.

    python -m benchmarks.prepare            # 1M and 10M records per format (what `make bench` runs)
    python -m benchmarks.prepare --quick    # 100k and 1M
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.report import peak_mb, table

ROOT = Path(__file__).resolve().parent.parent
MEMORY_TARGET_MB = 256
# "Flat": the larger input's peak is within 10% or 8 MB (allocator noise) of the smaller one's.
FLAT_RATIO, FLAT_SLACK_MB = 1.10, 8.0

_GCP = {
    "project": "batchline-bench",
    "location": "us-central1",
    "model": "1234567890",
    "gcsPrefix": "gs://batchline-bench/staging",
    "federation": {
        "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/aws",
        "serviceAccountEmail": "runner@batchline-bench.iam.gserviceaccount.com",
    },
}
# One pipeline per provider format; all read the same generated columns (id, f1-f4, prompt).
FORMATS: dict[str, tuple[str, dict[str, Any]]] = {
    "sagemaker-csv": ("csv", {"provider": "sagemaker", "modelName": "bench"}),
    "sagemaker-jsonl": ("jsonl", {"provider": "sagemaker", "modelName": "bench"}),
    "personalize": (
        "csv",
        {
            "provider": "personalize",
            "recipe": "USER_PERSONALIZATION",
            "roleArn": "arn:aws:iam::123456789012:role/r",
            "solutionVersionArn": "arn:aws:personalize:us-east-1:123456789012:solution/s/1",
        },
    ),
    "bedrock": (
        "csv",
        {
            "provider": "bedrock",
            "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
            "roleArn": "arn:aws:iam::123456789012:role/r",
            "promptColumn": "prompt",
        },
    ),
    "amazonml": (
        "csv",
        {
            "provider": "amazonml",
            "mlModelId": "ml-bench",
            "modelType": "REGRESSION",
            "dataSchema": {
                "targetAttributeName": "y",
                "attributes": [
                    *({"attributeName": f"f{n}", "attributeType": "NUMERIC"} for n in range(1, 5)),
                    {"attributeName": "y", "attributeType": "NUMERIC"},
                ],
            },
        },
    ),
    "vertex": (
        "csv",
        {
            "provider": "vertex",
            **_GCP,
            "featureColumns": ["f1", "f2", "f3", "f4"],
            "numericColumns": ["f1", "f2", "f3", "f4"],
        },
    ),
}


def make_input(path: Path, records: int, kind: str) -> None:
    """Write ``records`` rows (unique keys, ~80 bytes each) in batches, never holding the file."""
    batch = 20_000
    with path.open("w", encoding="utf-8", newline="") as handle:
        if kind == "csv":
            handle.write("id,f1,f2,f3,f4,prompt\n")
        for start in range(0, records, batch):
            if kind == "csv":
                rows = [
                    f"u{n:010d},{n % 97}.5,{n % 1013},{n % 7},{n % 31}.25,Summarise review {n % 997}: it was fine\n"
                    for n in range(start, min(start + batch, records))
                ]
            else:
                rows = [
                    f'{{"id": "u{n:010d}", "f1": {n % 97}.5, "f2": {n % 1013}, "f3": {n % 7}, '
                    f'"f4": {n % 31}.25, "prompt": "Summarise review {n % 997}: it was fine"}}\n'
                    for n in range(start, min(start + batch, records))
                ]
            handle.write("".join(rows))


class _FileS3:
    """Enough of an S3 client for Prepare: reads stream from the local input, uploads are hard links."""

    def __init__(self, source: Path, uploads: Path) -> None:
        self._source, self._uploads = source, uploads
        self.reads = 0

    def get_object(self, **_: Any) -> dict[str, Any]:
        self.reads += 1
        return {"Body": self._source.open("rb")}

    def _place(self, path: str, bucket: str, key: str) -> None:
        target = self._uploads / bucket / key
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)

    def upload_file(self, path: str, bucket: str, key: str, **_: Any) -> None:
        self._place(path, bucket, key)

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:  # noqa: N803
        """Prepare writes the run's jobs file (state/jobs.json) with PutObject."""
        target = self._uploads / Bucket / Key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(Body)
        return {}

    def copy(self, source: dict[str, str], bucket: str, key: str, **_: Any) -> None:
        self._place(str(self._uploads / source["Bucket"] / source["Key"]), bucket, key)


class _Clients:
    def __init__(self, s3: _FileS3) -> None:
        self.s3 = s3
        self.sagemaker = self.personalize = self.bedrock = self.machinelearning = None

    def google(self, settings: Any) -> Any:
        return None  # Prepare makes no Google call; the Vertex adapter only keeps the session


def measure(name: str, source: Path, records: int) -> dict[str, Any]:
    """One Prepare run in this process (main calls it in a child process)."""
    from batchline.config import Deployment, parse_pipelines
    from batchline.state import RunStart
    from batchline.steps.prepare import prepare_run

    kind, service = FORMATS[name]
    # The whole file in one function: the fan-out over shards is measured by benchmarks/prepare_fanout.py.
    pipelines = parse_pipelines({name: {"keyColumn": "id", "prepareShardBytes": 10 * 1024**3, "service": service}})
    deployment = Deployment("inbox", "work", "results", "bus", "bench")
    startup_mb = peak_mb()
    with tempfile.TemporaryDirectory(prefix="bench-uploads-", dir=source.parent) as uploads:
        event = {
            "runId": "bench",
            "pipeline": name,
            "input": {"bucket": "inbox", "key": f"{name}/{source.name}", "versionId": "v1", "size": 1},
            "startedAt": "2026-01-01T00:00:00Z",
        }
        s3 = _FileS3(source, Path(uploads))
        began = time.perf_counter()
        prepared = prepare_run(
            RunStart.model_validate(event), pipelines=pipelines, deployment=deployment, clients=_Clients(s3)
        ).dump()
        seconds = time.perf_counter() - began
    if prepared["counts"] != {"input": records, "sent": records, "rejected": 0}:
        raise SystemExit(f"{name}: unexpected counts {prepared['counts']}")
    return {
        "reads": s3.reads,
        "seconds": seconds,
        "records_per_second": records / seconds,
        "peak_mb": peak_mb(),
        "startup_mb": startup_mb,
        "parts": prepared["staging"]["parts"],
        "jobs": prepared["jobCount"],
    }


def run_child(name: str, source: Path, records: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.prepare", "--child", name, str(source), str(records)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'lambdas'}", "BATCHLINE_SCRATCH_DIR": str(source.parent)},
    )
    if done.returncode:
        raise SystemExit(f"{name} at {records} records failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _records_label(records: int) -> str:
    return f"{records // 1_000_000}M" if records % 1_000_000 == 0 else f"{records // 1000}k"


def run(sizes: tuple[int, int], names: list[str]) -> list[list[str]]:
    """Table rows: one per format and size, the larger size's row carrying the flatness verdict."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-prepare-", dir="/tmp" if os.path.isdir("/tmp") else None) as folder:
        results: dict[tuple[str, int], dict[str, Any]] = {}
        for records in sizes:
            inputs = {}
            for kind in sorted({FORMATS[name][0] for name in names}):
                inputs[kind] = Path(folder) / f"input-{records}.{kind}"
                make_input(inputs[kind], records, kind)
            for name in names:
                results[name, records] = run_child(name, inputs[FORMATS[name][0]], records)
                print(f"  measured {name} at {records:,} records", file=sys.stderr, flush=True)
            for path in inputs.values():
                path.unlink()
    small, large = sizes
    for name in names:
        low = results[name, small]["peak_mb"]
        for records in sizes:
            r = results[name, records]
            flat = "-"
            if records == large:
                flat = "flat" if r["peak_mb"] <= max(low * FLAT_RATIO, low + FLAT_SLACK_MB) else "GROWS"
            rows.append(
                [
                    name,
                    _records_label(records),
                    str(r["reads"]),
                    f"{r['seconds']:.1f}",
                    f"{r['records_per_second']:,.0f}",
                    f"{r['startup_mb']:.0f}",
                    f"{r['peak_mb']:.0f}",
                    "met" if r["peak_mb"] <= MEMORY_TARGET_MB else "NOT MET",
                    flat,
                ]
            )
    return rows


HEADER = ["provider format", "records", "reads", "seconds", "records/s", "startup MB", "peak MB", "<=256 MB", "flat"]


def title(sizes: tuple[int, int]) -> str:
    return (
        f"Prepare, generated input ({_records_label(sizes[0])} and {_records_label(sizes[1])} records, ~80 bytes "
        f"each, unique keys), one process per run, peak RSS (targets: <= {MEMORY_TARGET_MB} MB; flat: larger "
        f"peak within {FLAT_RATIO - 1:.0%} or {FLAT_SLACK_MB:.0f} MB of the smaller)"
    )


def sizes_for(quick: bool) -> tuple[int, int]:
    return (100_000, 1_000_000) if quick else (1_000_000, 10_000_000)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100k and 1M records instead of 1M and 10M")
    parser.add_argument("--formats", nargs="+", choices=list(FORMATS), default=list(FORMATS))
    parser.add_argument("--child", nargs=3, metavar=("FORMAT", "FILE", "RECORDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.stdout.write(json.dumps(measure(args.child[0], Path(args.child[1]), int(args.child[2]))) + "\n")
    else:
        chosen = sizes_for(args.quick)
        table(title(chosen), HEADER, run(chosen, args.formats))
