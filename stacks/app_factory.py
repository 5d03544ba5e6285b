"""Builds the CDK app from cdk.json's context: the same for `cdk synth`, `python app.py` and the tests."""

from __future__ import annotations

import json
import os
import sys
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
__all__ = ["ConfigError", "build_app", "cdk_json_context"]


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
    settings = parse_deployment_settings(app.node.try_get_context("batchline") or {})
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
