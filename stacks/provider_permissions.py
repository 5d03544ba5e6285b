"""What the functions may do on each ML service, computed from the configured pipelines.

One builder per provider (``PROVIDER_GRANTS``), with one grant per adapter operation (encode, submit, describe,
stop): each function gets the operations its catalogue entry declares (batchline.functions), so only the
submitting function may create jobs or pass roles. A new service adds a builder here and nothing else changes.
Job names always start with ``bl-`` (batchline.naming), Amazon ML IDs with ``ds-``/``bp-``, so grants are
scoped to those prefixes. iam:PassRole is granted only on the roles the pipelines name (or the stack
creates) and only towards the service that uses them. Each builder also carries the cdk-nag
acknowledgments its own wildcards need, so the reason sits next to the grant that causes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aws_cdk import Stack, Token
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from batchline.config import (
    AmazonMLSettings,
    BedrockSettings,
    PersonalizeSettings,
    Pipelines,
    SageMakerSettings,
)
from batchline.functions import CATALOGUE

from stacks.nag import acknowledge

_JOB_PREFIX_REASON = "Jobs are named at run time from the run ID; every name starts with this fixed prefix."


@dataclass
class Grant:
    """IAM statements plus the cdk-nag findings they raise, each with the reason it is acceptable."""

    statements: list[iam.PolicyStatement] = field(default_factory=list)
    acknowledgments: dict[str, str] = field(default_factory=dict)

    def extend(self, other: Grant) -> None:
        self.statements += other.statements
        self.acknowledgments.update(other.acknowledgments)

    def apply_to(self, function: lambda_.Function) -> None:
        """Add the statements to the function's role and acknowledge their findings on that role only."""
        for statement in self.statements:
            function.add_to_role_policy(statement)
        for finding, reason in self.acknowledgments.items():
            acknowledge(function.role, finding, reason)  # type: ignore[arg-type]


# One grant per adapter operation (batchline.functions.JobCall) a function may make; an operation missing here
# makes no AWS call for that provider.
OperationGrants = dict[str, Grant]


def wildcard_finding(stack: Stack, service: str, resource: str) -> str:
    """The id cdk-nag gives a wildcard resource ARN, as it renders the stack's pseudo parameters."""
    partition = "<AWS::Partition>" if Token.is_unresolved(stack.partition) else stack.partition
    region = "<AWS::Region>" if Token.is_unresolved(stack.region) else stack.region
    account = "<AWS::AccountId>" if Token.is_unresolved(stack.account) else stack.account
    return f"AwsSolutions::AwsSolutions-IAM5[Resource::arn:{partition}:{service}:{region}:{account}:{resource}]"


def _sagemaker(stack: Stack, settings: Sequence[SageMakerSettings]) -> OperationGrants:
    # Service Authorization Reference, "Actions, resources, and condition keys for Amazon SageMaker"
    # (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsagemaker.html):
    # CreateTransformJob has one resource type, transform-job (required); the model is not a resource of
    # it but a condition key, sagemaker:ModelArn (with aws:RequestTag, aws:TagKeys, sagemaker:InstanceTypes,
    # sagemaker:OutputKmsKey, sagemaker:VolumeKmsKey). So the model is scoped by condition, on Create only:
    # Describe/Stop/AddTags requests carry no model ARN and would never match it. Tags passed at creation
    # need sagemaker:AddTags on the job. SageMaker writes resource names in ARNs in lower case.
    jobs = f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}:transform-job/bl-*"
    models = sorted(
        {
            f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}:model/{s.model_name.lower()}"
            for s in settings
        }
    )
    acknowledged = {wildcard_finding(stack, "sagemaker", "transform-job/bl-*"): _JOB_PREFIX_REASON}
    return {
        # A job an earlier attempt created is described to check it is the same job.
        "submit": Grant(
            statements=[
                iam.PolicyStatement(
                    actions=["sagemaker:CreateTransformJob"],
                    resources=[jobs],
                    conditions={"ArnEquals": {"sagemaker:ModelArn": models}},
                ),
                iam.PolicyStatement(actions=["sagemaker:AddTags", "sagemaker:DescribeTransformJob"], resources=[jobs]),
            ],
            acknowledgments=acknowledged,
        ),
        "describe": Grant(
            statements=[iam.PolicyStatement(actions=["sagemaker:DescribeTransformJob"], resources=[jobs])],
            acknowledgments=acknowledged,
        ),
        # stop() describes the job first: a job already ending is left alone.
        "stop": Grant(
            statements=[
                iam.PolicyStatement(
                    actions=["sagemaker:DescribeTransformJob", "sagemaker:StopTransformJob"], resources=[jobs]
                )
            ],
            acknowledgments=acknowledged,
        ),
    }


