"""Amazon ML adapter: request shapes pinned with botocore's Stubber (moto has no Amazon ML backend)."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from batchline.adapters.amazonml import AmazonMLAdapter, AmazonMLCsvEncoder, batch_schema, normalise_status
from batchline.adapters.base import (
    Chunk,
    FailedRecord,
    JobState,
    JobStatus,
    Prediction,
    RecordRejected,
    RunContext,
    release_job,
)
from batchline.config import parse_pipelines
from batchline.errors import (
    ConfigError,
    JobConflict,
    JobNotFound,
    OutputInvalid,
    ServiceRequestFailed,
    ServiceUnavailable,
)
from batchline.layout import RunLayout, S3Location
from botocore.stub import Stubber
from moto import mock_aws

from tests.adapters.staging import HOSTILE_KEYS, stage, staged

SCHEMA = {
    "version": "1.0",
    "targetAttributeName": "y",
    "dataFormat": "CSV",
    "dataFileContainsHeader": True,
    "attributes": [
        {"attributeName": "x", "attributeType": "NUMERIC"},
        {"attributeName": "y", "attributeType": "BINARY"},
    ],
}
PIPELINE = parse_pipelines(
    {
        "ml": {
            "keyColumn": "id",
            "service": {
                "provider": "amazonml",
                "mlModelId": "ml-abc",
                "modelType": "BINARY",
                "dataSchema": SCHEMA,
            },
        }
    }
).get("ml")
RUN = RunContext(
    run_id="ml-00112233445566778899aabbccddeeff",
    pipeline=PIPELINE,
    layout=RunLayout("ml", "ml-00112233445566778899aabbccddeeff", "work", "results"),
    staging={"keyHeader": "id", "dataSchema": batch_schema(SCHEMA, "id")},
    chunk=Chunk(0, S3Location("work", "ml/r/input/"), S3Location("work", "ml/r/output/job-00000/"), 2),
)


@pytest.fixture
def stubbed() -> Iterator[tuple[AmazonMLAdapter, Stubber]]:
    client = boto3.client("machinelearning", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield AmazonMLAdapter(PIPELINE.service, "id", client, s3=None), stubber  # type: ignore[arg-type]
        stubber.assert_no_pending_responses()


def data_source_request(adapter: AmazonMLAdapter) -> dict[str, Any]:
    return {
        "DataSourceId": "ds-" + adapter.job_id(RUN)[3:],
        "DataSourceName": f"batchline ml {RUN.run_id}",
        "DataSpec": {
            "DataLocationS3": "s3://work/ml/r/input/",
            "DataSchema": json.dumps(RUN.staging["dataSchema"]),
        },
        "ComputeStatistics": False,
    }


def test_schema_for_batch_adds_a_row_id_column_of_its_own() -> None:
    schema = batch_schema(SCHEMA, "id")
    assert schema["rowId"] == "batchline_row_id" and schema["dataFileContainsHeader"] is False
    assert [a["attributeName"] for a in schema["attributes"]] == ["x", "y", "batchline_row_id"]
    taken = {**SCHEMA, "attributes": [*SCHEMA["attributes"], {"attributeName": "batchline_row_id"}]}
    assert batch_schema(taken, "id")["rowId"] == "batchline_row_id_"


# --- staging and reading results (moto S3) ---------------------------------------------------------


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="work")
        yield client


def encoder() -> AmazonMLCsvEncoder:
    encoding = AmazonMLCsvEncoder(PIPELINE.service, RUN.staging["dataSchema"])
    encoding.start(["id", "x"], 0)
    return encoding


def score(s3: Any, staged_text: str, blank: set[int] = frozenset()) -> None:  # type: ignore[assignment]
    """What Amazon ML writes for a staged part: gzip CSV, header, rowId first, a blank line where it failed."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["tag", "bestAnswer", "score"])
    for n, values in enumerate(csv.reader(io.StringIO(staged_text))):
        if n in blank:
            out.write("\n")
        else:
            writer.writerow([values[-1], 1, f"{n / 10:.6E}"])
    result = "ml/r/output/job-00000/batch-prediction/result/bp-x-part-00000.csv.gz"
    s3.put_object(Bucket="work", Key=result, Body=gzip.compress(out.getvalue().encode()))
    manifest = {"s3://work/ml/r/input/part-00000.csv": f"s3://work/{result}"}
    s3.put_object(Bucket="work", Key="ml/r/output/job-00000/batch-prediction/bp-x.manifest", Body=json.dumps(manifest))


