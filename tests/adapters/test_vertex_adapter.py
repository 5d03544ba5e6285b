"""Vertex adapter pieces against the local Google fake on 127.0.0.1: federation, GCS, job states."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from batchline.adapters import google_apis
from batchline.adapters.base import JobStatus
from batchline.adapters.google_apis import CloudStorage, VertexJobs, google_session
from batchline.adapters.vertex import _state, normalise_state
from batchline.config import parse_pipelines
from batchline.errors import ServiceUnavailable

from batchline_local.emulators.google_cloud import ACCESS_TOKEN, GoogleCloudFake

FEDERATION = {
    "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/aws",
    "serviceAccountEmail": "runner@proj-12345.iam.gserviceaccount.com",
}


@pytest.fixture
def fake() -> Iterator[GoogleCloudFake]:
    with GoogleCloudFake() as running:
        yield running


def settings(fake: GoogleCloudFake, **federation: str) -> Any:
    service = {
        "provider": "vertex",
        "project": "proj-12345",
        "location": "us-central1",
        "model": "m",
        "gcsPrefix": "gs://bucket/base",
        "federation": {**FEDERATION, **federation},
        "endpoints": fake.endpoints,
    }
    return parse_pipelines({"v": {"keyColumn": "id", "service": service}}).get("v").service


def session() -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region_name="eu-west-1",
    )


def test_aws_credentials_are_exchanged_for_an_impersonated_token(fake: GoogleCloudFake) -> None:
    http = google_session(settings(fake), session())
    storage = CloudStorage(http, fake.url)
    assert list(storage.list("bucket", "nothing/")) == []
    assert fake.token_exchanges == 1
    assert http.credentials.token == ACCESS_TOKEN


def test_a_refused_exchange_is_a_clear_service_unavailable(fake: GoogleCloudFake) -> None:
    bad = settings(fake, audience=FEDERATION["audience"].replace("providers/aws", "providers/reject"))
    storage = CloudStorage(google_session(bad, session()), fake.url)
    with pytest.raises(ServiceUnavailable, match="token exchange failed"):
        list(storage.list("bucket", ""))


def test_uploads_stream_in_chunks_and_listing_follows_pages(fake: GoogleCloudFake, monkeypatch: Any) -> None:
    monkeypatch.setattr(google_apis, "UPLOAD_CHUNK", 256 * 1024)
    storage = CloudStorage(google_session(settings(fake), session()), fake.url)
    data = os.urandom(700 * 1024)  # three chunks
    for n in range(5):
        storage.upload("bucket", f"in/part-{n}", io.BytesIO(data if n == 0 else b"x\n"), "application/jsonl")
    assert fake.objects[("bucket", "in/part-0")] == data
    assert list(storage.list("bucket", "in/")) == [f"in/part-{n}" for n in range(5)]  # pages of two
    assert storage.size("bucket", "in/part-0") == len(data)
    assert list(storage.lines("bucket", "in/part-1")) == ["x"]


def test_jobs_are_found_by_label_not_duplicated(fake: GoogleCloudFake) -> None:
    config = settings(fake)
    jobs = VertexJobs(google_session(config, session()), config)
    assert jobs.find("batchline-job", "bl-x-0") is None
    created = jobs.create({"displayName": "bl-x-0", "labels": {"batchline-job": "bl-x-0"}, "model": "m"})
    assert jobs.find("batchline-job", "bl-x-0")["name"] == created["name"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("JOB_STATE_QUEUED", JobStatus.PENDING),
        ("JOB_STATE_PENDING", JobStatus.PENDING),
        ("JOB_STATE_RUNNING", JobStatus.RUNNING),
        ("JOB_STATE_UPDATING", JobStatus.RUNNING),
        ("JOB_STATE_PAUSED", JobStatus.RUNNING),
        ("JOB_STATE_CANCELLING", JobStatus.RUNNING),
        ("JOB_STATE_SUCCEEDED", JobStatus.SUCCEEDED),
        ("JOB_STATE_PARTIALLY_SUCCEEDED", JobStatus.PARTIAL),
        ("JOB_STATE_FAILED", JobStatus.FAILED),
        ("JOB_STATE_EXPIRED", JobStatus.FAILED),
        ("JOB_STATE_CANCELLED", JobStatus.STOPPED),
    ],
)
def test_every_vertex_state_is_normalised(raw: str, status: JobStatus) -> None:
    assert normalise_state(raw) is status


def test_error_partial_failures_and_completion_stats_are_surfaced() -> None:
    state = _state(
        {
            "name": "projects/p/locations/l/batchPredictionJobs/1",
            "state": "JOB_STATE_PARTIALLY_SUCCEEDED",
            "error": {"code": 3, "message": "some input was invalid"},
            "partialFailures": [{"code": 3, "message": "12 instances failed"}],
            "completionStats": {"successfulCount": "88", "failedCount": "12", "incompleteCount": "0"},
        }
    )
    assert state.status is JobStatus.PARTIAL
    assert state.message == "some input was invalid; partial failure: 12 instances failed"
    assert state.counts == {"succeeded": 88, "failed": 12, "incomplete": 0}
