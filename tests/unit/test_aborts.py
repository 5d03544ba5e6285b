"""How ExecutionEnded reads an ended execution's history: which jobs to stop, and whether it was reported."""

from __future__ import annotations

import json
from typing import Any

from batchline.aborts import _cause, read_history, report_ended_execution

JOBS = {"bucket": "w", "key": "p/r/state/jobs.json"}


def exited(name: str, output: dict[str, Any]) -> dict[str, Any]:
    return {"type": "TaskStateExited", "stateExitedEventDetails": {"name": name, "output": json.dumps(output)}}


def entered(name: str) -> dict[str, Any]:
    return {"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": name, "input": "{}"}}


def newest_first(*events: dict[str, Any]) -> list[dict[str, Any]]:
    return list(reversed(events))


def test_a_cut_upload_takes_its_jobs_from_merge_shards_not_from_prepare_input() -> None:
    history = newest_first(
        exited("PrepareInput", {"prepared": {"runId": "r", "fanOut": {"shards": 3}}}),
        exited("MergeShards", {"prepared": {"runId": "r", "fanOut": {"shards": 3, "redo": 1}}}),  # another round
        exited("MergeShards", {"prepared": {"runId": "r", "jobsFile": JOBS}}),
        entered("RunJobs"),
    )
    ended = read_history(history)
    assert ended.prepared is not None and ended.prepared["jobsFile"] == JOBS
    assert not ended.reported


def test_a_failure_no_catch_handles_is_reported_with_its_error_and_cause() -> None:
    history = newest_first(
        exited("PrepareInput", {"prepared": {"runId": "r", "jobsFile": JOBS}}),
        entered("RunJobs"),
        {
            "type": "ExecutionFailed",
            "executionFailedEventDetails": {"error": "States.DataLimitExceeded", "cause": "the state is too large"},
        },
    )
    ended = read_history(history)
    assert ended.failure == {"error": "States.DataLimitExceeded", "cause": "the state is too large"}
    assert _cause("run-1", "FAILED", ended.failure) == (
        "execution run-1 failed with States.DataLimitExceeded, which the state machine cannot catch: "
        "the state is too large"
    )


class History:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events

    def get_paginator(self, name: str) -> Any:
        assert name == "get_execution_history"
        events = self.events

        class Pages:
            def paginate(self, **_: Any) -> list[dict[str, Any]]:
                return [{"events": events}]

        return Pages()


class Clients:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.stepfunctions = History(events)


def test_a_run_that_failed_while_publishing_its_outcome_is_reported_by_the_rule() -> None:
    # GIVEN an outcome too large to publish: PublishOutcome was entered, but never left
    history = newest_first(
        exited("FinalizeRun", {}),
        entered("PublishOutcome"),
        {"type": "ExecutionFailed", "executionFailedEventDetails": {"error": "States.DataLimitExceeded"}},
    )
    assert not read_history(history).reported


def test_a_failed_execution_that_reported_itself_is_left_alone() -> None:
    # GIVEN an execution that failed at its own RunFailed state after ReportFailure published the failure event
    history = newest_first(
        exited("PrepareInput", {"prepared": {"runId": "r", "jobsFile": JOBS}}),
        entered("ReportFailure"),
        exited("ReportFailure", {}),
        exited("PublishFailure", {}),
        {"type": "ExecutionFailed", "executionFailedEventDetails": {"error": "JobFailed", "cause": "x"}},
    )
    event = {"detail": {"status": "FAILED", "executionArn": "arn", "name": "r", "input": "{}"}}
    result, failure = report_ended_execution(
        event,
        pipelines=None,  # type: ignore[arg-type]  # never reached
        deployment=None,  # type: ignore[arg-type]
        clients=Clients(history),  # type: ignore[arg-type]
    )
    assert failure is None and result["handled"] is False
