"""The event contract in an EventBridge schema registry, so subscribers find it (and code bindings) beside the bus.

The schema is built at synth time from the same file the tests validate every event against
(lambdas/batchline/schemas/batch-prediction-event.v<N>.json), wrapped in the event envelope by
``batchline.events.registry_schema``: the registry takes JSON Schema draft 4 (or OpenAPI 3) and its schemas
describe whole events. Editing the file publishes a new version of the same registry schema on deploy; a
breaking change is a new file (v2), so a new schema name, and v1 subscribers keep theirs.
"""

from __future__ import annotations

import json
import re

from aws_cdk import aws_eventschemas as eventschemas
from batchline.events import SCHEMA_FILE, SOURCE, registry_schema
from constructs import Construct

# CreateSchema's limit on Content.
MAX_CONTENT = 100_000


def schema_name() -> str:
    """``batchline@BatchPredictionEvent-v1``: source@name as AWS names its own, version from the file name."""
    found = re.search(r"\.v(\d+)\.json$", SCHEMA_FILE.name)
    if not found:
        raise ValueError(f"{SCHEMA_FILE.name}: the event schema file name must end in .v<version>.json")
    return f"{SOURCE}@BatchPredictionEvent-v{found.group(1)}"


class EventSchema(Construct):
    """``registry`` and ``schema`` (JSONSchemaDraft4, the outcome event with its detail from the file)."""

    def __init__(self, scope: Construct, construct_id: str, *, registry_name: str) -> None:
        super().__init__(scope, construct_id)
        content = json.dumps(registry_schema(json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))), indent=2)
        if len(content) > MAX_CONTENT:
            raise ValueError(f"the event schema is {len(content)} characters, over the registry's {MAX_CONTENT}")
        self.registry = eventschemas.CfnRegistry(
            self,
            "Registry",
            registry_name=registry_name,
            description="Batchline: the events each run publishes on the project's bus",
        )
        self.schema = eventschemas.CfnSchema(
            self,
            "Schema",
            registry_name=self.registry.attr_registry_name,
            schema_name=schema_name(),
            type="JSONSchemaDraft4",
            content=content,
            description=f"The outcome event of a Batchline run (source {SOURCE}); detail as in docs/events.md",
        )
