"""A probe Lambda for tests/e2e/test_step_functions_limits.py: returns a payload of the size it is asked for."""

from __future__ import annotations

import json
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"blob": "xx..."}`` whose compact JSON is exactly ``event["bytes"]`` bytes of UTF-8."""
    overhead = len(json.dumps({"blob": ""}, separators=(",", ":")))
    return {"blob": "x" * (int(event["bytes"]) - overhead)}
