"""Hostile but legal files through every service's real Prepare, emulator, Collect and Finalize.

The flow functions are called in the state machine's order (flow_driver.py) on the local runtime's
emulators, for whole-file reads and for uploads cut into shards, CSV and JSON lines alike; checks.py
asserts promises 1 and 2 of the issue on each run. Kinds a service is known to break on are left out
(known_broken.py); test_known_failures.py pins each of those breakages.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.property.checks import check_run
from tests.property.flow_driver import FlowDriver
from tests.property.hostile import HostileFile, Hostility, csv_files, jsonl_files
from tests.property.known_broken import KNOWN_BROKEN
from tests.property.profiles import SCALE, examples
from tests.property.services import CUT_MIN_BYTES, PROVIDERS, SHAPES, pipeline_name

# Examples per test in `make test` (profiles.py: BATCHLINE_PROPERTY_SCALE multiplies them).
WHOLE_EXAMPLES = 10
CUT_EXAMPLES = 4  # each cut upload is a Prepare fan-out of several shards: slower


# Scaled runs take longer: the timeout grows with them.
pytestmark = pytest.mark.timeout(int(300 * max(SCALE, 1)))


def hostility(provider: str, *, cut: bool) -> Hostility:
    enabled = Hostility.everything().without(KNOWN_BROKEN[provider])
    # A 140 KB cell would cut a file into hundreds of 256-byte shards: huge cells are tried on whole reads.
    return enabled.but_not("key:huge", "text:huge") if cut else enabled


def uploads(provider: str, *, cut: bool) -> st.SearchStrategy[HostileFile]:
    shape, kinds, least = SHAPES[provider], hostility(provider, cut=cut), CUT_MIN_BYTES if cut else 0
    return st.one_of(csv_files(shape, kinds, min_bytes=least), jsonl_files(shape, kinds, min_bytes=least))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_whole_file_every_record_is_predicted_or_in_errors_once(driver: FlowDriver, provider: str) -> None:
    @examples(WHOLE_EXAMPLES)
    @given(upload=uploads(provider, cut=False))
    def run(upload: HostileFile) -> None:
        check_run(upload, driver.run(pipeline_name(provider, cut=False), upload.name, upload.body), provider=provider)

    run()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_cut_upload_every_record_is_predicted_or_in_errors_once(driver: FlowDriver, provider: str) -> None:
    @examples(CUT_EXAMPLES)
    @given(upload=uploads(provider, cut=True))
    def run(upload: HostileFile) -> None:
        check_run(upload, driver.run(pipeline_name(provider, cut=True), upload.name, upload.body), provider=provider)

    run()
