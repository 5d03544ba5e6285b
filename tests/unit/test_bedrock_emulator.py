"""The Bedrock emulator refuses a job past the model's concurrent-job quota, as the account's quota would."""

from __future__ import annotations

from typing import Any

import pytest

from batchline_local.emulators.base import EmulatedError
from batchline_local.emulators.bedrock import BedrockEmulator, job_quota_name

MODEL = "amazon.nova-lite-v1:0"


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
