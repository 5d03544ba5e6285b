"""SageMaker adapter: request shapes pinned with botocore's Stubber, outputs read from moto's S3."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from batchline.adapters.base import Chunk, FailedRecord, JobState, JobStatus, Prediction, RunContext
from batchline.adapters.sagemaker import SageMakerAdapter, normalise_status
from batchline.collect import staged_records
from batchline.config import parse_pipelines
from batchline.errors import JobConflict, JobNotFound, OutputInvalid, QuotaFull, ServiceRequestFailed, ServiceThrottled
from batchline.layout import RunLayout, S3Location
from botocore.stub import Stubber
from moto import mock_aws

PIPELINES = parse_pipelines(
    {
        "churn": {
            "keyColumn": "id",
            "service": {
                "provider": "sagemaker",
                "modelName": "churn-model",
                "predictionColumns": ["p"],
                "maxConcurrentTransforms": 4,
            },
        }
    }
)
RUN_ID = "churn-0123456789abcdef0123456789abcdef"
RUN = RunContext(
    run_id=RUN_ID,
    pipeline=PIPELINES.get("churn"),
    layout=RunLayout("churn", RUN_ID, "work-bucket", "results-bucket"),
    staging={"keyHeader": "id", "featureColumns": ["tenure", "charges"], "parts": 2},
    chunk=Chunk(
        0,
        S3Location("work-bucket", f"churn/{RUN_ID}/input/"),
        S3Location("work-bucket", f"churn/{RUN_ID}/output/job-00000/"),
        3,
    ),
)


def described(
    name: str,
    status: str,
    reason: str | None = None,
    model: str = "churn-model",
    uri: str = f"s3://work-bucket/churn/{RUN_ID}/input/",
) -> dict[str, Any]:
    now = datetime(2026, 11, 25, tzinfo=UTC)
    response: dict[str, Any] = {
        "TransformJobName": name,
        "TransformJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:transform-job/{name}",
        "TransformJobStatus": status,
        "ModelName": model,
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}}},
        "TransformOutput": {"S3OutputPath": "s3://work-bucket/out/"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        "CreationTime": now,
    }
    if reason:
        response["FailureReason"] = reason
    return response


@pytest.fixture
def stubbed() -> Iterator[tuple[SageMakerAdapter, Stubber]]:
    """SageMaker stubbed, S3 in moto (a Failed job's outputs and the staged index are read from it)."""
    client = boto3.client("sagemaker", region_name="us-east-1")
    with mock_aws(), Stubber(client) as stubber:
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="work-bucket")
        yield SageMakerAdapter(RUN.pipeline.service, client, s3=s3), stubber  # type: ignore[arg-type]
        stubber.assert_no_pending_responses()


def test_create_request_joins_the_key_back_through_data_processing(stubbed: Any) -> None:
    adapter, stubber = stubbed
    request = adapter.create_request(RUN)
    # Stubber validates every parameter name and type against SageMaker's real service model.
    stubber.add_response("create_transform_job", {"TransformJobArn": "arn:x"}, request)
    stubber.add_response(
        "describe_transform_job",
        described(request["TransformJobName"], "InProgress"),
        {"TransformJobName": request["TransformJobName"]},
    )
    state = adapter.submit(RUN)
    assert state.status is JobStatus.RUNNING
    assert request["DataProcessing"] == {
        "InputFilter": "$[1:]",
        "JoinSource": "Input",
        "OutputFilter": "$[0,3:]",
    }
    assert request["TransformInput"]["SplitType"] == "Line"
    assert request["TransformOutput"]["AssembleWith"] == "Line"
    assert request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://work-bucket/churn/{RUN_ID}/input/"
    assert request["MaxConcurrentTransforms"] == 4
    assert request["TransformJobName"].startswith("bl-")


def test_existing_job_with_our_name_is_found_not_recreated(stubbed: Any) -> None:
    adapter, stubber = stubbed
    name = adapter.job_id(RUN)
    stubber.add_client_error(
        "create_transform_job",
        "ResourceInUse",
        "Job name must be unique",
        400,
        expected_params=adapter.create_request(RUN),
    )
    stubber.add_response("describe_transform_job", described(name, "Completed"), {"TransformJobName": name})
    state = adapter.submit(RUN)
    assert (state.job_id, state.status) == (name, JobStatus.SUCCEEDED)


