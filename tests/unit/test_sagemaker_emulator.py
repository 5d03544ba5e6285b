"""The emulator follows SageMaker's DataProcessing join semantics, so Collect is tested against them."""

import csv
import io
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from batchline_local.emulators.sagemaker import (
    RecordFailed,
    SageMakerEmulator,
    emulated_score,
    select,
    transform_file,
)

PROCESSING = {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,3:]"}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("$[1:]", ["b", "c", "d"]),
        ("$[0,-1]", ["a", "d"]),
        ("$[0,2:]", ["a", "c", "d"]),
        ("$", ["a", "b", "c", "d"]),
    ],
)
def test_select_supports_index_and_slice_filters(expression: str, expected: list[str]) -> None:
    assert select(["a", "b", "c", "d"], expression) == expected


def test_join_keeps_the_key_and_appends_the_prediction() -> None:
    out = transform_file('k1,1,2\n"k,2",3,4\n', PROCESSING, "part-00000.csv")
    lines = out.splitlines()
    assert lines[0] == f"k1,{emulated_score(['1', '2'])}"
    assert lines[1].startswith('"k,2",')


def test_scores_are_deterministic_probabilities() -> None:
    score = emulated_score(["12", "80.5", "3"])
    assert score == emulated_score(["12", "80.5", "3"])
    assert 0.0 < float(score) < 1.0


def test_a_non_numeric_feature_fails_the_file_naming_the_record() -> None:
    with pytest.raises(RecordFailed, match="record 2 of part-00001.csv"):
        transform_file("k1,1,2\nk2,abc,2\n", PROCESSING, "part-00001.csv")


def test_records_split_on_lf_only_so_a_key_with_line_separators_stays_one_record() -> None:
    text = 'k\u20281,1,2\n"k\r2",3,4\nk\u00853,5,6\r\n'

    out = list(csv.reader(io.StringIO(transform_file(text, PROCESSING, "part-00000.csv"))))

    assert [row[0] for row in out] == ["k\u20281", "k\r2", "k\u00853"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("k1,1,2\nk2,1\r5,2\n", "record 2 of part-00001.csv: not a CSV row"),
        ("k1,1,2\n\nk3,1,2\n", "record 2 of part-00001.csv: empty record"),
        ("k1,1,2\nk2,nan,2\n", "record 2 of part-00001.csv: could not convert"),
        ("k1,1,2\nk2,1e400,2\n", "record 2 of part-00001.csv: feature out of range"),
        ("k1,1,2\nk2,\u00a01,2\n", "record 2 of part-00001.csv: could not convert"),
    ],
)
def test_a_record_the_model_cannot_read_fails_the_file(text: str, problem: str) -> None:
    with pytest.raises(RecordFailed, match=problem):
        transform_file(text, PROCESSING, "part-00001.csv")


# --- whole jobs over moto's S3 -------------------------------------------------------------------------


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any, SageMakerEmulator]]:
    """moto with the versioned work bucket the stack makes, and the emulator patched in."""
    with mock_aws(), SageMakerEmulator(polls_until_done=1) as emulator:
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="work")
        s3.put_bucket_versioning(Bucket="work", VersioningConfiguration={"Status": "Enabled"})
        sagemaker = boto3.client("sagemaker", region_name="us-east-1")
        sagemaker.create_model(
            ModelName="m",
            ExecutionRoleArn="arn:aws:iam::123456789012:role/r",
            PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/m:1"},
        )
        yield s3, sagemaker, emulator


def run_job(sagemaker: Any) -> dict[str, Any]:
    sagemaker.create_transform_job(
        TransformJobName="job-1",
        ModelName="m",
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://work/run/input/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": "s3://work/run/output/", "AssembleWith": "Line"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        DataProcessing=PROCESSING,
    )
    for _ in range(5):
        described = sagemaker.describe_transform_job(TransformJobName="job-1")
        if described["TransformJobStatus"] != "InProgress":
            return dict(described)
    raise AssertionError("the emulated job never ended")


