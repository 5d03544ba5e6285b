"""A probe Lambda for tests/e2e/test_function_environment.py: reports the environment its invocation sees."""

from __future__ import annotations

import os
import time
from typing import Any

import botocore.session


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    first = os.environ["PROBE"]
    time.sleep(0.002)  # give other threads a chance to run in between
    return {
        "item": os.environ["PROBE"],
        "first": first,
        "getenv": os.getenv("PROBE"),
        "get": os.environ.get("PROBE"),
        "inCopy": os.environ.copy().get("PROBE"),
        # botocore's config providers read os.environ when a session is made (AWS_MAX_ATTEMPTS -> max_attempts)
        "botocoreMaxAttempts": botocore.session.Session().get_config_variable("max_attempts"),
        "region": os.environ["AWS_REGION"],
    }
