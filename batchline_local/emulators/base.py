"""Emulating services moto does not implement, at the botocore layer.

The adapters' real boto3 clients still build and validate every request against the service model;
instead of sending it, a ``before-call`` hook hands the validated parameters to an emulator, whose
answer is returned as the parsed response (or raised as the service's ClientError). So request shapes
are checked exactly as with the Stubber, while the emulator keeps state across calls like a service.

Every emulator reads staged input the way its service does: through the S3 API (a listing never shows a
key whose latest version is a delete marker), lines split on LF only, JSON parsed strictly.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
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
    # The error code the service answers a request breaking its model's constraints with.
    validation_error: str = "ValidationException"

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
            params = context.get(_PARAMS_KEY, {})
            if model.input_shape is not None and (violations := constraint_violations(model.input_shape, params)):
                return _error(400, self.validation_error, _validation_message(violations))
            try:
                return _HttpResponse(200), {
                    **operation(**context.get(_PARAMS_KEY, {})),
                    "ResponseMetadata": {},
                }
            except EmulatedError as exc:
                return _error(exc.status, exc.code, exc.message)

        client.meta.events.register(f"before-parameter-build.{service_id}", remember)
        # Last of the client's before-call handlers, on the event name they all share: botocore runs handlers of
        # a more specific name first, and the local runtime's permission check must see the call before the
        # emulator answers it (the client is this service's only, so nothing else reaches ``answer``).
        client.meta.events.register_last("before-call", answer)


def constraint_violations(shape: Any, value: Any, path: str = "") -> list[str]:
    """What a request breaks of its service model's constraints that botocore does not check before sending
    (it checks types, required members and minimums; the service also refuses maximums, patterns and enums).
    Patterns in Java's Unicode classes (``\\p{L}``) have no Python ``re`` form and are left to the service."""
    kind, meta = shape.type_name, shape.metadata
    where = path or shape.name
    if kind == "structure" and isinstance(value, dict):
        return [
            violation
            for name, member in shape.members.items()
            if name in value
            for violation in constraint_violations(member, value[name], f"{path}.{name}" if path else name)
        ]
    found: list[str] = []
    sized = kind in ("list", "map", "string") and isinstance(value, list | dict | str)
    if sized and "max" in meta and len(value) > meta["max"]:
        unit = "length" if kind == "string" else "size"
        found.append(
            f"Value at '{where}' failed to satisfy constraint: Member must have {unit} less than or "
            f"equal to {meta['max']}"
        )
    if kind == "list" and isinstance(value, list):
        for index, item in enumerate(value, start=1):
            found += constraint_violations(shape.member, item, f"{where}.{index}.member")
    elif kind == "map" and isinstance(value, dict):
        for key, item in value.items():
            found += constraint_violations(shape.key, key, f"{where}.{key}.key")
            found += constraint_violations(shape.value, item, f"{where}.{key}.value")
    elif kind == "string" and isinstance(value, str):
        if shape.enum and value not in shape.enum:
            found.append(
                f"Value '{value}' at '{where}' failed to satisfy constraint: Member must satisfy enum value "
                f"set: [{', '.join(shape.enum)}]"
            )
        pattern = _pattern(meta.get("pattern"))
        if pattern is not None and not pattern.fullmatch(value):
            found.append(
                f"Value '{value}' at '{where}' failed to satisfy constraint: Member must satisfy regular "
                f"expression pattern: {meta['pattern']}"
            )
    elif kind in ("integer", "long", "float", "double") and isinstance(value, int | float):
        found += _over_maximum(value, meta, where)
    return found


def _over_maximum(value: float, meta: dict[str, Any], where: str) -> list[str]:
    if value <= meta.get("max", float("inf")):
        return []
    return [
        f"Value '{value}' at '{where}' failed to satisfy constraint: Member must have value less than or equal to "
        f"{meta['max']}"
    ]


@functools.lru_cache(maxsize=512)
def _pattern(text: str | None) -> re.Pattern[str] | None:
    if not text or "\\p{" in text:
        return None
    try:
        return re.compile(text)
    except re.error:
        return None


def _validation_message(violations: list[str]) -> str:
    count = len(violations)
    return f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(violations)


def _error(status: int, code: str, message: str) -> tuple[_HttpResponse, dict[str, Any]]:
    return _HttpResponse(status), {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {}}


