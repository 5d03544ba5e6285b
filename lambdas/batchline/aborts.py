"""Executions that end without reaching ReportFailure: stopped by hand (ABORTED), past their own timeout
(TIMED_OUT), or FAILED by an error no Catch handles (States.DataLimitExceeded, States.Runtime...).

An EventBridge rule on "Step Functions Execution Status Change" brings them here: the service jobs the run
started are stopped (their names are deterministic), rejected rows are kept, and the failure event is
published, so every run ends in exactly one clear event. A FAILED execution that published its outcome itself
(through ReportFailure, or the bare failure event when that failed) is left alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from batchline.clients import AwsClients
from batchline.config import Pipelines
from batchline.events import put_outcome
from batchline.finalize import report_failure
from batchline.flow import Deployment
from batchline.s3io import object_exists, put_bytes

ENDED = {"ABORTED": "ExecutionAborted", "TIMED_OUT": "ExecutionTimedOut", "FAILED": "ExecutionFailed"}
# The steps that hold the run's jobs when they exit: PrepareInput for a whole-file read, MergeShards for a cut one.
_PREPARING = ("PrepareInput", "MergeShards")
# Leaving one of these means the state machine published the run's outcome itself (or kept it in the queue of
# events EventBridge refused).
_REPORTED = (
    "PublishOutcome",
    "PublishFailure",
    "PublishBareFailure",
    "KeepUndeliveredOutcome",
    "KeepUndeliveredFailure",
)


@dataclass
class EndedRun:
    """What the execution's history says about how the run got where it ended."""

    prepared: dict[str, Any] | None = None  # the last run facts naming its jobs file ("jobsFile")
    reported: bool = False  # the state machine published the outcome itself
    failure: dict[str, Any] | None = None  # the ExecutionFailed event's error and cause


def read_history(events: Iterable[dict[str, Any]]) -> EndedRun:
    """One pass over the history, newest event first."""
    run = EndedRun()
    for event in events:
        kind = event["type"]
        if kind == "ExecutionFailed" and run.failure is None:
            run.failure = dict(event.get("executionFailedEventDetails") or {})
        exited = event.get("stateExitedEventDetails")
        if exited and exited.get("name") in _REPORTED:
            run.reported = True
        if run.prepared is None and exited and exited.get("name") in _PREPARING:
            prepared = json.loads(exited.get("output") or "{}").get("prepared")
            if prepared and prepared.get("jobsFile"):  # MergeShards may ask for another round instead
                run.prepared = dict(prepared)
    return run


def history_of(stepfunctions: Any, execution_arn: str) -> Iterable[dict[str, Any]]:
    paginator = stepfunctions.get_paginator("get_execution_history")
    for page in paginator.paginate(executionArn=execution_arn, reverseOrder=True):
        yield from page["events"]


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
    ended = read_history(history_of(clients.stepfunctions, detail["executionArn"]))
    if ended.reported:
        return {"handled": False, "status": status, "reason": "the state machine reported this run itself"}, None
    execution_input = json.loads(detail.get("input") or "{}")
    marker = deployment.layout(execution_input["pipeline"], execution_input["runId"]).ended_report
    if object_exists(clients.s3, marker):
        return {"handled": False, "status": status, "reason": "already reported (a repeated delivery)"}, None
    state = {
        **execution_input,
        "prepared": ended.prepared,
        "error": {"Error": ENDED[status], "Cause": _cause(detail["name"], status, ended.failure)},
    }
    failure = report_failure(state, pipelines=pipelines, deployment=deployment, clients=clients)
    put_outcome(clients.events, deployment.event_bus_name, failure)
    put_bytes(clients.s3, marker, json.dumps({"status": status}).encode(), "application/json")
    summary = {"handled": True, "runId": execution_input.get("runId"), "error": failure["detail"]["error"]}
    return summary, failure["detail"]


def _cause(name: str, status: str, failure: dict[str, Any] | None) -> str:
    if status == "ABORTED":
        return f"execution {name} was stopped by hand (status ABORTED)"
    if status == "TIMED_OUT":
        return f"execution {name} timed out (status TIMED_OUT)"
    error = (failure or {}).get("error") or "an unknown error"
    cause = (failure or {}).get("cause") or "no cause given"
    return f"execution {name} failed with {error}, which the state machine cannot catch: {cause}"
