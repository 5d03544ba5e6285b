"""Least privilege: no wildcard actions, '*' only where AWS offers no resource, each function only its step."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from tests.stacks.conftest import (
    actions_of,
    as_list,
    function_statements,
    logical_id,
    policy_statements,
    resources,
    synth_with_pipelines,
)

# Actions AWS authorizes on "*" only (no resource-level permissions).
RESOURCELESS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "bedrock:ListModelInvocationJobs",
    # WakeJob resumes a waiting job: the task token names the task.
    "states:SendTaskSuccess",
    # The state machine's log delivery (CDK's LogOptions).
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}


def allow_statements(template: Template) -> list[dict[str, Any]]:
    """Every Allow in IAM policies and in bucket and queue policies."""
    found = [s for s in policy_statements(template) if s["Effect"] == "Allow"]
    for kind in ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy"):
        for policy in resources(template, kind).values():
            found += [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    return found


def test_no_statement_allows_a_wildcard_action_or_destroys_data(template: Template) -> None:
    for statement in allow_statements(template):
        for action in as_list(statement["Action"]):
            assert action != "*" and not action.endswith(":*"), statement
            assert not action.startswith(("s3:PutBucket", "iam:Create", "iam:Put")), statement
            # The one delete allowed only marks staged parts deleted (next test); no version is ever deleted.
            assert not action.startswith("s3:Delete") or action == "s3:DeleteObject", statement


def test_only_prepare_input_deletes_and_only_staged_parts_of_the_versioned_work_bucket(template: Template) -> None:
    work = logical_id(template, "AWS::S3::Bucket", "StorageWork")
    deletes = [s for s in allow_statements(template) if any(a.startswith("s3:Delete") for a in as_list(s["Action"]))]
    assert len(deletes) == 1 and deletes[0] in function_statements(template, "PrepareInput"), deletes
    assert as_list(deletes[0]["Action"]) == ["s3:DeleteObject"]
    objects = [resource["Fn::Join"][1] for resource in as_list(deletes[0]["Resource"])]
    assert sorted(objects, key=str) == [
        [{"Fn::GetAtt": [work, "Arn"]}, f"/*/{folder}/part-*"] for folder in ("index", "input")
    ]
    versioning = resources(template, "AWS::S3::Bucket")[work]["Properties"]["VersioningConfiguration"]
    assert versioning == {"Status": "Enabled"}  # a delete adds a marker; the noncurrent version stays


def test_only_actions_without_resource_level_permissions_get_resource_star(template: Template) -> None:
    for statement in policy_statements(template):
        if "*" in as_list(statement["Resource"]):
            assert set(as_list(statement["Action"])) <= RESOURCELESS, statement


def test_no_role_carries_a_managed_policy(template: Template) -> None:
    for name, role in resources(template, "AWS::IAM::Role").items():
        assert "ManagedPolicyArns" not in role["Properties"], name


@pytest.mark.parametrize(
    ("function", "may", "may_not"),
    [
        ("StartRun", {"states:StartExecution", "events:PutEvents", "s3:GetObjectVersion"}, {"s3:PutObject"}),
        ("PrepareInput", {"s3:GetObject", "s3:PutObject"}, {"states:StartExecution", "events:PutEvents"}),
        ("SubmitJob", {"sagemaker:CreateTransformJob", "iam:PassRole"}, {"s3:DeleteObject", "events:PutEvents"}),
        ("PollJob", {"sagemaker:DescribeTransformJob"}, {"s3:DeleteObject", "events:PutEvents"}),
        ("PlanCollect", {"s3:GetObject", "s3:PutObject"}, {"sagemaker:CreateTransformJob", "events:PutEvents"}),
        ("CollectUnit", {"s3:GetObject", "s3:PutObject"}, {"sagemaker:CreateTransformJob", "events:PutEvents"}),
        ("AssembleOutput", {"s3:PutObject", "s3:AbortMultipartUpload"}, {"sagemaker:CreateTransformJob"}),
        ("FinalizeRun", {"s3:GetObject", "s3:PutObject"}, {"sagemaker:CreateTransformJob", "iam:PassRole"}),
        ("ReportFailure", {"sagemaker:StopTransformJob", "s3:PutObject"}, {"states:StartExecution"}),
        ("ExecutionEnded", {"states:GetExecutionHistory", "events:PutEvents"}, {"states:StartExecution"}),
        ("WakeJob", {"states:SendTaskSuccess", "s3:GetObject", "s3:PutObject"}, {"states:StartExecution"}),
        (
            "ReportFailedInvocation",
            {"states:DescribeExecution", "events:PutEvents", "sqs:ReceiveMessage", "sqs:DeleteMessage"},
            {"states:StartExecution", "sagemaker:StopTransformJob", "s3:AbortMultipartUpload"},
        ),
    ],
)
def test_each_function_may_do_its_step_and_not_others(
    template: Template, function: str, may: set[str], may_not: set[str]
) -> None:
    actions = actions_of(function_statements(template, function))
    assert may <= actions, may - actions
    assert not may_not & actions, may_not & actions


@pytest.mark.parametrize(
    ("function", "prefixes"),
    [
        # SubmitJob also writes a job's output when it answers a Bedrock chunk on demand.
        ("SubmitJob", ["/*/output/job-*", "/*/state/job-*"]),
        ("PollJob", ["/*/state/job-*"]),
    ],
)
def test_the_job_steps_write_only_their_jobs_looks_and_outputs(
    template: Template, function: str, prefixes: list[str]
) -> None:
    work = logical_id(template, "AWS::S3::Bucket", "StorageWork")
    writes = [s for s in function_statements(template, function) if "s3:PutObject" in as_list(s["Action"])]
    assert {action for s in writes for action in as_list(s["Action"])} == {"s3:PutObject"}
    assert sorted(r["Fn::Join"][1][1] for s in writes for r in as_list(s["Resource"])) == prefixes
    assert {r["Fn::Join"][1][0]["Fn::GetAtt"][0] for s in writes for r in as_list(s["Resource"])} == {work}


def test_only_start_run_prepare_input_and_the_failure_reporter_read_the_inbox_and_nothing_writes_it(
    template: Template,
) -> None:
    inbox = logical_id(template, "AWS::S3::Bucket", "StorageInbox")
    readers = set()
    for name, policy in resources(template, "AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if inbox in json.dumps(statement["Resource"]):
                readers.add(name.removeprefix("Functions").split("Role")[0])
                assert actions_of([statement]) <= {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"}, statement
    # ReportFailedInvocation HEADs an upload StartRun failed on, as StartRun does, to name it in the event.
    assert readers == {"StartRun", "PrepareInput", "ReportFailedInvocation"}


def test_transform_jobs_are_limited_to_batchline_names_and_configured_models(template: Template) -> None:
    sagemaker = [
        s for s in policy_statements(template) if any(a.startswith("sagemaker:") for a in as_list(s["Action"]))
    ]
    assert sagemaker
    for statement in sagemaker:
        assert "transform-job/bl-*" in json.dumps(statement["Resource"]), statement
    creates = [s for s in sagemaker if "sagemaker:CreateTransformJob" in as_list(s["Action"])]
    for statement in creates:
        assert as_list(statement["Action"]) == ["sagemaker:CreateTransformJob"]
        models = json.dumps(statement["Condition"]["ArnEquals"]["sagemaker:ModelArn"])
        assert ":model/batchline-demo-churn" in models  # the demo pipeline's modelName


def test_other_services_jobs_are_limited_to_batchline_prefixes(template: Template) -> None:
    rendered = json.dumps(policy_statements(template))
    for resource in ("batch-inference-job/bl-*", "batch-segment-job/bl-*", "datasource/ds-*", "batchprediction/bp-*"):
        assert resource in rendered


def test_pass_role_names_each_role_and_the_one_service_it_is_for(template: Template) -> None:
    passes = [s for s in policy_statements(template) if "iam:PassRole" in as_list(s["Action"])]
    assert passes
    services = set()
    for statement in passes:
        assert as_list(statement["Action"]) == ["iam:PassRole"]
        assert "*" not in json.dumps(statement["Resource"])
        services.add(statement["Condition"]["StringEquals"]["iam:PassedToService"])
    assert services == {"personalize.amazonaws.com", "bedrock.amazonaws.com"}


@pytest.fixture(scope="module")
def created_role_template() -> Template:
    return synth_with_pipelines(
        {
            "gen": {
                "keyColumn": "id",
                "service": {"provider": "bedrock", "modelId": "amazon.nova-lite-v1:0", "promptColumn": "q"},
            }
        }
    )


def test_a_pipeline_without_a_role_gets_one_trusting_only_its_service_from_this_account(
    created_role_template: Template,
) -> None:
    created_role_template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [
                    {
                        "Action": "sts:AssumeRole",
                        "Effect": "Allow",
                        "Principal": {"Service": "bedrock.amazonaws.com"},
                        "Condition": {
                            "StringEquals": {"aws:SourceAccount": Match.any_value()},
                            "ArnLike": {"aws:SourceArn": Match.any_value()},
                        },
                    }
                ]
            }
        },
    )
    rendered = json.dumps(created_role_template.to_json())
    assert "foundation-model/amazon.nova-lite-v1:0" in rendered
    assert "sagemaker:" not in rendered and "personalize:" not in rendered  # only configured providers


def test_functions_learn_the_created_roles_from_their_environment(created_role_template: Template) -> None:
    for function in resources(created_role_template, "AWS::Lambda::Function").values():
        roles = json.dumps(function["Properties"]["Environment"]["Variables"]["BATCHLINE_SERVICE_ROLES"])
        assert '\\"gen\\":' in roles and "Arn" in roles


SERVICES = ("sagemaker:", "personalize:", "bedrock:", "machinelearning:", "iam:")
DESCRIBE = {
    "sagemaker:DescribeTransformJob",
    "personalize:DescribeBatchInferenceJob",
    "personalize:DescribeBatchSegmentJob",
    "bedrock:GetModelInvocationJob",
    "bedrock:ListModelInvocationJobs",  # describe() finds a Bedrock job by its name
    "machinelearning:GetBatchPrediction",
    "machinelearning:GetDataSource",  # before the batch prediction exists
}
STOP = {"sagemaker:StopTransformJob", "bedrock:StopModelInvocationJob"}  # Personalize and Amazon ML cannot stop
# The run's end deletes Amazon ML's records of ended jobs (deleteServiceObjects, on by default).
RELEASE = {"machinelearning:DeleteBatchPrediction", "machinelearning:DeleteDataSource"}
SUBMIT = {
    "sagemaker:CreateTransformJob",
    "sagemaker:AddTags",
    "personalize:CreateBatchInferenceJob",
    "personalize:CreateBatchSegmentJob",
    "personalize:TagResource",
    "bedrock:CreateModelInvocationJob",
    "bedrock:TagResource",
    "bedrock:InvokeModel",  # a Bedrock chunk under the batch minimum is answered on demand
    "machinelearning:CreateDataSourceFromS3",
    "machinelearning:CreateBatchPrediction",
    "iam:PassRole",
}


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        ("StartRun", set()),
        ("PrepareInput", {"machinelearning:GetMLModel"}),  # the Amazon ML model's schema, for the staged input
        ("SubmitJob", SUBMIT | DESCRIBE),
        ("PollJob", DESCRIBE),
        ("PlanCollect", set()),
        ("CollectUnit", set()),
        ("AssembleOutput", set()),
        ("FinalizeRun", RELEASE),
        ("ReportFailure", DESCRIBE | STOP | RELEASE),
        ("ExecutionEnded", DESCRIBE | STOP | RELEASE),
    ],
)
def test_only_the_submitting_function_creates_jobs_or_passes_roles_the_others_describe_or_stop(
    template: Template, function: str, expected: set[str]
) -> None:
    actions = {a for a in actions_of(function_statements(template, function)) if a.startswith(SERVICES)}
    assert actions == expected, (actions - expected, expected - actions)


PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"}


def rendered_arn(resource: Any) -> str:
    """An ARN as deployed in us-east-1 of account 123456789012 (pseudo parameters filled in)."""
    if isinstance(resource, str):
        return resource
    if "Ref" in resource:
        return PSEUDO.get(resource["Ref"], f"<{resource['Ref']}>")
    separator, parts = resource["Fn::Join"]
    return separator.join(rendered_arn(part) for part in parts)


GLOBAL_PROFILE = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/global.amazon.nova-2-lite-v1:0"


@pytest.fixture(scope="module")
def profile_template() -> Template:
    return synth_with_pipelines(
        {
            "us-profile": {  # the stack creates the role
                "keyColumn": "id",
                "service": {
                    "provider": "bedrock",
                    "modelId": "us.anthropic.claude-3-5-haiku-20241022-v1:0",
                    "promptColumn": "q",
                },
            },
            "profile-arn": {
                "keyColumn": "id",
                "service": {
                    "provider": "bedrock",
                    "modelId": GLOBAL_PROFILE,
                    "roleArn": "arn:aws:iam::123456789012:role/batchline-bedrock",
                    "promptColumn": "q",
                },
            },
        }
    )


def _granted(statements: list[dict[str, Any]], action: str) -> set[str]:
    return {rendered_arn(r) for s in statements if action in as_list(s["Action"]) for r in as_list(s["Resource"])}


def test_an_inference_profile_is_granted_as_the_profile_and_its_model_in_every_region_it_routes_to(
    profile_template: Template,
) -> None:
    us_profile = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0"
    global_profile = GLOBAL_PROFILE
    us_models = "arn:aws:bedrock:us-*::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0"
    global_models = "arn:aws:bedrock:*::foundation-model/amazon.nova-2-lite-v1:0"
    creates = _granted(function_statements(profile_template, "SubmitJob"), "bedrock:CreateModelInvocationJob")
    assert {us_profile, us_models, global_profile, global_models} <= creates
    assert not [arn for arn in creates if "foundation-model/us." in arn or "foundation-model/arn:" in arn], creates
    # The role the stack creates for the us-profile pipeline invokes through the profile.
    role = logical_id(profile_template, "AWS::IAM::Role", "usprofilerole")
    invokes = _granted(policy_statements(profile_template, role), "bedrock:InvokeModel")
    assert invokes == {us_profile, us_models}


def test_a_foundation_model_id_is_granted_in_the_stacks_region_only(created_role_template: Template) -> None:
    creates = _granted(function_statements(created_role_template, "SubmitJob"), "bedrock:CreateModelInvocationJob")
    assert "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0" in creates
    assert not [arn for arn in creates if "inference-profile" in arn or ":*::" in arn], creates


INPUT_KEY = "arn:aws:kms:us-east-1:111122223333:key/11111111-1111-1111-1111-111111111111"
OUTPUT_KEY = "arn:aws:kms:us-east-1:111122223333:key/22222222-2222-2222-2222-222222222222"


def test_a_created_personalize_role_may_use_the_kms_keys_its_pipeline_names_and_no_other() -> None:
    personalize = {
        "provider": "personalize",
        "recipe": "USER_PERSONALIZATION",
        "solutionVersionArn": "arn:aws:personalize:us-east-1:123456789012:solution/movies/abc",
    }
    template = synth_with_pipelines(
        {
            "keyed": {
                "keyColumn": "userId",
                "service": {**personalize, "inputKmsKeyArn": INPUT_KEY, "outputKmsKeyArn": OUTPUT_KEY},
            },
            "plain": {"keyColumn": "userId", "service": personalize},
        }
    )

    keyed = [s for s in policy_statements(template, "keyedrole") if "kms:Decrypt" in as_list(s["Action"])]
    assert keyed == [
        {
            "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey", "kms:ListGrants"],
            "Effect": "Allow",
            "Resource": [INPUT_KEY, OUTPUT_KEY],
        }
    ]
    assert not any(action.startswith("kms:") for action in actions_of(policy_statements(template, "plainrole")))
    # the role's ARN is an output, for the keys' policies (which only their owner can edit)
    outputs = [o for name, o in template.find_outputs("*").items() if "keyedrolearn" in name]
    assert len(outputs) == 1 and "keyedrole" in json.dumps(outputs[0]["Value"])
    assert not [name for name in template.find_outputs("*") if "plainrolearn" in name]


def test_amazonml_pipelines_that_keep_their_service_objects_grant_no_deletion() -> None:
    kept = synth_with_pipelines(
        {
            "ml-kept": {
                "keyColumn": "id",
                "service": {
                    "provider": "amazonml",
                    "mlModelId": "ml-abc",
                    "modelType": "BINARY",
                    "deleteServiceObjects": False,
                },
            }
        }
    )
    for function in ("FinalizeRun", "ReportFailure", "ExecutionEnded"):
        assert not actions_of(function_statements(kept, function)) & RELEASE


def test_deletion_is_granted_on_the_ids_batchline_creates_only(template: Template) -> None:
    statements = [
        statement
        for statement in function_statements(template, "FinalizeRun")
        if set(as_list(statement["Action"])) & RELEASE
    ]
    arns = {rendered_arn(resource) for statement in statements for resource in as_list(statement["Resource"])}
    assert arns == {
        "arn:aws:machinelearning:us-east-1:123456789012:datasource/ds-*",
        "arn:aws:machinelearning:us-east-1:123456789012:batchprediction/bp-*",
    }


def test_only_submit_job_may_invoke_the_model_and_only_the_pipelines_model(
    profile_template: Template, created_role_template: Template
) -> None:
    # A Bedrock chunk under the batch minimum is answered on demand by SubmitJob: InvokeModel (Converse's
    # permission too) on the pipelines' models and profiles, nothing more, and no other function may.
    us_profile = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0"
    us_models = "arn:aws:bedrock:us-*::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0"
    invokes = _granted(function_statements(profile_template, "SubmitJob"), "bedrock:InvokeModel")
    assert {us_profile, us_models} <= invokes
    assert not [arn for arn in invokes if "*" in arn and "foundation-model/" not in arn], invokes
    for function in ("PrepareInput", "PollJob", "PlanCollect", "CollectUnit", "AssembleOutput"):
        statements = function_statements(profile_template, function)
        assert "bedrock:InvokeModel" not in actions_of(statements), function
    nova = _granted(function_statements(created_role_template, "SubmitJob"), "bedrock:InvokeModel")
    assert nova == {"arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0"}


def test_only_submit_may_tag_amazonml_objects_and_only_when_a_pipeline_names_tags(template: Template) -> None:
    assert not any(
        "machinelearning:AddTags" in actions_of(function_statements(template, name))
        for name in ("SubmitJob", "PollJob", "FinalizeRun", "ReportFailure", "ExecutionEnded")
    )  # cdk.json's Amazon ML pipeline names no tags
    tagged = synth_with_pipelines(
        {
            "ml-tagged": {
                "keyColumn": "id",
                "service": {"provider": "amazonml", "mlModelId": "ml-abc", "modelType": "BINARY", "tags": {"a": "b"}},
            }
        }
    )
    statements = [
        s for s in function_statements(tagged, "SubmitJob") if "machinelearning:AddTags" in as_list(s["Action"])
    ]
    arns = {rendered_arn(resource) for statement in statements for resource in as_list(statement["Resource"])}
    assert arns == {
        "arn:aws:machinelearning:us-east-1:123456789012:datasource/ds-*",
        "arn:aws:machinelearning:us-east-1:123456789012:batchprediction/bp-*",
    }
    assert "machinelearning:AddTags" not in actions_of(function_statements(tagged, "PollJob"))
