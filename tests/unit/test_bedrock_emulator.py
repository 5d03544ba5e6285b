"""The Bedrock emulator refuses a job past the model's concurrent-job quota, as the account's quota would, and
answers bedrock-runtime calls as strictly as the models' documented requests."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError, ParamValidationError

from batchline_local.emulators.base import EmulatedError
from batchline_local.emulators.bedrock import BedrockEmulator, job_quota_name

MODEL = "amazon.nova-lite-v1:0"
NOVA = MODEL


def create(emulator: BedrockEmulator, name: str, model: str = MODEL) -> dict[str, Any]:
    return emulator.create_model_invocation_job(
        jobName=name,
        roleArn="arn:aws:iam::123456789012:role/r",
        clientRequestToken=f"token-{name}",
        modelId=model,
        inputDataConfig={"s3InputDataConfig": {"s3Uri": "s3://work/in/"}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://work/out/"}},
    )


def test_a_model_with_job_quota_zero_refuses_every_job_naming_the_quota() -> None:
    emulator = BedrockEmulator()
    emulator.job_quotas[MODEL] = 0

    with pytest.raises(EmulatedError) as refused:
        create(emulator, "job-1")

    assert refused.value.code == "ServiceQuotaExceededException"
    assert f"'{job_quota_name(MODEL)}'" in refused.value.message and "is 0" in refused.value.message
    assert emulator.jobs == {}


def test_a_full_job_quota_frees_when_a_job_stops() -> None:
    emulator = BedrockEmulator()
    emulator.job_quotas[MODEL] = 1
    first = create(emulator, "job-1")["jobArn"]

    with pytest.raises(EmulatedError, match="1 in progress or submitted"):
        create(emulator, "job-2")
    create(emulator, "job-3", model="anthropic.claude-3-haiku-20240307-v1:0")  # each model has its own quota

    emulator.stop_model_invocation_job(jobIdentifier=first)
    emulator.get_model_invocation_job(jobIdentifier=first)  # Stopping -> Stopped
    create(emulator, "job-2")


# --- bedrock-runtime (on-demand calls), through a real client: botocore validates first, then the emulator -----


@pytest.fixture
def runtime() -> Any:
    import boto3

    client = boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
    emulator = BedrockEmulator()
    emulator.attach(client)
    return client, emulator


CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
ANTHROPIC_BODY = {
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
}


def invoke(client: Any, model: str, body: Any) -> dict[str, Any]:
    response = client.invoke_model(modelId=model, body=json.dumps(body), contentType="application/json")
    return dict(json.loads(response["body"].read()))


def test_invoke_model_answers_in_the_familys_shape_with_its_usage(runtime: Any) -> None:
    client, emulator = runtime
    claude = invoke(client, CLAUDE, ANTHROPIC_BODY)
    assert claude["content"][0]["type"] == "text" and set(claude["usage"]) == {"input_tokens", "output_tokens"}
    titan = invoke(client, "amazon.titan-text-express-v1", {"inputText": "hi"})
    assert titan["inputTextTokenCount"] > 0 and titan["results"][0]["tokenCount"] > 0
    nova = invoke(client, NOVA, {"messages": [{"role": "user", "content": [{"text": "hi"}]}]})
    assert nova["output"]["message"]["role"] == "assistant" and nova["usage"]["totalTokens"] > 0
    # A profile ID names its model's family.
    assert "content" in invoke(client, "us." + CLAUDE, ANTHROPIC_BODY)
    assert emulator.runtime_calls["InvokeModel"] == 4


@pytest.mark.parametrize(
    ("model", "body", "says"),
    [
        (CLAUDE, {**ANTHROPIC_BODY, "anthropic_version": None}, "anthropic_version"),
        (CLAUDE, {**ANTHROPIC_BODY, "prompt": "x"}, "extraneous key [prompt]"),
        (CLAUDE, {**ANTHROPIC_BODY, "max_tokens": 0}, "max_tokens"),
        (CLAUDE, {**ANTHROPIC_BODY, "messages": []}, "messages"),
        (CLAUDE, {**ANTHROPIC_BODY, "messages": [{"role": "assistant", "content": "x"}]}, "start with a user"),
        ("amazon.titan-text-express-v1", {"prompt": "x"}, "inputText"),
        ("amazon.titan-text-express-v1", {"inputText": "x", "textGenerationConfig": {"max": 1}}, "extraneous"),
        (NOVA, {"schemaVersion": "v2", "messages": [{"role": "user", "content": [{"text": "x"}]}]}, "schemaVersion"),
        ("meta.llama3-8b-instruct-v1:0", [], "non-empty JSON object"),
    ],
)
def test_invoke_model_refuses_a_body_the_model_refuses(runtime: Any, model: str, body: Any, says: str) -> None:
    client, _ = runtime
    with pytest.raises(ClientError) as caught:
        invoke(client, model, body)
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert says in caught.value.response["Error"]["Message"]


def test_invoke_model_refuses_a_body_that_is_not_json(runtime: Any) -> None:
    client, _ = runtime
    with pytest.raises(ClientError, match="Malformed input request"):
        client.invoke_model(modelId=CLAUDE, body=b"{not json", contentType="application/json")


def test_converse_answers_with_usage_and_refuses_a_conversation_out_of_turn(runtime: Any) -> None:
    client, emulator = runtime
    answer = client.converse(modelId=NOVA, messages=[{"role": "user", "content": [{"text": "hi"}]}])
    assert answer["output"]["message"]["content"][0]["text"].startswith(f"[emulated {NOVA}]")
    assert answer["usage"]["totalTokens"] == answer["usage"]["inputTokens"] + answer["usage"]["outputTokens"]
    for messages, says in (
        ([{"role": "assistant", "content": [{"text": "hi"}]}], "must start with a user message"),
        ([{"role": "user", "content": [{"text": "a"}]}, {"role": "user", "content": [{"text": "b"}]}], "alternate"),
    ):
        with pytest.raises(ClientError, match=says):
            client.converse(modelId=NOVA, messages=messages)
    # botocore's own model refuses what is not a Converse request at all, before the emulator sees it
    with pytest.raises(ParamValidationError):
        client.converse(modelId=NOVA, messages=[{"role": "user", "content": "hi"}])
    assert emulator.runtime_calls["Converse"] == 3


def test_throttling_can_be_injected_for_the_next_calls(runtime: Any) -> None:
    client, emulator = runtime
    emulator.throttle_next = 1
    with pytest.raises(ClientError) as caught:
        invoke(client, CLAUDE, ANTHROPIC_BODY)
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    assert "content" in invoke(client, CLAUDE, ANTHROPIC_BODY)


def test_a_prompt_the_model_rejects_is_a_validation_exception(runtime: Any) -> None:
    client, _ = runtime
    body = {**ANTHROPIC_BODY, "messages": [{"role": "user", "content": "make an error"}]}
    with pytest.raises(ClientError, match="ValidationException"):
        invoke(client, CLAUDE, body)


def test_embedding_models_answer_a_vector_of_their_length_in_their_shape(runtime: Any) -> None:
    client, _ = runtime
    v2 = invoke(client, "amazon.titan-embed-text-v2:0", {"inputText": "hi", "dimensions": 512})
    assert len(v2["embedding"]) == 512 and v2["embeddingsByType"]["float"] == v2["embedding"]
    assert v2["inputTextTokenCount"] > 0
    assert len(invoke(client, "amazon.titan-embed-text-v2:0", {"inputText": "hi"})["embedding"]) == 1024
    assert len(invoke(client, "amazon.titan-embed-text-v1", {"inputText": "hi"})["embedding"]) == 1536
    cohere = invoke(client, "cohere.embed-english-v3", {"texts": ["a", "b"], "input_type": "search_query"})
    assert cohere["response_type"] == "embeddings_floats" and [len(v) for v in cohere["embeddings"]] == [1024, 1024]
    assert cohere["texts"] == ["a", "b"] and cohere["embeddings"][0] != cohere["embeddings"][1]


@pytest.mark.parametrize(
    ("model", "body", "says"),
    [
        ("amazon.titan-embed-text-v1", {"inputText": "hi", "dimensions": 256}, "extraneous key [dimensions]"),
        ("amazon.titan-embed-text-v2:0", {"inputText": "hi", "dimensions": 300}, "256, 512, 1024"),
        ("amazon.titan-embed-text-v2:0", {"inputText": ""}, "inputText"),
        ("cohere.embed-english-v3", {"texts": ["a"]}, "input_type"),
        ("cohere.embed-english-v3", {"texts": ["a"] * 97, "input_type": "clustering"}, "1 to 96"),
        ("cohere.embed-english-v3", {"texts": ["a" * 2049], "input_type": "clustering"}, "2048"),
    ],
)
def test_embedding_models_refuse_what_their_request_reference_refuses(
    runtime: Any, model: str, body: dict[str, Any], says: str
) -> None:
    client, _ = runtime
    with pytest.raises(ClientError, match="ValidationException") as caught:
        invoke(client, model, body)
    assert says in caught.value.response["Error"]["Message"]