def test_existing_job_for_another_model_is_a_conflict(stubbed: Any) -> None:
    adapter, stubber = stubbed
    name = adapter.job_id(RUN)
    stubber.add_client_error(
        "create_transform_job", "ResourceInUse", "exists", 400, expected_params=adapter.create_request(RUN)
    )
    stubber.add_response(
        "describe_transform_job", described(name, "Completed", model="other"), {"TransformJobName": name}
    )
    with pytest.raises(JobConflict, match=name):
        adapter.submit(RUN)


@pytest.mark.parametrize(
    ("code", "error"), [("ThrottlingException", ServiceThrottled), ("ResourceLimitExceeded", QuotaFull)]
)
def test_throttling_and_quota_errors_become_named_retryable_errors(stubbed: Any, code: str, error: type) -> None:
    adapter, stubber = stubbed
    stubber.add_client_error(
        "create_transform_job", code, "slow down", 400, expected_params=adapter.create_request(RUN)
    )
    with pytest.raises(error):
        adapter.submit(RUN)


def test_failure_reason_is_surfaced(stubbed: Any) -> None:
    adapter, stubber = stubbed
    stubber.add_response(
        "describe_transform_job",
        described("bl-x", "Failed", "ClientError: bad record"),
        {"TransformJobName": "bl-x"},
    )
    state = adapter.describe(RUN, "bl-x")
    assert (state.status, state.message) == (JobStatus.FAILED, "ClientError: bad record")


def test_stop_is_skipped_for_a_job_that_already_ended(stubbed: Any) -> None:
    adapter, stubber = stubbed
    stubber.add_response("describe_transform_job", described("bl-x", "Completed"), {"TransformJobName": "bl-x"})
    adapter.stop(RUN, "bl-x")  # no StopTransformJob call queued: the Stubber would fail if one were made


def test_stop_is_sent_for_a_running_job(stubbed: Any) -> None:
    adapter, stubber = stubbed
    stubber.add_response("describe_transform_job", described("bl-x", "InProgress"), {"TransformJobName": "bl-x"})
    stubber.add_response("stop_transform_job", {}, {"TransformJobName": "bl-x"})
    adapter.stop(RUN, "bl-x")


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("InProgress", JobStatus.RUNNING),
        ("Completed", JobStatus.SUCCEEDED),
        ("Failed", JobStatus.FAILED),
        ("Stopping", JobStatus.RUNNING),
        ("Stopped", JobStatus.STOPPED),
        ("SomethingNew", JobStatus.RUNNING),
    ],
)
def test_every_transform_status_is_normalised(raw: str, status: JobStatus) -> None:
    assert normalise_status(raw) is status


# --- reading outputs (moto S3) ---------------------------------------------------------------------


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="work-bucket")
        yield client


def stage(s3: Any, part: str, rows: str, lines: str, out: str | None) -> None:
    """A staged part as Prepare leaves it (data + index of line, key, record ID) and, maybe, its output."""
    prefix = f"churn/{RUN_ID}"
    s3.put_object(Bucket="work-bucket", Key=f"{prefix}/input/{part}", Body=rows.encode())
    keys = [row.rsplit(",", 2)[0].strip('"') for row in rows.splitlines()]
    index = "".join(f'{line},"{key}","{key}"\n' for line, key in zip(lines.split(), keys, strict=True))
    s3.put_object(Bucket="work-bucket", Key=f"{prefix}/index/{part}.index.csv", Body=index.encode())
    if out is not None:
        s3.put_object(Bucket="work-bucket", Key=f"{prefix}/output/job-00000/{part}.out", Body=out.encode())


def results(s3: Any) -> list[Prediction | FailedRecord]:
    adapter = SageMakerAdapter(RUN.pipeline.service, sagemaker=None, s3=s3)
    staged = staged_records(s3, RUN.layout, RUN.chunk.input_prefix)
    return list(adapter.read_results(RUN, JobState("bl-x", JobStatus.SUCCEEDED, "Completed"), staged))


