"""A few hostile files through `batchline local run`'s whole path: StartRun, the real ASL on moto's Step
Functions interpreter, the handlers, the emulators. The flow-function tests draw many more files; these show
the state machine adds no way to lose a record (Map items, ResultPaths, the failure path)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchline_local.runtime import LocalRuntime
from tests.property.checks import check_run
from tests.property.flow_driver import FlowDriver, Outcome
from tests.property.hostile import HostileFile
from tests.property.profiles import examples
from tests.property.services import PROVIDERS, pipeline_name
from tests.property.test_hostile_records import uploads

pytestmark = pytest.mark.timeout(300)
LOCAL_RUN_EXAMPLES = 2  # each is a full execution: seconds, not tenths


def run_locally(runtime: LocalRuntime, driver: FlowDriver, pipeline: str, upload: HostileFile) -> Outcome:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / upload.name
        path.write_bytes(upload.body)
        result = runtime.run_file(path, pipeline, timeout_seconds=120)
    assert result.event is not None, f"run {result.run_id} ended {result.status} without an event"
    detail = result.event["detail"]
    failed = detail["status"] == "FAILED"
    outcome = Outcome(detail, "execution" if failed else None, detail.get("error"))
    s3 = runtime.client("s3")
    for name in ("predictions", "errors"):
        uri = (detail.get("outputs") or {}).get(name)
        if uri:
            bucket, key = uri[5:].split("/", 1)
            outcome.csvs[f"{name}.csv"] = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    outcome.staged = driver.staged(pipeline, result.run_id)
    return outcome


@pytest.mark.parametrize("provider", PROVIDERS)
def test_local_run_keeps_every_record_once(runtime: LocalRuntime, driver: FlowDriver, provider: str) -> None:
    @examples(LOCAL_RUN_EXAMPLES)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        cut = data.draw(st.booleans(), label="cut")
        upload = data.draw(uploads(provider, cut=cut), label="upload")
        pipeline = pipeline_name(provider, cut=cut)
        check_run(upload, run_locally(runtime, driver, pipeline, upload), provider=provider)

    run()
