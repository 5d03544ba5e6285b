"""Executions that end without reaching ReportFailure: stopped by hand (ABORTED), past their own timeout
(TIMED_OUT), or FAILED by an error no Catch handles (States.DataLimitExceeded, States.Runtime...).

An EventBridge rule on "Step Functions Execution Status Change" brings them here: the service jobs the run
started are stopped (their names are deterministic), rejected rows are kept, and the failure event is
published, so every run ends in exactly one clear event. A FAILED execution that published its outcome itself
(through ReportFailure, or the bare failure event when that failed) is left alone.
"""

from __future__ import annotations

import json
from typing import Any

from batchline.clients import AwsClients
from batchline.config import Deployment, Pipelines
from batchline.events import put_outcome
from batchline.history import Ending, read_history
from batchline.s3io import object_exists, put_bytes
from batchline.steps.finalize import report_failure

ENDED = {"ABORTED": "ExecutionAborted", "TIMED_OUT": "ExecutionTimedOut", "FAILED": "ExecutionFailed"}


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
    history = read_history(clients.stepfunctions, detail["executionArn"])
    if history.reported:
        return {"handled": False, "status": status, "reason": "the state machine reported this run itself"}, None
    execution_input = json.loads(detail.get("input") or "{}")
    marker = deployment.layout(execution_input["pipeline"], execution_input["runId"]).ended_report
    if object_exists(clients.s3, marker):
        return {"handled": False, "status": status, "reason": "already reported (a repeated delivery)"}, None
    state = {
        **execution_input,
        "prepared": history.prepared,
        "error": {"Error": ENDED[status], "Cause": _cause(detail["name"], status, history.ending)},
    }
    failure = report_failure(state, pipelines=pipelines, deployment=deployment, clients=clients)
    put_outcome(clients.events, deployment.event_bus_name, failure)
    put_bytes(clients.s3, marker, json.dumps({"status": status}).encode(), "application/json")
    summary = {"handled": True, "runId": execution_input.get("runId"), "error": failure["detail"]["error"]}
    return summary, failure["detail"]


def _cause(name: str, status: str, ending: Ending | None) -> str:
    if status == "ABORTED":
        return f"execution {name} was stopped by hand (status ABORTED)"
    if status == "TIMED_OUT":
        return f"execution {name} timed out (status TIMED_OUT)"
    error = (ending.error if ending else None) or "an unknown error"
    cause = (ending.cause if ending else None) or "no cause given"
    return f"execution {name} failed with {error}, which the state machine cannot catch: {cause}"