def read(s3: Any) -> list[Any]:
    adapter = AmazonMLAdapter(PIPELINE.service, "id", None, s3)
    job = JobState("bp-x", JobStatus.SUCCEEDED, "COMPLETED")
    return list(adapter.read_results(RUN, job, iter(staged(s3, RUN.layout, RUN.chunk.input_prefix))))


def test_keys_with_line_breaks_and_other_hostile_characters_come_back_under_their_own_keys(s3: Any) -> None:
    rows = [[key, str(n)] for n, key in enumerate(HOSTILE_KEYS)]
    records = stage(s3, RUN.layout, RUN.chunk.input_prefix, encoder(), rows, part="part-00000.csv")
    # The key is never sent: each staged line is x, the empty target, the generated rowId.
    assert all(record.text == f"{n},,R{n:011d}\n" for n, record in enumerate(records))
    score(s3, "".join(record.text for record in records), blank={3})
    out = read(s3)
    assert [(r.key, r.line) for r in out] == [(key, n + 2) for n, key in enumerate(HOSTILE_KEYS)]
    assert isinstance(out[3], FailedRecord) and "blank result line" in out[3].reason
    assert out[4] == Prediction("lf\ninside", 6, [["1", "4.000000E-01"]])


def test_a_result_read_as_csv_records_keeps_a_quoted_line_break_in_one_record(s3: Any) -> None:
    # A rowId with a line break (if the service ever echoed one) is one CSV record, not two lines.
    stage(s3, RUN.layout, RUN.chunk.input_prefix, encoder(), [["a", "1"], ["b", "2"]], part="part-00000.csv")
    text = 'tag,bestAnswer,score\n"R00000000000",1,"0.5\n"\n\n'
    result = "ml/r/output/job-00000/batch-prediction/result/bp-x-part-00000.csv.gz"
    s3.put_object(Bucket="work", Key=result, Body=gzip.compress(text.encode()))
    manifest = {"s3://work/ml/r/input/part-00000.csv": f"s3://work/{result}"}
    s3.put_object(Bucket="work", Key="ml/r/output/job-00000/batch-prediction/bp-x.manifest", Body=json.dumps(manifest))
    first, second = read(s3)
    assert first == Prediction("a", 2, [["1", "0.5\n"]])
    assert isinstance(second, FailedRecord) and second.key == "b"


def test_a_feature_with_a_line_break_is_refused_at_prepare() -> None:
    with pytest.raises(RecordRejected, match="column 'x' holds a line break"):
        encoder().encode(["k", "1\r2"], 0)


def test_a_result_for_another_row_id_is_refused(s3: Any) -> None:
    stage(s3, RUN.layout, RUN.chunk.input_prefix, encoder(), [["a", "1"]], part="part-00000.csv")
    score(s3, "1,,R00000000009\n")
    with pytest.raises(OutputInvalid, match="rowId 'R00000000009'"):
        read(s3)


def prediction_request(adapter: AmazonMLAdapter) -> dict[str, Any]:
    job_id = adapter.job_id(RUN)
    return {
        "BatchPredictionId": job_id,
        "BatchPredictionName": "batchline ml",
        "MLModelId": "ml-abc",
        "BatchPredictionDataSourceId": "ds-" + job_id[3:],
        "OutputUri": "s3://work/ml/r/output/job-00000/",
    }


def test_submit_creates_the_data_source_and_the_prediction_at_once(stubbed: Any) -> None:
    """Amazon ML queues a batch prediction until its data source is ready (dependency management), so Submit
    creates both and no later step ever needs to create anything."""
    adapter, stubber = stubbed
    job_id = adapter.job_id(RUN)
    stubber.add_response("create_data_source_from_s3", {"DataSourceId": "ds"}, data_source_request(adapter))
    stubber.add_response("create_batch_prediction", {"BatchPredictionId": job_id}, prediction_request(adapter))
    stubber.add_response(
        "get_batch_prediction", {"Status": "PENDING", "BatchPredictionId": job_id}, {"BatchPredictionId": job_id}
    )
    state = adapter.submit(RUN)
    assert (state.job_id, state.status) == (job_id, JobStatus.PENDING)
    assert job_id.startswith("bp-") and len(job_id) <= 64


def test_describe_reads_the_prediction_and_creates_nothing(stubbed: Any) -> None:
    adapter, stubber = stubbed
    job_id = adapter.job_id(RUN)
    stubber.add_response(
        "get_batch_prediction", {"Status": "INPROGRESS", "BatchPredictionId": job_id}, {"BatchPredictionId": job_id}
    )
    # The Stubber fails on any call not queued: a create here would fail the test.
    assert adapter.describe(RUN, job_id).status is JobStatus.RUNNING