def outputs(s3: Any) -> list[str]:
    return [item["Key"] for item in s3.list_objects_v2(Bucket="work", Prefix="run/output/").get("Contents", [])]


def test_a_part_deleted_from_the_versioned_bucket_is_not_input(aws: tuple[Any, Any, SageMakerEmulator]) -> None:
    # GIVEN a first read's parts deleted by a second read: their keys now end in delete markers
    s3, sagemaker, _ = aws
    s3.put_object(Bucket="work", Key="run/input/part-00000.csv", Body=b"k1,1,2\n")
    s3.put_object(Bucket="work", Key="run/input/part-00001.csv", Body=b"stale,1,2\n")
    s3.delete_object(Bucket="work", Key="run/input/part-00001.csv")

    # WHEN the job runs THEN it reads only what S3 lists
    job = run_job(sagemaker)

    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert outputs(s3) == ["run/output/part-00000.csv.out"]


def test_a_bad_record_fails_its_file_and_the_job_but_the_other_files_keep_their_output(
    aws: tuple[Any, Any, SageMakerEmulator],
) -> None:
    s3, sagemaker, emulator = aws
    s3.put_object(Bucket="work", Key="run/input/part-00000.csv", Body=b"k1,1,2\nk2,3,4\n")
    s3.put_object(Bucket="work", Key="run/input/part-00001.csv", Body=b"k3,1,2\nk4,abc,4\n")
    s3.put_object(Bucket="work", Key="run/input/part-00002.csv", Body=b"k5,1,2\n")

    job = run_job(sagemaker)

    assert job["TransformJobStatus"] == "Failed"
    # As real jobs report it: the reason is generic; the file is named in the job's logs.
    assert job["FailureReason"] == "ClientError: See job logs for more information"
    assert outputs(s3) == ["run/output/part-00000.csv.out", "run/output/part-00002.csv.out"]
    assert emulator.logs["job-1"][0] == "work/run/input/part-00001.csv: ClientError: 400"
    assert "record 2 of part-00001.csv" in emulator.logs["job-1"][1]


def create_on(sagemaker: Any, name: str, instance_type: str, count: int = 1) -> None:
    sagemaker.create_transform_job(
        TransformJobName=name,
        ModelName="m",
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://work/run/input/"}}},
        TransformOutput={"S3OutputPath": "s3://work/run/output/"},
        TransformResources={"InstanceType": instance_type, "InstanceCount": count},
    )


def test_an_instance_type_with_quota_zero_is_refused_as_sagemaker_words_it(
    aws: tuple[Any, Any, SageMakerEmulator],
) -> None:
    _, sagemaker, emulator = aws
    emulator.instance_quotas["ml.p3.2xlarge"] = 0

    with pytest.raises(sagemaker.exceptions.ResourceLimitExceeded) as refused:
        create_on(sagemaker, "job-gpu", "ml.p3.2xlarge")

    assert refused.value.response["Error"]["Message"] == (
        "The account-level service limit 'ml.p3.2xlarge for transform job usage' is 0 Instances, with current "
        "utilization of 0 Instances and a request delta of 1 Instances. Please use AWS Service Quotas to request "
        "an increase for this quota. If AWS Service Quotas is not available, contact AWS support to request an "
        "increase for this quota."
    )
    assert emulator.create_calls == 0


def test_a_full_instance_quota_frees_when_a_job_ends(aws: tuple[Any, Any, SageMakerEmulator]) -> None:
    _, sagemaker, emulator = aws
    emulator.instance_quotas["ml.m5.large"] = 2
    create_on(sagemaker, "job-a", "ml.m5.large", count=2)

    with pytest.raises(sagemaker.exceptions.ResourceLimitExceeded, match="current utilization of 2 Instances"):
        create_on(sagemaker, "job-b", "ml.m5.large")
    create_on(sagemaker, "job-c", "ml.c5.large")  # another instance type has its own quota

    sagemaker.stop_transform_job(TransformJobName="job-a")
    sagemaker.describe_transform_job(TransformJobName="job-a")  # Stopping -> Stopped
    create_on(sagemaker, "job-b", "ml.m5.large")
