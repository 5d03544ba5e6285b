"""customerManagedKey: the key lets in what reads and writes the encrypted data, inside the stack and out."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Template

from tests.stacks.conftest import as_list, resources, synth_with_pipelines

MODEL_ROLE = "arn:aws:iam::123456789012:role/churn-model"
PERSONALIZE_ROLE = "arn:aws:iam::123456789012:role/rec"
BEDROCK_ROLE = "arn:aws:iam::123456789012:role/gen"
VIA_S3 = {"StringEquals": {"kms:ViaService": {"Fn::Join": ["", ["s3.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}}}


@pytest.fixture(scope="module")
def key_policy() -> list[dict[str, Any]]:
    template = synth_with_pipelines(
        {
            "churn": {
                "keyColumn": "id",
                "service": {"provider": "sagemaker", "modelName": "churn", "modelExecutionRoleArn": MODEL_ROLE},
            },
            "rec": {
                "keyColumn": "userId",
                "service": {
                    "provider": "personalize",
                    "recipe": "USER_PERSONALIZATION",
                    "solutionVersionArn": "arn:aws:personalize:us-east-1:123456789012:solution/x/abc",
                    "roleArn": PERSONALIZE_ROLE,
                },
            },
            "gen": {
                "keyColumn": "id",
                "service": {
                    "provider": "bedrock",
                    "modelId": "amazon.nova-lite-v1:0",
                    "roleArn": BEDROCK_ROLE,
                    "promptColumn": "q",
                },
            },
            "legacy": {
                "keyColumn": "id",
                "service": {"provider": "amazonml", "mlModelId": "ml-1", "modelType": "BINARY"},
            },
        },
        customerManagedKey=True,
    )
    key = next(iter(resources(template, "AWS::KMS::Key").values()))
    return list(key["Properties"]["KeyPolicy"]["Statement"])


def _for(statements: list[dict[str, Any]], principal: dict[str, str]) -> dict[str, Any]:
    """The one statement naming ``principal`` (CDK merges statements that differ only in their principals)."""
    ((kind, name),) = principal.items()
    found = [s for s in statements if name in as_list(s.get("Principal", {}).get(kind, []))]
    assert len(found) == 1, (principal, found)
    return found[0]


@pytest.mark.parametrize("role", [MODEL_ROLE, BEDROCK_ROLE])
def test_a_pipelines_own_role_may_use_the_key_through_s3_only(key_policy: list[dict[str, Any]], role: str) -> None:
    statement = _for(key_policy, {"AWS": role})
    assert set(as_list(statement["Action"])) == {"kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"}
    assert statement["Condition"] == VIA_S3


def test_personalize_and_its_role_get_what_its_guide_lists_the_service_for_this_account_only(
    key_policy: list[dict[str, Any]],
) -> None:
    documented = {"kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey", "kms:CreateGrant", "kms:ListGrants"}
    assert set(as_list(_for(key_policy, {"AWS": PERSONALIZE_ROLE})["Action"])) == documented
    service = _for(key_policy, {"Service": "personalize.amazonaws.com"})
    assert set(as_list(service["Action"])) == documented
    assert service["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_amazon_ml_may_use_the_key_through_s3_only(key_policy: list[dict[str, Any]]) -> None:
    statement = _for(key_policy, {"Service": "machinelearning.amazonaws.com"})
    assert set(as_list(statement["Action"])) == {"kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"}
    assert statement["Condition"] == VIA_S3


def test_without_a_key_nothing_outside_the_stack_is_named(template: Template) -> None:
    assert not resources(template, "AWS::KMS::Key")
