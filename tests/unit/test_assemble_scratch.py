"""AssembleOutput's /tmp holds what one job's reconcile needs, never every job's index files at once."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from batchline import collect, keyed
from batchline.adapters.base import Chunk, JobState, JobStatus, RunContext
from batchline.config import parse_pipelines
from batchline.layout import RunLayout
from moto import mock_aws

RUN_ID = "recs-00112233445566778899aabbccddeeff"
PIPELINES = parse_pipelines(
    {
        "recs": {
            "keyColumn": "userId",
            "service": {
                "provider": "personalize",
                "recipe": "USER_PERSONALIZATION",
                "solutionVersionArn": "arn:aws:personalize:eu-west-1:123456789012:solution/movies/1a2b3c",
                "roleArn": "arn:aws:iam::123456789012:role/p",
            },
        }
    }
)
LAYOUT = RunLayout("recs", RUN_ID, "work", "results")
JOBS = 3
PARTS_PER_JOB = 2
RECORDS_PER_PART = 4


class Keyed:
    """The one thing assemble asks of a keyed adapter."""

    def missing_reason(self, run: RunContext, job: JobState) -> str:
        return "no output line for the record in {part}"


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        for bucket in ("work", "results"):
            client.create_bucket(Bucket=bucket)
        yield client


def put(s3: Any, key: str, body: str) -> None:
    s3.put_object(Bucket="work", Key=key, Body=body.encode())


def stage_run(s3: Any) -> list[tuple[RunContext, JobState]]:
    """JOBS keyed jobs, each of PARTS_PER_JOB staged parts; each job's unit saw every key but the last,
    and answered one with an error."""
    runs = []
    line = 1
    for job in range(JOBS):
        input_prefix = LAYOUT.job_input_prefix(job, JOBS)
        keys = []
        for part in range(PARTS_PER_JOB):
            name = f"part-{job:03d}{part:02d}.jsonl"
            put(s3, input_prefix.key + name, "{}\n" * RECORDS_PER_PART)
            rows = []
            for _ in range(RECORDS_PER_PART):
                keys.append(f"user-{line}")
                rows.append(f"{line},user-{line},r{line}\n")
                line += 1
            put(s3, LAYOUT.index_for(name).key, "".join(rows))
        unit = job
        put(s3, LAYOUT.collect_unit(unit, ".csv").key, "".join(f"{k},item\n" for k in keys[1:-1]))
        put(s3, LAYOUT.collect_unit(unit, ".keys.csv").key, "".join(f"{k}\n" for k in keys[:-1]))
        put(s3, LAYOUT.collect_unit(unit, ".failed.csv").key, f"{keys[0]},the service said no\n")
        summary = {
            "unit": unit,
            "job": job,
            "keyed": True,
            "predicted": len(keys) - 2,
            "failed": 0,
            "rows": len(keys) - 2,
            "rowsKey": LAYOUT.collect_unit(unit, ".csv").key,
            "keysKey": LAYOUT.collect_unit(unit, ".keys.csv").key,
            "failedKey": LAYOUT.collect_unit(unit, ".failed.csv").key,
            "bytes": 1,
            "sha256": "0" * 64,
        }
        put(s3, LAYOUT.collect_unit(unit, ".json").key, json.dumps(summary))
        chunk = Chunk(job, input_prefix, LAYOUT.job_output_prefix(job), PARTS_PER_JOB * RECORDS_PER_PART)
        run = RunContext(RUN_ID, PIPELINES.get("recs"), LAYOUT, {"keyHeader": "userId"}, chunk)
        runs.append((run, JobState(f"job-{job}", JobStatus.SUCCEEDED, "COMPLETED")))
    return runs


def files_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def test_assemble_keeps_one_jobs_index_files_at_a_time_and_leaves_nothing(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN three keyed jobs of two staged parts each, and a spy on each job's reconcile and its bucketing
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("BATCHLINE_SCRATCH_DIR", str(scratch))
    runs = stage_run(s3)
    seen: list[tuple[str, list[str]]] = []
    real_reconcile, real_buckets = keyed.reconcile, keyed._write_buckets

    def reconcile(connection: Any, **kwargs: Any) -> Any:
        seen.append(("reconcile", files_under(scratch)))
        return real_reconcile(connection, **kwargs)

    def write_buckets(connection: Any, query: str, buckets: int, folder: str) -> Any:
        seen.append(("buckets", files_under(scratch)))
        return real_buckets(connection, query, buckets, folder)

    monkeypatch.setattr(keyed, "reconcile", reconcile)
    monkeypatch.setattr(keyed, "_write_buckets", write_buckets)

    # WHEN Assemble reconciles them
    result = collect.assemble(s3, Keyed(), runs, JOBS, source_name="upload.csv")  # type: ignore[arg-type]

    # THEN each job's reconcile starts with that job's files only (and the run's failed.csv) ...
    reconciles = [files for step, files in seen if step == "reconcile"]
    assert len(reconciles) == JOBS
    for job, files in enumerate(reconciles):
        folders = {name.split(os.sep)[1] for name in files if name.count(os.sep) > 1}
        assert folders == {f"job-{job:05d}"}, files
        assert sum("index" + os.sep in name for name in files) == PARTS_PER_JOB
    # ... and the index files are gone once bucketed, before the keys seen are (two bucketings per job)
    bucketings = [files for step, files in seen if step == "buckets"]
    assert len(bucketings) == 2 * JOBS
    for files in bucketings[1::2]:
        assert not any(os.sep + "index" + os.sep in name for name in files), files
        assert any(os.sep + "keys" + os.sep in name for name in files), files
    # ... nothing is left behind, and the answer is the same: per job, one service error and one missing record
    assert files_under(scratch) == []
    assert result["counts"]["failed"] == 2 * JOBS
    failed = s3.get_object(Bucket="work", Key=LAYOUT.failed.key)["Body"].read().decode().splitlines()
    assert len(failed) == 1 + 2 * JOBS
    assert [row.split(",")[1] for row in failed[1:]] == [
        str(line) for job in range(JOBS) for line in (job * 8 + 1, job * 8 + 8)
    ]
