"""Every AWS call a function makes in a local run is checked against its role in the synthesized stack.

The check can fail: with one grant taken out of the template ``cdk deploy`` would deploy, the run fails the way
AWS would fail it (AccessDenied naming principal, action and resource), and the failure event says so.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from batchline_local.cli import main
from batchline_local.permissions import synth
from batchline_local.runtime import LocalRuntime, load_pipeline_context
from tests.e2e.conftest import SAMPLES

pytestmark = pytest.mark.timeout(300)


def without_grant(template: dict[str, Any], role_part: str, action_prefix: str, resource_part: str) -> dict[str, Any]:
    """``template`` with every action starting with ``action_prefix`` removed from the statements that grant
    it on ``resource_part`` to the role whose logical ID holds ``role_part``; fails if there was none."""
    edited = copy.deepcopy(template)
    removed = 0
    for resource in edited["Resources"].values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        if role_part not in json.dumps(resource["Properties"].get("Roles", [])):
            continue
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            if resource_part not in json.dumps(statement.get("Resource")):
                continue
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            kept = [action for action in actions if not action.startswith(action_prefix)]
            removed += len(actions) - len(kept)
            statement["Action"] = kept or ["s3:GetBucketLocation"]  # a statement needs one action
    assert removed, f"no {action_prefix}* granted to {role_part} on {resource_part}"
    return edited


def test_a_grant_taken_out_of_the_template_fails_the_run_naming_principal_action_and_resource(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN the stack's template with AssembleOutput no longer allowed to write the results bucket
    pipelines = load_pipeline_context()
    real = synth.stack_template(pipelines)
    monkeypatch.setattr(
        synth,
        "stack_template",
        lambda *_, **__: without_grant(real, "AssembleOutput", "s3:PutObject", "StorageResults"),
    )
    # WHEN a demo file runs
    with LocalRuntime(pipelines) as runtime:
        result = runtime.run_file(SAMPLES / "demo-sagemaker.csv", "demo-sagemaker")

    # THEN the run fails where AWS would, with AWS's message, and nothing else was denied
    assert result.event is not None and result.event["detail"]["status"] == "FAILED"
    cause = result.event["detail"]["error"]["cause"]
    assert "assumed-role/batchline-local-AssembleOutput-role/AssembleOutput is not authorized to perform: " in cause
    assert "s3:PutObject on resource: arn:aws:s3:::batchline-local-results/demo-sagemaker/" in cause
    denied = result.permissions["denied"]
    assert denied and {d["principal"] for d in denied} == {"AssembleOutput"}
    assert {d["action"] for d in denied} == {"s3:PutObject"}


def test_a_function_calling_outside_its_grants_is_denied_while_others_are_allowed() -> None:
    with LocalRuntime() as runtime:
        checker = runtime.permissions
        # PrepareInput reads the inbox; it never writes the results bucket (only AssembleOutput and the
        # outcome steps do).
        checker.check("PrepareInput", "s3", "GetObject", {"Bucket": "batchline-local-inbox", "Key": "demo-sagemaker/x"})
        with pytest.raises(Exception, match="PrepareInput is not authorized to perform: s3:PutObject"):
            checker.check(
                "PrepareInput", "s3", "PutObject", {"Bucket": "batchline-local-results", "Key": "demo-sagemaker/x"}
            )


def test_local_run_writes_permissions_json_and_prints_it_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "local",
            "run",
            str(SAMPLES / "demo-personalize.csv"),
            "--pipeline",
            "demo-personalize",
            "--out",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out.splitlines()

    assert code == 0
    written = json.loads((tmp_path / "permissions.json").read_text())
    assert written["denied"] == [] and written["checked"] > 20
    # Each function that ran, and the state machine (its Lambda invocations and PutEvents), were checked.
    assert {"StartRun", "PrepareInput", "SubmitJob", "PollJob", "FinalizeRun", "StateMachine"} <= set(
        written["principals"]
    )
    assert "personalize:CreateBatchInferenceJob" in written["principals"]["SubmitJob"]["actions"]
    [line] = [line for line in out if line.startswith("permissions:")]
    assert f"{written['checked']} calls checked" in line and "none denied" in line
    assert line.endswith(str(tmp_path / "permissions.json"))
