"""Bedrock batch inference end to end on the local runtime (botocore-level emulator)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batchline.adapters.bedrock import model_input
from batchline.config import parse_pipelines
from batchline.csvsafe import format_row, neutralise

from batchline_local.emulators.bedrock import emulated_text
from batchline_local.runtime import LocalRuntime, load_pipeline_context
from tests.e2e.conftest import SAMPLES, check_every_event, read_s3_csv, read_s3_json, step_inputs, write_csv

pytestmark = pytest.mark.timeout(120)
ROLE = "arn:aws:iam::123456789012:role/bedrock-batch"
SMALL = {"minRecordsPerJob": 2, "maxRecordsPerJob": 4, "recordsPerFile": 2}
PIPELINES = {
    **load_pipeline_context(),
    "b-split": {
        "keyColumn": "id",
        "maxConcurrentJobs": 2,
        "service": {
            "provider": "bedrock",
            "modelId": "amazon.nova-lite-v1:0",
            "roleArn": ROLE,
            "promptTemplate": "Summarise: {text}",
            **SMALL,
        },
    },
    "b-failing": {
        "keyColumn": "id",
        "service": {
            "provider": "bedrock",
            "modelId": "anthropic.failing-model",
            "roleArn": ROLE,
            "promptColumn": "text",
            **SMALL,
        },
    },
    "b-custom": {
        "keyColumn": "id",
        "service": {
            "provider": "bedrock",
            "modelId": "meta.llama3-8b-instruct-v1:0",
            "roleArn": ROLE,
            "promptColumn": "text",
            "bodyTemplate": {"prompt": "<question>{prompt}</question>", "max_gen_len": 64},
            **SMALL,
        },
    },
}


@pytest.fixture(scope="module")
def runtime(validate_event: Any) -> Iterator[LocalRuntime]:
    with LocalRuntime(PIPELINES) as local:
        yield local
        check_every_event(local, validate_event)


def texts(tmp_path: Path, name: str, values: list[str]) -> Path:
    return write_csv(tmp_path / name, ["id", "text"], [[f"r{n}", value] for n, value in enumerate(values)])


def test_prompts_become_a_keyed_csv_of_generated_text(runtime: LocalRuntime, validate_event: Any) -> None:
    result = runtime.run_file(SAMPLES / "demo-bedrock.csv", "demo-bedrock")

    assert result.status == "SUCCEEDED"
    assert result.event is not None
    validate_event(result.event)
    detail = result.event["detail"]
    assert detail["counts"] == {"input": 120, "sent": 120, "rejected": 0, "predicted": 120, "failed": 0}
    rows = read_s3_csv(runtime, detail["outputs"]["predictions"])
    assert list(rows[0]) == ["id", "output_text"]
    # Keys are never sent as recordIds: each record gets a generated one, mapped back through the index.
    assert sorted(row["id"] for row in rows) == [f"ticket-{n:04d}" for n in range(1, 121)]
    assert all(row["output_text"].startswith("[emulated anthropic.claude-3-haiku") for row in rows)


def test_large_input_is_split_into_several_jobs_within_quotas(runtime: LocalRuntime, tmp_path: Path) -> None:
    result = runtime.run_file(texts(tmp_path, "ten.csv", [f"text {n}" for n in range(10)]), "b-split")

    assert result.event is not None
    detail = result.event["detail"]
    assert detail["status"] == "SUCCEEDED"
    assert len(detail["jobs"]) == 3  # 10 records, at most 4 per job: three jobs
    assert len({job["jobId"] for job in detail["jobs"]}) == 3
    assert len(read_s3_csv(runtime, detail["outputs"]["predictions"])) == 10
    manifest = read_s3_json(runtime, detail["outputs"]["manifest"])
    assert manifest["counts"]["predicted"] == 10


def test_input_under_the_minimum_is_answered_on_demand_without_a_batch_job(
    runtime: LocalRuntime, validate_event: Any, tmp_path: Path
) -> None:
    creates, calls = runtime.bedrock.create_calls, runtime.bedrock.runtime_calls["InvokeModel"]
    result = runtime.run_file(texts(tmp_path, "one.csv", ["only one"]), "b-split")

    assert result.status == "SUCCEEDED"
    assert result.event is not None
    validate_event(result.event)
    assert result.event["detail"]["counts"]["predicted"] == 1
    assert runtime.bedrock.create_calls == creates
    assert runtime.bedrock.runtime_calls["InvokeModel"] == calls + 1


def test_record_errors_make_a_partial_run_with_the_model_message(
    runtime: LocalRuntime, validate_event: Any, tmp_path: Path
) -> None:
    result = runtime.run_file(texts(tmp_path, "mixed.csv", ["fine", "trigger an error", "also fine"]), "b-split")

    assert result.event is not None
    validate_event(result.event)
    detail = result.event["detail"]
    assert detail["status"] == "PARTIALLY_SUCCEEDED"
    assert detail["counts"]["failed"] == 1 and detail["counts"]["predicted"] == 2
    (error,) = read_s3_csv(runtime, detail["outputs"]["errors"])
    assert (error["key"], error["line"]) == ("r1", "3")
    assert error["reason"] == "Bedrock error 400: emulated: the model rejected this input"


def test_a_completed_job_whose_records_all_failed_is_a_failed_run(
    runtime: LocalRuntime, validate_event: Any, tmp_path: Path
) -> None:
    result = runtime.run_file(texts(tmp_path, "bad.csv", ["error one", "error two"]), "b-split")

    assert result.status == "FAILED"
    assert result.event is not None
    validate_event(result.event)
    assert result.event["detail"]["jobs"][0]["rawStatus"] == "Completed"
    assert result.event["detail"]["error"]["error"] == "NoPredictions"
    assert result.event["detail"]["outputs"]["errors"]


def test_a_failed_job_reports_the_service_message(runtime: LocalRuntime, validate_event: Any, tmp_path: Path) -> None:
    result = runtime.run_file(texts(tmp_path, "f.csv", ["a", "b"]), "b-failing")

    assert result.status == "FAILED"
    assert result.event is not None
    validate_event(result.event)
    assert "not available for batch inference" in result.event["detail"]["error"]["cause"]


def test_duplicate_submit_returns_the_same_job_through_the_client_token(runtime: LocalRuntime, tmp_path: Path) -> None:
    result = runtime.run_file(texts(tmp_path, "dup.csv", ["a", "b"]), "b-split")
    (submit_input,) = step_inputs(runtime, "SubmitJob", result.run_id)
    creates, tokens = runtime.bedrock.create_calls, len(runtime.bedrock.tokens_seen)

    again = runtime.invoke("SubmitJob", submit_input)

    assert result.event is not None
    assert again["jobId"] == result.event["detail"]["jobs"][0]["jobId"]
    assert runtime.bedrock.create_calls == creates
    token = runtime.bedrock.tokens_seen[-1]
    assert token == runtime.bedrock.tokens_seen[tokens - 1]  # the same deterministic token, not a uuid4


def test_unknown_model_family_keeps_the_raw_output(runtime: LocalRuntime, tmp_path: Path) -> None:
    result = runtime.run_file(texts(tmp_path, "raw.csv", ["a", "b"]), "b-custom")

    assert result.event is not None
    rows = read_s3_csv(runtime, result.event["detail"]["outputs"]["predictions"])
    assert list(rows[0]) == ["id", "output_text", "model_output"]
    assert json.loads(rows[0]["model_output"])["result"]["answer"].startswith("[emulated meta.llama3")


def test_a_key_equal_to_a_generated_record_id_keeps_its_own_answer(runtime: LocalRuntime, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "ids.csv", ["id", "text"], [["a-0", "first"], ["R00000000000", "second"]])
    result = runtime.run_file(path, "b-split")

    assert result.event is not None
    detail = result.event["detail"]
    assert detail["status"] == "SUCCEEDED", detail
    rows = {row["id"]: row["output_text"] for row in read_s3_csv(runtime, detail["outputs"]["predictions"])}
    assert set(rows) == {"a-0", "R00000000000"}
    settings = parse_pipelines(PIPELINES).get("b-split").service
    for key, text in (("a-0", "first"), ("R00000000000", "second")):
        body = model_input(settings.resolved_family, f"Summarise: {text}", settings)
        assert rows[key] == emulated_text(settings.model_id, body)  # the answer to its own prompt


def test_line_separators_in_keys_and_prompts_stay_inside_their_records(runtime: LocalRuntime, tmp_path: Path) -> None:
    # (a NUL byte makes Prepare refuse the file as not text; the adapter tests carry NUL through)
    keys = ["ls\u2028k", "nel\u0085k", "cr\rk", "lf\nk", 'q"uote,comma', "=x", "'=x"]
    rows = [["id", "text"], *([key, f"say {key} \u2028 \u0085 \r\n"] for key in keys)]
    path = tmp_path / "separators.csv"  # csvsafe quotes a lone CR, which csv.writer before 3.13 leaves bare
    path.write_text("".join(format_row(row) for row in rows), encoding="utf-8")
    result = runtime.run_file(path, "b-split")

    assert result.event is not None
    detail = result.event["detail"]
    assert detail["status"] == "SUCCEEDED", detail
    assert detail["counts"]["predicted"] == len(keys)
    predicted = [row["id"] for row in read_s3_csv(runtime, detail["outputs"]["predictions"])]
    assert sorted(predicted) == sorted(neutralise(key) for key in keys)
