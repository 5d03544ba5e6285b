"""The emulators refuse what the service's own model refuses beyond botocore's checks (maximums, patterns, enums),
with the service's error code and its "N validation errors detected" message, before any emulated work."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from batchline_local.emulators.amazonml import AmazonMLEmulator
from batchline_local.emulators.base import constraint_violations
from batchline_local.emulators.bedrock import BedrockEmulator
from batchline_local.emulators.personalize import PersonalizeEmulator

ROLE = "arn:aws:iam::123456789012:role/r"


def client(service: str, emulator: Any) -> Any:
    made = boto3.client(service, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
    emulator.attach(made)
    return made


def bedrock_job(**overrides: Any) -> dict[str, Any]:
    return {
        "jobName": "bl-job-1",
        "roleArn": ROLE,
        "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
        "inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://work/in/"}},
        "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://work/out/"}},
        **overrides,
    }


def test_a_bedrock_tag_outside_its_ascii_pattern_is_refused_as_bedrock_refuses_it() -> None:
    emulator = BedrockEmulator()
    bedrock = client("bedrock", emulator)
    with pytest.raises(ClientError) as refused:
        bedrock.create_model_invocation_job(**bedrock_job(tags=[{"key": "équipe", "value": "ml"}]))
    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert error["Message"].startswith("1 validation error detected: Value 'équipe' at 'tags.1.member.key'")
    assert emulator.jobs == {}  # refused before anything was created


def test_more_tags_than_the_service_takes_and_a_timeout_past_its_maximum_are_two_errors() -> None:
    bedrock = client("bedrock", BedrockEmulator())
    tags = [{"key": f"k{n}", "value": "v"} for n in range(201)]
    with pytest.raises(ClientError) as refused:
        bedrock.create_model_invocation_job(**bedrock_job(tags=tags, timeoutDurationInHours=169))
    message = refused.value.response["Error"]["Message"]
    assert message.startswith("2 validation errors detected")
    assert "size less than or equal to 200" in message and "value less than or equal to 168" in message


def test_personalize_and_amazonml_answer_with_their_own_code() -> None:
    personalize = client("personalize", PersonalizeEmulator())
    with pytest.raises(ClientError) as refused:
        personalize.create_batch_inference_job(
            jobName="bl-" + "x" * 70,  # over the name's 63 characters
            solutionVersionArn="arn:aws:personalize:us-east-1:123456789012:solution/s/1",
            jobInput={"s3DataSource": {"path": "s3://work/in/"}},
            jobOutput={"s3DataDestination": {"path": "s3://work/out/"}},
            roleArn=ROLE,
        )
    assert refused.value.response["Error"]["Code"] == "InvalidInputException"
    amazonml = client("machinelearning", AmazonMLEmulator())
    with pytest.raises(ClientError) as refused:
        amazonml.create_batch_prediction(
            BatchPredictionId="bp-" + "x" * 70,
            MLModelId="ml-abc",
            BatchPredictionDataSourceId="ds-1",
            OutputUri="s3://work/out/",
        )
    assert refused.value.response["Error"]["Code"] == "InvalidInputException"
    assert "length less than or equal to 64" in refused.value.response["Error"]["Message"]


def test_what_the_model_allows_passes_and_java_unicode_patterns_are_left_to_the_service() -> None:
    import botocore.session

    models = botocore.session.get_session()
    create = models.get_service_model("bedrock").operation_model("CreateModelInvocationJob").input_shape
    assert constraint_violations(create, bedrock_job(tags=[{"key": "team", "value": "ml ops"}])) == []
    add_tags = models.get_service_model("machinelearning").operation_model("AddTags").input_shape
    tags = {"Tags": [{"Key": "équipe", "Value": "données"}], "ResourceId": "bp-1", "ResourceType": "BatchPrediction"}
    assert constraint_violations(add_tags, tags) == []  # \p{L} in its pattern: letters of any script
    assert constraint_violations(add_tags, {**tags, "ResourceType": "Notebook"}) == [
        "Value 'Notebook' at 'ResourceType' failed to satisfy constraint: Member must satisfy enum value set: "
        "[BatchPrediction, DataSource, Evaluation, MLModel]"
    ]


def test_amazonml_takes_ten_tags_an_object_and_only_on_objects_that_exist() -> None:
    emulator = AmazonMLEmulator()
    amazonml = client("machinelearning", emulator)
    amazonml.create_data_source_from_s3(
        DataSourceId="ds-1", DataSpec={"DataLocationS3": "s3://work/in/", "DataSchema": "{}"}, ComputeStatistics=False
    )
    tags = [{"Key": f"k{n}", "Value": "v"} for n in range(10)]
    amazonml.add_tags(ResourceId="ds-1", ResourceType="DataSource", Tags=tags)
    amazonml.add_tags(ResourceId="ds-1", ResourceType="DataSource", Tags=tags[:1])  # same key: a new value
    with pytest.raises(ClientError) as refused:
        amazonml.add_tags(ResourceId="ds-1", ResourceType="DataSource", Tags=[{"Key": "one-more", "Value": "v"}])
    assert refused.value.response["Error"]["Code"] == "TagLimitExceededException"
    with pytest.raises(ClientError) as refused:
        amazonml.add_tags(ResourceId="bp-1", ResourceType="BatchPrediction", Tags=tags[:1])
    assert refused.value.response["Error"]["Code"] == "ResourceNotFoundException"
