"""The failed-invocation record (Lambda's on-failure destination) read as plain data, without AWS."""

from __future__ import annotations

from typing import Any

import pytest
from batchline.steps.failed_invocation import (
    UnknownFailedInvocation,
    failed_invocation_error,
    iso_from_millis,
    report_failed_invocation,
)


def record(response: Any, condition: str = "RetriesExhausted", attempts: int | None = 3) -> dict[str, Any]:
    context: dict[str, Any] = {"condition": condition, "functionArn": "arn:aws:lambda:r:1:function:f:$LATEST"}
    if attempts is not None:
        context["approximateInvokeCount"] = attempts
    return {"requestContext": context, "requestPayload": {}, "responsePayload": response}


def test_the_error_names_the_functions_last_answer_and_how_many_attempts_it_had() -> None:
    text = failed_invocation_error(
        record({"errorType": "ClientError", "errorMessage": "AccessDenied on StartExecution"})
    )
    assert text == "ClientError: AccessDenied on StartExecution (RetriesExhausted after 3 attempts)"


def test_an_event_too_old_to_try_again_says_so_though_no_function_answered() -> None:
    text = failed_invocation_error(record(None, condition="EventAgeExceeded", attempts=None))
    assert text.startswith("the event grew older than its maximum age") and text.endswith("(EventAgeExceeded)")


def test_a_record_of_another_event_is_refused_by_name_before_any_call() -> None:
    with pytest.raises(UnknownFailedInvocation, match="neither an upload nor an execution's end"):
        report_failed_invocation(
            {**record({}), "requestPayload": {"source": "aws.sqs"}},
            pipelines=None,  # type: ignore[arg-type]
            deployment=None,  # type: ignore[arg-type]
            clients=None,  # type: ignore[arg-type]
            state_machine_arn="arn:aws:states:r:1:stateMachine:m",
        )


def test_a_status_changes_start_date_is_given_in_the_events_time_form() -> None:
    assert iso_from_millis(1_767_225_600_000) == "2026-01-01T00:00:00Z"
