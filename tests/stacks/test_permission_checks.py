"""The permission checks on the real synthesized template: the grants the stack makes allow what the functions
call, and a grant taken away turns into the denial AWS would answer, naming principal, action and resource."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from aws_cdk.assertions import Template
from botocore.exceptions import ClientError

from batchline_local.permissions import Evaluator, PermissionChecker, checker_for_template, runtime_names
from batchline_local.runtime import ACCOUNT, BUCKETS, EVENT_BUS, FUNCTIONS, REGION
from tests.stacks.conftest import synth_with_pipelines

STATE_MACHINE = "batchline-local"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
NAMES = runtime_names(
    buckets=BUCKETS, event_bus=EVENT_BUS, state_machine=STATE_MACHINE, functions=list(FUNCTIONS), key_id=KEY_ID
)
INBOX, WORK, RESULTS = BUCKETS["inbox"], BUCKETS["work"], BUCKETS["results"]


@pytest.fixture(scope="module")
def evaluator() -> Iterator[Evaluator]:
    shared = Evaluator()
    yield shared
    shared.close()


def checker(template: Mapping[str, Any], evaluator: Evaluator, **kwargs: Any) -> PermissionChecker:
    built, _, _ = checker_for_template(template, NAMES, account=ACCOUNT, region=REGION, evaluator=evaluator, **kwargs)
    return built


def test_prepare_input_may_read_the_inbox_and_may_not_write_results(template: Template, evaluator: Evaluator) -> None:
    checks = checker(template.to_json(), evaluator)
    checks.check("PrepareInput", "s3", "GetObject", {"Bucket": INBOX, "Key": "demo-sagemaker/a.csv"})
    checks.check("PrepareInput", "s3", "PutObject", {"Bucket": WORK, "Key": "demo-sagemaker/r/input/part-1"})
    with pytest.raises(ClientError) as caught:
        checks.check("PrepareInput", "s3", "PutObject", {"Bucket": RESULTS, "Key": "demo-sagemaker/r/predictions.csv"})
    assert caught.value.response["Error"]["Code"] == "AccessDenied"
    assert "assumed-role/batchline-local-PrepareInput-role/PrepareInput" in str(caught.value)


def test_the_functions_grants_allow_their_steps_calls(template: Template, evaluator: Evaluator) -> None:
    checks = checker(template.to_json(), evaluator)
    machine = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STATE_MACHINE}"
    event = {"EventBusName": EVENT_BUS, "Source": "batchline", "DetailType": "Batch Prediction Failed", "Detail": "{}"}
    checks.check(
        "StartRun", "stepfunctions", "StartExecution", {"stateMachineArn": machine, "name": "r", "input": "{}"}
    )
    checks.check("StartRun", "events", "PutEvents", {"Entries": [event]})
    execution = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{STATE_MACHINE}:r"
    checks.check("ExecutionEnded", "stepfunctions", "GetExecutionHistory", {"executionArn": execution})
    transform = {
        "TransformJobName": "bl-r-0",
        "ModelName": "batchline-demo-churn",
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        "Tags": [{"Key": "batchline:pipeline", "Value": "demo-sagemaker"}],
    }
    checks.check("SubmitJob", "sagemaker", "CreateTransformJob", transform)
    # The state machine's Distributed Map reads its plan; its own role, not a function's.
    checks.check("StateMachine", "s3", "GetObject", {"Bucket": WORK, "Key": "demo-sagemaker/r/collect/units.json"})
    checks.check("AssembleOutput", "s3", "CompleteMultipartUpload", {"Bucket": RESULTS, "Key": "p/r/out.csv"})
    assert checks.denied == []


def test_removing_one_statement_turns_an_allowed_call_into_a_denial_naming_it(
    template: Template, evaluator: Evaluator
) -> None:
    # GIVEN the template without the statement that lets AssembleOutput write the results bucket
    edited = copy.deepcopy(template.to_json())
    results = next(name for name in edited["Resources"] if name.startswith("StorageResults") and "Policy" not in name)
    policy = next(
        body["Properties"]["PolicyDocument"]
        for name, body in edited["Resources"].items()
        if body["Type"] == "AWS::IAM::Policy" and name.startswith("FunctionsAssembleOutputRole")
    )
    writes = [
        s
        for s in policy["Statement"]
        if "s3:PutObject" in s["Action"] and results in str(s["Resource"])  # the results bucket's objects
    ]
    assert len(writes) == 1
    policy["Statement"].remove(writes[0])
    call = ("AssembleOutput", "s3", "PutObject", {"Bucket": RESULTS, "Key": "demo-sagemaker/r/predictions.csv"})
    checker(template.to_json(), evaluator).check(*call)  # allowed before
    # WHEN the same call is checked against the edited template
    checks = checker(edited, evaluator)
    with pytest.raises(ClientError, match="not authorized to perform: s3:PutObject"):
        checks.check(*call)
    # THEN permissions.json names the principal, the action and the resource
    assert checks.to_json()["denied"] == [
        {
            "principal": "AssembleOutput",
            "action": "s3:PutObject",
            "resource": f"arn:aws:s3:::{RESULTS}/demo-sagemaker/r/predictions.csv",
            "reason": "because no identity-based policy allows the s3:PutObject action",
        }
    ]


@pytest.fixture(scope="module")
def service_role_template() -> dict[str, Any]:
    """Bedrock and Personalize pipelines whose roles the stack creates, with the customer managed key on."""
    pipelines = {
        "bed": {
            "keyColumn": "id",
            "service": {
                "provider": "bedrock",
                "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
                "promptColumn": "p",
            },
        },
        "pers": {
            "keyColumn": "userId",
            "service": {
                "provider": "personalize",
                "recipe": "USER_PERSONALIZATION",
                "solutionVersionArn": f"arn:aws:personalize:{REGION}:{ACCOUNT}:solution/s/abcdef12",
            },
        },
    }
    return dict(synth_with_pipelines(pipelines, customerManagedKey=True).to_json())


def test_service_roles_the_stack_creates_are_found_and_passed_only_to_their_service(
    service_role_template: dict[str, Any], evaluator: Evaluator
) -> None:
    checks, policies, _ = checker_for_template(
        service_role_template, NAMES, account=ACCOUNT, region=REGION, evaluator=evaluator, pipelines=["bed", "pers"]
    )
    bedrock_role = policies.role("bed")
    job = {"jobName": "bl-r-0", "roleArn": bedrock_role.arn, "modelId": "anthropic.claude-3-haiku-20240307-v1:0"}
    checks.check("SubmitJob", "bedrock", "CreateModelInvocationJob", job)
    personalize = {
        "jobName": "bl-r-0",
        "roleArn": bedrock_role.arn,  # the Bedrock pipeline's role handed to Personalize
        "solutionVersionArn": f"arn:aws:personalize:{REGION}:{ACCOUNT}:solution/s/abcdef12",
    }
    with pytest.raises(ClientError, match=f"iam:PassRole on resource: {bedrock_role.arn}"):
        checks.check("SubmitJob", "personalize", "CreateBatchInferenceJob", personalize)
    # Bedrock, as the role, reads its own pipeline's staged input through the encrypted bucket (key included)...
    staged = {"Bucket": WORK, "Key": "bed/r/input/part-1.jsonl"}
    source = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-invocation-job/abc"
    checks.check_service(
        "bedrock.amazonaws.com",
        "s3",
        "GetObject",
        staged,
        acting_for="bed",
        role_arn=bedrock_role.arn,
        source_arn=source,
    )
    # ...and not the other pipeline's.
    with pytest.raises(ClientError, match="s3:GetObject"):
        checks.check_service(
            "bedrock.amazonaws.com",
            "s3",
            "GetObject",
            {"Bucket": WORK, "Key": "pers/r/input/part-1.json"},
            acting_for="bed",
            role_arn=bedrock_role.arn,
            source_arn=source,
        )
    assert any(name.startswith("bedrock.amazonaws.com for bed") for name in checks.to_json()["principals"])
