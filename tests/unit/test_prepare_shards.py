"""Prepare's fan-out steps on S3 (moto): which uploads are cut, what each shard leaves, what the merge raises."""

from __future__ import annotations

import gzip
from typing import Any

import pytest
from batchline.config import Deployment, parse_pipelines
from batchline.errors import InputRejected, InputTooLarge
from batchline.state import PreparingRun, RunStart
from batchline.steps.prepare import merge_prepared_shards, prepare_one_shard, prepare_run

from tests.unit.test_prepare_run import Clients, work_objects

PIPELINES = parse_pipelines(
    {
        "p": {
            "keyColumn": "id",
            "prepareShardBytes": 1024,
            "service": {"provider": "sagemaker", "modelName": "m", "recordsPerFile": 30},
        }
    }
)
DEPLOYMENT = Deployment("inbox", "work", "results", "bus", "test")
ROWS = b"".join(b"k%04d,%d\n" % (n, n) for n in range(300))  # 8-9 bytes each: about four shards


@pytest.fixture
def s3(versioned_buckets: Any) -> Any:
    return versioned_buckets


def plan(s3: Any, body: bytes, name: str = "upload.csv") -> tuple[dict[str, Any], Clients]:
    version = s3.put_object(Bucket="inbox", Key=f"p/{name}", Body=body)["VersionId"]
    event = {
        "runId": "r1",
        "pipeline": "p",
        "input": {"bucket": "inbox", "key": f"p/{name}", "versionId": version, "size": len(body)},
        "startedAt": "2026-01-01T00:00:00Z",
    }
    clients = Clients(s3)
    facts = prepare_run(RunStart.model_validate(event), pipelines=PIPELINES, deployment=DEPLOYMENT, clients=clients)  # type: ignore[arg-type]
    return facts.dump(), clients


def shard_items(s3: Any, run: dict[str, Any]) -> list[dict[str, Any]]:
    import json

    location = run["fanOut"]["plan"]
    items: list[dict[str, Any]] = json.loads(
        s3.get_object(Bucket=location["bucket"], Key=location["key"])["Body"].read()
    )
    return items


def run_shards(s3: Any, run: dict[str, Any], items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    common: dict[str, Any] = {"pipelines": PIPELINES, "deployment": DEPLOYMENT, "clients": Clients(s3)}
    return [prepare_one_shard(PreparingRun.model_validate(run), item, **common) for item in items]


def merge(s3: Any, run: dict[str, Any]) -> dict[str, Any]:
    merged = merge_prepared_shards(
        PreparingRun.model_validate(run),
        pipelines=PIPELINES,
        deployment=DEPLOYMENT,
        clients=Clients(s3),  # type: ignore[arg-type]
    )
    return merged.dump()


def test_an_upload_over_the_shard_size_is_only_planned_by_prepare_input(s3: Any) -> None:
    run, clients = plan(s3, b"id,x\n" + ROWS)
    assert set(run) == {"runId", "pipeline", "provider", "input", "startedAt", "fanOut"}
    assert run["fanOut"]["shards"] == len(shard_items(s3, run)) >= 2 and run["fanOut"]["round"] == 1
    assert {key.split("/")[0] for key in work_objects(s3)} == {"prepare"}  # nothing staged yet
    # The header's bytes, each segment of prepareShardBytes once, and a short read for a cut in all but the first.
    segments = -(-(len(ROWS)) // 1024)
    assert clients.reads == 1 + segments + (segments - 1)


@pytest.mark.parametrize(
    ("body", "name", "records"),
    [
        (b"id,x\n" + ROWS[:900], "upload.csv", 101),  # not over prepareShardBytes
        (gzip.compress(b"id,x\n" + ROWS * 20), "upload.csv.gz", 6000),  # a gzip stream cannot be entered midway
        (b'id,x"y\n' + ROWS, "upload.csv", 300),  # a bare quote in the header: counting cannot find its end
    ],
)
def test_uploads_that_cannot_or_need_not_be_cut_are_read_whole(s3: Any, body: bytes, name: str, records: int) -> None:
    run, clients = plan(s3, body, name)
    assert "fanOut" not in run and run["counts"]["input"] == records


def test_the_earliest_broken_shard_fails_the_merge_by_name_and_nothing_stays_staged(s3: Any) -> None:
    rows = ROWS.replace(b"k0250,250\n", b'k0250,"2"5\n').replace(b"k0100,100\n", b'k0100,"1"0\n')
    run, _ = plan(s3, b"id,x\n" + rows)
    summaries = run_shards(s3, run, shard_items(s3, run))
    assert [bool(summary["error"]) for summary in summaries].count(True) == 2
    assert any(key.startswith("input/") for key in work_objects(s3))  # the good shards staged theirs
    with pytest.raises(InputRejected, match=r"upload.csv: line 102: cannot be parsed as CSV"):
        merge(s3, run)
    assert not [key for key in work_objects(s3) if key.startswith(("input/", "index/"))]


def test_a_shard_out_of_time_fails_the_run_as_input_too_large(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import batchline.prepare as prepare

    monkeypatch.setattr(prepare, "CHECK_EVERY_RECORDS", 10)
    run, _ = plan(s3, b"id,x\n" + ROWS)
    items = shard_items(s3, run)
    common: dict[str, Any] = {"pipelines": PIPELINES, "deployment": DEPLOYMENT, "clients": Clients(s3)}
    prepare_one_shard(PreparingRun.model_validate(run), items[0], **common, time_left=lambda: 5.0)
    run_shards(s3, run, items[1:])
    with pytest.raises(InputTooLarge, match="too large to prepare in one function"):
        merge(s3, run)


def test_repeats_across_shards_send_only_their_shards_round_again_then_merge(s3: Any) -> None:
    rows = ROWS.replace(b"k0290,290\n", b"k0003,290\n")
    run, _ = plan(s3, b"id,x\n" + rows)
    items = shard_items(s3, run)
    run_shards(s3, run, items)
    again = merge(s3, run)
    assert again["fanOut"]["round"] == 2 and again["fanOut"]["redo"] == 1
    redo = shard_items(s3, again)
    assert [item["index"] for item in redo] == [len(items) - 1] and redo[0]["expectInput"] > 0
    run_shards(s3, again, redo)
    prepared = merge(s3, again)
    assert prepared["counts"] == {"input": 300, "sent": 299, "rejected": 1}
    rejected = work_objects(s3)["rejected.csv"].decode().splitlines()
    assert rejected[1].startswith(
        "s3://inbox/p/upload.csv,292,k0003,prepare,duplicate key 'k0003' (first seen on line 5)"
    )
    staged = sorted(key for key in work_objects(s3) if key.startswith("input/"))
    assert len(staged) == prepared["staging"]["parts"] and staged[0] == "input/part-00000-00000.csv"


def test_json_lines_with_a_byte_order_mark_are_cut_and_read_as_a_whole_read_reads_them(s3: Any) -> None:
    body = "\ufeff".encode() + b"".join(b'{"id": "k%04d", "x": %d}\n' % (n, n) for n in range(100))
    run, _ = plan(s3, body, "upload.jsonl")
    assert run["fanOut"]["shards"] >= 2
    run_shards(s3, run, shard_items(s3, run))
    assert merge(s3, run)["counts"] == {"input": 100, "sent": 100, "rejected": 0}
