"""The checker against small hand-written policies: what would let a wrong call through?"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from batchline_local.permissions import (
    Evaluator,
    NamedPolicy,
    PermissionChecker,
    Role,
    StackPolicies,
    UnmappedOperation,
    attach,
)

ACCOUNT, REGION = "123456789012", "us-east-1"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/fn-role"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k1"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(actions: str | list[str], resources: str | list[str], **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resources, **extra}


def stack(
    *statements: dict[str, Any],
    resource_policies: dict[str, dict[str, Any]] | None = None,
    bucket_keys: dict[str, str] | None = None,
    service_role: Role | None = None,
) -> StackPolicies:
    role = Role("FnRole", "fn-role", ROLE_ARN, policy(), (NamedPolicy("FnPolicy", policy(*statements)),))
    roles = {"FnRole": role}
    if service_role:
        roles[service_role.logical_id] = service_role
    return StackPolicies(
        account=ACCOUNT,
        region=REGION,
        partition="aws",
        roles=roles,
        functions={"Fn": "FnRole"},
        service_roles={"pipe": service_role.logical_id} if service_role else {},
        state_machine_role=None,
        resource_policies=resource_policies or {},
        bucket_keys=bucket_keys or {},
        bucket_key_enabled={bucket: True for bucket in bucket_keys or {}},
    )


@pytest.fixture(scope="module")
def evaluator() -> Iterator[Evaluator]:
    shared = Evaluator()
    yield shared
    shared.close()


def denied(checker: PermissionChecker, *call: Any, **kwargs: Any) -> ClientError:
    with pytest.raises(ClientError) as caught:
        if kwargs:
            checker.check_service(*call, **kwargs)
        else:
            checker.check(*call)
    return caught.value


def test_a_denial_is_the_error_aws_answers_and_is_recorded(evaluator: Evaluator) -> None:
    checker = PermissionChecker(stack(allow("s3:GetObject", "arn:aws:s3:::inbox/*")), evaluator=evaluator)
    checker.check("Fn", "s3", "GetObject", {"Bucket": "inbox", "Key": "a.csv"})
    error = denied(checker, "Fn", "s3", "PutObject", {"Bucket": "results", "Key": "a.csv"})
    assert error.response["Error"]["Code"] == "AccessDenied"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error.response["Error"]["Message"] == (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/fn-role/Fn is not authorized to perform: s3:PutObject on "
        "resource: arn:aws:s3:::results/a.csv because no identity-based policy allows the s3:PutObject action"
    )
    other = denied(checker, "Fn", "sagemaker", "DescribeTransformJob", {"TransformJobName": "bl-x"})
    assert other.response["Error"]["Code"] == "AccessDeniedException"
    report = checker.to_json()
    assert report["checked"] == 3
    assert report["denied"][0] == {
        "principal": "Fn",
        "action": "s3:PutObject",
        "resource": "arn:aws:s3:::results/a.csv",
        "reason": "because no identity-based policy allows the s3:PutObject action",
    }
    assert report["principals"]["Fn"]["role"] == ROLE_ARN


def test_the_evaluator_process_is_started_once_and_repeats_are_not_reevaluated() -> None:
    with PermissionChecker(stack(allow("s3:GetObject", "arn:aws:s3:::inbox/*"))) as checker:
        pid = checker.evaluator.pid
        for _ in range(3):
            checker.check("Fn", "s3", "GetObject", {"Bucket": "inbox", "Key": "same"})
        checker.check("Fn", "s3", "GetObject", {"Bucket": "inbox", "Key": "other"})
        assert checker.evaluator.pid == pid and checker.evaluator.alive
        assert checker.evaluator.evaluations == 2 and checker.checked == 4
    assert not checker.evaluator.alive


def test_a_cached_decision_is_reused_only_for_the_same_request_and_policies(evaluator: Evaluator) -> None:
    # GIVEN a grant that depends on the prefix listed (the request's context) and on the key read (its resource)
    grant = allow("s3:ListBucket", "arn:aws:s3:::work", Condition={"StringLike": {"s3:prefix": ["pipe/*"]}})
    checker = PermissionChecker(stack(grant, allow("s3:GetObject", "arn:aws:s3:::work/pipe/*")), evaluator=evaluator)
    before = evaluator.evaluations
    # WHEN the same calls come again, in between others that differ only in context or resource
    for _ in range(2):
        checker.check("Fn", "s3", "ListObjectsV2", {"Bucket": "work", "Prefix": "pipe/run/"})
        denied(checker, "Fn", "s3", "ListObjectsV2", {"Bucket": "work", "Prefix": "other/"})
        checker.check("Fn", "s3", "GetObject", {"Bucket": "work", "Key": "pipe/a"})
        denied(checker, "Fn", "s3", "GetObject", {"Bucket": "work", "Key": "other/a"})
    # THEN every call was decided as its own request; each differing request was evaluated once
    assert checker.checked == 8 and len(checker.denied) == 4
    assert evaluator.evaluations - before == 4


def test_the_decision_cache_stays_bounded_and_a_denial_survives_its_clearing(
    evaluator: Evaluator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import batchline_local.permissions.checker as module

    monkeypatch.setattr(module, "CACHE_SIZE", 5)
    checker = PermissionChecker(stack(allow("s3:GetObject", "arn:aws:s3:::inbox/*")), evaluator=evaluator)
    for number in range(23):  # a long `local serve`: every object a new request
        checker.check("Fn", "s3", "GetObject", {"Bucket": "inbox", "Key": f"part-{number}"})
        assert len(checker._cache) <= 5
        denied(checker, "Fn", "s3", "PutObject", {"Bucket": "inbox", "Key": "x"})
    assert checker.checked == 46 and len(checker.denied) == 23


def test_new_policies_replace_the_old_decisions(evaluator: Evaluator) -> None:
    # GIVEN a decision made and cached under the first policies
    checker = PermissionChecker(stack(allow("s3:GetObject", "arn:aws:s3:::inbox/*")), evaluator=evaluator)
    checker.check("Fn", "s3", "GetObject", {"Bucket": "inbox", "Key": "a.csv"})
    # WHEN the stack is redeployed without that grant (local serve reloading cdk.json)
    checker.use_policies(stack(allow("s3:GetObject", "arn:aws:s3:::results/*")), {})
    # THEN the same call is decided by the new policies
    denied(checker, "Fn", "s3", "GetObject", {"Bucket": "inbox", "Key": "a.csv"})
    checker.check("Fn", "s3", "GetObject", {"Bucket": "results", "Key": "a.csv"})


def test_list_bucket_outside_the_allowed_prefix_is_denied(evaluator: Evaluator) -> None:
    grant = allow("s3:ListBucket", "arn:aws:s3:::work", Condition={"StringLike": {"s3:prefix": ["pipe/*"]}})
    checker = PermissionChecker(stack(grant), evaluator=evaluator)
    checker.check("Fn", "s3", "ListObjectsV2", {"Bucket": "work", "Prefix": "pipe/run/"})
    denied(checker, "Fn", "s3", "ListObjectsV2", {"Bucket": "work", "Prefix": "other/"})
    denied(checker, "Fn", "s3", "ListObjectsV2", {"Bucket": "work"})  # no prefix: the whole bucket


def test_a_version_read_needs_get_object_version(evaluator: Evaluator) -> None:
    checker = PermissionChecker(stack(allow("s3:GetObject", "arn:aws:s3:::inbox/*")), evaluator=evaluator)
    error = denied(checker, "Fn", "s3", "GetObject", {"Bucket": "inbox", "Key": "a", "VersionId": "v1"})
    assert "s3:GetObjectVersion" in str(error)


def test_a_copy_needs_the_source_read_too(evaluator: Evaluator) -> None:
    checker = PermissionChecker(stack(allow("s3:PutObject", "arn:aws:s3:::results/*")), evaluator=evaluator)
    params = {"Bucket": "results", "Key": "out", "CopySource": {"Bucket": "work", "Key": "part"}}
    error = denied(checker, "Fn", "s3", "CopyObject", params)
    assert "s3:GetObject on resource: arn:aws:s3:::work/part" in str(error)


def test_one_key_of_a_batch_delete_outside_the_grant_denies_the_batch(evaluator: Evaluator) -> None:
    checker = PermissionChecker(
        stack(allow("s3:DeleteObject", "arn:aws:s3:::work/*/input/part-*")), evaluator=evaluator
    )
    keys = [{"Key": "p/r/input/part-1"}, {"Key": "p/r/output/result"}]
    error = denied(checker, "Fn", "s3", "DeleteObjects", {"Bucket": "work", "Delete": {"Objects": keys}})
    assert "arn:aws:s3:::work/p/r/output/result" in str(error)


def test_a_role_passed_to_the_wrong_service_is_denied(evaluator: Evaluator) -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/bedrock-role"
    grants = stack(
        allow("bedrock:CreateModelInvocationJob", "*"),
        allow("personalize:CreateBatchInferenceJob", "*"),
        allow("iam:PassRole", role, Condition={"StringEquals": {"iam:PassedToService": "bedrock.amazonaws.com"}}),
    )
    checker = PermissionChecker(grants, evaluator=evaluator)
    bedrock = {"jobName": "bl-x", "roleArn": role, "modelId": "anthropic.m-v1:0"}
    checker.check("Fn", "bedrock", "CreateModelInvocationJob", bedrock)
    personalize = {
        "jobName": "bl-x",
        "roleArn": role,
        "solutionVersionArn": f"arn:aws:personalize:{REGION}:{ACCOUNT}:solution/s/1",
    }
    error = denied(checker, "Fn", "personalize", "CreateBatchInferenceJob", personalize)
    assert f"iam:PassRole on resource: {role}" in str(error)


def test_an_explicit_deny_in_the_bucket_policy_wins_over_an_identity_allow(evaluator: Evaluator) -> None:
    deny = {
        "Effect": "Deny",
        "Principal": {"AWS": ROLE_ARN},
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::inbox/secret/*",
    }
    grants = stack(
        allow("s3:GetObject", "arn:aws:s3:::inbox/*"),
        resource_policies={"arn:aws:s3:::inbox": policy(deny)},
    )
    checker = PermissionChecker(grants, evaluator=evaluator)
    checker.check("Fn", "s3", "GetObject", {"Bucket": "inbox", "Key": "open"})
    error = denied(checker, "Fn", "s3", "GetObject", {"Bucket": "inbox", "Key": "secret/x"})
    assert "explicit deny in a resource-based policy" in str(error)


def test_a_bucket_policy_naming_the_role_allows_without_an_identity_grant(evaluator: Evaluator) -> None:
    grant = {
        "Effect": "Allow",
        "Principal": {"AWS": ROLE_ARN},
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::w/*",
    }
    checker = PermissionChecker(stack(resource_policies={"arn:aws:s3:::w": policy(grant)}), evaluator=evaluator)
    checker.check("Fn", "s3", "GetObject", {"Bucket": "w", "Key": "k"})


KEY_USE = allow(["kms:Decrypt", "kms:GenerateDataKey"], KEY)
OBJECTS = allow(["s3:GetObject", "s3:PutObject"], "arn:aws:s3:::w/*")


def test_an_encrypted_bucket_needs_the_key_policy_to_allow_too(evaluator: Evaluator) -> None:
    # GIVEN a role allowed the objects and the key, on a bucket encrypted with a key whose policy names others
    others = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/other"},
        "Action": "kms:*",
        "Resource": "*",
    }
    closed = stack(OBJECTS, KEY_USE, resource_policies={KEY: policy(others)}, bucket_keys={"w": KEY})
    error = denied(PermissionChecker(closed, evaluator=evaluator), "Fn", "s3", "GetObject", {"Bucket": "w", "Key": "k"})
    assert f"kms:Decrypt on resource: {KEY}" in str(error)
    # WHEN the key policy delegates to IAM (the account root), THEN the identity grant suffices
    root = {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"}
    open_key = stack(OBJECTS, KEY_USE, resource_policies={KEY: policy(root)}, bucket_keys={"w": KEY})
    PermissionChecker(open_key, evaluator=evaluator).check("Fn", "s3", "PutObject", {"Bucket": "w", "Key": "k"})
    # AND without the identity grant on the key, the object grant alone is not enough
    no_key = stack(OBJECTS, resource_policies={KEY: policy(root)}, bucket_keys={"w": KEY})
    error = denied(PermissionChecker(no_key, evaluator=evaluator), "Fn", "s3", "PutObject", {"Bucket": "w", "Key": "k"})
    assert "kms:GenerateDataKey" in str(error)


def test_a_service_principal_needs_the_bucket_policy_and_its_conditions(evaluator: Evaluator) -> None:
    grant = {
        "Effect": "Allow",
        "Principal": {"Service": "machinelearning.amazonaws.com"},
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::w/pipe/*",
        "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
    }
    checker = PermissionChecker(stack(resource_policies={"arn:aws:s3:::w": policy(grant)}), evaluator=evaluator)
    read = ("machinelearning.amazonaws.com", "s3", "GetObject", {"Bucket": "w", "Key": "pipe/in"})
    checker.check_service(*read, acting_for="pipe")
    # Amazon ML may not send aws:SourceAccount: then this bucket policy does not let it in.
    error = denied(checker, *read, acting_for="pipe", source_account=False)
    assert "because no resource-based policy allows the s3:GetObject action" in str(error)
    denied(checker, "personalize.amazonaws.com", "s3", "GetObject", {"Bucket": "w", "Key": "pipe/in"}, acting_for="p")
    assert "machinelearning.amazonaws.com for pipe" in checker.to_json()["principals"]


def test_a_service_acting_as_a_role_is_checked_against_the_trust_policy_and_the_role(evaluator: Evaluator) -> None:
    trust = policy(
        {
            "Effect": "Allow",
            "Principal": {"Service": "bedrock.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
        }
    )
    service_role = Role(
        "SvcRole",
        "svc-role",
        f"arn:aws:iam::{ACCOUNT}:role/svc-role",
        trust,
        (NamedPolicy("Svc", policy(allow("s3:GetObject", "arn:aws:s3:::w/pipe/*"))),),
    )
    checker = PermissionChecker(stack(service_role=service_role), evaluator=evaluator)
    read = {"Bucket": "w", "Key": "pipe/in"}
    checker.check_service(
        "bedrock.amazonaws.com", "s3", "GetObject", read, acting_for="pipe", role_arn=service_role.arn
    )
    denied(
        checker,
        "bedrock.amazonaws.com",
        "s3",
        "GetObject",
        {"Bucket": "w", "Key": "x/in"},
        acting_for="pipe",
        role_arn=service_role.arn,
    )
    error = denied(
        checker, "personalize.amazonaws.com", "s3", "GetObject", read, acting_for="pipe", role_arn=service_role.arn
    )
    assert "sts:AssumeRole" in str(error)


def test_an_arn_of_no_resource_type_of_the_action_is_a_denial_with_that_reason(evaluator: Evaluator) -> None:
    # Even an allow of everything does not let a call on the wrong kind of resource through.
    checker = PermissionChecker(stack(allow("states:*", "*")), evaluator=evaluator)
    with pytest.raises(ClientError, match=r"matches none of states:StartExecution's resource types \(statemachine\)"):
        checker.check("Fn", "stepfunctions", "StartExecution", {"stateMachineArn": "arn:aws:s3:::not-a-state-machine"})


def test_an_inference_profile_grant_must_name_the_profile_not_a_foundation_model(evaluator: Evaluator) -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/r"
    call = {"jobName": "bl-x", "roleArn": role, "modelId": "us.anthropic.m-v1:0"}
    passing = allow("iam:PassRole", role)
    job = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-invocation-job/*"
    wrong = allow(
        "bedrock:CreateModelInvocationJob", [job, f"arn:aws:bedrock:{REGION}::foundation-model/us.anthropic.m-v1:0"]
    )
    denied(
        PermissionChecker(stack(wrong, passing), evaluator=evaluator), "Fn", "bedrock", "CreateModelInvocationJob", call
    )
    right = allow("bedrock:CreateModelInvocationJob", [job, f"arn:aws:bedrock:{REGION}:{ACCOUNT}:inference-profile/*"])
    PermissionChecker(stack(right, passing), evaluator=evaluator).check(
        "Fn", "bedrock", "CreateModelInvocationJob", call
    )


def test_every_call_of_an_attached_client_is_checked_before_it_is_sent(evaluator: Evaluator) -> None:
    checker = PermissionChecker(stack(allow("s3:PutObject", "arn:aws:s3:::inbox/*")), evaluator=evaluator)
    caller: list[str | None] = ["Fn"]
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        setup = session.client("s3")
        setup.create_bucket(Bucket="inbox")
        setup.create_bucket(Bucket="results")
        attach(session, checker, lambda: caller[0])
        s3 = session.client("s3")  # made after attach: it carries the check
        s3.put_object(Bucket="inbox", Key="a", Body=b"x")
        with pytest.raises(ClientError, match="AccessDenied"):
            s3.put_object(Bucket="results", Key="a", Body=b"x")
        assert "Contents" not in setup.list_objects_v2(Bucket="results")  # refused before it reached S3
        with pytest.raises(UnmappedOperation):
            s3.get_bucket_policy(Bucket="inbox")
        caller[0] = None  # not a function's call: the runtime's own
        s3.get_object(Bucket="inbox", Key="a")
    assert checker.checked == 2
    assert [d.action for d in checker.denied] == ["s3:PutObject"]
