"""A quota the job can never fit fails the run at once, naming the quota; a full one waits for a slot (issue 15)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchline_local.runtime import LocalRuntime
from tests.e2e.conftest import bedrock_pipeline, check_every_event, step_inputs, write_csv

pytestmark = pytest.mark.timeout(180)

GPU = "ml.p3.2xlarge"
PIPELINES = {
    "on-gpu": {
        "keyColumn": "id",
        "service": {"provider": "sagemaker", "modelName": "m", "predictionColumns": ["p"], "instanceType": GPU},
    },
    "on-cpu": {
        "keyColumn": "id",
        "service": {
            "provider": "sagemaker",
            "modelName": "m",
            "predictionColumns": ["p"],
            "instanceType": "ml.m5.large",
        },
    },
    "prompts": bedrock_pipeline(records_per_job=10),
}


@pytest.fixture(scope="module")
def runtime(validate_event: Any) -> Iterator[LocalRuntime]:
    # Waits at a hundredth of real time: QuotaFull's 60 s retry interval takes at most 0.6 s.
    with LocalRuntime(PIPELINES, time_scale=0.01) as local:
        yield local
        check_every_event(local, validate_event)


def test_an_instance_type_with_quota_zero_fails_the_run_at_once_naming_the_quota(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    runtime.sagemaker.instance_quotas[GPU] = 0

    result = runtime.run_file(write_csv(tmp_path / "a.csv", ["id", "x"], [["a", 1]]), "on-gpu", timeout_seconds=60)

    assert result.status == "FAILED"
    assert result.event is not None
    error = result.event["detail"]["error"]
    assert error["error"] == "ServiceRequestFailed"
    assert f"'{GPU} for transform job usage' is 0" in error["cause"]
    assert "Service Quotas" in error["cause"] and "instanceType" in error["cause"]
    assert len(step_inputs(runtime, "SubmitJob", result.run_id)) == 1  # not retried for hours


def test_a_full_instance_quota_waits_for_a_slot_and_then_runs(runtime: LocalRuntime, tmp_path: Path) -> None:
    # GIVEN the account's one ml.m5.large is held by another job
    runtime.sagemaker.instance_quotas["ml.m5.large"] = 1
    sagemaker = runtime.client("sagemaker")
    sagemaker.create_transform_job(
        TransformJobName="someone-elses-job",
        ModelName="batchline-local-placeholder",
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://elsewhere/in/"}}},
        TransformOutput={"S3OutputPath": "s3://elsewhere/out/"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
    )
    obj = runtime.upload(write_csv(tmp_path / "b.csv", ["id", "x"], [["a", 1], ["b", 2]]), "on-cpu")
    run_id = runtime.deliver(runtime.object_created_event(obj))["runId"]

    # WHEN SubmitJob has been refused a few times (QuotaFull, retried) and the other job then ends
    deadline = time.monotonic() + 60
    while len(step_inputs(runtime, "SubmitJob", run_id)) < 3:
        assert time.monotonic() < deadline, "SubmitJob was not retried while the quota was full"
        time.sleep(0.05)
    sagemaker.stop_transform_job(TransformJobName="someone-elses-job")
    for _ in range(10):  # Stopping -> Stopped over a few looks: then the slot is free
        if sagemaker.describe_transform_job(TransformJobName="someone-elses-job")["TransformJobStatus"] == "Stopped":
            break

    # THEN the run gets its slot and succeeds
    result = runtime.wait_for(run_id, timeout_seconds=90)
    assert result.status == "SUCCEEDED", result.event


def test_a_bedrock_model_with_job_quota_zero_fails_the_run_at_once_naming_the_quota(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    model = PIPELINES["prompts"]["service"]["modelId"]
    runtime.bedrock.job_quotas[model] = 0
    try:
        result = runtime.run_file(
            write_csv(tmp_path / "p.csv", ["id", "text"], [["a", "hello"]]), "prompts", timeout_seconds=60
        )
    finally:
        del runtime.bedrock.job_quotas[model]

    assert result.status == "FAILED"
    assert result.event is not None
    error = result.event["detail"]["error"]
    assert error["error"] == "ServiceRequestFailed"
    assert f"batch inference jobs using a base model for {model}' is 0" in error["cause"]
    assert len(step_inputs(runtime, "SubmitJob", result.run_id)) == 1
