"""The completion event: one per run, on the project's bus, with a versioned detail schema.

Schema: lambdas/batchline/schemas/batch-prediction-event.v1.json (documented in docs/events.md), published by
the stack in an EventBridge schema registry as ``registry_schema`` wraps it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from batchline.errors import EventNotDelivered

SOURCE = "batchline"
SCHEMA_VERSION = "1"
DETAIL_TYPES = {
    "SUCCEEDED": "Batch Prediction Succeeded",
    "PARTIALLY_SUCCEEDED": "Batch Prediction Partially Succeeded",
    "FAILED": "Batch Prediction Failed",
}
# The detail's JSON Schema; the version in its name is the detail's schemaVersion.
SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / f"batch-prediction-event.v{SCHEMA_VERSION}.json"
DRAFT_4 = "http://json-schema.org/draft-04/schema#"
ENVELOPE_FIELDS = ("version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail")


def registry_schema(detail_schema: dict[str, Any]) -> dict[str, Any]:
    """The whole event as an EventBridge schema registry entry describes one: the envelope, with our detail.

    The registry accepts OpenAPI 3 and JSON Schema draft 4 only, and its schemas describe whole events (as
    the aws.events registry's do), so the detail schema sits under ``properties.detail`` unchanged except for
    ``$schema``, which draft 4 allows only at the root.
    """
    if detail_schema.get("$schema") != DRAFT_4:
        raise ValueError(f"the detail schema must declare {DRAFT_4} (the registry's dialect)")
    detail = {key: value for key, value in detail_schema.items() if key != "$schema"}
    return {
        "$schema": DRAFT_4,
        "title": "BatchPredictionEvent",
        "description": f"A Batchline run's outcome event on the project's bus, detail schemaVersion {SCHEMA_VERSION}.",
        "type": "object",
        "x-amazon-events-source": SOURCE,
        "required": list(ENVELOPE_FIELDS),
        "properties": {
            "version": {"type": "string"},
            "id": {"type": "string"},
            "detail-type": {"enum": list(DETAIL_TYPES.values())},
            "source": {"enum": [SOURCE]},
            "account": {"type": "string", "pattern": "^[0-9]{12}$"},
            "time": {"type": "string", "format": "date-time"},
            "region": {"type": "string"},
            "resources": {"type": "array", "items": {"type": "string"}},
            "detail": detail,
        },
    }


def outcome_status(counts: dict[str, int]) -> str:
    """Any rejected or failed record makes a run partial; the keyed CSV still holds every good row."""
    if counts.get("predicted", 0) == 0:
        return "FAILED"
    if counts.get("rejected", 0) or counts.get("failed", 0):
        return "PARTIALLY_SUCCEEDED"
    return "SUCCEEDED"


def build_detail(
    *,
    status: str,
    run_id: str,
    pipeline: str,
    provider: str | None,
    runtime: str,
    input_object: dict[str, Any],
    jobs: list[dict[str, Any]],
    counts: dict[str, int],
    outputs: dict[str, str | None],
    timings: dict[str, Any],
    error: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "schemaVersion": SCHEMA_VERSION,
        "status": status,
        "runId": run_id,
        "pipeline": pipeline,
        "provider": provider,
        "runtime": runtime,
        "input": input_object,
        "jobs": jobs,
        "counts": counts,
        "outputs": outputs,
        "timings": timings,
        "error": error,
    }


# Jobs an event lists: the event and the state carrying it stay small at any number of jobs (EventBridge and
# Step Functions both stop at 256 KiB); manifest.json lists every job.
EVENT_JOBS = 25


def outcome(detail: dict[str, Any]) -> dict[str, Any]:
    """What the state machine's PutEvents task publishes (``DetailType`` chosen from the status): the detail
    with at most EVENT_JOBS jobs, those that did not succeed first, and ``jobCount`` saying how many there are."""
    jobs = list(detail.get("jobs") or [])
    if len(jobs) > EVENT_JOBS:
        jobs = sorted(jobs, key=lambda job: job.get("status") == "SUCCEEDED")[:EVENT_JOBS]
    shown = {**detail, "jobs": jobs, "jobCount": len(detail.get("jobs") or [])}
    return {"source": SOURCE, "detailType": DETAIL_TYPES[shown["status"]], "detail": shown}


def put_outcome(events_client: Any, bus_name: str, event: dict[str, Any]) -> None:
    """Publish an outcome from a Lambda (the state machine publishes with its own PutEvents task)."""
    response = events_client.put_events(
        Entries=[
            {
                "EventBusName": bus_name,
                "Source": event["source"],
                "DetailType": event["detailType"],
                "Detail": json.dumps(event["detail"]),
            }
        ]
    )
    if response.get("FailedEntryCount"):
        raise EventNotDelivered(f"EventBridge refused the {event['detailType']} event: {response['Entries']}")
