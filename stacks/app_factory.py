"""Builds the CDK app from cdk.json's context: the same for `cdk synth`, `python app.py` and the tests."""

from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lambdas"))  # the batchline package, as the Lambdas import it

from batchline.config import parse_pipelines  # noqa: E402
from batchline.errors import ConfigError  # noqa: E402

from stacks.batchline_stack import BatchlineStack  # noqa: E402
from stacks.settings import parse_deployment_settings  # noqa: E402

# How the cdk CLI hands the app its context (cdk.json, cdk.context.json, -c): inline, or in a file when large.
CLI_CONTEXT_ENV = ("CDK_CONTEXT_JSON", "CONTEXT_OVERFLOW_LOCATION_ENV")
# Feature flags the stack is written for (cdk.json has them too, with the other recommended ones): without
# this one, CDK grants S3 log delivery with an ACL, which the access-log bucket (ACLs disabled) refuses.
REQUIRED_FEATURE_FLAGS = {"@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True}
# The app's own settings: context "batchline" (cdk.json), and any "batchline.<setting>" key `-c` gives.
SETTINGS_KEY = "batchline"
__all__ = ["ConfigError", "batchline_context", "build_app", "cdk_json_context"]


def cdk_json_context() -> dict[str, Any]:
    """cdk.json's context (feature flags and pipelines); `python app.py` and pytest do not read it themselves."""
    return dict(json.loads((ROOT / "cdk.json").read_text())["context"])


def build_app(context: dict[str, Any] | None = None, *, bundle: bool = True) -> tuple[App, BatchlineStack]:
    """The app with cdk-nag's AwsSolutions checks; a bad pipeline config raises ConfigError naming it.

    Under the cdk CLI, App() already receives cdk.json's context from the CLI, so cdk.json is read here only
    when the CLI is not involved (`python app.py`, tests): one source per run, and the CLI's `-c` still wins.
    ``context`` entries replace top-level keys (tests pass a whole ``batchline`` object).
    """
    from_cli = any(os.environ.get(name) for name in CLI_CONTEXT_ENV)
    merged = {**REQUIRED_FEATURE_FLAGS, **({} if from_cli else cdk_json_context()), **(context or {})}
    if not bundle:
        merged["aws:cdk:bundling-stacks"] = []  # no asset bundling (no pip download) in tests
    app = App(context=merged)
    settings = parse_deployment_settings(batchline_context(app.node.get_all_context()))
    pipelines = parse_pipelines(settings.pipelines)
    stack = BatchlineStack(
        app,
        settings.stack_name,
        pipelines=pipelines,
        settings=settings,
        description="Batchline: batch predictions on AWS",
    )
    # cdk-nag 3 is a policy-validation plugin (Aspects.of(app).add(...) fails at synth in v3): findings are
    # errors that fail synth unless acknowledged, and land in cdk.out/validation-report.json.
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack


def batchline_context(context: Mapping[str, Any]) -> dict[str, Any]:
    """Context ``batchline``, with each ``-c batchline.<setting>=VALUE`` set in it (a dotted path, any depth).

    The cdk CLI does not split a dotted ``-c`` key: ``-c batchline.stackName=X`` reaches the app as a top-level
    key literally named ``batchline.stackName``, with the string ``X``, beside cdk.json's ``batchline`` object
    (aws-cdk's parseStringContextListToObject). A value that reads as JSON (``true``, ``6``, ``{"a": 1}``) is
    taken as that value, so ``-c batchline.customerManagedKey=true`` is a boolean; anything else stays text.
    """
    raw = context.get(SETTINGS_KEY) or {}
    settings = _json_value(raw) if isinstance(raw, str) else copy.deepcopy(raw)  # -c batchline={...}
    if not isinstance(settings, dict):
        raise ConfigError(f"context {SETTINGS_KEY!r} must be an object, got {type(settings).__name__}")
    for key in sorted(name for name in context if name.startswith(f"{SETTINGS_KEY}.")):  # parents first
        *parents, setting = key.split(".")[1:]
        if not setting or not all(parents):
            raise ConfigError(f"-c {key}: not a setting path (batchline.<setting>[.<field>...])")
        node = settings
        for depth, part in enumerate(parents, start=2):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join(key.split(".")[:depth])
                raise ConfigError(f"-c {key}: {where} is {json.dumps(child)}, not an object with fields")
            node = child
        node[setting] = _json_value(context[key])
    return settings


def _json_value(value: Any) -> Any:
    """``-c`` values are strings: JSON ones become what they say; other text (a stack name) stays text."""
    if not isinstance(value, str):
        return value

    def refuse(constant: str) -> Any:
        raise ValueError(constant)  # NaN, Infinity: a name, not a number

    try:
        return json.loads(value, parse_constant=refuse)
    except ValueError:
        return value
