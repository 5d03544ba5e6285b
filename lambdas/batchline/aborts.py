"""Executions stopped by hand (ABORTED) or by their own timeout (TIMED_OUT) never reach ReportFailure.

An EventBridge rule on "Step Functions Execution Status Change" brings them here: the service jobs the run
started are stopped (their names are deterministic), rejected rows are kept, and the failure event is
published, so even a stopped run ends in exactly one clear event.
"""

from __future__ import annotations

import json
from typing import Any

from batchline.clients import AwsClients
from batchline.config import Pipelines
from batchline.events import put_outcome
from batchline.flow import Deployment, report_failure

ENDED = {"ABORTED": "ExecutionAborted", "TIMED_OUT": "ExecutionTimedOut"}


def prepared_from_history(stepfunctions: Any, execution_arn: str) -> dict[str, Any] | None:
    """What PrepareInput returned, from the execution's history (None when it never finished)."""
    paginator = stepfunctions.get_paginator("get_execution_history")
    for page in paginator.paginate(executionArn=execution_arn, reverseOrder=True):
        for event in page["events"]:
            details = event.get("stateExitedEventDetails")
            if event["type"] == "TaskStateExited" and details and details["name"] == "PrepareInput":
                prepared = json.loads(details.get("output") or "{}").get("prepared")
                return dict(prepared) if prepared else None
    return None


def ended_run_keys(event: dict[str, Any]) -> dict[str, Any]:
    """The run ID (the execution name) and pipeline of a status-change event, for log correlation."""
    detail = event["detail"]
    try:
        execution_input = json.loads(detail.get("input") or "{}")
    except ValueError:
        execution_input = {}
    return {"run_id": detail.get("name"), "pipeline": execution_input.get("pipeline")}


def report_ended_execution(
    event: dict[str, Any], *, pipelines: Pipelines, deployment: Deployment, clients: AwsClients
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """What was done (the handler's result) and the failure event's detail (None when nothing was)."""
    detail = event["detail"]
    status = detail["status"]
    if status not in ENDED:
        return {"handled": False, "status": status}, None
    execution_input = json.loads(detail.get("input") or "{}")
    how = "stopped by hand" if status == "ABORTED" else "timed out"
    state = {
        **execution_input,
        "prepared": prepared_from_history(clients.stepfunctions, detail["executionArn"]),
        "error": {
            "Error": ENDED[status],
            "Cause": f"execution {detail['name']} was {how} (status {status}); its service jobs were stopped",
        },
    }
    failure = report_failure(state, pipelines=pipelines, deployment=deployment, clients=clients)
    put_outcome(clients.events, deployment.event_bus_name, failure)
    summary = {"handled": True, "runId": execution_input.get("runId"), "error": failure["detail"]["error"]}
    return summary, failure["detail"]
