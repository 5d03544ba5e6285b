"""Personalize's own figures: DescribeBatchInferenceJob and DescribeBatchSegmentJob give creation and last update
times only, so a job reports its creation, and its end once it ended (a batch job is never updated otherwise)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import pytest
from batchline.adapters.personalize import PersonalizeAdapter
from botocore.stub import Stubber

from tests.adapters.test_personalize_adapter import RUN, described

CREATED = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
UPDATED = datetime(2026, 11, 25, 9, 42, 7, tzinfo=UTC)


@pytest.fixture
def stubbed() -> Iterator[tuple[PersonalizeAdapter, Stubber]]:
    client = boto3.client("personalize", region_name="eu-west-1")
    with Stubber(client) as stubber:
        yield PersonalizeAdapter(RUN.pipeline.service, client, s3=None), stubber  # type: ignore[arg-type]
        stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("status", "figures"),
    [
        ("CREATE PENDING", {"createdAt": "2026-11-25T09:00:00Z"}),
        ("CREATE IN_PROGRESS", {"createdAt": "2026-11-25T09:00:00Z"}),
        ("ACTIVE", {"createdAt": "2026-11-25T09:00:00Z", "endedAt": "2026-11-25T09:42:07Z"}),
        ("CREATE FAILED", {"createdAt": "2026-11-25T09:00:00Z", "endedAt": "2026-11-25T09:42:07Z"}),
    ],
)
def test_a_job_reports_its_creation_and_its_end_once_it_ended(
    stubbed: tuple[PersonalizeAdapter, Stubber],
    status: str,
    figures: dict[str, str],
) -> None:
    adapter, stubber = stubbed
    job_id = adapter.job_id(RUN)
    response = described(adapter, status, creationDateTime=CREATED, lastUpdatedDateTime=UPDATED)
    stubber.add_response("describe_batch_inference_job", response, {"batchInferenceJobArn": job_id})

    state = adapter.describe(RUN, job_id)

    # No start time and no consumption: the API gives neither, so neither is reported.
    assert state.figures == figures
