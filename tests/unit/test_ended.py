"""ExecutionEnded: which ended executions it reports (batchline.history reads their histories)."""

from __future__ import annotations

import json
from typing import Any

from batchline.steps.ended import report_ended_execution

JOBS = {"bucket": "w", "key": "p/r/state/jobs.json"}


def exited(name: str, output: dict[str, Any]) -> dict[str, Any]:
    return {"type": "TaskStateExited", "stateExitedEventDetails": {"name": name, "output": json.dumps(output)}}


def entered(name: str) -> dict[str, Any]:
    return {"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": name, "input": "{}"}}


class History:
    """A Step Functions client whose one execution has ``events`` (oldest first), given newest first."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = [{"id": number, **event} for number, event in enumerate(events, start=1)]

    def get_execution_history(self, **request: Any) -> dict[str, Any]:
        assert request["reverseOrder"] is True
        return {"events": list(reversed(self.events))}


class Clients:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.stepfunctions = History(events)


def test_a_failed_execution_that_reported_itself_is_left_alone() -> None:
    # GIVEN an execution that failed at its own RunFailed state after ReportFailure published the failure event
    history = [
        exited("PrepareInput", {"prepared": {"runId": "r", "jobsFile": JOBS}}),
        entered("ReportFailure"),
        exited("ReportFailure", {}),
        exited("PublishFailure", {}),
        {"type": "ExecutionFailed", "executionFailedEventDetails": {"error": "JobFailed", "cause": "x"}},
    ]
    event = {"detail": {"status": "FAILED", "executionArn": "arn", "name": "r", "input": "{}"}}
    result, failure = report_ended_execution(
        event,
        pipelines=None,  # type: ignore[arg-type]  # never reached
        deployment=None,  # type: ignore[arg-type]
        clients=Clients(history),  # type: ignore[arg-type]
    )
    assert failure is None and result["handled"] is False
