"""Buckets: private, encrypted, TLS-only, versioned, logged, kept on stack deletion; uploads reach EventBridge."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, Environment
from aws_cdk.assertions import Template
from batchline.config import parse_pipelines
from batchline.errors import ConfigError

from stacks.app_factory import cdk_json_context
from stacks.batchline_stack import BatchlineStack
from tests.stacks.conftest import as_list, logical_id, resources, synth_with_pipelines


def test_every_bucket_is_encrypted_private_versioned_owner_enforced_and_retained(template: Template) -> None:
    buckets = resources(template, "AWS::S3::Bucket")
    assert len(buckets) == 4  # inbox, work, results, access logs
    for bucket in buckets.values():
        props = bucket["Properties"]
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"][
            "SSEAlgorithm"
        ] in ("AES256", "aws:kms")
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
        assert "AccessControl" not in props  # no ACLs anywhere, not even for log delivery
        assert bucket["DeletionPolicy"] == "Retain" and bucket["UpdateReplacePolicy"] == "Retain"


def test_data_buckets_log_access_to_the_log_bucket_under_their_own_prefix(template: Template) -> None:
    logs_id = logical_id(template, "AWS::S3::Bucket", "AccessLogs")
    prefixes = {}
    for name, bucket in resources(template, "AWS::S3::Bucket").items():
        logging = bucket["Properties"].get("LoggingConfiguration")
        if name != logs_id:
            assert logging["DestinationBucketName"] == {"Ref": logs_id}, name
            prefixes[name] = logging["LogFilePrefix"]
    assert sorted(prefixes.values()) == ["inbox/", "results/", "work/"]
    # Log delivery is allowed by bucket policy, only from this account's three buckets.
    policy = next(
        p
        for p in resources(template, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": logs_id}
    )
    delivery = [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Principal") == {"Service": "logging.s3.amazonaws.com"}
    ]
    assert len(delivery) == 3
    for statement in delivery:
        assert statement["Action"] == "s3:PutObject"
        assert set(statement["Condition"]) == {"ArnLike", "StringEquals"}


def test_every_bucket_refuses_requests_without_tls(template: Template) -> None:
    policies = resources(template, "AWS::S3::BucketPolicy")
    assert len(policies) == 4
    for policy in policies.values():
        denies = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
        assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)


def test_work_bucket_forgets_overwritten_versions_after_30_days(template: Template) -> None:
    work = resources(template, "AWS::S3::Bucket")[logical_id(template, "AWS::S3::Bucket", "StorageWork")]
    assert {"NoncurrentVersionExpiration": {"NoncurrentDays": 30}, "Status": "Enabled"} in work["Properties"][
        "LifecycleConfiguration"
    ]["Rules"]


def test_waiting_jobs_wake_objects_expire_after_the_longest_run(template: Template) -> None:
    work = resources(template, "AWS::S3::Bucket")[logical_id(template, "AWS::S3::Bucket", "StorageWork")]
    rules = work["Properties"]["LifecycleConfiguration"]["Rules"]
    [wakes] = [rule for rule in rules if rule.get("Prefix") == "wake/"]
    assert wakes["ExpirationInDays"] * 24 > 24 * 30  # maxRunHours allows 30 days
    assert all(rule.get("ExpirationInDays") is None for rule in rules if rule is not wakes)  # nothing else expires


def test_data_buckets_drop_multipart_uploads_left_unfinished_for_a_week(template: Template) -> None:
    for name in ("StorageInbox", "StorageWork", "StorageResults"):
        bucket = resources(template, "AWS::S3::Bucket")[logical_id(template, "AWS::S3::Bucket", name)]
        rules = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
        assert {
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
            "Id": "AbortUnfinishedUploads",
            "Status": "Enabled",
        } in rules, name


def test_only_the_inbox_sends_events_to_eventbridge_without_a_custom_resource(template: Template) -> None:
    inbox_id = logical_id(template, "AWS::S3::Bucket", "StorageInbox")
    for name, bucket in resources(template, "AWS::S3::Bucket").items():
        configured = bucket["Properties"].get("NotificationConfiguration")
        if name == inbox_id:
            assert configured == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
        else:
            assert configured is None, name
    # event_bridge_enabled=True would have added this custom resource and its Lambda.
    assert not resources(template, "Custom::S3BucketNotifications")


def test_a_model_execution_role_may_use_its_pipelines_prefix_of_the_work_bucket_only() -> None:
    role = "arn:aws:iam::111122223333:role/churn-model"
    template = synth_with_pipelines(
        {
            "churn": {
                "keyColumn": "id",
                "service": {"provider": "sagemaker", "modelName": "churn-v2", "modelExecutionRoleArn": role},
            },
            "other": {"keyColumn": "id", "service": {"provider": "sagemaker", "modelName": "other"}},
        }
    )
    work_id = logical_id(template, "AWS::S3::Bucket", "StorageWork")
    policy = next(
        p
        for p in resources(template, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": work_id}
    )
    granted = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert {json.dumps(s["Principal"]) for s in granted} == {json.dumps({"AWS": role})}
    objects = next(s for s in granted if s["Action"] == ["s3:GetObject", "s3:PutObject"])
    assert objects["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [work_id, "Arn"]}, "/churn/*"]]}
    listing = next(s for s in granted if s["Action"] == "s3:ListBucket")
    assert listing["Resource"] == {"Fn::GetAtt": [work_id, "Arn"]}
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["churn/*"]}}
    # Without an Amazon ML or Personalize pipeline, their service principals get nothing.
    assert "machinelearning.amazonaws.com" not in json.dumps(policy)
    assert "personalize.amazonaws.com" not in json.dumps(policy)


def work_bucket_statements(template: Template) -> list[dict[str, Any]]:
    work_id = logical_id(template, "AWS::S3::Bucket", "StorageWork")
    policy = next(
        p
        for p in resources(template, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": work_id}
    )
    return list(policy["Properties"]["PolicyDocument"]["Statement"])


def test_personalize_may_read_input_and_write_output_under_its_pipelines_prefixes_from_this_account_only() -> None:
    template = synth_with_pipelines(
        {
            "rec": {
                "keyColumn": "userId",
                "service": {
                    "provider": "personalize",
                    "recipe": "USER_PERSONALIZATION",
                    "solutionVersionArn": "arn:aws:personalize:us-east-1:123456789012:solution/x/abc",
                    "roleArn": "arn:aws:iam::123456789012:role/rec",
                },
            },
            "churn": {"keyColumn": "id", "service": {"provider": "sagemaker", "modelName": "churn"}},
        }
    )
    work_id = logical_id(template, "AWS::S3::Bucket", "StorageWork")
    granted = [
        s for s in work_bucket_statements(template) if s.get("Principal") == {"Service": "personalize.amazonaws.com"}
    ]
    conditions = {
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
        "ArnLike": {
            "aws:SourceArn": {
                "Fn::Join": [
                    "",
                    [
                        "arn:",
                        {"Ref": "AWS::Partition"},
                        ":personalize:",
                        {"Ref": "AWS::Region"},
                        ":",
                        {"Ref": "AWS::AccountId"},
                        ":*",
                    ],
                ]
            }
        },
    }
    objects = next(s for s in granted if s["Action"] == ["s3:GetObject", "s3:PutObject"])
    assert objects["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [work_id, "Arn"]}, "/rec/*"]]}
    assert objects["Condition"] == conditions
    listing = next(s for s in granted if s["Action"] == "s3:ListBucket")
    assert listing["Resource"] == {"Fn::GetAtt": [work_id, "Arn"]}
    assert listing["Condition"] == {**conditions, "StringLike": {"s3:prefix": ["rec/*"]}}
    assert len(granted) == 2


AMAZON_ML = {
    "legacy": {"keyColumn": "id", "service": {"provider": "amazonml", "mlModelId": "ml-1", "modelType": "BINARY"}}
}


def test_amazon_ml_gets_its_documented_bucket_policy_without_acl_calls_on_a_bucket_without_acls() -> None:
    template = synth_with_pipelines(AMAZON_ML)
    granted = [
        s
        for s in work_bucket_statements(template)
        if s.get("Principal") == {"Service": "machinelearning.amazonaws.com"}
    ]
    actions = {action for s in granted for action in as_list(s["Action"])}
    assert actions == {"s3:GetObject", "s3:PutObject", "s3:ListBucket"}  # no s3:PutObjectAcl
    for statement in granted:
        # Applied when Amazon ML sends them, which a service closed since 2019 may not.
        assert set(statement["Condition"]) >= {"StringEqualsIfExists", "ArnLikeIfExists"}
        assert statement["Condition"]["StringEqualsIfExists"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    listing = next(s for s in granted if s["Action"] == "s3:ListBucket")
    assert listing["Condition"]["StringLike"] == {"s3:prefix": ["legacy/*"]}


def _stack_in(region: str) -> BatchlineStack:
    context = cdk_json_context()
    context["batchline"] = {"pipelines": AMAZON_ML}
    app = App(context=context)
    return BatchlineStack(
        app, "Regional", pipelines=parse_pipelines(AMAZON_ML), env=Environment(account="123456789012", region=region)
    )


def test_an_amazon_ml_pipeline_is_refused_at_synth_in_a_region_without_amazon_ml() -> None:
    with pytest.raises(ConfigError, match=r"only in us-east-1 and eu-west-1; pipeline\(s\) legacy.*us-west-2"):
        _stack_in("us-west-2")
    assert _stack_in("eu-west-1")  # one of its two Regions


def test_an_environment_agnostic_stack_with_amazon_ml_refuses_other_regions_at_deployment() -> None:
    template = synth_with_pipelines(AMAZON_ML).to_json()
    [assertion] = template["Rules"]["AmazonMLRegion"]["Assertions"]
    assert assertion["Assert"] == {"Fn::Contains": [["us-east-1", "eu-west-1"], {"Ref": "AWS::Region"}]}
    assert "legacy" in assertion["AssertDescription"]
    other = synth_with_pipelines({"churn": {"keyColumn": "id", "service": {"provider": "sagemaker", "modelName": "m"}}})
    assert "AmazonMLRegion" not in other.to_json().get("Rules", {})
