"""Personalize pipelines end to end on the local runtime (botocore-level emulator)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batchline.csvsafe import neutralise

from batchline_local.runtime import LocalRuntime, load_pipeline_context
from tests.e2e.conftest import SAMPLES, check_every_event, read_s3_csv, read_s3_json, step_inputs, write_csv

pytestmark = pytest.mark.timeout(120)
ARN = "arn:aws:personalize:us-east-1:123456789012:solution/{}/abc"
ROLE = "arn:aws:iam::123456789012:role/personalize-batch"
PIPELINES = {
    **load_pipeline_context(),
    "p-failing": {
        "keyColumn": "userId",
        "service": {
            "provider": "personalize",
            "recipe": "USER_PERSONALIZATION",
            "solutionVersionArn": ARN.format("failing"),
            "roleArn": ROLE,
        },
    },
    "p-ranking": {
        "keyColumn": "user",
        "service": {
            "provider": "personalize",
            "recipe": "PERSONALIZED_RANKING",
            "solutionVersionArn": ARN.format("rank"),
            "roleArn": ROLE,
            "itemListColumn": "candidates",
            "outputFormat": "wide",
        },
    },
    "p-segment": {
        "keyColumn": "itemId",
        "service": {
            "provider": "personalize",
            "recipe": "ITEM_AFFINITY",
            "solutionVersionArn": ARN.format("seg"),
            "roleArn": ROLE,
            "numResults": 3,
        },
    },
    "p-big-segment": {
        "keyColumn": "itemId",
        "service": {
            "provider": "personalize",
            "recipe": "ITEM_AFFINITY",
            "solutionVersionArn": ARN.format("bigseg"),
            "roleArn": ROLE,
            "numResults": 10_000,
            "filterArn": "arn:aws:personalize:us-east-1:123456789012:filter/active",
            "tags": {"team": "ads"},
        },
    },
    "p-theme": {
        "keyColumn": "itemId",
        "service": {
            "provider": "personalize",
            "recipe": "RELATED_ITEMS",
            "solutionVersionArn": ARN.format("similar"),
            "roleArn": ROLE,
            "numResults": 4,
            "batchInferenceJobMode": "THEME_GENERATION",
            "themeGenerationConfig": {"fieldsForThemeGeneration": {"itemName": "TITLE"}},
        },
    },
}


@pytest.fixture(scope="module")
def runtime(validate_event: Any) -> Iterator[LocalRuntime]:
    with LocalRuntime(PIPELINES) as local:
        yield local
        check_every_event(local, validate_event)


def test_user_recommendations_become_a_long_keyed_csv(runtime: LocalRuntime, validate_event: Any) -> None:
    result = runtime.run_file(SAMPLES / "demo-personalize.csv", "demo-personalize")

    assert result.status == "SUCCEEDED"
    assert result.event is not None
    validate_event(result.event)
    detail = result.event["detail"]
    assert detail["counts"] == {"input": 40, "sent": 40, "rejected": 0, "predicted": 40, "failed": 0}
    rows = read_s3_csv(runtime, detail["outputs"]["predictions"])
    assert list(rows[0]) == ["userId", "rank", "item_id", "score"]
    assert len(rows) == 40 * 10  # numResults 10 in cdk.json
    by_user = [r for r in rows if r["userId"] == "user-007"]
    assert [r["rank"] for r in by_user] == [str(n) for n in range(1, 11)]
    assert float(by_user[0]["score"]) >= float(by_user[-1]["score"])
    assert detail["jobs"][0]["jobId"].startswith("arn:aws:personalize:us-east-1:123456789012:batch-inference-job/bl-")


def test_per_record_errors_go_to_errors_csv_and_the_run_is_partial(
    runtime: LocalRuntime, validate_event: Any, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "some-bad.csv", ["userId"], [["u1"], ["error-user"], ["u3"]])
    result = runtime.run_file(path, "demo-personalize")

    assert result.event is not None
    validate_event(result.event)
    detail = result.event["detail"]
    assert detail["status"] == "PARTIALLY_SUCCEEDED"
    assert detail["counts"] == {"input": 3, "sent": 3, "rejected": 0, "predicted": 2, "failed": 1}
    (error,) = read_s3_csv(runtime, detail["outputs"]["errors"])
    assert (error["key"], error["line"], error["stage"]) == ("error-user", "3", "service")
    assert "cannot score 'error-user'" in error["reason"]


def test_a_failed_job_ends_in_a_failure_event_with_the_failure_reason(
    runtime: LocalRuntime, validate_event: Any, tmp_path: Path
) -> None:
    result = runtime.run_file(write_csv(tmp_path / "f.csv", ["userId"], [["u1"]]), "p-failing")

    assert result.status == "FAILED"
    assert result.event is not None
    validate_event(result.event)
    error = result.event["detail"]["error"]
    assert error["error"] == "JobFailed"
    assert "CREATE FAILED" in error["cause"] and "solution version is not ACTIVE" in error["cause"]


def test_duplicate_submit_finds_the_existing_job(runtime: LocalRuntime, tmp_path: Path) -> None:
    result = runtime.run_file(write_csv(tmp_path / "dup.csv", ["userId"], [["u1"], ["u2"]]), "demo-personalize")
    (submit_input,) = step_inputs(runtime, "SubmitJob", result.run_id)
    creates = runtime.personalize.create_calls

    again = runtime.invoke("SubmitJob", submit_input)  # a retried Lambda after the job was created

    assert again["jobId"] == result.event["detail"]["jobs"][0]["jobId"]  # type: ignore[index]
    assert again["status"] == "SUCCEEDED"
    assert runtime.personalize.create_calls == creates


def test_ranking_lists_items_per_user_in_wide_form(runtime: LocalRuntime, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "rank.csv", ["user", "candidates"], [["u1", "a|b|c"], ["u2", ""], ["u3", "x|y"]])
    result = runtime.run_file(path, "p-ranking")

    assert result.event is not None
    detail = result.event["detail"]
    rows = {r["user"]: r for r in read_s3_csv(runtime, detail["outputs"]["predictions"])}
    assert set(rows) == {"u1", "u3"}
    assert sorted(rows["u1"]["item_ids"].split("|")) == ["a", "b", "c"]
    assert len(rows["u3"]["scores"].split("|")) == 2
    (rejected,) = read_s3_csv(runtime, detail["outputs"]["errors"])
    assert rejected["key"] == "u2" and "nothing to rank" in rejected["reason"]


def test_segment_job_lists_users_per_item(runtime: LocalRuntime, tmp_path: Path) -> None:
    result = runtime.run_file(write_csv(tmp_path / "seg.csv", ["itemId"], [["i1"], ["i2"]]), "p-segment")

    assert result.event is not None
    assert result.event["detail"]["jobs"][0]["jobId"].split(":")[5].startswith("batch-segment-job/")
    rows = read_s3_csv(runtime, result.event["detail"]["outputs"]["predictions"])
    assert list(rows[0]) == ["itemId", "user_id"]
    assert len(rows) == 6


def test_a_full_job_quota_makes_the_run_wait_and_retry_not_fail(runtime: LocalRuntime, tmp_path: Path) -> None:
    runtime.personalize.quota_full_for = 2  # the account's 5 concurrent jobs are busy for two attempts
    result = runtime.run_file(write_csv(tmp_path / "busy.csv", ["userId"], [["u1"], ["u2"]]), "demo-personalize")

    assert result.status == "SUCCEEDED"
    assert runtime.personalize.quota_full_for == 0
    # SubmitJob raised QuotaFull twice, retried by the job's execution, then the job ran
    assert len(step_inputs(runtime, "SubmitJob", result.run_id)) == 3


def test_formula_keys_come_out_distinct_and_neutralised_in_predictions_and_errors(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    # GIVEN formula-shaped keys Personalize answers, answers with an error ("error") or leaves out ("dropped")
    answered = ["=x", "'=x", "\tlead", "@SUM(1)"]
    refused = ['=HYPERLINK("error")', "=error"]
    left_out = ["'=dropped", "\tdropped"]
    rows = [[key, "returning"] for key in answered + refused + left_out]
    result = runtime.run_file(write_csv(tmp_path / "formulas.csv", ["userId", "segment"], rows), "demo-personalize")

    assert result.event is not None
    detail = result.event["detail"]
    assert detail["counts"] == {"input": 8, "sent": 8, "rejected": 0, "predicted": 4, "failed": 4}
    # THEN every key is written with the reversible rule (one more leading apostrophe), all distinct
    predicted = {row["userId"] for row in read_s3_csv(runtime, detail["outputs"]["predictions"])}
    assert predicted == {neutralise(key) for key in answered}
    errors = read_s3_csv(runtime, detail["outputs"]["errors"])
    assert sorted(e["key"] for e in errors) == sorted(neutralise(key) for key in refused + left_out)
    assert len(predicted | {e["key"] for e in errors}) == 8
    assert all(e["stage"] == "service" for e in errors)


def test_a_segment_job_of_ten_thousand_users_per_item_with_a_filter(runtime: LocalRuntime, tmp_path: Path) -> None:
    result = runtime.run_file(write_csv(tmp_path / "big.csv", ["itemId"], [["i1"], ["i2"]]), "p-big-segment")

    assert result.status == "SUCCEEDED" and result.event is not None
    rows = read_s3_csv(runtime, result.event["detail"]["outputs"]["predictions"])
    per_item = {item: len({r["user_id"] for r in rows if r["itemId"] == item}) for item in ("i1", "i2")}
    assert per_item == {"i1": 10_000, "i2": 10_000}


def test_a_theme_job_writes_the_theme_of_each_item_as_a_column(runtime: LocalRuntime, tmp_path: Path) -> None:
    # GIVEN 150 items: theme jobs read at most 100 items a file, so they are staged in two files
    items = [[f"item-{n}"] for n in range(150)]
    result = runtime.run_file(write_csv(tmp_path / "themes.csv", ["itemId"], items), "p-theme")

    assert result.status == "SUCCEEDED" and result.event is not None
    assert result.event["detail"]["counts"]["predicted"] == 150
    rows = read_s3_csv(runtime, result.event["detail"]["outputs"]["predictions"])
    assert list(rows[0]) == ["itemId", "rank", "item_id", "score", "theme"]
    assert len(rows) == 150 * 4
    themes = {r["itemId"]: r["theme"] for r in rows}
    assert all(themes.values()) and len(set(themes.values())) > 1
    assert all(len({r["theme"] for r in rows if r["itemId"] == item}) == 1 for item in themes)


def test_the_manifest_carries_the_jobs_creation_and_end_and_nothing_personalize_does_not_give(
    runtime: LocalRuntime,
) -> None:
    result = runtime.run_file(SAMPLES / "demo-personalize.csv", "demo-personalize")

    assert result.event is not None
    detail = result.event["detail"]
    (job,) = read_s3_json(runtime, detail["outputs"]["manifest"])["jobs"]
    assert set(job["figures"]) == {"createdAt", "endedAt"}  # no start time, no consumption in DescribeBatch*Job
    assert job["figures"]["createdAt"] <= job["figures"]["endedAt"]
    assert detail["jobs"][0]["figures"] == job["figures"]
