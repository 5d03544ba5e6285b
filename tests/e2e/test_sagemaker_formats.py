"""SageMaker content types, batch strategies, data capture and the job's figures, on the local runtime."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from batchline_local.runtime import BUCKETS, LocalRuntime, load_pipeline_context
from tests.e2e.conftest import SAMPLES, check_every_event, read_s3_csv, read_s3_json

pytestmark = pytest.mark.timeout(120)
PIPELINES = load_pipeline_context()
DEMO = PIPELINES["demo-sagemaker"]


def variant(**service: Any) -> dict[str, Any]:
    return {**DEMO, "service": {**DEMO["service"], **service}}


JSON_LINES, SINGLE, CAPTURE = "sagemaker-jsonl", "sagemaker-single", "sagemaker-capture"
PIPELINES[JSON_LINES] = variant(contentType="application/jsonlines", predictionColumns=["score"])
PIPELINES[SINGLE] = variant(batchStrategy="SingleRecord")
PIPELINES[CAPTURE] = variant(dataCapture={"generateInferenceId": True})
FIGURES = {"createdAt", "startedAt", "endedAt", "computeSeconds"}


@pytest.fixture(scope="module")
def runtime(validate_event: Any) -> Iterator[LocalRuntime]:
    with LocalRuntime(PIPELINES) as local:
        yield local
        check_every_event(local, validate_event)


def work_objects(runtime: LocalRuntime, prefix: str) -> list[str]:
    listed = runtime.client("s3").list_objects_v2(Bucket=BUCKETS["work"], Prefix=prefix)
    return [item["Key"] for item in listed.get("Contents", [])]


def read_work(runtime: LocalRuntime, key: str) -> str:
    return str(runtime.client("s3").get_object(Bucket=BUCKETS["work"], Key=key)["Body"].read().decode())


def test_a_json_lines_pipeline_sends_feature_objects_and_keys_every_answer(runtime: LocalRuntime) -> None:
    result = runtime.run_file(SAMPLES / "demo-sagemaker.csv", JSON_LINES)

    assert result.status == "SUCCEEDED" and result.event is not None
    detail = result.event["detail"]
    assert detail["counts"] == {"input": 120, "sent": 120, "rejected": 0, "predicted": 120, "failed": 0}
    # THEN the staged lines hold the key beside the features, which are all the model is given
    staged = sorted(key for key in work_objects(runtime, f"{JSON_LINES}/{result.run_id}/input/"))
    assert [key.rsplit("/", 1)[1] for key in staged] == ["part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl"]
    first = json.loads(read_work(runtime, staged[0]).splitlines()[0])
    header = (SAMPLES / "demo-sagemaker.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    assert first["key"] == "cust-0001" and list(first["features"]) == header[1:]
    assert all(isinstance(value, int | float) for value in first["features"].values())  # numericFeatures
    # AND every output line is the joined record: its key and the model's answer
    outputs = work_objects(runtime, f"{JSON_LINES}/{result.run_id}/output/")
    answer = json.loads(read_work(runtime, outputs[0]).splitlines()[0])
    assert set(answer) == {"key", "SageMakerOutput"}
    predictions = read_s3_csv(runtime, detail["outputs"]["predictions"])
    assert list(predictions[0]) == ["id", "score"]
    assert [row["id"] for row in predictions] == [f"cust-{i:04d}" for i in range(1, 121)]
    assert all(0 < float(row["score"]) < 1 for row in predictions)


def test_a_single_record_pipeline_sends_each_record_in_its_own_request(runtime: LocalRuntime) -> None:
    result = runtime.run_file(SAMPLES / "demo-sagemaker.csv", SINGLE)

    assert result.status == "SUCCEEDED" and result.event is not None
    detail = result.event["detail"]
    assert detail["counts"]["predicted"] == 120
    (job,) = detail["jobs"]
    assert runtime.sagemaker.jobs[job["jobId"]].requests == [1] * 120
    # the same records, batched, are three requests (one per staged file): the strategy is what differs
    batched = runtime.run_file(SAMPLES / "demo-sagemaker.csv", "demo-sagemaker")
    assert batched.event is not None
    assert runtime.sagemaker.jobs[batched.event["detail"]["jobs"][0]["jobId"]].requests == [50, 50, 20]
    by_id = {row["id"]: row for row in read_s3_csv(runtime, detail["outputs"]["predictions"])}
    same = {row["id"]: row for row in read_s3_csv(runtime, batched.event["detail"]["outputs"]["predictions"])}
    assert by_id == same


def test_data_capture_is_written_beside_the_runs_and_inference_ids_are_columns(runtime: LocalRuntime) -> None:
    result = runtime.run_file(SAMPLES / "demo-sagemaker.csv", CAPTURE)

    assert result.status == "SUCCEEDED" and result.event is not None
    detail = result.event["detail"]
    (job,) = detail["jobs"]
    # THEN the job's capture manifests are in the work bucket under the pipeline's data-capture/ prefix
    captures = runtime.sagemaker.jobs[job["jobId"]].captures
    assert [uri.split("/")[5] for uri in captures] == ["input", "output"]
    assert all(uri.startswith(f"s3://{BUCKETS['work']}/{CAPTURE}/data-capture/") for uri in captures)
    listing = json.loads(read_work(runtime, captures[0].split("/", 3)[3]))
    assert listing[0] == {"prefix": f"s3://{BUCKETS['work']}/{CAPTURE}/{result.run_id}/input/"}
    assert listing[1:] == ["part-00000.csv", "part-00001.csv", "part-00002.csv"]
    # AND each prediction carries the inference ID and time Model Monitor's ground truth merge needs
    predictions = read_s3_csv(runtime, detail["outputs"]["predictions"])
    assert list(predictions[0]) == ["id", "churn_probability", "sagemaker_inference_id", "sagemaker_inference_time"]
    assert len({row["sagemaker_inference_id"] for row in predictions}) == 120
    assert {row["sagemaker_inference_time"] for row in predictions} == {job["figures"]["startedAt"]}


def test_the_manifest_and_event_carry_the_jobs_own_figures(runtime: LocalRuntime) -> None:
    result = runtime.run_file(SAMPLES / "demo-sagemaker.csv", "demo-sagemaker")

    assert result.event is not None
    detail = result.event["detail"]
    manifest = read_s3_json(runtime, detail["outputs"]["manifest"])
    (job,) = manifest["jobs"]
    figures = job["figures"]
    assert set(figures) == FIGURES, figures
    assert figures["createdAt"] <= figures["startedAt"] <= figures["endedAt"]
    assert figures["computeSeconds"] >= 0
    assert detail["jobs"][0]["figures"] == figures
