"""The completion event: one per run, on the project's bus, with a versioned detail schema.

Schema: lambdas/batchline/schemas/batch-prediction-event.v1.json (documented in docs/events.md).
"""

from __future__ import annotations

import json
from typing import Any

from batchline.errors import EventNotDelivered

SOURCE = "batchline"
SCHEMA_VERSION = "1"
DETAIL_TYPES = {
    "SUCCEEDED": "Batch Prediction Succeeded",
    "PARTIALLY_SUCCEEDED": "Batch Prediction Partially Succeeded",
    "FAILED": "Batch Prediction Failed",
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


def outcome(detail: dict[str, Any]) -> dict[str, Any]:
    """What the state machine's PutEvents task publishes (``DetailType`` chosen from the status)."""
    return {"source": SOURCE, "detailType": DETAIL_TYPES[detail["status"]], "detail": detail}


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
