"""Shared test setup: never touch a real AWS account, and find the Lambda code the way Lambda does."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "lambdas"))
EVENT_SCHEMA = REPO_ROOT / "lambdas" / "batchline" / "schemas" / "batch-prediction-event.v1.json"

# Fake credentials before any boto3 client exists: a test can never reach a real account.
for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}.items():
    os.environ[_name] = _value
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(scope="module")
def no_aws_configuration(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A machine with no AWS setup at all (promise 4): no ``AWS_*`` variable, and a HOME with no ``~/.aws``.

    The tier-wide fake credentials above stay for the other tests; the CLI test modules take this instead
    (module scope, so a module's local runtime starts on that machine too), and a command that needs a region
    or credentials it should not fails here as on a fresh laptop. Yields HOME.
    """
    import boto3

    home = tmp_path_factory.mktemp("empty-home")
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.upper().startswith("AWS_"):
                patch.delenv(name)
        patch.setenv("HOME", str(home))
        patch.setattr(boto3, "DEFAULT_SESSION", None)  # none made under the tier's fake settings
        yield home


@pytest.fixture(scope="session")
def event_schema() -> dict[str, Any]:
    return json.loads(EVENT_SCHEMA.read_text())


@pytest.fixture(scope="session")
def validate_event(event_schema: dict[str, Any]) -> Any:
    """Validates an EventBridge event: the detail against the JSON Schema file (in the dialect it declares),
    and a delivered event (one with EventBridge's envelope) against the schema the stack publishes."""
    from batchline.events import registry_schema
    from jsonschema import FormatChecker
    from jsonschema.validators import validator_for

    detail_validator = validator_for(event_schema)(event_schema, format_checker=FormatChecker())
    published = registry_schema(event_schema)
    event_validator = validator_for(published)(published, format_checker=FormatChecker())
    detail_types = {
        "SUCCEEDED": "Batch Prediction Succeeded",
        "PARTIALLY_SUCCEEDED": "Batch Prediction Partially Succeeded",
        "FAILED": "Batch Prediction Failed",
    }

    def check(event: dict[str, Any]) -> None:
        assert event["source"] == "batchline"
        detail_validator.validate(event["detail"])
        assert event["detail-type"] == detail_types[event["detail"]["status"]]
        if "id" in event:  # delivered by EventBridge, not a PutEvents entry
            # moto's delivered events leave out "account", which EventBridge always sets.
            event_validator.validate({"account": "123456789012", **event})

    return check
