"""Bedrock adapter: request shapes pinned with botocore's Stubber; bodies and outputs per model family."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from batchline.adapters.base import Chunk, JobState, JobStatus, Prediction, RecordRejected, RunContext
from batchline.adapters.bedrock import BedrockAdapter, BedrockJsonEncoder, normalise_status, output_text
from batchline.config import parse_pipelines
from batchline.errors import JobNotFound, QuotaFull, ServiceRequestFailed, ServiceThrottled
from batchline.layout import RunLayout, S3Location
from botocore.stub import Stubber
from moto import mock_aws

from tests.adapters.staging import HOSTILE_KEYS, stage, staged

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
            "submitTime": datetime(2026, 11, 25, tzinfo=UTC),
            "inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://w/i"}},
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://w/o"}},
        },
        {"jobIdentifier": ARN},
    )
    state = adapter.submit(RUN)
    assert (state.job_id, state.status) == (ARN, JobStatus.PENDING)
    assert state.figures == {"createdAt": "2026-11-25T00:00:00Z"}  # no end, no tokens before the job ends
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
    # Every recordId is generated from the sequence, valid keys too: no key can equal another record's ID.
    assert encoder.encode(["abc123", "hello"], 0).record_id == "R00000000000"
    assert encoder.encode(["order-7", "hello"], 5).record_id == "R00000000005"
    with pytest.raises(RecordRejected, match="prompt is empty"):
        encoder.encode(["x", "  "], 6)


# --- reading outputs (moto S3) ---------------------------------------------------------------------


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="work")
        yield client


def bedrock_output(s3: Any, part: str, lines: list[dict[str, Any]], *, manifest: bool = True) -> None:
    """What Bedrock writes: ``<job-id>/<part>.out`` JSON lines (json.dumps escapes nothing beyond JSON's rules
    with ensure_ascii=False, so U+2028 and U+0085 stay raw), in an order of its own, and the manifest."""
    body = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in reversed(lines))
    prefix = RUN.chunk.output_prefix.key + "abcdef123456/"
    s3.put_object(Bucket="work", Key=prefix + part + ".out", Body=body.encode())
    if manifest:
        succeeded = sum("modelOutput" in line for line in lines)
        counts = {"successRecordCount": succeeded, "errorRecordCount": len(lines) - succeeded}
        s3.put_object(Bucket="work", Key=prefix + "manifest.json.out", Body=json.dumps(counts).encode())


def read(s3: Any) -> list[Any]:
    adapter = BedrockAdapter(PIPELINE.service, None, s3)
    job = JobState(ARN, JobStatus.SUCCEEDED, "Completed")
    return list(adapter.read_results(RUN, job, iter(staged(s3, RUN.layout, RUN.chunk.input_prefix))))


def answer(record: Any, text: str) -> dict[str, Any]:
    data = json.loads(record.text)
    return {**data, "modelOutput": {"content": [{"type": "text", "text": text}]}}


def test_a_key_shaped_like_a_generated_record_id_does_not_collide(s3: Any) -> None:
    # GIVEN keys a-0 (not a valid recordId) and R00000000000 (a valid one, equal to the ID generated for a-0
    # under the old rule) in one file
    encoder = BedrockJsonEncoder(PIPELINE.service)
    encoder.start(["id", "q"], 0)
    records = stage(
        s3, RUN.layout, RUN.chunk.input_prefix, encoder, [["a-0", "one"], ["R00000000000", "two"]], part="p.jsonl"
    )
    assert len({record.record_id for record in records}) == 2
    # WHEN Bedrock answers both
    bedrock_output(s3, "p.jsonl", [answer(record, f"out {n}") for n, record in enumerate(records)])
    # THEN each key gets its own answer
    assert read(s3) == [Prediction("R00000000000", 3, [["out 1"]]), Prediction("a-0", 2, [["out 0"]])]


def test_hostile_keys_and_prompts_come_back_under_their_own_keys(s3: Any) -> None:
    encoder = BedrockJsonEncoder(PIPELINE.service)
    encoder.start(["id", "q"], 0)
    rows = [[key, f'prompt {key} \u2028 \x85 \r \n \x00 , "'] for key in HOSTILE_KEYS]
    records = stage(s3, RUN.layout, RUN.chunk.input_prefix, encoder, rows, part="p.jsonl")
    bedrock_output(s3, "p.jsonl", [answer(record, f"answer \u2028\x85\r {n}") for n, record in enumerate(records)])
    out = read(s3)
    assert sorted((p.key, p.line, p.rows) for p in out) == sorted(
        (key, n + 2, [[f"answer \u2028\x85\r {n}"]]) for n, key in enumerate(HOSTILE_KEYS)
    )


def test_output_is_split_on_line_feeds_only(s3: Any) -> None:
    # A CR or U+2028 written raw between JSON tokens is whitespace to JSON, not a line end.
    encoder = BedrockJsonEncoder(PIPELINE.service)
    encoder.start(["id", "q"], 0)
    (record,) = stage(s3, RUN.layout, RUN.chunk.input_prefix, encoder, [["k", "q"]], part="p.jsonl")
    line = json.dumps(answer(record, "x")).replace(", ", ",\r ", 1)
    s3.put_object(Bucket="work", Key=RUN.chunk.output_prefix.key + "j/p.jsonl.out", Body=(line + "\n").encode())
    assert read(s3) == [Prediction("k", 2, [["x"]])]


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


# Bedrock's wording for a full batch job quota is not published; the emulator's (and this) name the quota and
# its applied value. Only a stated value of 0 is read as "never": anything else waits for a slot.
def quota_message(limit: int, usage: int) -> str:
    return (
        "The request would exceed the quota 'Sum of in-progress and submitted batch inference jobs using a base "
        f"model for Claude 3 Haiku', which is {limit} for this account ({usage} in progress or submitted). "
        "Request an increase in Service Quotas."
    )


def test_a_job_quota_of_zero_fails_at_once_naming_the_quota(stubbed: Any) -> None:
    adapter, stubber = stubbed
    stubber.add_client_error(
        "create_model_invocation_job",
        "ServiceQuotaExceededException",
        quota_message(0, 0),
        expected_params=adapter.create_request(RUN),
    )
    with pytest.raises(ServiceRequestFailed) as raised:
        adapter.submit(RUN)
    message = str(raised.value)
    assert "'Sum of in-progress and submitted batch inference jobs using a base model for Claude 3 Haiku' is 0" in (
        message
    )
    assert "Service Quotas" in message


@pytest.mark.parametrize(
    "message",
    [quota_message(20, 20), "busy", "quota exceeded: 0", "The quota 'x' is zero"],
    ids=["full", "no-numbers", "no-quota-named", "not-a-number"],
)
def test_a_full_or_unreadable_job_quota_waits_for_a_slot(stubbed: Any, message: str) -> None:
    adapter, stubber = stubbed
    stubber.add_client_error(
        "create_model_invocation_job",
        "ServiceQuotaExceededException",
        message,
        expected_params=adapter.create_request(RUN),
    )
    with pytest.raises(QuotaFull):
        adapter.submit(RUN)


def test_a_job_bedrock_does_not_know_was_never_created(stubbed: Any) -> None:
    adapter, stubber = stubbed
    stubber.add_client_error(
        "get_model_invocation_job", "ResourceNotFoundException", "none", 404, {"jobIdentifier": ARN}
    )
    with pytest.raises(JobNotFound):
        adapter.describe(RUN, ARN)


def test_a_job_name_no_listing_shows_was_never_created(stubbed: Any) -> None:
    adapter, stubber = stubbed
    name = adapter.job_id(RUN)
    stubber.add_response("list_model_invocation_jobs", {"invocationJobSummaries": []}, {"nameContains": name})
    with pytest.raises(JobNotFound, match=name):
        adapter.describe(RUN, name)


def test_a_denied_look_is_not_never_created(stubbed: Any) -> None:
    adapter, stubber = stubbed
    stubber.add_client_error("get_model_invocation_job", "AccessDeniedException", "denied", 403, {"jobIdentifier": ARN})
    with pytest.raises(Exception) as raised:
        adapter.describe(RUN, ARN)
    assert not isinstance(raised.value, JobNotFound)


def test_a_finished_job_reports_its_times_and_the_manifest_tokens(s3: Any) -> None:
    # GIVEN a completed job whose output manifest counts its tokens
    bedrock_output(s3, "p.jsonl", [])
    prefix = RUN.chunk.output_prefix.key + "abcdef123456/"
    manifest = {"totalRecordCount": 0, "inputTokenCount": 1234, "outputTokenCount": 56}
    s3.put_object(Bucket="work", Key=prefix + "manifest.json.out", Body=json.dumps(manifest).encode())
    client = boto3.client("bedrock", region_name="us-east-1")
    with Stubber(client) as stubber:
        stubber.add_response(
            "get_model_invocation_job",
            {
                "jobArn": ARN,
                "modelId": "m",
                "roleArn": "arn:aws:iam::123456789012:role/b",
                "status": "Completed",
                "submitTime": datetime(2026, 11, 25, 8, 0, tzinfo=UTC),
                "lastModifiedTime": datetime(2026, 11, 25, 9, 30, tzinfo=UTC),
                "endTime": datetime(2026, 11, 25, 9, 30, tzinfo=UTC),
                "inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://w/i"}},
                "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://w/o"}},
            },
            {"jobIdentifier": ARN},
        )
        # WHEN it is described
        state = BedrockAdapter(PIPELINE.service, client, s3).describe(RUN, ARN)
    # THEN its own times and tokens are its figures (Bedrock states no start time, so none is made up)
    assert state.figures == {
        "createdAt": "2026-11-25T08:00:00Z",
        "endedAt": "2026-11-25T09:30:00Z",
        "inputTokens": 1234,
        "outputTokens": 56,
    }


def test_the_users_tags_go_on_every_job_beside_batchlines_and_are_checked_at_synth() -> None:
    from batchline.errors import ConfigError
    from botocore.stub import Stubber as _Stubber

    tagged = settings(tags={"team": "ml-ops", "cost-centre": "42"})
    client = boto3.client("bedrock", region_name="us-east-1")
    adapter = BedrockAdapter(tagged.service, client, s3=None)
    run = RunContext(RUN.run_id, tagged, RUN.layout, RUN.staging, RUN.chunk)
    request = adapter.create_request(run)
    assert request["tags"] == [
        {"key": "team", "value": "ml-ops"},
        {"key": "cost-centre", "value": "42"},
        {"key": "batchline:pipeline", "value": "p"},
    ]
    with _Stubber(client) as stubber:  # the shape botocore sends
        stubber.add_response("create_model_invocation_job", {"jobArn": ARN}, request)
        client.create_model_invocation_job(**request)
    for tags, match in (
        ({"équipe": "ml"}, "ASCII letters"),  # Bedrock's tag pattern is ASCII only
        ({"batchline:pipeline": "x"}, "batchline: prefix"),
        ({f"k{n}": "v" for n in range(200)}, "at most 199 tags"),
    ):
        with pytest.raises(ConfigError, match=match):
            settings(tags=tags)
