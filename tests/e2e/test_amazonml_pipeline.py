"""Legacy Amazon ML end to end on the local runtime (botocore-level emulator)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batchline.csvsafe import format_row

from batchline_local.emulators.amazonml import AWKWARD_CLASSES
from batchline_local.runtime import LocalRuntime, load_pipeline_context
from tests.e2e.conftest import SAMPLES, check_every_event, read_s3_csv, read_s3_json, step_inputs, write_csv

pytestmark = pytest.mark.timeout(120)
HEADER = ["id", "age", "plan", "monthly_spend"]
PIPELINES = {
    **load_pipeline_context(),
    "ml-multi": {
        "keyColumn": "id",
        "service": {
            "provider": "amazonml",
            "mlModelId": "ml-multiclass-1",
            "modelType": "MULTICLASS",
            "classNames": ["low", "medium", "high"],
        },
    },
    "ml-reg": {
        "keyColumn": "id",
        "service": {"provider": "amazonml", "mlModelId": "ml-regression-1", "modelType": "REGRESSION"},
    },
    "ml-failing": {
        "keyColumn": "id",
        "service": {"provider": "amazonml", "mlModelId": "ml-failing-1", "modelType": "BINARY"},
    },
    "ml-closed": {
        "keyColumn": "id",
        "service": {"provider": "amazonml", "mlModelId": "ml-closed-1", "modelType": "BINARY"},
    },
    # The reproduction of the blank scores: the model's classes are 1_star ... 5_stars, the config says otherwise.
    "ml-stars-misnamed": {
        "keyColumn": "id",
        "service": {
            "provider": "amazonml",
            "mlModelId": "ml-multiclass-stars-1",
            "modelType": "MULTICLASS",
            "classNames": ["low", "medium", "high"],
        },
    },
    "ml-awkward": {
        "keyColumn": "id",
        "service": {"provider": "amazonml", "mlModelId": "ml-multiclass-awkward-1", "modelType": "MULTICLASS"},
    },
    "ml-keep": {
        "keyColumn": "id",
        "service": {
            "provider": "amazonml",
            "mlModelId": "ml-keep-1",
            "modelType": "BINARY",
            "deleteServiceObjects": False,
            "tags": {"team": "ml-ops", "cost centre": "42"},
        },
    },
}
ROWS = [["a1", 30, "basic", 20.5], ["a2", 61, "pro", 99.0]]


@pytest.fixture(scope="module")
def runtime(validate_event: Any) -> Iterator[LocalRuntime]:
    with LocalRuntime(PIPELINES) as local:
        yield local
        check_every_event(local, validate_event)


def test_binary_model_gives_best_answer_and_score_per_key(runtime: LocalRuntime, validate_event: Any) -> None:
    result = runtime.run_file(SAMPLES / "demo-amazonml.csv", "demo-amazonml")

    assert result.status == "SUCCEEDED"
    assert result.event is not None
    validate_event(result.event)
    detail = result.event["detail"]
    rows = read_s3_csv(runtime, detail["outputs"]["predictions"])
    assert list(rows[0]) == ["id", "bestAnswer", "score"]
    assert [row["id"] for row in rows] == [f"acct-{n:04d}" for n in range(1, 81)]
    assert {row["bestAnswer"] for row in rows} <= {"0", "1"}
    manifest = read_s3_json(runtime, detail["outputs"]["manifest"])
    assert manifest["jobs"][0]["counts"] == {"total": 80, "invalid": 0}


def test_multiclass_and_regression_columns(runtime: LocalRuntime, tmp_path: Path) -> None:
    multi = runtime.run_file(write_csv(tmp_path / "m.csv", HEADER, ROWS), "ml-multi")
    regression = runtime.run_file(write_csv(tmp_path / "r.csv", HEADER, ROWS), "ml-reg")

    assert multi.event and regression.event
    multi_rows = read_s3_csv(runtime, multi.event["detail"]["outputs"]["predictions"])
    assert list(multi_rows[0]) == ["id", "low", "medium", "high"]
    assert abs(sum(float(multi_rows[0][c]) for c in ("low", "medium", "high")) - 1) < 1e-4
    assert list(read_s3_csv(runtime, regression.event["detail"]["outputs"]["predictions"])[0]) == [
        "id",
        "score",
    ]


def test_blank_result_lines_are_failed_records(runtime: LocalRuntime, validate_event: Any, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "blank.csv", HEADER, [*ROWS, ["a3", "unknown", "plus", 10]])
    result = runtime.run_file(path, "demo-amazonml")

    assert result.event is not None
    validate_event(result.event)
    detail = result.event["detail"]
    assert detail["status"] == "PARTIALLY_SUCCEEDED"
    assert detail["jobs"][0]["counts"] == {"total": 3, "invalid": 1}
    (error,) = read_s3_csv(runtime, detail["outputs"]["errors"])
    assert (error["key"], error["line"]) == ("a3", "4")
    assert "blank result line" in error["reason"]


def test_failed_prediction_reports_the_service_message(runtime: LocalRuntime, tmp_path: Path) -> None:
    result = runtime.run_file(write_csv(tmp_path / "f.csv", HEADER, ROWS), "ml-failing")

    assert result.status == "FAILED"
    assert result.event is not None
    assert "the ML model is not usable" in result.event["detail"]["error"]["cause"]


def test_closed_service_says_so_in_the_failure_event(
    runtime: LocalRuntime, validate_event: Any, tmp_path: Path
) -> None:
    result = runtime.run_file(write_csv(tmp_path / "c.csv", HEADER, ROWS), "ml-closed")

    assert result.status == "FAILED"
    assert result.event is not None
    validate_event(result.event)
    error = result.event["detail"]["error"]
    assert error["error"] == "ServiceUnavailable"
    assert "no longer available to new customers" in error["cause"]


def test_duplicate_submit_reuses_the_data_source_and_prediction_ids(runtime: LocalRuntime, tmp_path: Path) -> None:
    # A pipeline that keeps its service objects: a deleted prediction would (rightly) read DELETED afterwards.
    result = runtime.run_file(write_csv(tmp_path / "d.csv", HEADER, ROWS), "ml-keep")
    (submit_input,) = step_inputs(runtime, "SubmitJob", result.run_id)
    creates = runtime.amazonml.create_calls

    again = runtime.invoke("SubmitJob", submit_input)

    assert result.event is not None
    assert again["jobId"] == result.event["detail"]["jobs"][0]["jobId"]
    assert again["status"] == "SUCCEEDED"
    assert runtime.amazonml.create_calls == creates


def test_keys_with_line_breaks_come_back_under_their_own_keys(runtime: LocalRuntime, tmp_path: Path) -> None:
    keys = ["a\nb", "c\rd", "e\r\nf", 'q"uote,comma', "=x", "'=x", "plain"]
    rows = [[key, 30 + n, "basic", 20.5] for n, key in enumerate(keys)]
    rows += [["bad", 40, "pro\nplus", 1.0], ["blank", "old", "pro", 1]]
    path = tmp_path / "breaks.csv"  # csvsafe quotes a lone CR, which csv.writer before 3.13 leaves bare
    path.write_text("".join(format_row([str(cell) for cell in row]) for row in [HEADER, *rows]), encoding="utf-8")
    result = runtime.run_file(path, "demo-amazonml")

    assert result.event is not None
    detail = result.event["detail"]
    assert detail["status"] == "PARTIALLY_SUCCEEDED", detail
    assert detail["counts"] == {"input": 9, "sent": 8, "rejected": 1, "predicted": 7, "failed": 1}
    predicted = [row["id"] for row in read_s3_csv(runtime, detail["outputs"]["predictions"])]
    assert predicted == ["a\nb", "c\rd", "e\r\nf", 'q"uote,comma', "'=x", "''=x", "plain"]
    errors = {row["key"]: row for row in read_s3_csv(runtime, detail["outputs"]["errors"])}
    assert errors["bad"]["stage"] == "prepare" and "line break" in errors["bad"]["reason"]
    assert errors["blank"]["stage"] == "service" and "blank result line" in errors["blank"]["reason"]


def test_class_names_unlike_the_result_header_fail_the_run_naming_the_file_and_both_lists(
    runtime: LocalRuntime, validate_event: Any, tmp_path: Path
) -> None:
    result = runtime.run_file(write_csv(tmp_path / "stars.csv", HEADER, ROWS), "ml-stars-misnamed")

    assert result.status == "FAILED" and result.event is not None
    validate_event(result.event)
    detail = result.event["detail"]
    assert detail["outputs"]["predictions"] is None  # no row of blank scores counted as predicted
    cause = detail["error"]["cause"]
    assert "batch-prediction/result/" in cause and ".csv.gz" in cause
    assert "'1_star', '2_stars', '3_stars', '4_stars', '5_stars'" in cause
    assert "'low', 'medium', 'high'" in cause


def test_multiclass_columns_come_from_the_header_labels_as_the_service_writes_them(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    result = runtime.run_file(write_csv(tmp_path / "awkward.csv", HEADER, ROWS), "ml-awkward")

    assert result.status == "SUCCEEDED" and result.event is not None
    rows = read_s3_csv(runtime, result.event["detail"]["outputs"]["predictions"])
    assert list(rows[0]) == ["id", *AWKWARD_CLASSES]  # a comma, a quote and an accent, each one column
    assert all(abs(sum(float(row[c]) for c in AWKWARD_CLASSES) - 1) < 1e-4 for row in rows)


def test_the_service_figures_reach_the_manifest_and_the_event(runtime: LocalRuntime, tmp_path: Path) -> None:
    result = runtime.run_file(write_csv(tmp_path / "figures.csv", HEADER, ROWS), "demo-amazonml")

    assert result.event is not None
    detail = result.event["detail"]
    figures = detail["jobs"][0]["figures"]
    assert set(figures) == {"createdAt", "startedAt", "endedAt", "computeSeconds", "logUri"}
    assert figures["createdAt"] <= figures["startedAt"] <= figures["endedAt"]
    assert figures["computeSeconds"] > 0 and figures["logUri"].startswith("https://")
    assert read_s3_json(runtime, detail["outputs"]["manifest"])["jobs"][0]["figures"] == figures


def test_a_failed_prediction_s_figures_are_in_the_failure_event(runtime: LocalRuntime, tmp_path: Path) -> None:
    result = runtime.run_file(write_csv(tmp_path / "failing.csv", HEADER, ROWS), "ml-failing")

    assert result.status == "FAILED" and result.event is not None
    figures = result.event["detail"]["jobs"][0]["figures"]
    assert {"createdAt", "startedAt", "endedAt", "logUri"} <= set(figures)
    assert "computeSeconds" not in figures  # ComputeTime is only given for a COMPLETED prediction


def test_the_run_s_data_source_and_prediction_are_deleted_after_it_and_nothing_is_denied(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    ok = runtime.run_file(write_csv(tmp_path / "ok.csv", HEADER, ROWS), "demo-amazonml")
    failed = runtime.run_file(write_csv(tmp_path / "bad.csv", HEADER, ROWS), "ml-failing")
    kept = runtime.run_file(write_csv(tmp_path / "kept.csv", HEADER, ROWS), "ml-keep")

    for result in (ok, failed):
        assert result.event is not None
        (job,) = result.event["detail"]["jobs"]
        prediction = job["jobId"]
        source = "ds-" + prediction[3:]
        assert runtime.amazonml.predictions[prediction]["Status"] == "DELETED"
        assert runtime.amazonml.data_sources[source]["Status"] == "DELETED"
        assert result.permissions["denied"] == []
    assert kept.event is not None
    kept_job = kept.event["detail"]["jobs"][0]["jobId"]
    assert runtime.amazonml.predictions[kept_job]["Status"] == "COMPLETED"


def test_the_users_tags_are_on_the_runs_data_source_and_prediction_and_tagging_is_allowed(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    result = runtime.run_file(write_csv(tmp_path / "tagged.csv", HEADER, ROWS), "ml-keep")
    assert result.status == "SUCCEEDED" and result.event is not None
    prediction = result.event["detail"]["jobs"][0]["jobId"]
    tags = {"team": "ml-ops", "cost centre": "42"}
    assert runtime.amazonml.predictions[prediction]["Tags"] == tags
    assert runtime.amazonml.data_sources["ds-" + prediction[3:]]["Tags"] == tags
    assert result.permissions["denied"] == []  # SubmitJob may AddTags (granted only when a pipeline has tags)