def test_outputs_are_keyed_back_in_order_with_source_lines(s3: Any) -> None:
    stage(s3, "part-00000.csv", 'k1,1,2\n"k,2",3,4\n', "2\n3\n", 'k1,0.1\n"k,2",0.2\n')
    stage(s3, "part-00001.csv", "k3,5,6\n", "5\n", "k3,0.3\n")
    assert results(s3) == [
        Prediction("k1", 2, [["0.1"]]),
        Prediction("k,2", 3, [["0.2"]]),
        Prediction("k3", 5, [["0.3"]]),
    ]


def test_a_file_without_output_fails_its_records_and_names_the_file(s3: Any) -> None:
    stage(s3, "part-00000.csv", "k1,1,2\n", "2\n", "k1,0.1\n")
    stage(s3, "part-00001.csv", "k2,1,2\nk3,1,2\n", "3\n4\n", None)
    out = results(s3)
    assert out[0] == Prediction("k1", 2, [["0.1"]])
    assert [(r.key, r.line) for r in out[1:]] == [("k2", 3), ("k3", 4)]
    assert all(isinstance(r, FailedRecord) and "part-00001.csv" in r.reason for r in out[1:])


def test_a_short_output_fails_the_missing_records(s3: Any) -> None:
    stage(s3, "part-00000.csv", "k1,1,2\nk2,1,2\n", "2\n3\n", "k1,0.1\n")
    out = results(s3)
    assert isinstance(out[1], FailedRecord) and out[1].key == "k2"


def test_wrong_number_of_values_is_a_per_record_failure(s3: Any) -> None:
    stage(s3, "part-00000.csv", "k1,1,2\n", "2\n", "k1,0.1,0.9\n")
    (record,) = results(s3)
    assert isinstance(record, FailedRecord) and "returned 2 values" in record.reason


def test_output_out_of_step_with_input_is_an_error_not_a_silent_mismatch(s3: Any) -> None:
    stage(s3, "part-00000.csv", "k1,1,2\nk2,1,2\n", "2\n3\n", "k2,0.1\nk1,0.2\n")
    with pytest.raises(OutputInvalid, match="key 'k2' where the input had 'k1'"):
        results(s3)


def test_an_output_file_matching_no_staged_part_is_refused_when_collect_is_planned(s3: Any) -> None:
    stage(s3, "part-00000.csv", "k1,1,2\n", "2\n", "k1,0.1\n")
    s3.put_object(Bucket="work-bucket", Key=f"churn/{RUN_ID}/output/job-00000/part-00009.csv.out", Body=b"k9,0.9\n")
    adapter = SageMakerAdapter(RUN.pipeline.service, sagemaker=None, s3=s3)
    with pytest.raises(OutputInvalid, match="output files match no staged input: part-00009.csv.out"):
        adapter.check_outputs(RUN)


def test_a_unit_of_some_parts_reads_only_their_outputs(s3: Any) -> None:
    stage(s3, "part-00000.csv", "k1,1,2\n", "2\n", "k1,0.1\n")
    stage(s3, "part-00001.csv", "k2,1,2\n", "3\n", "k2,0.2\n")
    adapter = SageMakerAdapter(RUN.pipeline.service, sagemaker=None, s3=s3)
    adapter.check_outputs(RUN)  # every output has its staged part
    staged = staged_records(s3, RUN.layout, RUN.chunk.input_prefix, ("part-00001.csv",))
    job = JobState("bl-x", JobStatus.SUCCEEDED, "Completed")
    assert list(adapter.read_results(RUN, job, staged)) == [Prediction("k2", 3, [["0.2"]])]


# --- a Failed job that left output for some files ---------------------------------------------------

BAD_RECORD = "ClientError: emulated model could not score record 2 of part-00001.csv: could not convert 'abc'"