def _personalize(stack: Stack, settings: Sequence[PersonalizeSettings]) -> OperationGrants:
    # CreateBatchInferenceJob's resource types are the job and the solution (its version); a filter is named in
    # the request too. Personalize has no API to stop a batch job: stop() makes no call.
    kinds = ("batch-inference-job", "batch-segment-job")
    jobs = [f"arn:{stack.partition}:personalize:{stack.region}:{stack.account}:{kind}/bl-*" for kind in kinds]
    inputs = sorted({s.solution_version_arn for s in settings} | {s.filter_arn for s in settings if s.filter_arn})
    describe = ["personalize:DescribeBatchInferenceJob", "personalize:DescribeBatchSegmentJob"]
    acknowledged = {wildcard_finding(stack, "personalize", f"{kind}/bl-*"): _JOB_PREFIX_REASON for kind in kinds}
    return {
        # "Already exists" is answered by describing the job (names are permanent).
        "submit": Grant(
            statements=[
                iam.PolicyStatement(
                    actions=["personalize:CreateBatchInferenceJob", "personalize:CreateBatchSegmentJob"],
                    resources=[*jobs, *inputs],
                ),
                iam.PolicyStatement(actions=["personalize:TagResource", *describe], resources=jobs),
            ],
            acknowledgments=acknowledged,
        ),
        "describe": Grant(
            statements=[iam.PolicyStatement(actions=describe, resources=jobs)], acknowledgments=acknowledged
        ),
    }


def _bedrock(stack: Stack, settings: Sequence[BedrockSettings]) -> OperationGrants:
    # CreateModelInvocationJob's resource types are model-invocation-job and the model (foundation-model or
    # custom-model); an inference profile is not one of them, so a profile's job is granted on the profile and
    # on its foundation model in every Region the profile routes to (bedrock_model_grant).
    granted = [bedrock_model_grant(stack, s.model_id) for s in settings]
    models = sorted({arn for arns, _ in granted for arn in arns})
    jobs = f"arn:{stack.partition}:bedrock:{stack.region}:{stack.account}:model-invocation-job/*"
    acknowledged = {
        wildcard_finding(stack, "bedrock", "model-invocation-job/*"): (
            "Bedrock generates job IDs, so job ARNs are not known before creation."
        ),
        **{finding: reason for _, findings in granted for finding, reason in findings.items()},
    }
    # ListModelInvocationJobs has no resource-level permissions: describe() finds a job by its name with it.
    lookup = iam.PolicyStatement(actions=["bedrock:ListModelInvocationJobs"], resources=["*"])
    lookup_reason = {
        "AwsSolutions::AwsSolutions-IAM5[Resource::*]": (
            "bedrock:ListModelInvocationJobs has no resource-level permissions."
        )
    }
    submit = [
        iam.PolicyStatement(actions=["bedrock:CreateModelInvocationJob"], resources=[jobs, *models]),
        iam.PolicyStatement(actions=["bedrock:TagResource", "bedrock:GetModelInvocationJob"], resources=[jobs]),
    ]
    # A chunk under the batch minimum is answered by SubmitJob itself: InvokeModel, which Converse also needs
    # (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html), on the models of the
    # pipelines that answer on demand, and nothing else (no streaming, no other function).
    on_demand = sorted(
        {arn for s, (arns, _) in zip(settings, granted, strict=True) if s.on_demand_below_minimum for arn in arns}
    )
    if on_demand:
        submit.append(iam.PolicyStatement(actions=["bedrock:InvokeModel"], resources=on_demand))
    return {
        "submit": Grant(statements=submit, acknowledgments=acknowledged),
        "describe": Grant(
            statements=[iam.PolicyStatement(actions=["bedrock:GetModelInvocationJob"], resources=[jobs]), lookup],
            acknowledgments={**acknowledged, **lookup_reason},
        ),
        # stop() describes the job first (by name, so with the lookup) and stops it only while it runs.
        "stop": Grant(
            statements=[
                iam.PolicyStatement(
                    actions=["bedrock:GetModelInvocationJob", "bedrock:StopModelInvocationJob"], resources=[jobs]
                ),
                lookup,
            ],
            acknowledgments={**acknowledged, **lookup_reason},
        ),
    }


