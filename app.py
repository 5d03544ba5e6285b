#!/usr/bin/env python3
"""CDK entry point: `npx cdk synth` / `npx cdk deploy` (or `python app.py`)."""

import sys

from stacks.app_factory import ConfigError, build_app

try:
    app, _ = build_app()
except ConfigError as exc:
    # The message names the pipeline and the field; a traceback would bury it.
    sys.exit(f"Batchline configuration error (cdk.json context 'batchline'):\n{exc}")
app.synth()
