"""When EventBridge refuses the outcome event even after retries, it is kept in the dead-letter queue."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from moto.core.exceptions import JsonRESTError
from moto.events.models import EventsBackend

from batchline_local.runtime import LocalRuntime
from tests.e2e.conftest import write_csv

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime() as local:
        yield local


def test_an_event_eventbridge_refuses_is_kept_in_the_dead_letter_queue(
    runtime: LocalRuntime, validate_event: Any, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "undelivered.csv", ["id", "a", "b"], [["k1", 1, 2]])
    refused = 0

    def refuse(*args: Any, **kwargs: Any) -> Any:
        nonlocal refused
        refused += 1
        # What an outage looks like to the state machine: a service error (retried and caught by name), not a
        # fault of the interpreter itself (States.Runtime, which no Retry or Catch handles on AWS)
        raise JsonRESTError("InternalException", "emulated EventBridge outage")

    with mock.patch.object(EventsBackend, "put_events", refuse):
        result = runtime.run_file(path, "demo-sagemaker")

    assert refused >= 2  # the state machine retried before giving up
    assert result.status == "FAILED"
    failed = [e for e in result.history if e["type"] == "ExecutionFailed"][0]["executionFailedEventDetails"]
    assert failed["error"] == "EventNotDelivered"
    sqs = runtime.client("sqs")
    messages = sqs.receive_message(QueueUrl=runtime.undelivered_queue_url, MaxNumberOfMessages=10)["Messages"]
    kept = [json.loads(m["Body"]) for m in messages]
    (outcome,) = [k for k in kept if k["detail"]["runId"] == result.run_id]
    assert outcome["detailType"] == "Batch Prediction Succeeded"
    validate_event({"source": outcome["source"], "detail-type": outcome["detailType"], "detail": outcome["detail"]})
    # The outputs themselves are in place.
    bucket, key = outcome["detail"]["outputs"]["predictions"][5:].split("/", 1)
    assert runtime.client("s3").head_object(Bucket=bucket, Key=key)["ContentLength"] > 0
