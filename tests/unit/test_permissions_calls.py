"""Mapping botocore calls to IAM requests: the operation-to-action differences AWS documents, and no gaps."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from batchline_local.permissions import UnmappedOperation, iam_requests, mapped_operations

ACCOUNT, REGION = "123456789012", "us-east-1"
LAMBDAS = Path(__file__).resolve().parents[2] / "lambdas"


def requests(service: str, operation: str, **params: object) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (r.action, r.resource, r.context)
        for r in iam_requests(service, operation, params, account=ACCOUNT, region=REGION)
    ]


def test_an_unmapped_operation_is_an_error_not_an_allow() -> None:
    with pytest.raises(UnmappedOperation, match="s3:PutBucketPolicy"):
        requests("s3", "PutBucketPolicy", Bucket="b", Policy="{}")
    with pytest.raises(UnmappedOperation, match="dynamodb:GetItem"):
        requests("dynamodb", "GetItem", TableName="t", Key={})


def test_list_objects_is_list_bucket_on_the_bucket_with_the_prefix() -> None:
    assert requests("s3", "ListObjectsV2", Bucket="work", Prefix="p/run/") == [
        ("s3:ListBucket", "arn:aws:s3:::work", {"s3:prefix": "p/run/"})
    ]
    # No prefix in the request: no s3:prefix key, so a condition on it cannot match by accident.
    assert requests("s3", "ListObjectsV2", Bucket="work") == [("s3:ListBucket", "arn:aws:s3:::work", {})]


def test_head_is_get_and_a_version_is_get_object_version() -> None:
    assert requests("s3", "HeadObject", Bucket="b", Key="k")[0][:2] == ("s3:GetObject", "arn:aws:s3:::b/k")
    assert requests("s3", "GetObject", Bucket="b", Key="k", VersionId="v1")[0][:2] == (
        "s3:GetObjectVersion",
        "arn:aws:s3:::b/k",
    )
    assert requests("s3", "HeadObject", Bucket="b", Key="k", VersionId="v1")[0][0] == "s3:GetObjectVersion"


def test_multipart_upload_is_put_object_throughout() -> None:
    for operation in ("CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"):
        assert [r[0] for r in requests("s3", operation, Bucket="b", Key="k", UploadId="u")] == ["s3:PutObject"]


def test_copies_read_the_source_and_write_the_destination() -> None:
    copy = requests("s3", "CopyObject", Bucket="dst", Key="out", CopySource={"Bucket": "src", "Key": "in"})
    assert [r[:2] for r in copy] == [("s3:GetObject", "arn:aws:s3:::src/in"), ("s3:PutObject", "arn:aws:s3:::dst/out")]
    part = requests(
        "s3", "UploadPartCopy", Bucket="dst", Key="out", CopySource="src/a%20b?versionId=v9", UploadId="u", PartNumber=1
    )
    assert [r[:2] for r in part] == [
        ("s3:GetObjectVersion", "arn:aws:s3:::src/a b"),
        ("s3:PutObject", "arn:aws:s3:::dst/out"),
    ]


def test_delete_objects_is_one_delete_per_key() -> None:
    found = requests(
        "s3", "DeleteObjects", Bucket="b", Delete={"Objects": [{"Key": "a"}, {"Key": "b", "VersionId": "v"}]}
    )
    assert [r[:2] for r in found] == [
        ("s3:DeleteObject", "arn:aws:s3:::b/a"),
        ("s3:DeleteObjectVersion", "arn:aws:s3:::b/b"),
    ]


def test_creates_that_hand_over_a_role_also_pass_it_to_that_service() -> None:
    role = "arn:aws:iam::123456789012:role/r"
    bedrock = requests(
        "bedrock", "CreateModelInvocationJob", jobName="bl-x", roleArn=role, modelId="anthropic.m-v1:0", tags=[]
    )
    assert ("iam:PassRole", role, {"iam:PassedToService": "bedrock.amazonaws.com"}) in bedrock
    assert ("bedrock:CreateModelInvocationJob", "arn:aws:bedrock:us-east-1::foundation-model/anthropic.m-v1:0", {}) in [
        r for r in bedrock
    ]
    personalize = requests(
        "personalize",
        "CreateBatchInferenceJob",
        jobName="bl-x-0",
        roleArn=role,
        solutionVersionArn="arn:aws:personalize:us-east-1:123456789012:solution/s/1",
    )
    assert ("iam:PassRole", role, {"iam:PassedToService": "personalize.amazonaws.com"}) in personalize


def test_an_inference_profile_model_id_is_the_profile_arn_evaluated_without_the_type_check() -> None:
    found = iam_requests(
        "bedrock",
        "CreateModelInvocationJob",
        {"jobName": "bl-x", "roleArn": "arn:aws:iam::1:role/r", "modelId": "us.anthropic.m-v1:0"},
        account=ACCOUNT,
        region=REGION,
    )
    profile = [r for r in found if "inference-profile" in r.resource]
    assert [(r.resource, r.check_resource_type) for r in profile] == [
        ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.m-v1:0", False)
    ]


def test_create_transform_job_carries_the_model_arn_and_its_tags() -> None:
    found = requests(
        "sagemaker",
        "CreateTransformJob",
        TransformJobName="bl-Run-1",
        ModelName="Churn",
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        Tags=[{"Key": "batchline:pipeline", "Value": "p"}],
    )
    create = found[0]
    assert create[:2] == (
        "sagemaker:CreateTransformJob",
        "arn:aws:sagemaker:us-east-1:123456789012:transform-job/bl-run-1",
    )
    assert create[2]["sagemaker:ModelArn"] == "arn:aws:sagemaker:us-east-1:123456789012:model/churn"
    assert create[2]["aws:TagKeys"] == ["batchline:pipeline"]
    assert found[1][0] == "sagemaker:AddTags"


def test_put_events_checks_each_bus_with_the_source_and_detail_type() -> None:
    found = requests(
        "events",
        "PutEvents",
        Entries=[
            {"EventBusName": "bus", "Source": "batchline", "DetailType": "Batch Prediction Failed", "Detail": "{}"},
            {"EventBusName": "bus", "Source": "batchline", "DetailType": "Batch Prediction Failed", "Detail": "{}"},
        ],
    )
    assert found == [
        (
            "events:PutEvents",
            "arn:aws:events:us-east-1:123456789012:event-bus/bus",
            {"events:source": "batchline", "events:detail-type": "Batch Prediction Failed"},
        )
    ]


def test_every_operation_the_functions_call_is_mapped() -> None:
    # GIVEN every botocore operation name, as boto3 spells its methods, of the services Batchline uses
    import botocore.session
    from botocore import xform_name

    session = botocore.session.get_session()
    services = ["s3", "sagemaker", "personalize", "bedrock", "machinelearning", "events", "stepfunctions"]
    methods: dict[str, list[tuple[str, str]]] = {}
    for service in services:
        for operation in session.get_service_model(service).operation_names:
            methods.setdefault(xform_name(operation), []).append((service, operation))
    # WHEN the code under lambdas/ is searched for calls of those methods (direct, getattr'd names, paginators)
    called = set()
    for path in LAMBDAS.rglob("*.py"):
        text = path.read_text()
        called.update(re.findall(r"\.([a-z][a-z0-9_]+)\(", text))
        called.update(re.findall(r"\"([a-z][a-z0-9_]+)\"", text))
    # s3transfer's managed calls (download_file, upload_file, copy) use these operations underneath.
    called.update(["head_object", "get_object", "put_object", "create_multipart_upload", "upload_part"])
    called.update(["complete_multipart_upload", "abort_multipart_upload", "copy_object", "upload_part_copy"])
    ambiguous = {"search", "copy", "get", "update", "list_tags"}  # str/dict/Path methods, not AWS calls here
    mapped = mapped_operations()
    # THEN each one is mapped for its service
    missing = [
        f"{service}:{operation}"
        for method in sorted(called - ambiguous)
        for service, operation in methods.get(method, [])
        if operation not in mapped.get(service, [])
    ]
    assert missing == []
