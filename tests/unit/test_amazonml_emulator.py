"""The Amazon ML emulator queues a batch prediction behind its data source, as the service's dependency
management does (https://docs.aws.amazon.com/machine-learning/latest/dg/dependency-management-of-asynchronous-operations.html):
a caller creates both at once and only ever reads the prediction afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from batchline_local.emulators.amazonml import TRAINING_SCHEMA, AmazonMLEmulator


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="work")
        yield client


def create_both(emulator: AmazonMLEmulator, location: str) -> None:
    emulator.create_data_source_from_s3(
        DataSourceId="ds-1",
        DataSpec={"DataLocationS3": location, "DataSchema": json.dumps(TRAINING_SCHEMA)},
    )
    emulator.create_batch_prediction(
        BatchPredictionId="bp-1", MLModelId="ml-binary", BatchPredictionDataSourceId="ds-1", OutputUri="s3://work/out/"
    )


def statuses(emulator: AmazonMLEmulator, looks: int) -> list[str]:
    return [emulator.get_batch_prediction(BatchPredictionId="bp-1")["Status"] for _ in range(looks)]


def test_a_prediction_waits_for_its_data_source_and_then_runs(s3: Any) -> None:
    s3.put_object(Bucket="work", Key="in/part-00000.csv", Body=b"30,basic,20.5,\n")
    emulator = AmazonMLEmulator(polls_until_done=2)
    create_both(emulator, "s3://work/in/")

    seen = statuses(emulator, 4)

    assert seen == ["PENDING", "INPROGRESS", "COMPLETED", "COMPLETED"]  # queued until the data source is ready
    assert emulator.data_sources["ds-1"]["Status"] == "COMPLETED"
    assert emulator.create_calls == 2


def test_a_data_source_that_fails_fails_its_prediction_naming_it(s3: Any) -> None:
    emulator = AmazonMLEmulator(polls_until_done=1)
    create_both(emulator, "s3://work/nothing-here/")

    described = emulator.get_batch_prediction(BatchPredictionId="bp-1")

    assert described["Status"] == "FAILED"
    assert "ds-1" in described["Message"] and "s3://work/nothing-here/" in described["Message"]