def test_a_failed_job_with_output_for_other_files_is_partial_and_names_the_input_line(stubbed: Any) -> None:
    adapter, stubber = stubbed
    s3 = adapter._s3
    # GIVEN the job failed on the second record of part-00001 (input line 5) and wrote part-00000's output
    stage(s3, "part-00000.csv", "k1,1,2\nk2,1,2\n", "2\n3\n", "k1,0.1\nk2,0.2\n")
    stage(s3, "part-00001.csv", "k3,1,2\nk4,abc,2\n", "4\n5\n", None)
    stubber.add_response(
        "describe_transform_job", described("bl-x", "Failed", BAD_RECORD), {"TransformJobName": "bl-x"}
    )
    # WHEN it is described and its results read
    state = adapter.describe(RUN, "bl-x")
    out = list(adapter.read_results(RUN, state, staged_records(s3, RUN.layout, RUN.chunk.input_prefix)))
    # THEN the files with output are predictions, the file without output fails with the service's reason
    assert (state.status, state.raw_status) == (JobStatus.PARTIAL, "Failed")
    assert "input line 5 (record 2 of part-00001.csv)" in (state.message or "")
    assert out[:2] == [Prediction("k1", 2, [["0.1"]]), Prediction("k2", 3, [["0.2"]])]
    assert [(r.key, r.line) for r in out[2:]] == [("k3", 4), ("k4", 5)]
    assert all(isinstance(r, FailedRecord) and "input line 5" in r.reason and "abc" in r.reason for r in out[2:])


def test_a_failed_job_without_any_output_stays_failed_with_the_input_line(stubbed: Any) -> None:
    adapter, stubber = stubbed
    stage(adapter._s3, "part-00001.csv", "k3,1,2\nk4,abc,2\n", "4\n5\n", None)
    stubber.add_response(
        "describe_transform_job", described("bl-x", "Failed", BAD_RECORD), {"TransformJobName": "bl-x"}
    )
    state = adapter.describe(RUN, "bl-x")
    assert state.status is JobStatus.FAILED
    assert state.message == BAD_RECORD.replace("record 2 of", "input line 5 (record 2 of").replace(".csv:", ".csv):", 1)


def test_a_record_position_in_a_file_that_was_not_staged_is_left_as_written(stubbed: Any) -> None:
    adapter, stubber = stubbed
    reason = "ClientError: record 9 of part-00042.csv and record 1 of ../x.csv"
    stubber.add_response("describe_transform_job", described("bl-x", "Failed", reason), {"TransformJobName": "bl-x"})
    assert adapter.describe(RUN, "bl-x").message == reason


@pytest.mark.parametrize("cell", ["abc", "", "nan", "inf", "-Infinity", "1_0", " 1", "1e400", "٣"])
def test_numeric_features_refuse_a_value_the_model_cannot_parse_as_one_record(cell: str) -> None:
    from batchline.adapters.base import RecordRejected
    from batchline.adapters.sagemaker import SageMakerCsvEncoder
    from batchline.config import SageMakerSettings

    strict = SageMakerCsvEncoder(SageMakerSettings(provider="sagemaker", model_name="m", numeric_features=True))
    strict.start(["id", "a", "b"], 0)
    assert strict.encode(["k", "-1.5e3", "+.5"], 0).text == "k,-1.5e3,+.5\n"
    with pytest.raises(RecordRejected, match="column 'b' is not a finite decimal number"):
        strict.encode(["k", "1", cell], 1)
    lenient = SageMakerCsvEncoder(SageMakerSettings(provider="sagemaker", model_name="m"))
    lenient.start(["id", "a", "b"], 0)
    assert lenient.encode(["k", "1", cell], 1).record_id == "k"  # the model decides, and may fail the file


# ResourceLimitExceeded as SageMaker words it (seen in CreateTrainingJob/CreateTransformJob answers since 2019).
def limit_message(quota: str, limit: int, usage: int, delta: int) -> str:
    return (
        f"The account-level service limit '{quota}' is {limit} Instances, with current utilization of {usage} "
        f"Instances and a request delta of {delta} Instances. Please use AWS Service Quotas to request an increase "
        "for this quota. If AWS Service Quotas is not available, contact AWS support to request an increase for "
        "this quota."
    )


@pytest.mark.parametrize(
    ("limit", "usage", "delta"),
    [(0, 0, 1), (2, 0, 3)],
    ids=["quota-is-zero", "job-alone-exceeds-it"],
)
def test_a_quota_the_job_can_never_fit_fails_at_once_naming_it(
    stubbed: Any, limit: int, usage: int, delta: int
) -> None:
    adapter, stubber = stubbed
    quota = "ml.p3.2xlarge for transform job usage"
    stubber.add_client_error(
        "create_transform_job",
        "ResourceLimitExceeded",
        limit_message(quota, limit, usage, delta),
        400,
        expected_params=adapter.create_request(RUN),
    )
    with pytest.raises(ServiceRequestFailed) as raised:
        adapter.submit(RUN)
    message = str(raised.value)
    assert f"'{quota}'" in message and f"is {limit}" in message and f"needs {delta}" in message
    assert "Service Quotas" in message  # says how to raise it


