"""boto3 clients are made here and passed in, so tests hand the same code moto or a Stubber."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import boto3
from botocore.config import Config

# Standard mode retries throttling and transient errors with jittered back-off inside each call;
# what is still throttled after that surfaces as ServiceThrottled and the state machine retries.
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 6}, connect_timeout=10, read_timeout=60)


class AwsClients:
    """Lazily created clients sharing one session; a handler makes one at module scope."""

    def __init__(self, session: boto3.session.Session | None = None) -> None:
        self._session = session or boto3.session.Session()
        self._google: dict[str, Any] = {}

    def _client(self, name: str) -> Any:
        return self._session.client(name, config=_CONFIG)

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
    def machinelearning(self) -> Any:
        return self._client("machinelearning")

    def google(self, settings: Any) -> Any:
        """An authorized Google session for a Vertex pipeline's federation (tokens are cached inside it)."""
        from batchline.adapters.google_apis import google_session  # google-auth only where Vertex is used

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