def test_a_prediction_that_does_not_exist_is_reported_never_created(stubbed: Any) -> None:
    """Polling or stopping a run whose Submit never created the prediction creates nothing: it says so."""
    adapter, stubber = stubbed
    job_id = adapter.job_id(RUN)
    stubber.add_client_error(
        "get_batch_prediction", "ResourceNotFoundException", "none", 404, {"BatchPredictionId": job_id}
    )
    with pytest.raises(JobNotFound, match=job_id):
        adapter.describe(RUN, job_id)


def test_stop_makes_no_call(stubbed: Any) -> None:
    adapter, _ = stubbed
    assert adapter.stop(RUN, adapter.job_id(RUN)) is False  # Amazon ML cannot stop a batch prediction


def test_same_id_with_other_parameters_is_a_clear_conflict(stubbed: Any) -> None:
    adapter, stubber = stubbed
    stubber.add_client_error(
        "create_data_source_from_s3",
        "IdempotentParameterMismatchException",
        "mismatch",
        expected_params=data_source_request(adapter),
    )
    with pytest.raises(JobConflict, match="different parameters"):
        adapter.submit(RUN)


def test_closed_service_403_says_so(stubbed: Any) -> None:
    adapter, stubber = stubbed
    stubber.add_client_error(
        "create_data_source_from_s3",
        "AccessDeniedException",
        "AmazonML is no longer available to new customers. Please consider using Amazon SageMaker.",
        403,
        expected_params=data_source_request(adapter),
    )
    with pytest.raises(ServiceUnavailable, match="no longer available to new customers"):
        adapter.submit(RUN)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("PENDING", JobStatus.PENDING),
        ("INPROGRESS", JobStatus.RUNNING),
        ("COMPLETED", JobStatus.SUCCEEDED),
        ("FAILED", JobStatus.FAILED),
        ("DELETED", JobStatus.STOPPED),
    ],
)
def test_every_status_is_normalised(raw: str, status: JobStatus) -> None:
    assert normalise_status(raw) is status


# --- result headers: the columns come from the header, never blank cells under a name it lacks ----------------


def multiclass(class_names: list[str] | None = None) -> Any:
    service = {"provider": "amazonml", "mlModelId": "ml-abc", "modelType": "MULTICLASS", "dataSchema": SCHEMA}
    if class_names is not None:
        service["classNames"] = class_names
    return parse_pipelines({"ml": {"keyColumn": "id", "service": service}}).get("ml")


