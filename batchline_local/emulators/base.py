"""Emulating services moto does not implement, at the botocore layer.

The adapters' real boto3 clients still build and validate every request against the service model;
instead of sending it, a ``before-call`` hook hands the validated parameters to an emulator, whose
answer is returned as the parsed response (or raised as the service's ClientError). So request shapes
are checked exactly as with the Stubber, while the emulator keeps state across calls like a service.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore import xform_name

_PARAMS_KEY = "batchline_emulator_params"


class EmulatedError(Exception):
    """Raised by an emulator to answer with the service's error code (becomes botocore's ClientError)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class _HttpResponse:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = {}
        self.content = b""


class ServiceEmulator:
    """Subclasses set ``service`` (botocore's service name) and define snake_case operation methods."""

    service: str = ""

    def handles(self, client: Any) -> bool:
        return bool(client.meta.service_model.service_name == self.service)

    def attach(self, client: Any) -> None:
        service_id = client.meta.service_model.service_id.hyphenize()

        def remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
            context[_PARAMS_KEY] = dict(params)

        def answer(model: Any, context: dict[str, Any], **_: Any) -> tuple[_HttpResponse, dict[str, Any]]:
            operation: Callable[..., dict[str, Any]] | None = getattr(self, xform_name(model.name), None)
            if operation is None:
                return _error(400, "NotImplemented", f"the local emulator does not implement {model.name}")
            try:
                return _HttpResponse(200), {
                    **operation(**context.get(_PARAMS_KEY, {})),
                    "ResponseMetadata": {},
                }
            except EmulatedError as exc:
                return _error(exc.status, exc.code, exc.message)

        client.meta.events.register(f"before-parameter-build.{service_id}", remember)
        client.meta.events.register(f"before-call.{service_id}", answer)


def _error(status: int, code: str, message: str) -> tuple[_HttpResponse, dict[str, Any]]:
    return _HttpResponse(status), {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {}}
