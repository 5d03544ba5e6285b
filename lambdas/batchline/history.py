"""What a run's execution history says about it: the one reader of it.

Two callers read the same facts: ExecutionEnded (steps/ended.py), for a run that ended without reporting itself,
and the CLI, while it follows a run. Both need the state the run reached, the facts Prepare wrote (where the
jobs are, how many records), whether the state machine published the outcome itself, and how the execution
ended; reading them in one place keeps the two from disagreeing about which step holds what.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Their output's ``prepared`` carries the run's facts once the input is staged: PrepareInput for a whole-file
# read, MergeShards for a cut one (which may instead ask for another round of shards).
PREPARE_STEPS = ("PrepareInput", "MergeShards")
# Their output's ``outcome.detail`` is the event the run publishes.
OUTCOME_STEPS = ("FinalizeRun", "ReportFailure")
# Leaving one of these means the state machine published the run's outcome itself (or kept it in the queue of
# events EventBridge refused).
REPORTING_STEPS = (
    "PublishOutcome",
    "PublishFailure",
    "PublishBareFailure",
    "KeepUndeliveredOutcome",
    "KeepUndeliveredFailure",
)
ENDING_DETAILS = {
    "ExecutionFailed": "executionFailedEventDetails",
    "ExecutionAborted": "executionAbortedEventDetails",
    "ExecutionTimedOut": "executionTimedOutEventDetails",
}
# A page of history as large as the API gives: following a run costs one call per look however long it is.
PAGE_EVENTS = 1000


@dataclass(frozen=True)
class Ending:
    """How the execution ended when it did not succeed: the history event and its error and cause, if any."""

    event: str
    error: str | None
    cause: str | None

    def to_json(self) -> dict[str, str]:
        return {"error": self.error or self.event, "cause": self.cause or ""}


@dataclass
class RunHistory:
    """The run as its history tells it so far; ``add`` takes each event once, in any order."""

    last_id: int = 0
    state: str | None = None  # the state entered last
    prepared: dict[str, Any] | None = None  # the run's facts once staged (``$.prepared`` naming its jobs file)
    outcome: dict[str, Any] | None = None  # the event detail FinalizeRun or ReportFailure built
    reported: bool = False  # the state machine published the outcome itself
    ending: Ending | None = None

    def add(self, events: Iterable[dict[str, Any]]) -> None:
        for event in sorted(events, key=lambda e: int(e["id"])):
            if int(event["id"]) <= self.last_id:
                continue
            self.last_id = int(event["id"])
            kind = event["type"]
            if kind.endswith("StateEntered"):
                self.state = event["stateEnteredEventDetails"]["name"]
            elif kind.endswith("StateExited"):
                self._exited(event["stateExitedEventDetails"])
            elif kind in ENDING_DETAILS:
                details = event.get(ENDING_DETAILS[kind]) or {}
                self.ending = Ending(kind, details.get("error"), details.get("cause"))

    @property
    def counts(self) -> dict[str, int]:
        return dict((self.prepared or {}).get("counts") or {})

    @property
    def job_count(self) -> int | None:
        count = (self.prepared or {}).get("jobCount")
        return int(count) if count is not None else None

    def _exited(self, details: dict[str, Any]) -> None:
        name = details["name"]
        if name in REPORTING_STEPS:
            self.reported = True
        if name not in (*PREPARE_STEPS, *OUTCOME_STEPS):
            return
        try:
            output = json.loads(details.get("output") or "{}")
        except ValueError:  # an output too large for the history is cut short: a later look will do
            return
        prepared = output.get("prepared")
        if name in PREPARE_STEPS and isinstance(prepared, dict) and prepared.get("jobsFile"):
            self.prepared = prepared
        elif name in OUTCOME_STEPS and isinstance(output.get("outcome"), dict):
            self.outcome = output["outcome"].get("detail")


def read_history(stepfunctions: Any, execution_arn: str, history: RunHistory | None = None) -> RunHistory:
    """``history`` with the events it has not seen added: newest first, stopping at the page that reaches known
    ones (an execution has at most 25,000 events)."""
    history = history if history is not None else RunHistory()
    fresh: list[dict[str, Any]] = []
    request: dict[str, Any] = {"executionArn": execution_arn, "reverseOrder": True, "maxResults": PAGE_EVENTS}
    while True:
        page = stepfunctions.get_execution_history(**request)
        events = page["events"]
        new = [event for event in events if int(event["id"]) > history.last_id]
        fresh.extend(new)
        if len(new) < len(events) or not page.get("nextToken"):
            break
        request["nextToken"] = page["nextToken"]
    history.add(fresh)
    return history
