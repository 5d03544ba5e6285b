"""Bedrock adapter: request shapes pinned with botocore's Stubber; bodies and outputs per model family."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from batchline.adapters.base import Chunk, JobStatus, RecordRejected, RunContext
from batchline.adapters.bedrock import BedrockAdapter, BedrockJsonEncoder, normalise_status, output_text
from batchline.config import parse_pipelines
from batchline.errors import QuotaFull, ServiceThrottled
from batchline.layout import RunLayout, S3Location
from botocore.stub import Stubber

ARN = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdef123456"


def settings(**service: Any) -> Any:
    base = {
        "provider": "bedrock",
        "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
        "roleArn": "arn:aws:iam::123456789012:role/b",
        "promptColumn": "q",
    }
    return parse_pipelines({"p": {"keyColumn": "id", "service": {**base, **service}}}).get("p")


PIPELINE = settings()
RUN = RunContext(
    run_id="p-00112233445566778899aabbccddeeff",
    pipeline=PIPELINE,
    layout=RunLayout("p", "p-00112233445566778899aabbccddeeff", "work", "results"),
    staging={"keyHeader": "id"},
    chunk=Chunk(1, S3Location("work", "p/r/jobs/job-00001/"), S3Location("work", "p/r/output/job-00001/"), 100),
)


@pytest.fixture
def stubbed() -> Iterator[tuple[BedrockAdapter, Stubber]]:
    client = boto3.client("bedrock", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield BedrockAdapter(PIPELINE.service, client, s3=None), stubber
        stubber.assert_no_pending_responses()


def test_create_request_carries_a_deterministic_client_token(stubbed: Any) -> None:
    adapter, stubber = stubbed
    request = adapter.create_request(RUN)
    assert request == adapter.create_request(RUN)
    assert len(request["clientRequestToken"]) == 64
    stubber.add_response("create_model_invocation_job", {"jobArn": ARN}, request)
    stubber.add_response(
        "get_model_invocation_job",
        {
            "jobArn": ARN,
            "jobName": request["jobName"],
            "modelId": "m",
            "roleArn": "arn:aws:iam::123456789012:role/b",
            "status": "Validating",
            "submitTime": "2026-11-25T00:00:00Z",
            "inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://w/i"}},
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://w/o"}},
        },
        {"jobIdentifier": ARN},
    )
    state = adapter.submit(RUN)
    assert (state.job_id, state.status) == (ARN, JobStatus.PENDING)
    assert request["inputDataConfig"]["s3InputDataConfig"]["s3Uri"] == "s3://work/p/r/jobs/job-00001/"


@pytest.mark.parametrize(
    ("code", "error"),
    [("ServiceQuotaExceededException", QuotaFull), ("ThrottlingException", ServiceThrottled)],
)
def test_quota_and_throttling_become_retryable_errors(stubbed: Any, code: str, error: type) -> None:
    adapter, stubber = stubbed
    stubber.add_client_error("create_model_invocation_job", code, "busy", expected_params=adapter.create_request(RUN))
    with pytest.raises(error):
        adapter.submit(RUN)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("Submitted", JobStatus.PENDING),
        ("Validating", JobStatus.PENDING),
        ("Scheduled", JobStatus.PENDING),
        ("InProgress", JobStatus.RUNNING),
        ("Stopping", JobStatus.RUNNING),
        ("Completed", JobStatus.SUCCEEDED),
        ("PartiallyCompleted", JobStatus.PARTIAL),
        ("Failed", JobStatus.FAILED),
        ("Stopped", JobStatus.STOPPED),
        ("Expired", JobStatus.FAILED),
    ],
)
def test_every_status_is_normalised(raw: str, status: JobStatus) -> None:
    assert normalise_status(raw) is status


@pytest.mark.parametrize(
    ("model_output", "text"),
    [
        ({"content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "!"}]}, "hi!"),
        ({"output": {"message": {"content": [{"text": "nova"}]}}}, "nova"),
        ({"results": [{"outputText": "titan"}]}, "titan"),
        ({"generation": "llama"}, "llama"),
        ({"unknown": 1}, None),
    ],
)
def test_output_text_is_extracted_for_common_families(model_output: dict[str, Any], text: str | None) -> None:
    assert output_text(model_output) == text


def test_encoder_maps_keys_that_are_not_valid_record_ids() -> None:
    encoder = BedrockJsonEncoder(PIPELINE.service)
    encoder.start(["id", "q"], 0)
    assert encoder.encode(["abc123", "hello"], 0).record_id == "abc123"
    assert encoder.encode(["order-7", "hello"], 5).record_id == "R00000000005"
    with pytest.raises(RecordRejected, match="prompt is empty"):
        encoder.encode(["x", "  "], 6)


def test_prompt_template_substitutes_columns_without_evaluating_them() -> None:
    encoder = BedrockJsonEncoder(settings(promptColumn=None, promptTemplate="Hi {name}, {q}").service)
    encoder.start(["id", "name", "q"], 0)
    line = encoder.encode(["k", "{__class__}", "{q} stays"], 0).text
    assert '"text": "Hi {__class__}, {q} stays"' in line


@pytest.mark.parametrize(
    ("model_id", "invocation", "marker"),
    [
        ("amazon.titan-text-express-v1", "InvokeModel", '"inputText"'),
        ("amazon.nova-pro-v1:0", "InvokeModel", '"schemaVersion": "messages-v1"'),
        ("anthropic.claude-3-haiku-20240307-v1:0", "Converse", '"inferenceConfig"'),
    ],
)
def test_bodies_follow_the_model_family(model_id: str, invocation: str, marker: str) -> None:
    encoder = BedrockJsonEncoder(settings(modelId=model_id, invocationType=invocation).service)
    encoder.start(["id", "q"], 0)
    assert marker in encoder.encode(["k", "hello"], 0).text


def test_unknown_family_needs_a_body_template() -> None:
    from batchline.errors import ConfigError

    with pytest.raises(ConfigError, match="bodyTemplate"):
        settings(modelId="cohere.command-r-v1:0")
