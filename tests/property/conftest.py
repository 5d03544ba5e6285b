"""The property tier: one local runtime (moto, the service emulators, the test pipelines) for the whole tier."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from batchline_local.runtime import LocalRuntime
from tests.property.flow_driver import FlowDriver
from tests.property.services import pipelines


@pytest.fixture(scope="package")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(pipelines()) as local:
        yield local


@pytest.fixture(scope="package")
def driver(runtime: LocalRuntime) -> FlowDriver:
    return FlowDriver(runtime)
