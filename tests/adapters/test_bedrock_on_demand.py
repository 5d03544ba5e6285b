"""Bedrock on demand: a chunk under the batch minimum answered by Submit, resumably, in the batch output shape.

bedrock-runtime is the local emulator behind a real boto3 client (botocore validates every request against the
service model first); S3 is moto.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from batchline.adapters.base import Chunk, JobStatus, Prediction, RunContext
from batchline.adapters.bedrock import BedrockAdapter, BedrockJsonEncoder
from batchline.adapters.bedrock_on_demand import Backoff, OnDemandJob, token_counts
from batchline.config import ON_DEMAND_BUDGET_SECONDS, parse_pipelines
from batchline.errors import ConfigError, JobNotFound, ServiceThrottled
from batchline.functions import CATALOGUE
from batchline.layout import RunLayout, S3Location
from botocore.exceptions import ClientError
from moto import mock_aws

from batchline_local.emulators.bedrock import BedrockEmulator
from tests.adapters.staging import stage, staged

RUN_ID = "p-00112233445566778899aabbccddeeff"


def pipeline(**service: Any) -> Any:
    base = {
        "provider": "bedrock",
        "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
        "roleArn": "arn:aws:iam::123456789012:role/b",
        "promptColumn": "q",
        "onDemandConcurrency": 2,
        "minRecordsPerJob": 10,
    }
    return parse_pipelines({"p": {"keyColumn": "id", "service": {**base, **service}}}).get("p")


def run_for(records: int, **service: Any) -> RunContext:
    return RunContext(
        run_id=RUN_ID,
        pipeline=pipeline(**service),
        layout=RunLayout("p", RUN_ID, "work", "results"),
        staging={"keyHeader": "id"},
        chunk=Chunk(0, S3Location("work", "p/r/input/"), S3Location("work", "p/r/output/job-00000/"), records),
    )


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any, BedrockEmulator]]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="work")
        runtime = boto3.client("bedrock-runtime", region_name="us-east-1")
        emulator = BedrockEmulator()
        emulator.attach(runtime)
        yield s3, runtime, emulator


def staged_prompts(s3: Any, run: RunContext, prompts: list[str]) -> None:
    encoder = BedrockJsonEncoder(run.pipeline.service)  # type: ignore[arg-type]
    encoder.start(["id", "q"], 0)
    rows = [[f"k{n}", prompt] for n, prompt in enumerate(prompts)]
    stage(s3, run.layout, run.chunk.input_prefix, encoder, rows, part="part-00000.jsonl")


def adapter(run: RunContext, s3: Any, runtime: Any) -> BedrockAdapter:
    return BedrockAdapter(run.pipeline.service, None, s3, lambda: runtime)  # type: ignore[arg-type]


def no_sleep(seconds: float) -> None:
    pass


def test_a_chunk_under_the_minimum_is_answered_and_read_back_like_a_batch_job(aws: Any) -> None:
    s3, runtime, emulator = aws
    run = run_for(3)
    staged_prompts(s3, run, ["one", "two", "three"])

    state = adapter(run, s3, runtime).submit(run)

    assert (state.status, state.raw_status) == (JobStatus.SUCCEEDED, "Completed")
    assert state.counts == {"total": 3, "processed": 3, "succeeded": 3, "errored": 0}
    assert state.figures["invocations"] == 3 and state.figures["inputTokens"] > 0
    assert emulator.runtime_calls["InvokeModel"] == 3
    results = list(
        adapter(run, s3, runtime).read_results(run, state, iter(staged(s3, run.layout, run.chunk.input_prefix)))
    )
    assert sorted(result.key for result in results if isinstance(result, Prediction)) == ["k0", "k1", "k2"]
    # describe() reads the finished job back without calling the model again
    assert adapter(run, s3, runtime).describe(run, state.job_id) == state
    assert emulator.runtime_calls["InvokeModel"] == 3


def test_a_retried_submit_calls_the_model_only_for_records_not_yet_answered(aws: Any) -> None:
    s3, runtime, emulator = aws
    run = run_for(5, onDemandConcurrency=1)
    staged_prompts(s3, run, [f"p{n}" for n in range(5)])
    settings = run.pipeline.service
    # GIVEN the service throttles the third call on for longer than one submit's attempts
    answered = 0

    def throttle_after_two(seconds: float) -> None:
        pass

    original = emulator.invoke_model

    def invoke(**params: Any) -> dict[str, Any]:
        nonlocal answered
        if answered >= 2:
            emulator.throttle_next = 1
        answered += 1
        return original(**params)

    emulator.invoke_model = invoke  # type: ignore[method-assign]
    first = OnDemandJob(settings, runtime, s3, backoff=Backoff(attempts=2), sleep=throttle_after_two)  # type: ignore[arg-type]
    with pytest.raises(ServiceThrottled, match="2 of 5 records answered"):
        first.run(run.chunk.input_prefix, run.chunk.output_prefix)
    # WHEN the state machine retries the submit once the service has room again
    emulator.invoke_model = original  # type: ignore[method-assign]
    calls = emulator.runtime_calls["InvokeModel"]
    manifest, summary = OnDemandJob(settings, runtime, s3, sleep=no_sleep).run(  # type: ignore[arg-type]
        run.chunk.input_prefix, run.chunk.output_prefix
    )
    # THEN only the three unanswered records are called, and the output holds each record once
    assert emulator.runtime_calls["InvokeModel"] - calls == 3
    assert manifest["successRecordCount"] == 5
    assert summary["invocations"] == 2 + 2 + 3  # two answers, two throttled tries, three answers
    out = s3.get_object(Bucket="work", Key="p/r/output/job-00000/on-demand/part-00000.jsonl.out")["Body"].read()
    ids = [json.loads(line)["recordId"] for line in out.splitlines()]
    assert ids == sorted(set(ids)) and len(ids) == 5
    # AND a submit retried after the job finished calls nothing at all
    OnDemandJob(settings, runtime, s3).run(run.chunk.input_prefix, run.chunk.output_prefix)  # type: ignore[arg-type]
    assert emulator.runtime_calls["InvokeModel"] - calls == 3


def test_throttling_is_retried_with_back_off_inside_one_submit(aws: Any) -> None:
    s3, runtime, emulator = aws
    run = run_for(2, onDemandConcurrency=1)
    staged_prompts(s3, run, ["a", "b"])
    emulator.throttle_next = 2
    pauses: list[float] = []

    manifest, summary = OnDemandJob(
        run.pipeline.service,  # type: ignore[arg-type]
        runtime,
        s3,
        sleep=pauses.append,
        draw=lambda: 1.0,
    ).run(run.chunk.input_prefix, run.chunk.output_prefix)

    assert manifest["successRecordCount"] == 2
    assert pauses == [0.5, 1.0]  # full jitter drawn at its top: base 0.5 s, doubling
    assert summary["invocations"] == 4


def test_a_refused_record_is_one_error_line_and_the_others_are_answered(aws: Any) -> None:
    s3, runtime, _ = aws
    run = run_for(3)
    staged_prompts(s3, run, ["fine", "an error here", "fine too"])

    state = adapter(run, s3, runtime).submit(run)

    assert (state.status, state.raw_status) == (JobStatus.PARTIAL, "PartiallyCompleted")
    results = list(
        adapter(run, s3, runtime).read_results(run, state, iter(staged(s3, run.layout, run.chunk.input_prefix)))
    )
    failed = [result for result in results if not isinstance(result, Prediction)]
    assert [(f.key, f.line) for f in failed] == [("k1", 3)]  # type: ignore[union-attr]
    assert failed[0].reason == "Bedrock error 400: ValidationException: emulated: the model rejected this input"  # type: ignore[union-attr]


def test_an_unfinished_on_demand_job_is_not_found(aws: Any) -> None:
    s3, runtime, _ = aws
    run = run_for(2)
    with pytest.raises(JobNotFound):
        adapter(run, s3, runtime).describe(run, "anything")


def test_a_chunk_at_the_minimum_still_goes_to_a_batch_job() -> None:
    assert not BedrockAdapter(pipeline().service, None, None).on_demand(run_for(10))
    assert BedrockAdapter(pipeline().service, None, None).on_demand(run_for(9))
    assert not BedrockAdapter(pipeline(onDemandBelowMinimum=False).service, None, None).on_demand(run_for(9))


@pytest.mark.parametrize(
    ("output", "headers", "tokens"),
    [
        ({"usage": {"input_tokens": 7, "output_tokens": 3}}, {}, (7, 3)),  # Anthropic
        ({"usage": {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7}}, {}, (5, 2)),  # Nova, Converse
        ({"inputTextTokenCount": 4, "results": [{"tokenCount": 9}]}, {}, (4, 9)),  # Titan text
        (
            {},
            {"x-amzn-bedrock-input-token-count": "11", "x-amzn-bedrock-output-token-count": "12"},
            (11, 12),
        ),  # InvokeModel's headers
        ({"generation": "x"}, {}, (0, 0)),
    ],
)
def test_token_counts_are_read_in_each_familys_own_names(
    output: dict[str, Any], headers: dict[str, str], tokens: tuple[int, int]
) -> None:
    assert token_counts(output, headers) == tokens


def test_past_its_time_budget_a_submit_keeps_its_answers_and_hands_the_rest_to_a_retry(aws: Any) -> None:
    s3, runtime, emulator = aws
    run = run_for(4, onDemandConcurrency=1)
    staged_prompts(s3, run, ["a", "b", "c", "d"])
    ticks = iter(range(0, 1000, 10))  # each look at the clock is 10 s later: the 25 s budget allows two calls

    with pytest.raises(ServiceThrottled, match="budget"):
        OnDemandJob(
            run.pipeline.service,  # type: ignore[arg-type]
            runtime,
            s3,
            clock=lambda: next(ticks),
            budget_seconds=25,
        ).run(run.chunk.input_prefix, run.chunk.output_prefix)
    answered = emulator.runtime_calls["InvokeModel"]
    assert answered == 2

    manifest, _ = OnDemandJob(run.pipeline.service, runtime, s3).run(  # type: ignore[arg-type]
        run.chunk.input_prefix, run.chunk.output_prefix
    )
    assert manifest["successRecordCount"] == 4
    assert emulator.runtime_calls["InvokeModel"] == 4


def test_a_setting_that_could_outrun_submit_jobs_timeout_is_refused_at_synth() -> None:
    # 999 records at most on demand, 4 at a time, 20 s each: 5,000 s, far past one SubmitJob call.
    with pytest.raises(ConfigError) as caught:
        pipeline(minRecordsPerJob=1000, onDemandConcurrency=4)
    message = str(caught.value)
    assert "pipeline 'p'" in message and "onDemandConcurrency" in message and "minRecordsPerJob" in message
    assert "5000 s, over the 600 s budget" in message
    # Off, the same minimum is fine: nothing is answered on demand.
    assert pipeline(minRecordsPerJob=1000, onDemandBelowMinimum=False).service.min_records_per_job == 1000


def test_the_on_demand_budget_leaves_a_third_of_submit_jobs_timeout() -> None:
    submit = next(spec for spec in CATALOGUE if spec.name == "SubmitJob")
    assert submit.timeout_seconds * 2 >= ON_DEMAND_BUDGET_SECONDS * 3


def test_a_call_that_fails_the_job_stops_the_calls_not_yet_made(aws: Any) -> None:
    s3, runtime, emulator = aws
    run = run_for(6, onDemandConcurrency=1, modelId="anthropic.failing-model")
    staged_prompts(s3, run, [f"p{n}" for n in range(6)])
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        adapter(run, s3, runtime).submit(run)
    assert emulator.runtime_calls["InvokeModel"] == 1


def test_a_chunk_of_several_parts_gets_one_output_file_per_part(aws: Any) -> None:
    s3, runtime, _ = aws
    run = run_for(4)
    encoder = BedrockJsonEncoder(run.pipeline.service)  # type: ignore[arg-type]
    encoder.start(["id", "q"], 0)
    for number, part in enumerate(("part-00000.jsonl", "part-00001.jsonl")):
        rows = [[f"k{number}{n}", f"q{number}{n}"] for n in range(2)]
        stage(s3, run.layout, run.chunk.input_prefix, encoder, rows, part=part, first_sequence=number * 2)

    state = adapter(run, s3, runtime).submit(run)

    folder = "p/r/output/job-00000/on-demand/"
    listed = [item["Key"] for item in s3.list_objects_v2(Bucket="work", Prefix=folder)["Contents"]]
    assert sorted(key for key in listed if key.endswith(".out")) == [
        folder + "manifest.json.out",
        folder + "part-00000.jsonl.out",
        folder + "part-00001.jsonl.out",
    ]
    results = list(
        adapter(run, s3, runtime).read_results(run, state, iter(staged(s3, run.layout, run.chunk.input_prefix)))
    )
    assert sorted(r.key for r in results if isinstance(r, Prediction)) == ["k00", "k01", "k10", "k11"]


def test_no_more_calls_are_in_flight_than_on_demand_concurrency(aws: Any) -> None:
    s3, runtime, emulator = aws
    run = run_for(8)  # onDemandConcurrency 2
    staged_prompts(s3, run, [f"q{n}" for n in range(8)])
    active, most = 0, 0
    lock = threading.Lock()
    original = emulator.invoke_model

    def invoke(**params: Any) -> dict[str, Any]:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        try:
            time.sleep(0.01)  # long enough for the others to start if nothing held them back
            return original(**params)
        finally:
            with lock:
                active -= 1

    emulator.invoke_model = invoke  # type: ignore[method-assign]
    adapter(run, s3, runtime).submit(run)
    assert 1 <= most <= 2
    assert emulator.runtime_calls["InvokeModel"] == 8
