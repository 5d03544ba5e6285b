"""Amazon ML adapter: request shapes pinned with botocore's Stubber (moto has no Amazon ML backend)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from batchline.adapters.amazonml import AmazonMLAdapter, batch_schema, normalise_status
from batchline.adapters.base import Chunk, JobStatus, RunContext
from batchline.config import parse_pipelines
from batchline.errors import JobConflict, ServiceUnavailable
from batchline.layout import RunLayout, S3Location
from botocore.stub import Stubber

SCHEMA = {
    "version": "1.0",
    "targetAttributeName": "y",
    "dataFormat": "CSV",
    "dataFileContainsHeader": True,
    "attributes": [
        {"attributeName": "x", "attributeType": "NUMERIC"},
        {"attributeName": "y", "attributeType": "BINARY"},
    ],
}
PIPELINE = parse_pipelines(
    {
        "ml": {
            "keyColumn": "id",
            "service": {
                "provider": "amazonml",
                "mlModelId": "ml-abc",
                "modelType": "BINARY",
                "dataSchema": SCHEMA,
            },
        }
    }
).get("ml")
RUN = RunContext(
    run_id="ml-00112233445566778899aabbccddeeff",
    pipeline=PIPELINE,
    layout=RunLayout("ml", "ml-00112233445566778899aabbccddeeff", "work", "results"),
    staging={"keyHeader": "id", "dataSchema": batch_schema(SCHEMA, "id")},
    chunk=Chunk(0, S3Location("work", "ml/r/input/"), S3Location("work", "ml/r/output/job-00000/"), 2),
)


@pytest.fixture
def stubbed() -> Iterator[tuple[AmazonMLAdapter, Stubber]]:
    client = boto3.client("machinelearning", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield AmazonMLAdapter(PIPELINE.service, "id", client, s3=None), stubber  # type: ignore[arg-type]
        stubber.assert_no_pending_responses()


def data_source_request(adapter: AmazonMLAdapter) -> dict[str, Any]:
    return {
        "DataSourceId": "ds-" + adapter.job_id(RUN)[3:],
        "DataSourceName": f"batchline ml {RUN.run_id}",
        "DataSpec": {
            "DataLocationS3": "s3://work/ml/r/input/",
            "DataSchema": json.dumps(RUN.staging["dataSchema"]),
        },
        "ComputeStatistics": False,
    }


def test_schema_for_batch_names_the_key_as_row_id() -> None:
    schema = batch_schema(SCHEMA, "id")
    assert schema["rowId"] == "id" and schema["dataFileContainsHeader"] is False
    assert [a["attributeName"] for a in schema["attributes"]] == ["x", "y", "id"]


def test_submit_creates_the_data_source_then_the_prediction_once_it_is_ready(stubbed: Any) -> None:
    adapter, stubber = stubbed
    job_id = adapter.job_id(RUN)
    stubber.add_response("create_data_source_from_s3", {"DataSourceId": "ds"}, data_source_request(adapter))
    stubber.add_client_error(
        "get_batch_prediction", "ResourceNotFoundException", "none", 404, {"BatchPredictionId": job_id}
    )
    stubber.add_response("get_data_source", {"Status": "COMPLETED"}, {"DataSourceId": "ds-" + job_id[3:]})
    stubber.add_response(
        "create_batch_prediction",
        {"BatchPredictionId": job_id},
        {
            "BatchPredictionId": job_id,
            "BatchPredictionName": "batchline ml",
            "MLModelId": "ml-abc",
            "BatchPredictionDataSourceId": "ds-" + job_id[3:],
            "OutputUri": "s3://work/ml/r/output/job-00000/",
        },
    )
    stubber.add_response(
        "get_batch_prediction",
        {"Status": "INPROGRESS", "BatchPredictionId": job_id},
        {"BatchPredictionId": job_id},
    )
    state = adapter.submit(RUN)
    assert (state.job_id, state.status) == (job_id, JobStatus.RUNNING)
    assert job_id.startswith("bp-") and len(job_id) <= 64


def test_same_id_with_other_parameters_is_a_clear_conflict(stubbed: Any) -> None:
    adapter, stubber = stubbed
    stubber.add_client_error(
        "create_data_source_from_s3",
        "IdempotentParameterMismatchException",
        "mismatch",
        expected_params=data_source_request(adapter),
    )
    with pytest.raises(JobConflict, match="different parameters"):
        adapter.submit(RUN)


def test_closed_service_403_says_so(stubbed: Any) -> None:
    adapter, stubber = stubbed
    stubber.add_client_error(
        "create_data_source_from_s3",
        "AccessDeniedException",
        "AmazonML is no longer available to new customers. Please consider using Amazon SageMaker.",
        403,
        expected_params=data_source_request(adapter),
    )
    with pytest.raises(ServiceUnavailable, match="no longer available to new customers"):
        adapter.submit(RUN)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("PENDING", JobStatus.PENDING),
        ("INPROGRESS", JobStatus.RUNNING),
        ("COMPLETED", JobStatus.SUCCEEDED),
        ("FAILED", JobStatus.FAILED),
        ("DELETED", JobStatus.STOPPED),
    ],
)
def test_every_status_is_normalised(raw: str, status: JobStatus) -> None:
    assert normalise_status(raw) is status