# --- reading staged input as the services do ----------------------------------------------------


class MalformedLine(ValueError):
    """A line the service cannot parse: names the line, so the emulated failure can say where."""

    def __init__(self, number: int, reason: str) -> None:
        super().__init__(f"line {number}: {reason}")
        self.number = number


def service_lines(data: bytes) -> list[tuple[int, str]]:
    """A staged text object's lines, split on LF only, as the batch services split JSON lines and
    SageMaker's ``SplitType=Line`` does: never on U+2028, U+2029, U+0085, VT, FF, FS/GS/RS or a lone CR
    (``str.splitlines`` splits on all of those, and a JSON string may carry most of them raw).

    The LF that ends the last line does not start another one; a CR before an LF stays on its line (JSON
    parsers take it as whitespace). The object must be UTF-8: ``UnicodeDecodeError`` otherwise.
    """
    lines = data.decode("utf-8").split("\n")
    if lines[-1] == "":
        lines.pop()
    return list(enumerate(lines, start=1))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(line: str, number: int) -> Any:
    """One JSON text as a conforming parser reads it: NaN and Infinity are not JSON (RFC 8259 section 6),
    nor are raw control characters inside strings; surrounding JSON whitespace (including CR) is fine."""
    try:
        return json.loads(line, parse_constant=_no_constant)
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise MalformedLine(number, f"not valid JSON ({exc})") from None


@dataclass(frozen=True)
class ServiceIdentity:
    """Who a service is when it reads a job's input and writes its output: its service principal, acting for a
    job, as the role passed to it (Personalize, Bedrock, a SageMaker model's role) or as itself (Amazon ML)."""

    principal: str  # "personalize.amazonaws.com"
    acting_for: str  # the pipeline, for the permission report (see pipeline_of)
    role_arn: str | None = None
    source_arn: str | None = None  # the job's ARN: what aws:SourceArn conditions see
    source_account: bool = True  # Amazon ML may not send aws:SourceAccount


def s3_client(identity: ServiceIdentity | None = None) -> Any:
    """An S3 client bound to the in-process emulation: the region, endpoint and credentials are given
    explicitly, so no ``AWS_ENDPOINT_URL[_S3]``, config-file endpoint, profile or credential process can
    send an emulator's reads or writes anywhere else. It comes from a session of its own: the service reads
    and writes as itself, not as the function whose call it is answering. With ``identity``, and while a
    local runtime checks permissions, each of its calls is checked as that service's: the role's policy, the
    bucket policy and the key policy, as S3 checks a service's access."""
    import boto3

    runtime = _active_runtime()
    # One session for every service client (making a session loads botocore's data files: milliseconds a call).
    session = runtime.service_session if runtime is not None else boto3.session.Session()
    client = session.client(
        "s3",
        region_name="us-east-1",
        endpoint_url="https://s3.us-east-1.amazonaws.com",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    checker = runtime.permissions if runtime is not None else None
    if identity is not None and checker is not None:
        from batchline_local.permissions.checker import attach_check

        def check(service: str, operation: str, params: Any) -> None:
            checker.check_service(
                identity.principal,
                service,
                operation,
                params,
                acting_for=identity.acting_for,
                role_arn=identity.role_arn,
                source_arn=identity.source_arn,
                source_account=identity.source_account,
            )

        attach_check(client, check)
    return client


def _active_runtime() -> Any:
    from batchline_local.runtime import LocalRuntime

    return LocalRuntime.active()


def list_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    """Every key under the prefix, as ListObjectsV2 shows them (all pages; a key whose latest version is
    a delete marker is not listed, exactly as on S3)."""
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


def pipeline_of(uri: str) -> str:
    """The pipeline a staged object belongs to: Batchline keeps everything under ``<pipeline>/<run-id>/``."""
    return split_s3_uri(uri)[1].split("/", 1)[0]


def split_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix


# A pipeline's service settings by name (the local runtime's configuration), or None. Some limits are the
# account's, not the API's (Bedrock's records per job vary by model and account): the pipeline config states
# them, so the emulators enforce what the config says the account allows. The runtime passes this in.
PipelineServices = Callable[[str | None], Any]


def no_pipelines(name: str | None) -> Any:
    """No configuration known: the emulators apply the services' documented defaults."""
    return None