def write_result(s3: Any, header: list[str], rows: list[list[str]]) -> str:
    """A result file as Amazon ML writes it (CSV, so a label with a comma or a quote is quoted), and its manifest."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    result = "ml/r/output/job-00000/batch-prediction/result/bp-x-part-00000.csv.gz"
    s3.put_object(Bucket="work", Key=result, Body=gzip.compress(out.getvalue().encode()))
    manifest = {"s3://work/ml/r/input/part-00000.csv": f"s3://work/{result}"}
    s3.put_object(Bucket="work", Key="ml/r/output/job-00000/batch-prediction/bp-x.manifest", Body=json.dumps(manifest))
    return f"s3://work/{result}"


def read_with(s3: Any, pipeline: Any) -> tuple[list[str], list[Any]]:
    adapter = AmazonMLAdapter(pipeline.service, "id", None, s3)
    run = RunContext(RUN.run_id, pipeline, RUN.layout, RUN.staging, RUN.chunk)
    job = JobState("bp-x", JobStatus.SUCCEEDED, "COMPLETED")
    columns = adapter.result_columns(run)
    return columns, list(adapter.read_results(run, job, iter(staged(s3, RUN.layout, RUN.chunk.input_prefix))))


AWKWARD = ["low, or none", 'say "high"', "élevé"]


def test_multiclass_columns_are_the_labels_of_the_result_header_when_class_names_are_left_out(s3: Any) -> None:
    stage(s3, RUN.layout, RUN.chunk.input_prefix, encoder(), [["a", "1"], ["b", "2"]], part="part-00000.csv")
    write_result(s3, ["tag", *AWKWARD], [["R00000000000", "0.1", "0.2", "0.7"], ["R00000000001", "0.5", "0.4", "0.1"]])

    columns, out = read_with(s3, multiclass())

    assert columns == AWKWARD
    assert out == [Prediction("a", 2, [["0.1", "0.2", "0.7"]]), Prediction("b", 3, [["0.5", "0.4", "0.1"]])]


def test_configured_class_names_order_the_columns_whatever_the_header_order(s3: Any) -> None:
    stage(s3, RUN.layout, RUN.chunk.input_prefix, encoder(), [["a", "1"]], part="part-00000.csv")
    write_result(s3, ["tag", "high", "low"], [["R00000000000", "0.9", "0.1"]])

    columns, out = read_with(s3, multiclass(["low", "high"]))

    assert columns == ["low", "high"]
    assert out == [Prediction("a", 2, [["0.1", "0.9"]])]


def test_class_names_that_are_not_the_header_fail_naming_the_file_and_both_lists(s3: Any) -> None:
    """The reproduction: a header of 1_star,... with classNames low, medium, high gave blank scores counted as
    predicted; now the run fails and says why."""
    stage(s3, RUN.layout, RUN.chunk.input_prefix, encoder(), [["a", "1"]], part="part-00000.csv")
    uri = write_result(s3, ["tag", "1_star", "2_stars"], [["R00000000000", "0.3", "0.7"]])

    with pytest.raises(OutputInvalid) as raised:
        read_with(s3, multiclass(["low", "medium", "high"]))

    message = str(raised.value)
    assert uri in message
    assert "'1_star', '2_stars'" in message and "'low', 'medium', 'high'" in message


def test_the_guide_s_spaced_header_and_cells_are_read(s3: Any) -> None:
    stage(s3, RUN.layout, RUN.chunk.input_prefix, encoder(), [["a", "1"]], part="part-00000.csv")
    text = "tag, 1_star, 2_stars\nR00000000000, 8.7642E-3, 9.91E-1\n"
    result = "ml/r/output/job-00000/batch-prediction/result/bp-x-part-00000.csv.gz"
    s3.put_object(Bucket="work", Key=result, Body=gzip.compress(text.encode()))
    manifest = {"s3://work/ml/r/input/part-00000.csv": f"s3://work/{result}"}
    s3.put_object(Bucket="work", Key="ml/r/output/job-00000/batch-prediction/bp-x.manifest", Body=json.dumps(manifest))

    columns, out = read_with(s3, multiclass())

    assert columns == ["1_star", "2_stars"]
    assert out == [Prediction("a", 2, [["8.7642E-3", "9.91E-1"]])]


def test_a_binary_header_without_score_fails_instead_of_writing_blank_scores(s3: Any) -> None:
    stage(s3, RUN.layout, RUN.chunk.input_prefix, encoder(), [["a", "1"]], part="part-00000.csv")
    write_result(s3, ["tag", "bestAnswer", "probability"], [["R00000000000", "1", "0.8"]])

    with pytest.raises(OutputInvalid, match="without 'score'"):
        read(s3)


def test_a_header_that_does_not_start_with_the_tag_is_refused(s3: Any) -> None:
    stage(s3, RUN.layout, RUN.chunk.input_prefix, encoder(), [["a", "1"]], part="part-00000.csv")
    write_result(s3, ["bestAnswer", "score"], [["1", "0.8"]])

    with pytest.raises(OutputInvalid, match="not 'tag'"):
        read(s3)


def test_a_line_with_its_tag_but_no_score_is_a_failed_record_not_a_prediction(s3: Any) -> None:
    stage(s3, RUN.layout, RUN.chunk.input_prefix, encoder(), [["a", "1"], ["b", "2"]], part="part-00000.csv")
    write_result(s3, ["tag", "bestAnswer", "score"], [["R00000000000", "", ""], ["R00000000001", "1", "0.9"]])

    failed, predicted = read(s3)

    assert isinstance(failed, FailedRecord) and "no score" in failed.reason
    assert predicted == Prediction("b", 3, [["1", "0.9"]])


def test_class_names_are_checked_at_synth() -> None:
    with pytest.raises(ConfigError, match="classNames is for MULTICLASS models only"):
        parse_pipelines(
            {
                "ml": {
                    "keyColumn": "id",
                    "service": {"provider": "amazonml", "mlModelId": "m", "modelType": "BINARY", "classNames": ["a"]},
                }
            }
        )
    with pytest.raises(ConfigError, match="classNames repeats 'a'"):
        multiclass(["a", "b", "a"])
    with pytest.raises(ConfigError, match="starts or ends with a space"):
        multiclass([" a"])


# --- the service's own figures, and deleting what it keeps once the job has ended ------------------------------


def test_get_batch_prediction_figures_go_into_the_job_state(stubbed: Any) -> None:
    adapter, stubber = stubbed
    job_id = adapter.job_id(RUN)
    stubber.add_response(
        "get_batch_prediction",
        {
            "BatchPredictionId": job_id,
            "Status": "COMPLETED",
            "CreatedAt": datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC),
            "StartedAt": datetime(2026, 3, 1, 10, 0, 5, tzinfo=timezone(timedelta(hours=1))),
            "FinishedAt": datetime(2026, 3, 1, 9, 7, 30, tzinfo=UTC),
            "ComputeTime": 125_500,
            "LogUri": "https://eml-prod-emr.s3.amazonaws.com/log?Signature=x",
        },
        {"BatchPredictionId": job_id},
    )

    state = adapter.describe(RUN, job_id)

    assert state.figures == {
        "createdAt": "2026-03-01T09:00:00Z",
        "startedAt": "2026-03-01T09:00:05Z",  # UTC whatever the zone botocore gave
        "endedAt": "2026-03-01T09:07:30Z",
        "computeSeconds": 125.5,  # ComputeTime is in milliseconds
        "logUri": "https://eml-prod-emr.s3.amazonaws.com/log?Signature=x",
    }


def test_a_pending_prediction_reports_only_the_figures_it_has(stubbed: Any) -> None:
    adapter, stubber = stubbed
    job_id = adapter.job_id(RUN)
    stubber.add_response(
        "get_batch_prediction",
        {"BatchPredictionId": job_id, "Status": "PENDING", "CreatedAt": datetime(2026, 3, 1, tzinfo=UTC)},
        {"BatchPredictionId": job_id},
    )
    assert adapter.describe(RUN, job_id).figures == {"createdAt": "2026-03-01T00:00:00Z"}


ENDED = JobState("bp-x", JobStatus.SUCCEEDED, "COMPLETED")


def test_release_deletes_the_prediction_then_its_data_source(stubbed: Any) -> None:
    adapter, stubber = stubbed
    job_id = adapter.job_id(RUN)
    stubber.add_response("delete_batch_prediction", {"BatchPredictionId": job_id}, {"BatchPredictionId": job_id})
    source_id = "ds-" + job_id[3:]
    stubber.add_response("delete_data_source", {"DataSourceId": source_id}, {"DataSourceId": source_id})

    adapter.release(RUN, ENDED)


def test_release_takes_an_object_already_gone_as_deleted_and_reports_other_refusals(stubbed: Any) -> None:
    adapter, stubber = stubbed
    stubber.add_client_error("delete_batch_prediction", "ResourceNotFoundException", "gone", 404)
    stubber.add_client_error("delete_data_source", "InternalServerException", "try later", 500)

    with pytest.raises(ServiceRequestFailed, match="ds-.*InternalServerException: try later"):
        adapter.release(RUN, ENDED)


def test_release_makes_no_call_when_the_pipeline_keeps_its_service_objects() -> None:
    kept = PIPELINE.service.model_copy(update={"delete_service_objects": False})
    client = boto3.client("machinelearning", region_name="us-east-1")
    with Stubber(client) as stubber:  # any call would fail: none is queued
        AmazonMLAdapter(kept, "id", client, s3=None).release(RUN, ENDED)
        stubber.assert_no_pending_responses()


def test_release_job_waits_for_the_end_and_never_raises(stubbed: Any, caplog: pytest.LogCaptureFixture) -> None:
    adapter, stubber = stubbed
    release_job(adapter, RUN, JobState("bp-x", JobStatus.RUNNING, "INPROGRESS"))  # no call queued: none made
    stubber.add_client_error("delete_batch_prediction", "InternalServerException", "down", 500)
    stubber.add_client_error("delete_data_source", "InternalServerException", "down", 500)

    release_job(adapter, RUN, ENDED)

    assert "could not delete the service objects of job bp-x" in caplog.text
    assert "still runs" in caplog.text


def test_without_class_names_every_unit_takes_the_labels_of_the_run_s_first_result_even_when_job_0_failed(
    s3: Any,
) -> None:
    # GIVEN job 0 wrote nothing (it failed) and job 1 wrote a result with its header
    text = "tag,high,low\nR00000000000,0.9,0.1\n"
    result = "ml/r/output/job-00001/batch-prediction/result/bp-y-part-00000.csv.gz"
    s3.put_object(Bucket="work", Key=result, Body=gzip.compress(text.encode()))
    manifest = {"s3://work/ml/r/jobs/job-00001/part-00000.csv": f"s3://work/{result}"}
    s3.put_object(Bucket="work", Key="ml/r/output/job-00001/batch-prediction/bp-y.manifest", Body=json.dumps(manifest))
    pipeline = multiclass()
    run = RunContext(RUN.run_id, pipeline, RUN.layout, RUN.staging, RUN.chunk)  # job 0's unit writes the header

    columns = AmazonMLAdapter(pipeline.service, "id", None, s3).result_columns(run)

    assert columns == ["high", "low"]
