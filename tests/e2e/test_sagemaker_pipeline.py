"""SageMaker pipeline, upload to event, on the local runtime (each test has a deadline via pytest-timeout)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchline_local.runtime import BUCKETS, LocalRuntime, load_pipeline_context
from tests.e2e.conftest import SAMPLES, check_every_event, read_s3_csv, read_s3_json, write_csv

pytestmark = pytest.mark.timeout(120)
HEADER = ["id", "tenure", "charges"]
PIPELINES = load_pipeline_context()
# The demo pipeline with numericFeatures off: the model, not Prepare, meets a bad value, and fails its file.
ANY_FEATURES = "sagemaker-any-features"
PIPELINES[ANY_FEATURES] = {
    **PIPELINES["demo-sagemaker"],
    "service": {**PIPELINES["demo-sagemaker"]["service"], "numericFeatures": False},
}


# The demo model takes tenure then charges; these uploads carry other columns, in another order.
FEATURES = "sagemaker-features"
PIPELINES[FEATURES] = {
    **PIPELINES["demo-sagemaker"],
    "service": {**PIPELINES["demo-sagemaker"]["service"], "featureColumns": ["tenure", "charges"]},
}


@pytest.fixture(scope="module")
def runtime(validate_event: Any) -> Iterator[LocalRuntime]:
    with LocalRuntime(PIPELINES) as local:
        yield local
        check_every_event(local, validate_event)


def test_sample_file_produces_one_keyed_csv_and_a_success_event(runtime: LocalRuntime, validate_event: Any) -> None:
    result = runtime.run_file(SAMPLES / "demo-sagemaker.csv", "demo-sagemaker")

    assert result.status == "SUCCEEDED"
    assert result.event is not None
    validate_event(result.event)
    detail = result.event["detail"]
    assert detail["status"] == "SUCCEEDED"
    assert detail["runtime"] == "local-emulation"
    assert detail["counts"] == {"input": 120, "sent": 120, "rejected": 0, "predicted": 120, "failed": 0}
    predictions = read_s3_csv(runtime, detail["outputs"]["predictions"])
    assert list(predictions[0]) == ["id", "churn_probability"]
    assert [row["id"] for row in predictions] == [f"cust-{i:04d}" for i in range(1, 121)]
    assert all(0 < float(row["churn_probability"]) < 1 for row in predictions)
    manifest = read_s3_json(runtime, detail["outputs"]["manifest"])
    assert manifest["counts"] == detail["counts"]
    assert manifest["parts"][0]["rows"] == 120 and len(manifest["parts"][0]["sha256"]) == 64
    # recordsPerFile is 50 in cdk.json: the job read three staged files and wrote three .out files.
    work = runtime.client("s3").list_objects_v2(
        Bucket=BUCKETS["work"], Prefix=f"demo-sagemaker/{result.run_id}/output/"
    )
    assert len(work["Contents"]) == 3


def test_duplicate_and_blank_keys_are_rejected_and_the_run_partially_succeeds(
    runtime: LocalRuntime, validate_event: Any, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "dupes.csv", HEADER, [["a", 1, 2], ["b", 3, 4], ["a", 5, 6], ["", 7, 8], ["c", 9, 1]])
    result = runtime.run_file(path, "demo-sagemaker")

    assert result.status == "SUCCEEDED"
    assert result.event is not None
    validate_event(result.event)
    detail = result.event["detail"]
    assert result.event["detail-type"] == "Batch Prediction Partially Succeeded"
    assert detail["counts"] == {"input": 5, "sent": 3, "rejected": 2, "predicted": 3, "failed": 0}
    assert [row["id"] for row in read_s3_csv(runtime, detail["outputs"]["predictions"])] == ["a", "b", "c"]
    errors = read_s3_csv(runtime, detail["outputs"]["errors"])
    assert [(e["line"], e["key"], e["reason"]) for e in errors] == [
        ("4", "a", "duplicate key 'a' (first seen on line 2)"),
        ("5", "", "blank key"),
    ]
    assert errors[0]["source_file"].endswith("demo-sagemaker/dupes.csv")


def test_missing_key_column_fails_the_run_with_a_clear_event(
    runtime: LocalRuntime, validate_event: Any, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "nokey.csv", ["customer", "tenure"], [["a", 1]])
    result = runtime.run_file(path, "demo-sagemaker")

    assert result.status == "FAILED"
    assert result.event is not None
    validate_event(result.event)
    error = result.event["detail"]["error"]
    assert error["error"] == "InputRejected"
    assert "demo-sagemaker/nokey.csv" in error["cause"]
    assert "key column 'id' is not in the header (columns: customer, tenure)" in error["cause"]
    # Nothing lost: the upload is still in the inbox.
    head = runtime.client("s3").head_object(Bucket=BUCKETS["inbox"], Key="demo-sagemaker/nokey.csv")
    assert head["ContentLength"] > 0


def test_a_job_that_fails_ends_in_a_failure_event_with_the_service_reason(
    runtime: LocalRuntime, validate_event: Any, tmp_path: Path
) -> None:
    # The emulated model, like a real CSV container, cannot score a non-numeric feature.
    path = write_csv(tmp_path / "bad-feature.csv", HEADER, [["a", 1, 2], ["b", "twelve", 4]])
    result = runtime.run_file(path, ANY_FEATURES)

    assert result.status == "FAILED"
    assert result.event is not None
    validate_event(result.event)
    detail = result.event["detail"]
    assert detail["error"]["error"] == "JobFailed"
    assert "ended with status Failed" in detail["error"]["cause"]
    assert "ClientError: See job logs for more information" in detail["error"]["cause"]
    assert detail["jobs"][0]["rawStatus"] == "Failed"
    assert detail["counts"]["predicted"] == 0 and detail["counts"]["failed"] == 2
    assert read_s3_json(runtime, detail["outputs"]["manifest"])["status"] == "FAILED"
    # Every record sent comes back in errors.csv with its line and the job's reason: the records to send again.
    errors = read_s3_csv(runtime, detail["outputs"]["errors"])
    assert [(row["key"], row["line"], row["stage"]) for row in errors] == [("a", "2", "service"), ("b", "3", "service")]
    assert all("ended with status Failed" in row["reason"] for row in errors)


def test_same_s3_event_delivered_twice_starts_one_run(runtime: LocalRuntime, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "twice.csv", HEADER, [["a", 1, 2]])
    event = runtime.object_created_event(runtime.upload(path, "demo-sagemaker"))
    jobs_before = runtime.sagemaker.create_calls

    first = runtime.deliver(event)
    second = runtime.deliver(event)  # while the first run is still going
    result = runtime.wait_for(first["runId"])
    third = runtime.deliver(event)  # after it finished

    assert first["started"] is True
    assert second["runId"] == third["runId"] == first["runId"]
    assert third["started"] is False and "duplicate" in third["reason"]
    sfn = runtime.client("stepfunctions")
    names = [e["name"] for e in sfn.list_executions(stateMachineArn=runtime.state_machine_arn)["executions"]]
    assert names.count(first["runId"]) == 1
    assert runtime.sagemaker.create_calls - jobs_before == 1
    assert result.status == "SUCCEEDED"
    assert [e["detail"]["runId"] for e in runtime.published_events()].count(first["runId"]) == 1


def test_reupload_is_a_new_run_and_the_old_results_stay(runtime: LocalRuntime, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "again.csv", HEADER, [["a", 1, 2]])
    first = runtime.run_file(path, "demo-sagemaker")
    write_csv(path, HEADER, [["a", 1, 2], ["b", 2, 3]])
    second = runtime.run_file(path, "demo-sagemaker")

    assert first.run_id != second.run_id
    assert first.event and second.event
    assert len(read_s3_csv(runtime, first.event["detail"]["outputs"]["predictions"])) == 1
    assert len(read_s3_csv(runtime, second.event["detail"]["outputs"]["predictions"])) == 2


def test_upload_outside_every_pipeline_gets_a_failure_event_and_no_run(
    runtime: LocalRuntime, validate_event: Any, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "lost.csv", HEADER, [["a", 1, 2]])
    result = runtime.run_file(path, "no-such-pipeline")

    assert result.status == "NOT_STARTED"
    assert result.event is not None
    validate_event(result.event)
    assert result.event["detail"]["error"]["error"] == "UnknownPipeline"
    assert "no-such-pipeline/lost.csv" in result.event["detail"]["error"]["cause"]


def test_a_key_with_spaces_and_unicode_runs(runtime: LocalRuntime, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", HEADER, [["a", 1, 2]])
    obj = runtime.upload(path, "demo-sagemaker", name="März results 1.csv")
    decision = runtime.deliver(runtime.object_created_event(obj))
    result = runtime.wait_for(decision["runId"])
    assert result.status == "SUCCEEDED"
    assert result.event and result.event["detail"]["input"]["key"] == "demo-sagemaker/März results 1.csv"


def test_keys_a_spreadsheet_would_run_are_written_as_text(runtime: LocalRuntime, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "formula.csv", HEADER, [['=HYPERLINK("http://x")', 1, 2], ["-7", 3, 4]])
    result = runtime.run_file(path, "demo-sagemaker")

    assert result.event is not None
    rows = read_s3_csv(runtime, result.event["detail"]["outputs"]["predictions"])
    assert [row["id"] for row in rows] == ['\'=HYPERLINK("http://x")', "-7"]


def test_json_lines_uploads_run_like_csv(runtime: LocalRuntime, tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text('{"id": "j1", "tenure": 3, "charges": 9.5}\n{"id": "j2", "tenure": 4, "charges": 1}\n42\n')
    result = runtime.run_file(path, "demo-sagemaker")

    assert result.event is not None
    detail = result.event["detail"]
    assert detail["status"] == "PARTIALLY_SUCCEEDED"
    assert [row["id"] for row in read_s3_csv(runtime, detail["outputs"]["predictions"])] == ["j1", "j2"]
    (error,) = read_s3_csv(runtime, detail["outputs"]["errors"])
    assert (error["line"], error["reason"]) == ("3", "not a JSON object but int")


def test_one_bad_feature_fails_only_its_file_and_the_run_is_partial(runtime: LocalRuntime, tmp_path: Path) -> None:
    # GIVEN the demo file with "abc" in one feature of its 61st record (line 62): recordsPerFile is 50, so the
    # record is in the second of three staged files
    lines = (SAMPLES / "demo-sagemaker.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    key, _, rest = lines[61].partition(",")
    lines[61] = f"{key},abc,{rest.split(',', 1)[1]}"
    path = tmp_path / "bad-row-61.csv"
    path.write_text("".join(lines), encoding="utf-8")

    result = runtime.run_file(path, ANY_FEATURES)

    # THEN the other files' records are predictions, the second file's are service errors naming the line
    assert result.event is not None
    detail = result.event["detail"]
    assert detail["status"] == "PARTIALLY_SUCCEEDED", detail
    assert detail["jobs"][0]["rawStatus"] == "Failed"
    assert detail["counts"] == {"input": 120, "sent": 120, "rejected": 0, "predicted": 70, "failed": 50}
    predicted = [row["id"] for row in read_s3_csv(runtime, detail["outputs"]["predictions"])]
    assert predicted == [f"cust-{i:04d}" for i in [*range(1, 51), *range(101, 121)]]
    errors = read_s3_csv(runtime, detail["outputs"]["errors"])
    assert [e["line"] for e in errors] == [str(n) for n in range(52, 102)]
    assert all(e["stage"] == "service" and "part-00001.csv" in e["reason"] for e in errors)
    assert "See job logs for more information" in errors[0]["reason"]  # the service's FailureReason


def test_feature_columns_send_only_those_columns_in_the_models_order(runtime: LocalRuntime, tmp_path: Path) -> None:
    # GIVEN an upload with a text column the model cannot take, and its features in another order
    rows = [["call back", "70.5", "c-1", "12"], ["vip", "20", "c-2", "3"]]
    path = write_csv(tmp_path / "wide.csv", ["notes", "charges", "id", "tenure"], rows)

    result = runtime.run_file(path, FEATURES)

    assert result.status == "SUCCEEDED" and result.event is not None
    assert result.event["detail"]["counts"]["predicted"] == 2
    # THEN the staged lines are key, tenure, charges: nothing else reaches the model
    s3 = runtime.client("s3")
    staged = [
        item["Key"]
        for item in s3.list_objects_v2(Bucket=BUCKETS["work"], Prefix=f"{FEATURES}/{result.run_id}/")["Contents"]
        if "/input/" in item["Key"] and item["Key"].endswith(".csv")
    ]
    lines = {s3.get_object(Bucket=BUCKETS["work"], Key=key)["Body"].read().decode() for key in staged}
    assert lines == {"c-1,12,70.5\nc-2,3,20\n"}
    by_id = {row["id"]: row for row in read_s3_csv(runtime, result.event["detail"]["outputs"]["predictions"])}
    assert set(by_id) == {"c-1", "c-2"} and all(row["churn_probability"] for row in by_id.values())


def test_an_upload_missing_a_feature_column_is_refused_naming_it(runtime: LocalRuntime, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "narrow.csv", ["id", "tenure"], [["c-1", "12"]])

    result = runtime.run_file(path, FEATURES)

    assert result.status == "FAILED" and result.event is not None
    assert "featureColumns not in the header: charges" in json.dumps(result.event["detail"])
