"""The Amazon ML emulator queues a batch prediction behind its data source, as the service's dependency
management does (https://docs.aws.amazon.com/machine-learning/latest/dg/dependency-management-of-asynchronous-operations.html):
a caller creates both at once and only ever reads the prediction afterwards."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from batchline_local.emulators.amazonml import AWKWARD_CLASSES, TRAINING_SCHEMA, AmazonMLEmulator
from batchline_local.emulators.base import EmulatedError


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


def run_to_end(emulator: AmazonMLEmulator, s3: Any, model: str) -> dict[str, Any]:
    s3.put_object(Bucket="work", Key="in/part-00000.csv", Body=b"30,basic,20.5,,R1\n61,pro,99.0,,R2\n")
    rid = {"attributeName": "rid", "attributeType": "CATEGORICAL"}
    schema = {
        **TRAINING_SCHEMA,
        "dataFileContainsHeader": False,
        "rowId": "rid",
        "attributes": [*TRAINING_SCHEMA["attributes"], rid],  # type: ignore[list-item]
    }
    emulator.create_data_source_from_s3(
        DataSourceId="ds-1", DataSpec={"DataLocationS3": "s3://work/in/", "DataSchema": json.dumps(schema)}
    )
    emulator.create_batch_prediction(
        BatchPredictionId="bp-1", MLModelId=model, BatchPredictionDataSourceId="ds-1", OutputUri="s3://work/out/"
    )
    looks = [emulator.get_batch_prediction(BatchPredictionId="bp-1") for _ in range(3)]
    return {"looks": looks}


def result_text(s3: Any) -> str:
    manifest = json.loads(s3.get_object(Bucket="work", Key="out/batch-prediction/bp-1.manifest")["Body"].read())
    (result,) = manifest.values()
    key = result.split("/", 3)[3]
    return gzip.decompress(s3.get_object(Bucket="work", Key=key)["Body"].read()).decode()


def test_a_multiclass_header_names_each_class_label_as_csv_quoting_needs(s3: Any) -> None:
    emulator = AmazonMLEmulator(polls_until_done=1)
    run_to_end(emulator, s3, "ml-multiclass-awkward")

    header = next(csv.reader(io.StringIO(result_text(s3))))

    assert header == ["tag", *AWKWARD_CLASSES] == ["tag", "low, or none", 'say "high"', "élevé"]
    assert result_text(s3).splitlines()[0] == 'tag,"low, or none","say ""high""",élevé'


def test_the_guide_s_star_classes_and_a_binary_header_under_the_tag(s3: Any) -> None:
    emulator = AmazonMLEmulator(polls_until_done=1)
    run_to_end(emulator, s3, "ml-multiclass-stars")
    assert result_text(s3).splitlines()[0] == "tag,1_star,2_stars,3_stars,4_stars,5_stars"


def test_figures_appear_as_the_api_reference_says_and_as_botocore_parses_them(s3: Any) -> None:
    emulator = AmazonMLEmulator(polls_until_done=2)
    pending, running, completed = run_to_end(emulator, s3, "ml-binary")["looks"]

    assert isinstance(pending["CreatedAt"], datetime) and pending["CreatedAt"].tzinfo is not None
    assert "StartedAt" not in pending and "ComputeTime" not in pending  # not while PENDING
    assert "StartedAt" in running and "FinishedAt" not in running and "ComputeTime" not in running
    assert completed["Status"] == "COMPLETED"
    assert completed["CreatedAt"] <= completed["StartedAt"] <= completed["FinishedAt"]
    assert isinstance(completed["ComputeTime"], int) and completed["ComputeTime"] > 0
    assert completed["LogUri"].startswith("https://") and "Signature=" in completed["LogUri"]


def test_delete_marks_deleted_and_an_unknown_id_is_not_found(s3: Any) -> None:
    emulator = AmazonMLEmulator(polls_until_done=1)
    run_to_end(emulator, s3, "ml-binary")

    assert emulator.delete_batch_prediction(BatchPredictionId="bp-1") == {"BatchPredictionId": "bp-1"}
    assert emulator.delete_data_source(DataSourceId="ds-1") == {"DataSourceId": "ds-1"}

    assert emulator.get_batch_prediction(BatchPredictionId="bp-1")["Status"] == "DELETED"
    assert emulator.get_data_source(DataSourceId="ds-1")["Status"] == "DELETED"
    with pytest.raises(EmulatedError) as raised:
        emulator.delete_batch_prediction(BatchPredictionId="bp-none")
    assert raised.value.code == "ResourceNotFoundException"
