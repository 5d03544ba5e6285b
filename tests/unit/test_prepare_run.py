"""Prepare's staged input in S3 (moto): a clean upload is read once, and no discarded part stays under input/.

SageMaker reads every object under the run's input prefix, so a part left there by a discarded read would be
sent to the model a second time.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from batchline.config import Deployment, parse_pipelines
from batchline.errors import InputRejected, ServiceRequestFailed
from batchline.s3io import delete_objects
from batchline.state import RunStart
from batchline.steps.prepare import prepare_run
from botocore.stub import Stubber

PIPELINES = parse_pipelines(
    {"p": {"keyColumn": "id", "service": {"provider": "sagemaker", "modelName": "m", "recordsPerFile": 2}}}
)
DEPLOYMENT = Deployment("inbox", "work", "results", "bus", "test")


class Clients:
    """What Prepare uses of AwsClients: S3 (moto), with the reads of the upload counted."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3
        self.reads = 0
        self.sagemaker = None

    @property
    def s3(self) -> Any:
        return self

    def get_object(self, **kwargs: Any) -> Any:
        self.reads += kwargs["Bucket"] == "inbox"
        return self._s3.get_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)


@pytest.fixture
def s3(versioned_buckets: Any) -> Any:
    return versioned_buckets


def prepare(s3: Any, body: bytes) -> tuple[dict[str, Any], Clients]:
    version = s3.put_object(Bucket="inbox", Key="p/upload.csv", Body=body)["VersionId"]
    event = {
        "runId": "r1",
        "pipeline": "p",
        "input": {"bucket": "inbox", "key": "p/upload.csv", "versionId": version, "size": len(body)},
        "startedAt": "2026-01-01T00:00:00Z",
    }
    clients = Clients(s3)
    facts = prepare_run(RunStart.model_validate(event), pipelines=PIPELINES, deployment=DEPLOYMENT, clients=clients)  # type: ignore[arg-type]
    return facts.dump(), clients


def work_objects(s3: Any) -> dict[str, bytes]:
    """What Prepare staged (the run's jobs file aside: it names the parts by prefix)."""
    listed = s3.list_objects_v2(Bucket="work", Prefix="p/r1/").get("Contents", [])
    return {
        item["Key"].removeprefix("p/r1/"): s3.get_object(Bucket="work", Key=item["Key"])["Body"].read()
        for item in listed
        if not item["Key"].endswith("/state/jobs.json")
    }


def test_a_clean_upload_is_read_once_and_staged(s3: Any) -> None:
    prepared, clients = prepare(s3, b"id,x\nk1,1\nk2,2\nk3,3\n")
    assert clients.reads == 1
    assert prepared["counts"] == {"input": 3, "sent": 3, "rejected": 0}
    # The state names the jobs file instead of carrying the jobs: it stays small at any number of jobs.
    assert prepared["jobCount"] == 1 and "chunks" not in prepared
    jobs = s3.get_object(Bucket="work", Key=prepared["jobsFile"]["key"])["Body"].read()
    assert json.loads(jobs) == [
        {
            "index": 0,
            "inputPrefix": "s3://work/p/r1/input/",
            "outputPrefix": "s3://work/p/r1/output/job-00000/",
            "records": 3,
        }
    ]
    assert work_objects(s3) == {
        "input/part-00000.csv": b"k1,1\nk2,2\n",
        "input/part-00001.csv": b"k3,3\n",
        "index/part-00000.csv.index.csv": b"2,k1,k1\n3,k2,k2\n",
        "index/part-00001.csv.index.csv": b"4,k3,k3\n",
    }


def test_a_repeated_key_leaves_only_the_second_reads_parts_under_the_input_prefix(s3: Any) -> None:
    # GIVEN seven records, three of them repeats: the first read stages four parts of two, the second only two
    prepared, clients = prepare(s3, b"id,x\nk1,1\nk2,2\nk1,3\nk3,4\nk2,5\nk4,6\nk3,7\n")

    assert clients.reads == 2
    assert prepared["counts"] == {"input": 7, "sent": 4, "rejected": 3}
    assert prepared["staging"]["parts"] == 2
    assert work_objects(s3) == {
        "input/part-00000.csv": b"k1,1\nk2,2\n",
        "input/part-00001.csv": b"k3,4\nk4,6\n",
        "index/part-00000.csv.index.csv": b"2,k1,k1\n3,k2,k2\n",
        "index/part-00001.csv.index.csv": b"5,k3,k3\n7,k4,k4\n",
        "rejected.csv": (
            b"source_file,line,key,stage,reason,record\n"
            b"s3://inbox/p/upload.csv,4,k1,prepare,duplicate key 'k1' (first seen on line 2),\"k1,3\"\n"
            b"s3://inbox/p/upload.csv,6,k2,prepare,duplicate key 'k2' (first seen on line 3),\"k2,5\"\n"
            b"s3://inbox/p/upload.csv,8,k3,prepare,duplicate key 'k3' (first seen on line 5),\"k3,7\"\n"
        ),
    }


def test_a_file_that_breaks_after_parts_were_uploaded_leaves_nothing_staged(s3: Any) -> None:
    rows = b"".join(b"k%d,%d\n" % (n, n) for n in range(9))
    with pytest.raises(InputRejected, match="line 11: cannot be parsed as CSV"):
        prepare(s3, b"id,x\n" + rows + b'k,"open\n')
    assert work_objects(s3) == {}


def test_deletes_go_in_batches_of_a_thousand_and_a_refused_key_fails_loudly() -> None:
    # DeleteObjects answers 200 even when it refuses keys; the refusals are only in the body.
    client = boto3.client("s3", region_name="us-east-1")
    keys = [f"p/r1/input/part-{n:05d}.csv" for n in range(1001)]
    refused = {"Key": keys[1000], "Code": "AccessDenied", "Message": "Access Denied"}
    with Stubber(client) as stub:
        for batch, answer in ((keys[:1000], {}), (keys[1000:], {"Errors": [refused]})):
            expected = {"Bucket": "work", "Delete": {"Objects": [{"Key": key} for key in batch], "Quiet": True}}
            stub.add_response("delete_objects", answer, expected)
        with pytest.raises(ServiceRequestFailed, match="part-01000.csv: AccessDenied"):
            delete_objects(client, "work", keys)
        stub.assert_no_pending_responses()