def test_a_full_quota_waits_for_a_slot(stubbed: Any) -> None:
    adapter, stubber = stubbed
    message = limit_message("ml.m5.large for transform job usage", 4, 4, 1)
    stubber.add_client_error(
        "create_transform_job", "ResourceLimitExceeded", message, 400, expected_params=adapter.create_request(RUN)
    )
    with pytest.raises(QuotaFull, match="ml.m5.large for transform job usage"):
        adapter.submit(RUN)


@pytest.mark.parametrize(
    "message",
    ["", "Limit exceeded", "The account-level service limit 'x' is many Instances", "'x' is 0 Instances"],
    ids=["empty", "no-numbers", "garbled", "partial"],
)
def test_a_quota_message_that_cannot_be_read_waits_for_a_slot(stubbed: Any, message: str) -> None:
    """Only the message tells the cases apart: anything not read for certain keeps the bounded wait."""
    adapter, stubber = stubbed
    stubber.add_client_error(
        "create_transform_job", "ResourceLimitExceeded", message, 400, expected_params=adapter.create_request(RUN)
    )
    with pytest.raises(QuotaFull):
        adapter.submit(RUN)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("ResourceNotFound", "Resource not found"),
        ("ValidationException", "Could not find transform job 'arn:aws:sagemaker:us-east-1:1:transform-job/bl-x'."),
    ],
)
def test_a_job_sagemaker_cannot_find_was_never_created(stubbed: Any, code: str, message: str) -> None:
    adapter, stubber = stubbed
    stubber.add_client_error("describe_transform_job", code, message, 400, {"TransformJobName": "bl-x"})
    with pytest.raises(JobNotFound, match="bl-x"):
        adapter.describe(RUN, "bl-x")


@pytest.mark.parametrize(
    ("code", "message"),
    [("AccessDeniedException", "denied"), ("ValidationException", "1 validation error"), ("ThrottlingException", "")],
)
def test_any_other_error_while_looking_is_not_never_created(stubbed: Any, code: str, message: str) -> None:
    adapter, stubber = stubbed
    stubber.add_client_error("describe_transform_job", code, message, 400, {"TransformJobName": "bl-x"})
    with pytest.raises(Exception) as raised:
        adapter.describe(RUN, "bl-x")
    assert not isinstance(raised.value, JobNotFound)


# --- featureColumns: only the model's columns, in the model's order -------------------------------------------


def test_feature_columns_stage_only_those_columns_in_that_order_after_the_key() -> None:
    from batchline.adapters.sagemaker import SageMakerCsvEncoder
    from batchline.config import SageMakerSettings

    encoder = SageMakerCsvEncoder(
        SageMakerSettings(provider="sagemaker", model_name="m", feature_columns=["charges", "tenure"])
    )
    staging = encoder.start(["notes", "tenure", "id", "charges", "email"], 2)
    assert staging["featureColumns"] == ["charges", "tenure"]
    assert encoder.encode(["call back", "12", "c-1", "70.5", "a@b.c"], 0).text == "c-1,70.5,12\n"


def test_the_output_filter_keeps_the_key_and_what_follows_the_chosen_features(stubbed: Any) -> None:
    adapter, _ = stubbed
    run = RunContext(**{**RUN.__dict__, "staging": {**RUN.staging, "featureColumns": ["charges", "tenure"]}})
    assert adapter.create_request(run)["DataProcessing"]["OutputFilter"] == "$[0,3:]"


def test_a_file_without_a_feature_column_is_refused_naming_it() -> None:
    from batchline.adapters.sagemaker import SageMakerCsvEncoder
    from batchline.config import SageMakerSettings
    from batchline.errors import InputRejected

    encoder = SageMakerCsvEncoder(
        SageMakerSettings(provider="sagemaker", model_name="m", feature_columns=["tenure", "charges", "age"])
    )
    with pytest.raises(InputRejected, match="featureColumns not in the header: charges, age"):
        encoder.start(["id", "tenure", "Charges"], 0)
