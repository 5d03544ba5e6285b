"""One synth of the real app for every stack test, plus helpers to read the template.

The app is built exactly as `cdk synth` builds it (cdk.json context, cdk-nag AwsSolutions on), with asset
bundling skipped: an unacknowledged cdk-nag finding fails the fixture, so every test here also proves the
stack is nag-clean. The fixture is session-scoped so the tests split by concern still share one synth.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk.assertions import Template  # noqa: E402

from stacks.app_factory import build_app, cdk_json_context  # noqa: E402
from stacks.batchline_stack import BatchlineStack  # noqa: E402

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="session")
def stack() -> BatchlineStack:
    _, built = build_app(bundle=False)
    return built


@pytest.fixture(scope="session")
def template(stack: BatchlineStack) -> Template:
    return Template.from_stack(stack)


def synth_with_pipelines(pipelines: dict[str, Any], **settings: Any) -> Template:
    """The app with other pipelines (cdk.json's feature flags kept), synthesized with cdk-nag on."""
    context = cdk_json_context()
    context["batchline"] = {"pipelines": pipelines, **settings}
    _, built = build_app(context, bundle=False)
    return Template.from_stack(built)


def resources(template: Template, kind: str) -> dict[str, Any]:
    return dict(template.find_resources(kind))


def logical_id(template: Template, kind: str, path_part: str) -> str:
    """The one resource of ``kind`` whose logical ID contains ``path_part`` (e.g. "Inbox")."""
    found = [name for name in resources(template, kind) if path_part in name]
    assert len(found) == 1, (kind, path_part, found)
    return found[0]


def policy_statements(template: Template, role_part: str | None = None) -> list[dict[str, Any]]:
    """Allow/Deny statements of the IAM policies, all or those attached to roles whose ID has ``role_part``."""
    found = []
    for policy in resources(template, "AWS::IAM::Policy").values():
        roles = json.dumps(policy["Properties"].get("Roles", []))
        if role_part is None or role_part in roles:
            found.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return found


def function_statements(template: Template, function: str) -> list[dict[str, Any]]:
    """Statements of one function's role (the roles are named <Function>Role)."""
    return policy_statements(template, f"Functions{function}Role")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def actions_of(statements: list[dict[str, Any]]) -> set[str]:
    return {action for statement in statements for action in as_list(statement["Action"])}
