"""SageMaker content types, batch strategies, data capture and the job's own figures.

Each request shape is pinned with botocore's Stubber (which checks it against SageMaker's service model), each
setting is refused at synth where CreateTransformJob refuses it, and the emulator refuses what the API refuses.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from batchline.adapters.base import FailedRecord, JobState, JobStatus, Prediction, RecordRejected, RunContext
from batchline.adapters.sagemaker import SageMakerAdapter, job_figures
from batchline.collect import staged_records
from batchline.config import parse_pipelines
from batchline.errors import ConfigError, OutputInvalid
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from batchline_local.emulators.sagemaker import Processing, RecordFailed, SageMakerEmulator, transform_file
from tests.adapters.test_sagemaker_adapter import RUN, RUN_ID, described

KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
JSON_PROCESSING = {"InputFilter": "$.features", "JoinSource": "Input", "OutputFilter": "$['key','SageMakerOutput']"}


def run_with(**service: Any) -> RunContext:
    body = {"provider": "sagemaker", "modelName": "churn-model", "predictionColumns": ["p"], **service}
    pipeline = parse_pipelines({"churn": {"keyColumn": "id", "service": body}}).get("churn")
    return RunContext(**{**RUN.__dict__, "pipeline": pipeline})


def adapter_for(run: RunContext, sagemaker: Any = None, s3: Any = None) -> SageMakerAdapter:
    return SageMakerAdapter(run.pipeline.service, sagemaker=sagemaker, s3=s3)  # type: ignore[arg-type]


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("sagemaker", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


# --- settings refused at synth ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "message"),
    [
        ({"maxPayloadInMb": 101}, "maxPayloadInMb"),
        ({"maxPayloadInMb": -1}, "maxPayloadInMb"),
        ({"maxPayloadInMb": 30, "maxConcurrentTransforms": 4}, r"maxConcurrentTransforms x maxPayloadInMb .* 4 x 30"),
        ({"contentType": "application/json"}, "contentType"),
        ({"batchStrategy": "Batch"}, "batchStrategy"),
        ({"dataCapture": {"destinationS3Uri": "https://bucket/capture"}}, "destinationS3Uri"),
        ({"dataCapture": {"kmsKeyId": "my key"}}, "kmsKeyId"),
        ({"dataCapture": {"generateInferenceIds": True}}, "generateInferenceIds"),
    ],
)
def test_settings_the_api_refuses_are_refused_at_synth_by_name(service: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        run_with(**service)


def test_a_payload_of_zero_is_chunked_encoding_and_takes_any_record_size() -> None:
    run = run_with(maxPayloadInMb=0, maxConcurrentTransforms=100)
    encoder = adapter_for(run).input_encoder()
    encoder.start(["id", "a"], 0)
    assert encoder.encode(["k", "x" * (7 * 1024 * 1024)], 0).record_id == "k"


# --- request shapes -------------------------------------------------------------------------------------------------


def test_json_lines_jobs_send_the_features_object_and_join_the_key_back(stubbed: Any) -> None:
    client, stubber = stubbed
    run = run_with(contentType="application/jsonlines", batchStrategy="SingleRecord", maxPayloadInMb=1)
    adapter = adapter_for(run, sagemaker=client)
    request = adapter.create_request(run)
    stubber.add_response("create_transform_job", {"TransformJobArn": "arn:x"}, request)
    stubber.add_response(
        "describe_transform_job",
        described(request["TransformJobName"], "InProgress"),
        {"TransformJobName": request["TransformJobName"]},
    )

    adapter.submit(run)

    assert request["BatchStrategy"] == "SingleRecord" and request["MaxPayloadInMB"] == 1
    assert request["TransformInput"]["ContentType"] == request["TransformOutput"]["Accept"] == "application/jsonlines"
    assert (request["TransformInput"]["SplitType"], request["TransformOutput"]["AssembleWith"]) == ("Line", "Line")
    assert request["DataProcessing"] == JSON_PROCESSING
    assert "DataCaptureConfig" not in request


def test_csv_jobs_keep_their_shape_with_multi_record_batches(stubbed: Any) -> None:
    client, stubber = stubbed
    run = run_with()
    request = adapter_for(run, sagemaker=client).create_request(run)
    stubber.add_response("create_transform_job", {"TransformJobArn": "arn:x"}, request)
    client.create_transform_job(**request)

    assert request["BatchStrategy"] == "MultiRecord"
    assert request["TransformInput"]["ContentType"] == request["TransformOutput"]["Accept"] == "text/csv"
    assert request["DataProcessing"] == {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,3:]"}


@pytest.mark.parametrize(
    ("capture", "expected"),
    [
        ({}, {"DestinationS3Uri": "s3://work-bucket/churn/data-capture/"}),
        (
            {"destinationS3Uri": "s3://team-monitoring/churn/", "kmsKeyId": KEY_ARN, "generateInferenceId": True},
            {"DestinationS3Uri": "s3://team-monitoring/churn/", "KmsKeyId": KEY_ARN, "GenerateInferenceId": True},
        ),
    ],
)
def test_data_capture_is_passed_to_the_job(stubbed: Any, capture: dict[str, Any], expected: dict[str, Any]) -> None:
    client, stubber = stubbed
    run = run_with(dataCapture=capture)
    request = adapter_for(run, sagemaker=client).create_request(run)
    stubber.add_response("create_transform_job", {"TransformJobArn": "arn:x"}, request)
    client.create_transform_job(**request)

    assert request["DataCaptureConfig"] == expected


# --- JSON lines staging -----------------------------------------------------------------------------------------


def test_a_json_line_holds_the_key_beside_an_object_of_the_feature_columns() -> None:
    encoder = adapter_for(run_with(contentType="application/jsonlines", featureColumns=["tenure", "charges"]))
    staged = encoder.input_encoder()
    facts = staged.start(["notes", "charges", "id", "tenure"], 2)

    line = staged.encode(["call\nback", "70.5", "c-1", "12"], 0)

    assert staged.suffix == ".jsonl" and facts["featureColumns"] == ["tenure", "charges"]
    assert json.loads(line.text) == {"key": "c-1", "features": {"tenure": "12", "charges": "70.5"}}
    assert line.text.endswith("}\n") and line.text.count("\n") == 1


def test_numeric_features_are_json_numbers_and_a_bad_one_is_refused_alone() -> None:
    staged = adapter_for(run_with(contentType="application/jsonlines", numericFeatures=True)).input_encoder()
    staged.start(["id", "tenure", "charges"], 0)

    line = staged.encode(["c-1", "12", "70.50"], 0)

    assert json.loads(line.text)["features"] == {"tenure": 12, "charges": 70.5}
    with pytest.raises(RecordRejected, match="'charges' is not a finite decimal number"):
        staged.encode(["c-2", "3", "NaN"], 1)


# --- reading outputs ----------------------------------------------------------------------------------------------


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="work-bucket")
        yield client


def stage_json(s3: Any, keys: list[str], out: str) -> None:
    prefix = f"churn/{RUN_ID}"
    rows = "".join(json.dumps({"key": key, "features": {"a": "1"}}) + "\n" for key in keys)
    s3.put_object(Bucket="work-bucket", Key=f"{prefix}/input/part-00000.jsonl", Body=rows.encode())
    index = "".join(f'{line},"{key}","{key}"\n' for line, key in enumerate(keys, start=2))
    s3.put_object(Bucket="work-bucket", Key=f"{prefix}/index/part-00000.jsonl.index.csv", Body=index.encode())
    s3.put_object(Bucket="work-bucket", Key=f"{prefix}/output/job-00000/part-00000.jsonl.out", Body=out.encode())


def read(s3: Any, run: RunContext) -> list[Prediction | FailedRecord]:
    staged = staged_records(s3, run.layout, run.chunk.input_prefix)
    return list(adapter_for(run, s3=s3).read_results(run, JobState("bl-x", JobStatus.SUCCEEDED, "Completed"), staged))


def test_json_answers_become_prediction_columns_by_name_by_position_or_alone(s3: Any) -> None:
    run = run_with(contentType="application/jsonlines", predictionColumns=["label", "score"])
    lines = [
        {"key": "k1", "SageMakerOutput": {"score": 0.25, "label": "churn", "extra": 1}},
        {"key": "k2", "SageMakerOutput": ["stay", 0.75]},
        {"key": "k3", "SageMakerOutput": {"score": 0.5}},
        {"key": "k4", "SageMakerOutput": 0.5},
    ]
    stage_json(s3, ["k1", "k2", "k3", "k4"], "".join(json.dumps(line) + "\n" for line in lines))

    k1, k2, k3, k4 = read(s3, run)

    assert k1 == Prediction("k1", 2, [["churn", "0.25"]])
    assert k2 == Prediction("k2", 3, [["stay", "0.75"]])
    assert (
        isinstance(k3, FailedRecord) and "model answer has no label (predictionColumns); its fields: score" in k3.reason
    )
    assert isinstance(k4, FailedRecord) and "returned 1 value, predictionColumns names 2" in k4.reason


def test_json_output_out_of_step_with_the_input_is_an_error(s3: Any) -> None:
    run = run_with(contentType="application/jsonlines")
    stage_json(s3, ["k1", "k2"], '{"key": "k2", "SageMakerOutput": 1}\n{"key": "k1", "SageMakerOutput": 2}\n')
    with pytest.raises(OutputInvalid, match="key 'k2' where the input had 'k1'"):
        read(s3, run)


def test_a_json_output_line_that_is_not_the_joined_record_is_an_error(s3: Any) -> None:
    run = run_with(contentType="application/jsonlines")
    stage_json(s3, ["k1"], '{"SageMakerOutput": 1}\n')
    with pytest.raises(OutputInvalid, match="line 1 is not the joined record"):
        read(s3, run)


def test_inference_ids_become_two_columns_of_json_and_csv_output(s3: Any) -> None:
    capture = {"dataCapture": {"generateInferenceId": True}}
    run = run_with(contentType="application/jsonlines", **capture)
    line = {"key": "k1", "SageMakerOutput": {"p": 1}, "SageMakerInferenceId": "id-1", "SageMakerInferenceTime": "T"}
    stage_json(s3, ["k1"], json.dumps(line) + "\n")

    assert adapter_for(run).result_columns(run) == ["p", "sagemaker_inference_id", "sagemaker_inference_time"]
    assert read(s3, run) == [Prediction("k1", 2, [["1", "id-1", "T"]])]

    csv_run = run_with(**capture)
    prefix = f"churn/{RUN_ID}"
    s3.put_object(Bucket="work-bucket", Key=f"{prefix}/input/part-00000.jsonl", Body=b"")
    s3.delete_object(Bucket="work-bucket", Key=f"{prefix}/input/part-00000.jsonl")
    s3.put_object(Bucket="work-bucket", Key=f"{prefix}/input/part-00000.csv", Body=b"k1,1,2\n")
    s3.put_object(Bucket="work-bucket", Key=f"{prefix}/index/part-00000.csv.index.csv", Body=b'2,"k1","k1"\n')
    s3.put_object(Bucket="work-bucket", Key=f"{prefix}/output/job-00000/part-00000.csv.out", Body=b"k1,0.3,id-2,T\n")
    assert read(s3, csv_run) == [Prediction("k1", 2, [["0.3", "id-2", "T"]])]


# --- the job's own figures ----------------------------------------------------------------------------------------


def test_figures_are_the_jobs_times_and_its_billed_instance_seconds() -> None:
    response = described("bl-x", "Completed")
    response["TransformResources"]["InstanceCount"] = 2
    response["TransformStartTime"] = datetime(2026, 11, 25, 0, 5, tzinfo=UTC)
    response["TransformEndTime"] = datetime(2026, 11, 25, 0, 15, 30, tzinfo=UTC)

    assert job_figures(response) == {
        "createdAt": "2026-11-25T00:00:00Z",
        "startedAt": "2026-11-25T00:05:00Z",
        "endedAt": "2026-11-25T00:15:30Z",
        "computeSeconds": 1260.0,  # 630 s on each of 2 instances
    }


def test_a_job_not_started_reports_its_creation_only(stubbed: Any) -> None:
    client, stubber = stubbed
    stubber.add_response("describe_transform_job", described("bl-x", "InProgress"), {"TransformJobName": "bl-x"})
    state = adapter_for(RUN, sagemaker=client).describe(RUN, "bl-x")
    assert state.figures == {"createdAt": "2026-11-25T00:00:00Z"}


# --- the emulator: batches, refusals, capture ------------------------------------------------------------------


def test_single_record_sends_one_record_a_request_and_multi_record_fills_the_payload() -> None:
    text = "".join(f"k{n},{n},2\n" for n in range(5))
    processing = {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,3:]"}
    single: list[int] = []
    multi: list[int] = []

    one = transform_file(text, Processing(processing, batch_strategy="SingleRecord"), "p.csv", requests=single)
    many = transform_file(text, Processing(processing, batch_strategy="MultiRecord"), "p.csv", requests=multi)

    assert single == [1, 1, 1, 1, 1] and multi == [5]
    assert one == many and [line.split(",")[0] for line in one.splitlines()] == [f"k{n}" for n in range(5)]


def test_multi_record_requests_stop_at_max_payload() -> None:
    record = "k,0." + "0" * (400 * 1024) + "1\n"  # two records fit in 1 MB, not three
    requests: list[int] = []
    processing = Processing({"InputFilter": "$[1:]"}, batch_strategy="MultiRecord", max_payload_mb=1)
    transform_file(record * 7, processing, "p.csv", requests=requests)
    assert requests == [2, 2, 2, 1]


def test_a_record_over_max_payload_fails_its_file_with_either_strategy() -> None:
    big = "k," + "1" * (1024 * 1024) + "\n"
    for strategy in ("SingleRecord", "MultiRecord"):
        with pytest.raises(RecordFailed, match="record 1 of p.csv: larger than MaxPayloadInMB"):
            transform_file(big, Processing({}, batch_strategy=strategy, max_payload_mb=1), "p.csv")


def test_the_emulated_json_model_answers_each_record_joined_to_its_key() -> None:
    lines = '{"key": "a", "features": {"x": 1, "y": "2.5"}}\n{"key": "b", "features": {"x": 3, "y": 4}}\n'
    out = transform_file(lines, Processing(JSON_PROCESSING, content_type="application/jsonlines"), "p.jsonl")
    answers = [json.loads(line) for line in out.splitlines()]
    assert [answer["key"] for answer in answers] == ["a", "b"]
    assert all(set(answer) == {"key", "SageMakerOutput"} for answer in answers)
    assert all(0 < answer["SageMakerOutput"]["score"] < 1 for answer in answers)


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any, SageMakerEmulator]]:
    with mock_aws(), SageMakerEmulator(polls_until_done=2) as emulator:
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="work")
        sagemaker = boto3.client("sagemaker", region_name="us-east-1")
        sagemaker.create_model(
            ModelName="m",
            ExecutionRoleArn="arn:aws:iam::123456789012:role/r",
            PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/m:1"},
        )
        yield s3, sagemaker, emulator


def job_request(**overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TransformJobName": "job-1",
        "ModelName": "m",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://work/run/input/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": "s3://work/run/output/", "Accept": "text/csv", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        "DataProcessing": {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,3:]"},
    }
    return {**request, **overrides}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"MaxPayloadInMB": 101}, "Value '101' at 'maxPayloadInMB'"),
        (
            {"MaxPayloadInMB": 30, "MaxConcurrentTransforms": 4},
            r"MaxConcurrentTransforms \(4\) x MaxPayloadInMB \(30\)",
        ),
        ({"MaxConcurrentTransforms": 17}, r"MaxConcurrentTransforms \(17\) x MaxPayloadInMB \(6\)"),
        (
            {
                "BatchStrategy": "MultiRecord",
                "TransformInput": {
                    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://work/run/input/"}},
                    "SplitType": "None",
                },
            },
            "BatchStrategy MultiRecord needs records to batch",
        ),
        ({"BatchStrategy": "Batches"}, "at 'batchStrategy' failed to satisfy constraint"),
        ({"DataProcessing": {"InputFilter": "$['" + "a" * 70 + "']"}}, "at 'dataProcessing.inputFilter'"),
        ({"DataCaptureConfig": {"DestinationS3Uri": "work/capture"}}, "at 'dataCaptureConfig.destinationS3Uri'"),
        ({"DataCaptureConfig": {"DestinationS3Uri": "s3://w/c", "KmsKeyId": "my key"}}, "dataCaptureConfig.kmsKeyId"),
    ],
)
def test_the_emulator_refuses_what_create_transform_job_refuses(
    aws: tuple[Any, Any, SageMakerEmulator], overrides: dict[str, Any], message: str
) -> None:
    _, sagemaker, emulator = aws
    with pytest.raises(ClientError, match=message) as refused:
        sagemaker.create_transform_job(**job_request(**overrides))
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert emulator.create_calls == 0


def test_describe_gives_start_and_end_times_only_once_they_happened(aws: tuple[Any, Any, SageMakerEmulator]) -> None:
    s3, sagemaker, _ = aws
    s3.put_object(Bucket="work", Key="run/input/part-00000.csv", Body=b"k1,1,2\n")
    sagemaker.create_transform_job(**job_request())

    running = sagemaker.describe_transform_job(TransformJobName="job-1")
    ended = sagemaker.describe_transform_job(TransformJobName="job-1")

    assert running["TransformJobStatus"] == "InProgress"
    assert "TransformStartTime" in running and "TransformEndTime" not in running
    assert ended["TransformJobStatus"] == "Completed"
    assert ended["CreationTime"] <= ended["TransformStartTime"] <= ended["TransformEndTime"]


def test_data_capture_writes_manifests_of_the_inputs_and_outputs_by_the_hour_the_job_started(
    aws: tuple[Any, Any, SageMakerEmulator],
) -> None:
    s3, sagemaker, emulator = aws
    s3.put_object(Bucket="work", Key="run/input/part-00000.csv", Body=b"k1,1,2\n")
    s3.put_object(Bucket="work", Key="run/input/part-00001.csv", Body=b"k2,3,4\n")
    capture = {"DestinationS3Uri": "s3://work/capture", "GenerateInferenceId": True}
    sagemaker.create_transform_job(**job_request(DataCaptureConfig=capture))
    sagemaker.describe_transform_job(TransformJobName="job-1")
    job = sagemaker.describe_transform_job(TransformJobName="job-1")

    hour = job["TransformStartTime"].astimezone(UTC).strftime("%Y/%m/%d/%H")
    keys = sorted(item["Key"] for item in s3.list_objects_v2(Bucket="work", Prefix="capture/")["Contents"])
    assert keys == [f"capture/input/{hour}/job-1.jsonl", f"capture/output/{hour}/job-1.jsonl"]
    manifests = [json.loads(s3.get_object(Bucket="work", Key=key)["Body"].read()) for key in keys]
    assert manifests[0] == [{"prefix": "s3://work/run/input/"}, "part-00000.csv", "part-00001.csv"]
    assert manifests[1] == [{"prefix": "s3://work/run/output/"}, "part-00000.csv.out", "part-00001.csv.out"]
    # GenerateInferenceId: each output record ends with an inference ID and the job's start time.
    out = s3.get_object(Bucket="work", Key="run/output/part-00000.csv.out")["Body"].read().decode().strip().split(",")
    started = job["TransformStartTime"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert out[0] == "k1" and len(out[2]) == 36 and out[3] == started
    assert emulator.jobs["job-1"].captures == [f"s3://work/{key}" for key in keys]


def test_json_jobs_with_inference_ids_keep_the_whole_joined_record(stubbed: Any) -> None:
    client, stubber = stubbed
    run = run_with(contentType="application/jsonlines", dataCapture={"generateInferenceId": True})
    request = adapter_for(run, sagemaker=client).create_request(run)
    stubber.add_response("create_transform_job", {"TransformJobArn": "arn:x"}, request)
    client.create_transform_job(**request)

    # whether SageMaker adds the IDs before or after the OutputFilter, the record keeps them
    assert request["DataProcessing"] == {**JSON_PROCESSING, "OutputFilter": "$"}


def test_a_capture_the_models_role_cannot_write_fails_the_job_and_says_where_in_its_log(
    aws: tuple[Any, Any, SageMakerEmulator],
) -> None:
    s3, sagemaker, emulator = aws
    s3.put_object(Bucket="work", Key="run/input/part-00000.csv", Body=b"k1,1,2\n")
    sagemaker.create_transform_job(**job_request(DataCaptureConfig={"DestinationS3Uri": "s3://no-such-bucket/c"}))
    sagemaker.describe_transform_job(TransformJobName="job-1")
    job = sagemaker.describe_transform_job(TransformJobName="job-1")

    assert job["TransformJobStatus"] == "Failed"
    assert emulator.logs["job-1"] == [
        "data capture to s3://no-such-bucket/c: NoSuchBucket: The specified bucket does not exist"
    ]
