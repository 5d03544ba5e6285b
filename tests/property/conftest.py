"""The property tier: one local runtime (moto, the service emulators, the test pipelines) for the whole tier."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, Phase, settings

from batchline_local.runtime import LocalRuntime
from tests.property.flow_driver import FlowDriver
from tests.property.services import pipelines

# "ci" (the default) keeps `make test` quick; BATCHLINE_HYPOTHESIS_PROFILE=deep draws many more files.
settings.register_profile(
    "ci",
    deadline=None,
    print_blob=True,
    # no explain phase: it reruns every failing example under coverage, seconds each here
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
settings.register_profile("deep", parent=settings.get_profile("ci"), max_examples=300)
# Finding what breaks, fast: no shrinking (the first failing file is reported as drawn).
settings.register_profile("triage", parent=settings.get_profile("ci"), phases=[Phase.explicit, Phase.generate])
settings.load_profile(os.environ.get("BATCHLINE_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="package")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(pipelines()) as local:
        yield local


@pytest.fixture(scope="package")
def driver(runtime: LocalRuntime) -> FlowDriver:
    return FlowDriver(runtime)
