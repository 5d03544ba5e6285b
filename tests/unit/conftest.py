"""Fixtures shared by the unit tests that stage an upload in S3."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws


@pytest.fixture
def versioned_buckets() -> Iterator[Any]:
    """An S3 client (moto) with the ``inbox`` and ``work`` buckets, versioned as the stack makes them."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        for bucket in ("inbox", "work"):
            client.create_bucket(Bucket=bucket)
            client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        yield client
