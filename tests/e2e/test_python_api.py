"""The Python API for notebooks: a DataFrame or a file in, the predictions and the errors back as DataFrames."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from batchline_local.api import Batchline, RunFailed
from tests.e2e.conftest import SAMPLES

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def batchline() -> Batchline:
    with Batchline.local() as local:
        yield local  # type: ignore[misc]


def test_a_dataframe_comes_back_as_predictions_keyed_by_its_ids(batchline: Batchline) -> None:
    # GIVEN the demo's records as a DataFrame, keys that look like numbers among them
    frame = pd.read_csv(SAMPLES / "demo-sagemaker.csv", dtype={"id": str})
    frame.loc[0, "id"], frame.loc[1, "id"] = "007", "1e3"

    run = batchline.submit(frame, "demo-sagemaker", progress=False)
    predictions = run.predictions()

    assert run.status == "SUCCEEDED" and run.counts["predicted"] == len(frame)
    assert list(predictions.columns) == ["id", "churn_probability"]
    assert sorted(predictions["id"]) == sorted(frame["id"])  # keys stay text: 007 and 1e3 as written
    assert predictions["churn_probability"].between(0, 1).all()
    assert run.errors().empty and list(run.errors().columns)[:3] == ["source_file", "line", "key"]


def test_refused_records_come_back_as_an_errors_dataframe_with_line_and_reason(batchline: Batchline) -> None:
    frame = pd.read_csv(SAMPLES / "demo-sagemaker.csv", dtype=str)
    frame.loc[2, "id"] = frame.loc[1, "id"]  # a repeated key: the second is refused

    run = batchline.submit(frame, "demo-sagemaker", name="repeated.csv", progress=False)
    errors = run.errors()

    assert run.status == "PARTIALLY_SUCCEEDED"
    assert len(errors) == 1 and errors.loc[0, "line"] == "4" and "duplicate" in errors.loc[0, "reason"]
    assert len(run.predictions()) == len(frame) - 1


def test_a_file_a_run_id_and_a_failed_run(batchline: Batchline, tmp_path: Path) -> None:
    run = batchline.submit(SAMPLES / "demo-bedrock.csv", "demo-bedrock", wait=False)
    again = batchline.run(run.run_id).wait(progress=False)
    assert again.status == "SUCCEEDED" and again.manifest()["runId"] == run.run_id
    files = again.download(tmp_path / "out")
    assert files["errors"] is None and files["predictions"] is not None and files["manifest"] is not None
    assert files["predictions"].read_text().count("\n") == again.counts["predicted"] + 1

    empty = pd.DataFrame({"id": [], "tenure": []})
    failed = batchline.submit(empty, "demo-sagemaker", name="empty.csv", progress=False)
    assert failed.status == "FAILED"
    with pytest.raises(RunFailed, match="no predictions"):
        failed.predictions()
