"""Hypothesis profiles of the property tier, chosen with BATCHLINE_HYPOTHESIS_PROFILE."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

_COMMON = {
    "deadline": None,
    "print_blob": True,
    # no explain phase: it reruns every failing example under coverage, seconds each here
    "phases": [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
}
# "ci" (the default): the same files on every run, so `make test` is never red by luck; a new failure is found
# by "explore" (fresh files each run, failures remembered in .hypothesis/), with BATCHLINE_PROPERTY_SCALE=10
# for ten times as many. "triage" explores without shrinking, to list what breaks quickly.
settings.register_profile("ci", derandomize=True, database=None, **_COMMON)
settings.register_profile("explore", **_COMMON)
settings.register_profile("triage", parent=settings.get_profile("explore"), phases=[Phase.explicit, Phase.generate])
# Applied per test (never loaded globally: the unit tier's hypothesis tests keep their own defaults).
PROFILE = settings.get_profile(os.environ.get("BATCHLINE_HYPOTHESIS_PROFILE", "ci"))
# Examples per test are multiplied by this (BATCHLINE_PROPERTY_SCALE=10 for a long hunt).
SCALE = float(os.environ.get("BATCHLINE_PROPERTY_SCALE", "1"))


def examples(count: int) -> settings:
    """The profile's settings with ``count`` examples (scaled)."""
    return settings(PROFILE, max_examples=max(1, int(count * SCALE)))
