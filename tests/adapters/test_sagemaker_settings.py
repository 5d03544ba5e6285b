"""SageMaker settings users reach for: the containers' environment, KMS keys for output and volumes, their own tags.

Each is validated at synth as CreateTransformJob validates it, sent by the adapter, and refused by the emulator
where the service refuses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from batchline.adapters.sagemaker import SageMakerAdapter
from batchline.config import parse_pipelines
from batchline.errors import ConfigError
from botocore.exceptions import ClientError
from moto import mock_aws

from batchline_local.emulators.sagemaker import SageMakerEmulator
from tests.adapters.test_sagemaker_adapter import RUN

KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def settings(**service: Any) -> Any:
    body = {"provider": "sagemaker", "modelName": "churn-model", "predictionColumns": ["p"], **service}
    return parse_pipelines({"churn": {"keyColumn": "id", "service": body}}).get("churn")


@pytest.mark.parametrize(
    ("service", "message"),
    [
        ({"environment": {f"V{i}": "x" for i in range(17)}}, "at most 16 environment variables"),
        ({"environment": {"1ST": "x"}}, "letters, digits and _, not starting with a digit"),
        ({"environment": {"MODEL-MODE": "x"}}, "letters, digits and _"),
        ({"environment": {"BIG": "x" * 10_241}}, "at most 10240 characters"),
        ({"outputKmsKeyId": "my key"}, "outputKmsKeyId"),
        ({"volumeKmsKeyId": "key/" + "a" * 2050}, "volumeKmsKeyId"),
        ({"tags": {"aws:team": "x"}}, "aws: prefix is reserved"),
        ({"tags": {"batchline:run-id": "x"}}, "batchline: prefix is Batchline's own"),
        ({"tags": {f"t{i}": "x" for i in range(49)}}, "at most 48 tags"),
    ],
)
def test_settings_the_api_refuses_are_refused_at_synth_by_name(service: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(**service)


def test_the_request_carries_the_environment_the_keys_and_the_users_tags_beside_ours() -> None:
    pipeline = settings(
        environment={"MODEL_MODE": "batch", "_DEBUG": ""},
        outputKmsKeyId=KEY_ARN,
        volumeKmsKeyId="alias/transform-volumes",
        tags={"team": "churn", "cost-centre": "42"},
    )
    run = RUN.__class__(**{**RUN.__dict__, "pipeline": pipeline})
    request = SageMakerAdapter(pipeline.service, sagemaker=None, s3=None).create_request(run)  # type: ignore[arg-type]

    assert request["Environment"] == {"MODEL_MODE": "batch", "_DEBUG": ""}
    assert request["TransformOutput"]["KmsKeyId"] == KEY_ARN
    assert request["TransformResources"]["VolumeKmsKeyId"] == "alias/transform-volumes"
    tags = [(tag["Key"], tag["Value"]) for tag in request["Tags"]]
    assert tags[:2] == [("team", "churn"), ("cost-centre", "42")]
    assert {key for key, _ in tags[2:]} == {"batchline:run-id", "batchline:pipeline"}


def test_without_them_the_request_has_no_environment_and_no_keys() -> None:
    pipeline = settings()
    run = RUN.__class__(**{**RUN.__dict__, "pipeline": pipeline})
    request = SageMakerAdapter(pipeline.service, sagemaker=None, s3=None).create_request(run)  # type: ignore[arg-type]
    assert "Environment" not in request
    assert "KmsKeyId" not in request["TransformOutput"] and "VolumeKmsKeyId" not in request["TransformResources"]


@pytest.fixture
def sagemaker() -> Iterator[Any]:
    with mock_aws(), SageMakerEmulator(polls_until_done=1):
        yield boto3.client("sagemaker", region_name="us-east-1")


def create(sagemaker: Any, **extra: Any) -> None:
    sagemaker.create_transform_job(
        TransformJobName="job-1",
        ModelName="m",
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://work/in/"}}},
        TransformOutput={"S3OutputPath": "s3://work/out/", **extra.pop("output", {})},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1, **extra.pop("resources", {})},
        **extra,
    )


@pytest.mark.parametrize(
    "extra",
    [
        {"Environment": {f"V{i}": "x" for i in range(17)}},
        {"Environment": {"1ST": "x"}},
        {"Tags": [{"Key": f"t{i}", "Value": "x"} for i in range(51)]},
        {"output": {"KmsKeyId": "my key"}},
        {"resources": {"VolumeKmsKeyId": "key with spaces"}},
    ],
)
def test_the_emulator_refuses_what_create_transform_job_refuses(sagemaker: Any, extra: dict[str, Any]) -> None:
    with pytest.raises(ClientError) as raised:
        create(sagemaker, **extra)
    assert raised.value.response["Error"]["Code"] == "ValidationException"


def test_the_emulator_takes_a_full_legal_request(sagemaker: Any) -> None:
    create(
        sagemaker,
        Environment={f"V{i}": "x" for i in range(16)},
        Tags=[{"Key": f"t{i}", "Value": "x"} for i in range(50)],
        output={"KmsKeyId": KEY_ARN},
        resources={"VolumeKmsKeyId": "alias/transform-volumes"},
    )
    [job] = sagemaker.list_transform_jobs()["TransformJobSummaries"]
    assert job["TransformJobName"] == "job-1"
