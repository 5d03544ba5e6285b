"""The Google fake lets only the AWS roles the stack binds impersonate the service account (issue 15)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import boto3
import pytest
from batchline.adapters.google_apis import CloudStorage
from batchline.clients import google_session
from batchline.config import parse_pipelines
from batchline.errors import ServiceUnavailable

from batchline_local.emulators.google_cloud import ACCESS_TOKEN, GoogleCloudFake, stack_google_callers


@pytest.fixture
def fake() -> Iterator[GoogleCloudFake]:
    with GoogleCloudFake() as running:
        yield running


def storage_as(fake: GoogleCloudFake, function: str | None) -> CloudStorage:
    fake.caller = lambda: function
    service = {
        "provider": "vertex",
        "project": "proj-12345",
        "location": "us-central1",
        "model": "m",
        "gcsPrefix": "gs://bucket/base",
        "federation": {
            "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/aws",
            "serviceAccountEmail": "runner@proj-12345.iam.gserviceaccount.com",
        },
        "endpoints": fake.endpoints,
    }
    settings = parse_pipelines({"v": {"keyColumn": "id", "service": service}}).get("v").service
    aws = boto3.session.Session(
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    )
    return CloudStorage(google_session(settings, aws), fake.url)


def test_the_bound_roles_are_the_stacks_google_callers() -> None:
    """Read from the stack's source without importing CDK, and the same as the constant the stack uses."""
    import importlib

    stack_module = next(
        module
        for module in map(importlib.import_module, ("stacks.provider_permissions", "stacks.batchline_stack"))
        if hasattr(module, "GOOGLE_CALLERS")
    )
    assert stack_google_callers() == tuple(stack_module.GOOGLE_CALLERS)
    assert GoogleCloudFake().bound_callers == frozenset(stack_module.GOOGLE_CALLERS)


def test_a_bound_function_gets_a_token(fake: GoogleCloudFake) -> None:
    storage = storage_as(fake, "SubmitJob")
    assert list(storage.list("bucket", "")) == []
    assert fake.refused == []


def test_a_function_the_stack_does_not_bind_is_refused_as_google_refuses_it(fake: GoogleCloudFake) -> None:
    fake.bound_callers = frozenset({"SubmitJob"})
    storage = storage_as(fake, "PrepareInput")
    with pytest.raises(ServiceUnavailable, match="iam.serviceAccounts.getAccessToken") as refused:
        list(storage.list("bucket", ""))
    assert "token exchange failed" in str(refused.value)
    assert fake.refused == ["PrepareInput"]


def test_outside_any_function_the_fake_does_not_check(fake: GoogleCloudFake) -> None:
    storage = storage_as(fake, None)
    list(storage.list("bucket", ""))
    assert storage._http.credentials.token == ACCESS_TOKEN
