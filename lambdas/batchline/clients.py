"""Clients are made here and passed in, so tests hand the same code moto or a Stubber: boto3's, and the Google
session a Vertex pipeline's calls go through (workload identity federation from the function's own role)."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import boto3
from botocore.config import Config

# Standard mode retries throttling and transient errors with jittered back-off inside each call;
# what is still throttled after that surfaces as ServiceThrottled and the state machine retries.
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 6}, connect_timeout=10, read_timeout=60)
_CONFIGS = {
    # One attempt per call: Bedrock's on-demand caller retries with its own back-off inside its time budget
    # (adapters/bedrock_on_demand.py), and a model may take minutes to answer.
    "bedrock-runtime": Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=10, read_timeout=300),
}


class AwsClients:
    """Lazily created clients sharing one session; a handler makes one at module scope."""

    def __init__(self, session: boto3.session.Session | None = None) -> None:
        self._session = session or boto3.session.Session()
        self._google: dict[str, Any] = {}

    def _client(self, name: str) -> Any:
        return self._session.client(name, config=_CONFIGS.get(name, _CONFIG))

    @cached_property
    def s3(self) -> Any:
        return self._client("s3")

    @cached_property
    def sagemaker(self) -> Any:
        return self._client("sagemaker")

    @cached_property
    def personalize(self) -> Any:
        return self._client("personalize")

    @cached_property
    def bedrock(self) -> Any:
        return self._client("bedrock")

    @cached_property
    def bedrock_runtime(self) -> Any:
        return self._client("bedrock-runtime")

    @cached_property
    def machinelearning(self) -> Any:
        return self._client("machinelearning")

    def google(self, settings: Any) -> Any:
        """An authorized Google session for a Vertex pipeline's federation (tokens are cached inside it)."""
        key = settings.federation.model_dump_json() + settings.endpoints.model_dump_json()
        if key not in self._google:
            self._google[key] = google_session(settings, self._session)
        return self._google[key]

    @cached_property
    def events(self) -> Any:
        return self._client("events")

    @cached_property
    def stepfunctions(self) -> Any:
        return self._client("stepfunctions")


GOOGLE_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


def google_session(settings: Any, session: boto3.session.Session) -> Any:
    """An AuthorizedSession for a Vertex pipeline (``settings``: its VertexSettings): google-auth exchanges the
    function's own AWS credentials, as boto3 resolves them, for a Google token through the pipeline's workload
    identity pool, then impersonates its service account. google-auth is imported only where Vertex is used."""
    from google.auth import aws
    from google.auth.transport.requests import AuthorizedSession

    from batchline.errors import ServiceUnavailable

    class BotoCredentialsSupplier(aws.AwsSecurityCredentialsSupplier):  # type: ignore[misc]
        def get_aws_security_credentials(self, context: Any, request: Any) -> aws.AwsSecurityCredentials:
            credentials = session.get_credentials()
            if credentials is None:
                raise ServiceUnavailable("no AWS credentials to exchange for a Google token")
            frozen = credentials.get_frozen_credentials()
            return aws.AwsSecurityCredentials(frozen.access_key, frozen.secret_key, frozen.token)

        def get_aws_region(self, context: Any, request: Any) -> str:
            return str(session.region_name or "us-east-1")

    federation, endpoints = settings.federation, settings.endpoints
    credentials = aws.Credentials(
        audience=federation.audience,
        subject_token_type="urn:ietf:params:aws:token-type:aws4_request",
        token_url=f"{endpoints.sts}/v1/token",
        aws_security_credentials_supplier=BotoCredentialsSupplier(),
        service_account_impersonation_url=(
            f"{endpoints.iam_credentials}/v1/projects/-/serviceAccounts/"
            f"{federation.service_account_email}:generateAccessToken"
        ),
        scopes=GOOGLE_SCOPES,
    )
    return AuthorizedSession(credentials)
