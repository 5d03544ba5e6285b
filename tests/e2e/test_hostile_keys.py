"""Keys a spreadsheet, a CSV reader or a line splitter would mangle, through whole runs on the local runtime."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batchline.csvsafe import format_row, restore

from batchline_local.runtime import LocalRuntime
from tests.e2e.conftest import SAMPLES, check_every_event, read_s3_csv

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def runtime(validate_event: Any) -> Iterator[LocalRuntime]:
    with LocalRuntime() as local:
        yield local
        check_every_event(local, validate_event)


def test_a_key_with_a_quoted_lone_cr_is_predicted_under_its_own_key(runtime: LocalRuntime, tmp_path: Path) -> None:
    upload = tmp_path / "cr.csv"
    upload.write_bytes(b'userId,segment\n"u\rv",a\nok,a\n')
    result = runtime.run_file(upload, "demo-personalize")

    assert result.event is not None
    detail = result.event["detail"]
    assert detail["status"] == "SUCCEEDED", detail["error"]
    assert detail["counts"] == {"input": 2, "sent": 2, "rejected": 0, "predicted": 2, "failed": 0}
    assert {row["userId"] for row in read_s3_csv(runtime, detail["outputs"]["predictions"])} == {"u\rv", "ok"}


def test_keys_that_differ_only_by_a_leading_apostrophe_stay_distinct(runtime: LocalRuntime, tmp_path: Path) -> None:
    keys = ["=x", "'=x", "'", "''", "@SUM(1)", "\tlead", "-2+3", "-0.5"]
    upload = tmp_path / "formulas.csv"
    upload.write_text("userId,segment\n" + "".join(f'"{key}",a\n' for key in keys), encoding="utf-8")
    result = runtime.run_file(upload, "demo-personalize")

    assert result.event is not None
    detail = result.event["detail"]
    assert detail["counts"]["predicted"] == len(keys)
    written = {row["userId"] for row in read_s3_csv(runtime, detail["outputs"]["predictions"])}
    assert written == {"'=x", "''=x", "''", "'''", "'@SUM(1)", "'\tlead", "'-2+3", "-0.5"}
    assert {restore(key) for key in written} == set(keys)


def test_one_bad_feature_value_is_one_errors_row_not_a_failed_file(runtime: LocalRuntime, tmp_path: Path) -> None:
    # GIVEN the demo SageMaker model (numericFeatures) and row 61 with text in a numeric column
    rows = list(csv.reader((SAMPLES / "demo-sagemaker.csv").open(newline="")))
    rows[61][2] = "abc"
    upload = tmp_path / "abc.csv"
    upload.write_text("".join(format_row(row) for row in rows), encoding="utf-8")
    result = runtime.run_file(upload, "demo-sagemaker")

    assert result.event is not None
    detail = result.event["detail"]
    assert detail["status"] == "PARTIALLY_SUCCEEDED"
    assert detail["counts"] == {"input": 120, "sent": 119, "rejected": 1, "predicted": 119, "failed": 0}
    (error,) = read_s3_csv(runtime, detail["outputs"]["errors"])
    assert (error["line"], error["key"], error["stage"]) == ("62", rows[61][0], "prepare")
    assert error["reason"] == "column 'monthly_charges' is not a finite decimal number: 'abc'"