def _amazonml(stack: Stack, settings: Sequence[AmazonMLSettings]) -> OperationGrants:
    # The batch prediction is created by the submitting side once its DataSource is ready; describe() reads the
    # batch prediction, or the DataSource before it exists. Amazon ML cannot stop a batch prediction.
    prefix = f"arn:{stack.partition}:machinelearning:{stack.region}:{stack.account}"
    sources, predictions = f"{prefix}:datasource/ds-*", f"{prefix}:batchprediction/bp-*"
    models = sorted({f"{prefix}:mlmodel/{s.ml_model_id}" for s in settings})
    acknowledged = {
        wildcard_finding(stack, "machinelearning", resource): _JOB_PREFIX_REASON
        for resource in ("datasource/ds-*", "batchprediction/bp-*")
    }
    read = iam.PolicyStatement(
        actions=["machinelearning:GetBatchPrediction", "machinelearning:GetDataSource"],
        resources=[sources, predictions],
    )
    # The user's tags go on with AddTags after each create; no pipeline with tags, no grant.
    tagging = []
    if any(s.tags for s in settings):
        tagging.append(iam.PolicyStatement(actions=["machinelearning:AddTags"], resources=[sources, predictions]))
    return {
        "submit": Grant(
            statements=[
                iam.PolicyStatement(actions=["machinelearning:CreateDataSourceFromS3"], resources=[sources]),
                iam.PolicyStatement(
                    actions=["machinelearning:CreateBatchPrediction"], resources=[predictions, sources, *models]
                ),
                read,
                *tagging,
            ],
            acknowledgments=acknowledged,
        ),
        "describe": Grant(statements=[read], acknowledgments=acknowledged),
        "encode": model_lookup_grant(stack, settings),
        "release": _amazonml_release(settings, [sources, predictions], acknowledged),
    }


def _amazonml_release(
    settings: Sequence[AmazonMLSettings], resources: list[str], acknowledged: dict[str, str]
) -> Grant:
    """The run's end marks an ended prediction and its DataSource DELETED, unless every pipeline opted out
    (deleteServiceObjects false): then no function may delete anything."""
    if not any(s.delete_service_objects for s in settings):
        return Grant()
    return Grant(
        statements=[
            iam.PolicyStatement(
                actions=["machinelearning:DeleteBatchPrediction", "machinelearning:DeleteDataSource"],
                resources=resources,
            )
        ],
        acknowledgments=acknowledged,
    )


# provider -> the grants for all pipelines of that provider. Vertex AI calls Google APIs only (no AWS grant).
PROVIDER_GRANTS: dict[str, Callable[[Stack, Sequence[Any]], OperationGrants]] = {
    "sagemaker": _sagemaker,
    "personalize": _personalize,
    "bedrock": _bedrock,
    "amazonml": _amazonml,
}


def grant_service_calls(
    functions: Mapping[str, lambda_.Function],
    pipelines: Pipelines,
    role_arns: dict[str, str],
    passed_to: dict[str, str],
) -> None:
    """Each function may make the service calls its catalogue entry declares (``jobs``), on the configured
    pipelines' services only; only a function that submits may pass a role."""
    for spec in CATALOGUE:
        function = functions[spec.name]
        grant = job_permissions(Stack.of(function), pipelines, spec.jobs)
        if "submit" in spec.jobs:
            grant.extend(pass_role_permissions(role_arns, passed_to))
        grant.apply_to(function)


def job_permissions(stack: Stack, pipelines: Pipelines, operations: Iterable[str]) -> Grant:
    """The statements for ``operations`` on every configured provider."""
    by_provider: dict[str, list[Any]] = {}
    for pipeline in pipelines.pipelines.values():
        by_provider.setdefault(pipeline.provider, []).append(pipeline.service)
    grant = Grant()
    for provider in sorted(by_provider):
        builder = PROVIDER_GRANTS.get(provider)
        if builder is None:
            continue
        grants = builder(stack, by_provider[provider])
        for operation in sorted(operations):
            if operation in grants:
                grant.extend(grants[operation])
    return grant


