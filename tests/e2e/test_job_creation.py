"""Only SubmitJob creates service jobs: polling, collecting and stopping a run only read (issue 15: the IAM
grants give create actions to the submitting function alone)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from batchline_local.runtime import LocalRuntime
from tests.e2e.conftest import SAMPLES, check_every_event

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def runtime(validate_event: Any) -> Iterator[LocalRuntime]:
    with LocalRuntime() as local:
        yield local
        check_every_event(local, validate_event)


def creators(runtime: LocalRuntime, emulator: Any, operations: list[str]) -> list[tuple[str, str]]:
    """(function, operation) of every create the emulator answers from now on. Handlers run one at a time, so
    the invocation in progress is the runtime's last one."""
    seen: list[tuple[str, str]] = []
    for operation in operations:
        original: Callable[..., Any] = getattr(emulator, operation)

        def recording(*args: Any, _original: Callable[..., Any] = original, _name: str = operation, **kw: Any) -> Any:
            seen.append((runtime.invocations[-1][0].removeprefix("batchline-local-"), _name))
            return _original(*args, **kw)

        setattr(emulator, operation, recording)
    return seen


def test_amazon_ml_creates_its_data_source_and_prediction_only_in_submit_job(runtime: LocalRuntime) -> None:
    seen = creators(runtime, runtime.amazonml, ["create_data_source_from_s3", "create_batch_prediction"])

    result = runtime.run_file(SAMPLES / "demo-amazonml.csv", "demo-amazonml")

    assert result.status == "SUCCEEDED", result.event
    assert seen == [("SubmitJob", "create_data_source_from_s3"), ("SubmitJob", "create_batch_prediction")]
