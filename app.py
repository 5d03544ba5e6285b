#!/usr/bin/env python3
"""CDK entry point: `npx cdk synth` / `npx cdk deploy` (or `python app.py`)."""

from stacks.app_factory import build_app

app, _ = build_app()
app.synth()
