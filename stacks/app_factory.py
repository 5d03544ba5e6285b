"""Builds the CDK app from cdk.json's context: the same for `cdk synth`, `python app.py` and the tests."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lambdas"))  # the batchline package, as the Lambdas import it

from batchline.config import parse_pipelines  # noqa: E402

from stacks.batchline_stack import BatchlineStack  # noqa: E402


def cdk_json_context() -> dict[str, Any]:
    """cdk.json's context (feature flags and pipelines); `python app.py` and pytest do not read it themselves."""
    return dict(json.loads((ROOT / "cdk.json").read_text())["context"])


def build_app(context: dict[str, Any] | None = None, *, bundle: bool = True) -> tuple[App, BatchlineStack]:
    """The app with cdk-nag's AwsSolutions checks; a bad pipeline config raises ConfigError naming it."""
    merged = {**cdk_json_context(), **(context or {})}
    if not bundle:
        merged["aws:cdk:bundling-stacks"] = []
    app = App(context=merged)
    settings = app.node.try_get_context("batchline") or {}
    pipelines = parse_pipelines(settings.get("pipelines") or {})
    stack_name = settings.get("stackName", "Batchline")
    stack = BatchlineStack(
        app,
        stack_name,
        pipelines=pipelines,
        customer_managed_key=bool(settings.get("customerManagedKey", False)),
        description="Batchline: batch predictions on AWS",
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack
