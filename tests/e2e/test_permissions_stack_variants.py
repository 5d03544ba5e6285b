"""The stack as users deploy it passes the local permission checks: every demo pipeline with the
customer-managed key on, and Bedrock on an inference profile; and the key policy is checked for the services
that act for the stack (taking one service's statement out of it fails that service's reads).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from batchline_local.permissions import synth
from batchline_local.runtime import LocalRuntime, load_pipeline_context
from tests.e2e.conftest import SAMPLES

pytestmark = pytest.mark.timeout(600)
DEMOS = ("sagemaker", "personalize", "bedrock", "amazonml", "vertex")
KEY = {"customerManagedKey": True}


def test_every_demo_pipeline_with_the_customer_managed_key_is_allowed_every_call() -> None:
    with LocalRuntime(stack_settings=KEY) as runtime:
        statuses = {
            name: runtime.run_file(SAMPLES / f"demo-{name}.csv", f"demo-{name}").event["detail"]["status"]  # type: ignore[index]
            for name in DEMOS
        }
        figures = runtime.permissions.to_json()

    assert statuses == dict.fromkeys(DEMOS, "SUCCEEDED")
    assert figures["denied"] == []
    # The services read and wrote through the key, as the role passed to them or as themselves (Amazon ML).
    acting = {name: seen["actions"] for name, seen in figures["principals"].items() if ".amazonaws.com" in name}
    assert {name.split(" ")[0] for name in acting} == {
        "sagemaker.amazonaws.com",
        "personalize.amazonaws.com",
        "bedrock.amazonaws.com",
        "machinelearning.amazonaws.com",
    }
    for actions in acting.values():
        assert {"kms:Decrypt", "kms:GenerateDataKey", "s3:GetObject", "s3:PutObject"} <= set(actions)


def test_a_bedrock_pipeline_on_an_inference_profile_is_allowed_every_call() -> None:
    pipelines = load_pipeline_context()
    bedrock = copy.deepcopy(pipelines["demo-bedrock"])
    bedrock["service"]["modelId"] = "us.anthropic.claude-3-haiku-20240307-v1:0"
    with LocalRuntime({"demo-bedrock": bedrock}) as runtime:
        result = runtime.run_file(SAMPLES / "demo-bedrock.csv", "demo-bedrock")

    assert result.event is not None and result.event["detail"]["status"] == "SUCCEEDED"
    assert result.permissions["denied"] == []
    assert "bedrock:CreateModelInvocationJob" in result.permissions["principals"]["SubmitJob"]["actions"]


def without_service_in_key_policy(template: dict[str, Any], service: str) -> dict[str, Any]:
    edited = copy.deepcopy(template)
    [key] = [r for r in edited["Resources"].values() if r["Type"] == "AWS::KMS::Key"]
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    kept = [s for s in statements if service not in str(s.get("Principal", {}))]
    assert len(kept) < len(statements), f"the key policy names no {service}"
    key["Properties"]["KeyPolicy"]["Statement"] = kept
    return edited


def test_the_key_policy_is_checked_for_a_service_acting_as_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the key policy without its statement for Amazon ML (which reads and writes S3 as its own principal)
    pipelines = {"demo-amazonml": load_pipeline_context()["demo-amazonml"]}
    real = synth.stack_template(pipelines, KEY)
    edited = without_service_in_key_policy(real, "machinelearning.amazonaws.com")
    monkeypatch.setattr(synth, "stack_template", lambda *_, **__: edited)
    # WHEN a file runs
    with LocalRuntime(pipelines, stack_settings=KEY) as runtime:
        result = runtime.run_file(SAMPLES / "demo-amazonml.csv", "demo-amazonml")

    # THEN Amazon ML could not read the staged input through the key, and the run did not succeed
    assert result.event is not None and result.event["detail"]["status"] == "FAILED"
    denied = result.permissions["denied"]
    assert denied and {d["principal"] for d in denied} == {"machinelearning.amazonaws.com for demo-amazonml"}
    assert {d["action"] for d in denied} <= {"kms:Decrypt", "kms:GenerateDataKey"}


def test_a_pipeline_without_a_role_runs_as_the_role_the_stack_creates_for_it() -> None:
    # Personalize and Bedrock pipelines may leave out roleArn: the stack creates the service role, and the local
    # runtime creates it from the same template, so the service's reads and writes are checked against it.
    pipelines = load_pipeline_context()
    chosen = {}
    for name in ("demo-personalize", "demo-bedrock"):
        chosen[name] = copy.deepcopy(pipelines[name])
        del chosen[name]["service"]["roleArn"]
    with LocalRuntime(chosen) as runtime:
        results = {name: runtime.run_file(SAMPLES / f"{name}.csv", name) for name in chosen}
        figures = runtime.permissions.to_json()
        created = {name: runtime.stack_policies.role(name).name for name in chosen}

    assert {name: r.event["detail"]["status"] for name, r in results.items()} == dict.fromkeys(chosen, "SUCCEEDED")  # type: ignore[index]
    assert figures["denied"] == []
    for name, role in created.items():
        [acting] = [key for key in figures["principals"] if f"for {name} as {role}" in key]
        assert {"s3:GetObject", "s3:PutObject"} <= set(figures["principals"][acting]["actions"])