def pass_role_permissions(role_arns: dict[str, str], passed_to: dict[str, str]) -> Grant:
    """iam:PassRole on each pipeline's role, towards the one service that uses it."""
    return Grant(
        statements=[
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[role_arns[name]],
                conditions={"StringEquals": {"iam:PassedToService": service}},
            )
            for name, service in sorted(passed_to.items())
        ]
    )


def model_lookup_grant(stack: Stack, settings: Sequence[AmazonMLSettings]) -> Grant:
    """Prepare reads an Amazon ML model's training schema when the config does not give one."""
    models = sorted({s.ml_model_id for s in settings if s.data_schema is None})
    if not models:
        return Grant()
    prefix = f"arn:{stack.partition}:machinelearning:{stack.region}:{stack.account}"
    return Grant(
        statements=[
            iam.PolicyStatement(
                actions=["machinelearning:GetMLModel"], resources=[f"{prefix}:mlmodel/{m}" for m in models]
            )
        ]
    )


# A system-defined (cross-Region) inference profile's ID is a geography, a dot and the model ID
# (us.anthropic.claude-...). It routes each request to one Region of its geography, and IAM checks InvokeModel
# on the profile and on the foundation model in the Region that serves it ("Prerequisites for inference
# profiles": https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-prereq.html, "you must
# also specify the foundation model in each Region associated with it"). The Regions of a geography grow over
# time, so they are matched by pattern; a geography whose Regions share no prefix (global, and the ones not
# listed) gets every Region.
PROFILE_REGIONS = {"us": "us-*", "us-gov": "us-gov-*", "eu": "eu-*", "apac": "ap-*"}
PROFILE_GEOGRAPHIES = frozenset({*PROFILE_REGIONS, "global", "jp", "au", "ca"})
_PROFILE_REASON = (
    "The foundation model behind a cross-Region inference profile, in each Region of the profile's geography "
    "(Bedrock routes each request to one of them); the model ID is fixed."
)


def bedrock_model_arn(stack: Stack, model_id: str) -> str:
    """A foundation model ID as an ARN; ARNs (inference profiles, provisioned models) are kept as given."""
    if model_id.startswith("arn:"):
        return model_id
    return f"arn:{stack.partition}:bedrock:{stack.region}::foundation-model/{model_id}"


def inference_profile(model_id: str) -> tuple[str, str] | None:
    """(profile ID, foundation model ID) when ``model_id`` is a system-defined inference profile's ID or ARN."""
    profile_id = model_id
    if model_id.startswith("arn:"):
        resource = model_id.split(":", 5)[-1]
        if not resource.startswith("inference-profile/"):
            return None  # an application inference profile or a provisioned model: its model is not in its ARN
        profile_id = resource.removeprefix("inference-profile/")
    geography, dot, model = profile_id.partition(".")
    if not dot or geography not in PROFILE_GEOGRAPHIES:
        return None
    return profile_id, model


def bedrock_model_grant(stack: Stack, model_id: str) -> tuple[list[str], dict[str, str]]:
    """The ARNs a job of ``model_id`` is authorized against, and the cdk-nag findings of their wildcards.

    A foundation model: its ARN in the stack's Region. A system-defined inference profile: the profile's ARN
    (``arn:<partition>:bedrock:<region>:<account>:inference-profile/<id>``; the ARN as given when the config
    names one) and the foundation model's ARN in every Region the profile routes to.
    """
    profile = inference_profile(model_id)
    if profile is None:
        return [bedrock_model_arn(stack, model_id)], {}
    profile_id, model = profile
    profile_arn = (
        model_id
        if model_id.startswith("arn:")
        else f"arn:{stack.partition}:bedrock:{stack.region}:{stack.account}:inference-profile/{profile_id}"
    )
    regions = PROFILE_REGIONS.get(profile_id.partition(".")[0], "*")
    partition = model_id.split(":")[1] if model_id.startswith("arn:") else stack.partition
    shown = "<AWS::Partition>" if Token.is_unresolved(partition) else partition
    finding = f"AwsSolutions::AwsSolutions-IAM5[Resource::arn:{shown}:bedrock:{regions}::foundation-model/{model}]"
    return [profile_arn, f"arn:{partition}:bedrock:{regions}::foundation-model/{model}"], {finding: _PROFILE_REASON}
