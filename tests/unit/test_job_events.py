"""The job end events WakeJob reacts to, and when a job about to wait should not wait (plain functions)."""

from __future__ import annotations

from typing import Any

import pytest
from batchline.backoff import EVENT_WAIT_FACTOR, next_wait_seconds, next_wait_seconds_with_events
from batchline.job_events import BEDROCK, SAGEMAKER, announces_job_ends, job_end, wake_on_park


def sagemaker_event(name: str, status: str) -> dict[str, Any]:
    return {
        "source": "aws.sagemaker",
        "detail-type": "SageMaker Transform Job State Change",
        "time": "2026-01-01T10:00:00Z",
        "detail": {"TransformJobName": name, "TransformJobStatus": status},
    }


def bedrock_event(name: str, status: str) -> dict[str, Any]:
    return {
        "source": "aws.bedrock",
        "detail-type": "Batch Inference Job State Change",
        "detail": {"batchJobName": name, "batchJobArn": "arn:aws:bedrock:...:model-invocation-job/x", "status": status},
    }


@pytest.mark.parametrize("status", ["Completed", "Failed", "Stopped"])
def test_a_sagemaker_end_of_a_batchline_job_names_the_job(status: str) -> None:
    ended = job_end(sagemaker_event("bl-demo-abc-0", status))
    assert ended is not None and (ended.provider, ended.job_name, ended.status) == (
        "sagemaker",
        "bl-demo-abc-0",
        status,
    )
    assert ended.time == "2026-01-01T10:00:00Z"


@pytest.mark.parametrize("status", ["Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired"])
def test_a_bedrock_end_of_a_batchline_job_names_the_job(status: str) -> None:
    ended = job_end(bedrock_event("bl-demo-abc-0", status))
    assert ended is not None and (ended.provider, ended.job_name) == ("bedrock", "bl-demo-abc-0")


@pytest.mark.parametrize(
    "event",
    [
        sagemaker_event("their-nightly-job", "Completed"),  # another team's job
        sagemaker_event("bl-demo-abc-0", "InProgress"),  # not an end
        sagemaker_event("bl-demo-abc-0", "Stopping"),
        bedrock_event("bl-demo-abc-0", "Scheduled"),
        {"source": "aws.sagemaker", "detail-type": "SageMaker Training Job State Change", "detail": {}},
        {"source": "aws.bedrock", "detail-type": "Batch Inference Job State Change", "detail": "not an object"},
        {"source": "aws.bedrock", "detail-type": "Batch Inference Job State Change", "detail": {"status": "Completed"}},
        {"detail-type": "Object Created"},
        {},
    ],
)
def test_anything_but_the_end_of_a_batchline_job_is_ignored(event: dict[str, Any]) -> None:
    assert job_end(event) is None


def test_the_rule_patterns_match_batchline_job_names_and_end_statuses_only() -> None:
    for source in (SAGEMAKER, BEDROCK):
        pattern = source.pattern()
        assert pattern["detail"][source.name_field] == [{"prefix": "bl-"}]
        assert set(pattern["detail"][source.status_field]) == set(source.ended)


def test_only_sagemaker_and_bedrock_announce_their_jobs() -> None:
    assert [p for p in ("sagemaker", "bedrock", "personalize", "amazonml", "vertex") if announces_job_ends(p)] == [
        "sagemaker",
        "bedrock",
    ]


@pytest.mark.parametrize(
    ("received", "last_look", "wake"),
    [
        (None, "2026-01-01T10:00:00Z", False),  # no event yet: wait
        ("2026-01-01T10:00:05.250000+00:00", "2026-01-01T10:00:00Z", True),  # came after the last look
        ("2026-01-01T09:59:59.900000+00:00", "2026-01-01T10:00:00Z", False),  # the last look already saw it
        ("2026-01-01T10:00:00.400000+00:00", "2026-01-01T10:00:00Z", True),  # same second: one more poll at most
        ("2026-01-01T10:00:00+00:00", None, True),
    ],
)
def test_a_job_about_to_wait_does_not_when_its_end_event_came_after_its_last_look(
    received: str | None, last_look: str | None, wake: bool
) -> None:
    assert wake_on_park(received, last_look) is wake


@pytest.mark.parametrize("elapsed", [0, 100, 3_000, 40_000, 500_000])
def test_with_events_the_fallback_wait_is_a_multiple_of_the_plain_one(elapsed: int) -> None:
    plain = next_wait_seconds(elapsed, minimum=30, maximum=3600)
    assert next_wait_seconds_with_events(elapsed, minimum=30, maximum=3600) == EVENT_WAIT_FACTOR * plain
