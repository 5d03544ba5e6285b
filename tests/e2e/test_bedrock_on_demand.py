"""Bedrock under its batch minimum, end to end: the run does not fail, SubmitJob answers on demand.

The local runtime checks every call against the synthesized stack's IAM, so these runs also prove that
SubmitJob (and only it) may call bedrock:InvokeModel on the pipeline's model and write the job's output.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batchline.adapters.bedrock import model_input
from batchline.config import parse_pipelines

from batchline_local.emulators.bedrock import emulated_text
from batchline_local.runtime import BUCKETS, LocalRuntime
from tests.e2e.conftest import check_every_event, read_s3_csv, read_s3_json, write_csv

pytestmark = pytest.mark.timeout(180)
ROLE = "arn:aws:iam::123456789012:role/bedrock-batch"
NOVA = "amazon.nova-lite-v1:0"
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"


def pipeline(model: str, **service: Any) -> dict[str, Any]:
    # minRecordsPerJob is left at its default (100): every file here is under it.
    return {
        "keyColumn": "id",
        "service": {"provider": "bedrock", "modelId": model, "roleArn": ROLE, "promptColumn": "text", **service},
    }


PIPELINES = {
    "od-nova": pipeline(NOVA),
    "od-claude": pipeline(CLAUDE),
    "od-converse": pipeline(NOVA, invocationType="Converse"),
    "od-off": pipeline(NOVA, onDemandBelowMinimum=False),
    "od-failing": pipeline("anthropic.failing-model"),
    "od-profile": pipeline("us.anthropic.claude-3-5-haiku-20241022-v1:0"),
}


@pytest.fixture(scope="module")
def runtime(validate_event: Any) -> Iterator[LocalRuntime]:
    with LocalRuntime(PIPELINES) as local:
        yield local
        check_every_event(local, validate_event)


def texts(tmp_path: Path, name: str, values: list[str]) -> Path:
    return write_csv(tmp_path / name, ["id", "text"], [[f"k{n:03d}", value] for n, value in enumerate(values)])


def test_forty_records_under_the_batch_minimum_get_forty_predictions(
    runtime: LocalRuntime, validate_event: Any, tmp_path: Path
) -> None:
    creates, calls = runtime.bedrock.create_calls, runtime.bedrock.runtime_calls["InvokeModel"]
    prompts = [f"question {n}" for n in range(40)]

    result = runtime.run_file(texts(tmp_path, "forty.csv", prompts), "od-nova")

    assert result.event is not None
    validate_event(result.event)
    detail = result.event["detail"]
    assert detail["status"] == "SUCCEEDED"
    assert detail["counts"] == {"input": 40, "sent": 40, "rejected": 0, "predicted": 40, "failed": 0}
    rows = read_s3_csv(runtime, detail["outputs"]["predictions"])
    settings = parse_pipelines(PIPELINES).get("od-nova").service
    expected = {
        f"k{n:03d}": emulated_text(NOVA, model_input("nova", prompt, settings))  # type: ignore[arg-type]
        for n, prompt in enumerate(prompts)
    }
    assert {row["id"]: row["output_text"] for row in rows} == expected
    # No batch job was created: the model was called once a record, and the job says so in its figures.
    assert runtime.bedrock.create_calls == creates
    assert runtime.bedrock.runtime_calls["InvokeModel"] - calls == 40
    (job,) = detail["jobs"]
    assert job["status"] == "SUCCEEDED"
    assert job["figures"]["invocations"] == 40
    assert job["figures"]["inputTokens"] > 0 and job["figures"]["outputTokens"] > 0
    manifest = read_s3_json(runtime, detail["outputs"]["manifest"])
    assert manifest["counts"]["predicted"] == 40


def test_throttled_calls_are_retried_and_every_record_answered(runtime: LocalRuntime, tmp_path: Path) -> None:
    calls = runtime.bedrock.runtime_calls["InvokeModel"]
    runtime.bedrock.throttle_next = 3  # the next three calls get ThrottlingException

    result = runtime.run_file(texts(tmp_path, "ten.csv", [f"ask {n}" for n in range(10)]), "od-claude")

    assert result.event is not None
    detail = result.event["detail"]
    assert detail["status"] == "SUCCEEDED"
    assert len(read_s3_csv(runtime, detail["outputs"]["predictions"])) == 10
    assert runtime.bedrock.throttle_next == 0
    assert runtime.bedrock.runtime_calls["InvokeModel"] - calls == 13  # ten answers and three throttled tries
    assert detail["jobs"][0]["figures"]["invocations"] == 13


def test_a_refused_record_is_one_errors_row_with_its_line_and_reason(
    runtime: LocalRuntime, validate_event: Any, tmp_path: Path
) -> None:
    result = runtime.run_file(texts(tmp_path, "mixed.csv", ["fine", "trigger an error", "also fine"]), "od-nova")

    assert result.event is not None
    validate_event(result.event)
    detail = result.event["detail"]
    assert detail["status"] == "PARTIALLY_SUCCEEDED"
    assert detail["counts"]["predicted"] == 2 and detail["counts"]["failed"] == 1
    (error,) = read_s3_csv(runtime, detail["outputs"]["errors"])
    assert error["key"] == "k001" and error["line"] == "3"
    assert "ValidationException" in error["reason"] and "rejected this input" in error["reason"]
    assert {row["id"] for row in read_s3_csv(runtime, detail["outputs"]["predictions"])} == {"k000", "k002"}


def test_converse_bodies_are_answered_with_converse(runtime: LocalRuntime, tmp_path: Path) -> None:
    calls = runtime.bedrock.runtime_calls["Converse"]

    result = runtime.run_file(texts(tmp_path, "five.csv", [f"talk {n}" for n in range(5)]), "od-converse")

    assert result.event is not None
    detail = result.event["detail"]
    assert detail["status"] == "SUCCEEDED"
    rows = read_s3_csv(runtime, detail["outputs"]["predictions"])
    assert all(row["output_text"].startswith(f"[emulated {NOVA}]") for row in rows) and len(rows) == 5
    assert runtime.bedrock.runtime_calls["Converse"] - calls == 5


def test_with_on_demand_off_an_input_under_the_minimum_is_refused(runtime: LocalRuntime, tmp_path: Path) -> None:
    calls = dict(runtime.bedrock.runtime_calls)

    result = runtime.run_file(texts(tmp_path, "few.csv", ["a", "b"]), "od-off")

    assert result.status == "FAILED"
    assert result.event is not None
    assert result.event["detail"]["error"]["error"] == "InputRejected"
    assert "needs at least 100 per job" in result.event["detail"]["error"]["cause"]
    assert runtime.bedrock.runtime_calls == calls


def test_the_on_demand_output_has_the_batch_shape(runtime: LocalRuntime, tmp_path: Path) -> None:
    result = runtime.run_file(texts(tmp_path, "two.csv", ["x", "y"]), "od-nova")

    assert result.event is not None
    s3, bucket = runtime.client("s3"), BUCKETS["work"]
    prefix = f"od-nova/{result.event['detail']['runId']}/output/job-00000/on-demand/"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    names = sorted(item["Key"][len(prefix) :] for item in listed)
    assert "manifest.json.out" in names and any(name.endswith(".jsonl.out") for name in names)
    out_key = prefix + next(name for name in names if name.endswith(".jsonl.out"))
    lines = [json.loads(line) for line in s3.get_object(Bucket=bucket, Key=out_key)["Body"].read().splitlines()]
    assert [sorted(line) for line in lines] == [["modelInput", "modelOutput", "recordId"]] * 2
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=prefix + "manifest.json.out")["Body"].read())
    assert manifest["totalRecordCount"] == 2 and manifest["successRecordCount"] == 2


def test_a_model_that_cannot_be_called_fails_the_run_with_the_services_reason(
    runtime: LocalRuntime, validate_event: Any, tmp_path: Path
) -> None:
    calls = runtime.bedrock.runtime_calls["InvokeModel"]

    result = runtime.run_file(texts(tmp_path, "three.csv", ["a", "b", "c"]), "od-failing")

    assert result.status == "FAILED"
    assert result.event is not None
    validate_event(result.event)
    detail = result.event["detail"]
    assert "ResourceNotFoundException" in detail["error"]["cause"]
    assert "stopError" not in detail["error"]  # nothing to stop: the on-demand job never finished
    assert runtime.bedrock.runtime_calls["InvokeModel"] > calls  # the model was called, and refused


def test_through_an_inference_profile_the_grant_on_profile_and_model_lets_submit_call_it(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    # The runtime checks InvokeModel on the profile and on its foundation model in this Region against the
    # synthesized SubmitJob role: a missing grant would fail the run with AccessDenied.
    result = runtime.run_file(texts(tmp_path, "two.csv", ["x", "y"]), "od-profile")

    assert result.event is not None and result.event["detail"]["status"] == "SUCCEEDED"
    rows = read_s3_csv(runtime, result.event["detail"]["outputs"]["predictions"])
    assert [row["output_text"].startswith("[emulated us.anthropic.") for row in rows] == [True, True]
