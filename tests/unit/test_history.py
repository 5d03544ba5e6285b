"""The one reader of a run's execution history, as ExecutionEnded and the CLI both use it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
from batchline.history import RunHistory, read_history
from batchline.steps.ended import _cause
from botocore.stub import Stubber

REGION = "eu-west-1"
ARN = f"arn:aws:states:{REGION}:123456789012:execution:Batchline-Orchestration:run-1"
JOBS = {"bucket": "w", "key": "p/r/state/jobs.json"}
FACTS = {"runId": "r", "jobsFile": JOBS, "jobCount": 2, "counts": {"input": 3, "sent": 2, "rejected": 1}}


def event(number: int, kind: str, **details: Any) -> dict[str, Any]:
    return {"id": number, "type": kind, "timestamp": datetime(2025, 1, 1, tzinfo=UTC), **details}


def entered(number: int, name: str) -> dict[str, Any]:
    return event(number, "TaskStateEntered", stateEnteredEventDetails={"name": name})


def exited(number: int, name: str, output: dict[str, Any] | str) -> dict[str, Any]:
    text = output if isinstance(output, str) else json.dumps(output)
    return event(number, "TaskStateExited", stateExitedEventDetails={"name": name, "output": text})


def failed(number: int, error: str | None = None, cause: str | None = None) -> dict[str, Any]:
    details = {key: value for key, value in (("error", error), ("cause", cause)) if value is not None}
    return event(number, "ExecutionFailed", executionFailedEventDetails=details)


def test_a_cut_upload_takes_its_facts_from_merge_shards_not_from_prepare_input() -> None:
    history = RunHistory()
    history.add(
        [
            exited(2, "PrepareInput", {"prepared": {"runId": "r", "fanOut": {"shards": 3}}}),
            exited(4, "MergeShards", {"prepared": {"runId": "r", "fanOut": {"shards": 3, "redo": 1}}}),
            exited(6, "MergeShards", {"prepared": FACTS}),
            entered(7, "RunJobs"),
        ]
    )
    assert history.prepared == FACTS and history.job_count == 2
    assert history.counts == {"input": 3, "sent": 2, "rejected": 1}
    assert history.state == "RunJobs" and not history.reported


def test_events_are_taken_once_in_id_order_whatever_order_they_come_in() -> None:
    history = RunHistory()
    history.add([entered(5, "FinalizeRun"), exited(3, "PrepareInput", {"prepared": FACTS}), entered(2, "PrepareInput")])
    history.add([entered(5, "PlanCollect"), entered(4, "RunJobs")])  # both seen already (4 < 5)
    assert history.state == "FinalizeRun" and history.last_id == 5
    history.add([exited(9, "FinalizeRun", {"outcome": {"detail": {"status": "PARTIALLY_SUCCEEDED"}}})])
    assert history.outcome == {"status": "PARTIALLY_SUCCEEDED"}


def test_an_output_cut_short_is_skipped_not_fatal() -> None:
    history = RunHistory()
    history.add([exited(2, "PrepareInput", '{"prepared": {"runId": "r", "jobsFi')])
    assert history.prepared is None and history.job_count is None and history.counts == {}


def test_a_failure_no_catch_handles_is_read_with_its_error_and_cause() -> None:
    history = RunHistory()
    history.add([exited(2, "PrepareInput", {"prepared": FACTS}), failed(3, "States.DataLimitExceeded", "too large")])
    assert history.ending is not None
    assert history.ending.to_json() == {"error": "States.DataLimitExceeded", "cause": "too large"}
    assert _cause("run-1", "FAILED", history.ending) == (
        "execution run-1 failed with States.DataLimitExceeded, which the state machine cannot catch: too large"
    )


def test_an_ending_without_details_names_its_event() -> None:
    history = RunHistory()
    history.add([event(3, "ExecutionAborted")])
    assert history.ending is not None and history.ending.to_json() == {"error": "ExecutionAborted", "cause": ""}
    assert _cause("run-1", "FAILED", RunHistory().ending).endswith(
        "an unknown error, which the state machine cannot catch: no cause given"
    )


def test_only_leaving_a_publishing_state_counts_as_reported() -> None:
    # An outcome too large to publish: PublishOutcome was entered, but never left.
    entered_only = RunHistory()
    entered_only.add(
        [exited(2, "FinalizeRun", {}), entered(3, "PublishOutcome"), failed(4, "States.DataLimitExceeded")]
    )
    assert not entered_only.reported
    for name in ("PublishOutcome", "PublishFailure", "PublishBareFailure", "KeepUndeliveredFailure"):
        left = RunHistory()
        left.add([entered(2, name), exited(3, name, {})])
        assert left.reported, name


def test_history_is_read_newest_first_and_only_until_known_events() -> None:
    # GIVEN a follower that has seen events 1-3, and a history of 6 events returned newest first in pages of 2
    stepfunctions = boto3.client("stepfunctions", region_name=REGION)
    history = RunHistory()
    history.add([event(1, "ExecutionStarted"), entered(2, "PrepareInput"), event(3, "LambdaFunctionScheduled")])
    first = {"executionArn": ARN, "reverseOrder": True, "maxResults": 1000}
    with Stubber(stepfunctions) as stub:
        stub.add_response(
            "get_execution_history",
            {"events": [entered(6, "PlanCollect"), event(5, "MapRunSucceeded")], "nextToken": "t"},
            first,
        )
        stub.add_response(
            "get_execution_history",
            {"events": [entered(4, "RunJobs"), event(3, "LambdaFunctionScheduled")], "nextToken": "u"},
            {**first, "nextToken": "t"},
        )
        # WHEN it reads on
        same = read_history(stepfunctions, ARN, history)
        # THEN it stopped at the page reaching event 3 (no third call) and took 4-6 in order
        stub.assert_no_pending_responses()
    assert same is history and history.last_id == 6 and history.state == "PlanCollect"


def test_a_whole_history_is_read_across_every_page() -> None:
    stepfunctions = boto3.client("stepfunctions", region_name=REGION)
    first = {"executionArn": ARN, "reverseOrder": True, "maxResults": 1000}
    with Stubber(stepfunctions) as stub:
        stub.add_response(
            "get_execution_history",
            {"events": [failed(4, "States.Runtime"), entered(3, "RunJobs")], "nextToken": "t"},
            first,
        )
        stub.add_response(
            "get_execution_history",
            {"events": [exited(2, "MergeShards", {"prepared": FACTS}), event(1, "ExecutionStarted")]},
            {**first, "nextToken": "t"},
        )
        history = read_history(stepfunctions, ARN)
        stub.assert_no_pending_responses()
    assert history.prepared == FACTS and history.ending is not None and history.ending.error == "States.Runtime"
