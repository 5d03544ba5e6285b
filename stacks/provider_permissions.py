"""What the functions may do on each ML service, computed from the configured pipelines.

One builder per provider (``PROVIDER_GRANTS``): a new service adds a builder here and nothing else changes.
Job names always start with ``bl-`` (batchline.naming), Amazon ML IDs with ``ds-``/``bp-``, so grants are
scoped to those prefixes. iam:PassRole is granted only on the roles the pipelines name (or the stack
creates) and only towards the service that uses them. Each builder also carries the cdk-nag
acknowledgments its own wildcards need, so the reason sits next to the grant that causes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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


def wildcard_finding(stack: Stack, service: str, resource: str) -> str:
    """The id cdk-nag gives a wildcard resource ARN, as it renders the stack's pseudo parameters."""
    partition = "<AWS::Partition>" if Token.is_unresolved(stack.partition) else stack.partition
    region = "<AWS::Region>" if Token.is_unresolved(stack.region) else stack.region
    account = "<AWS::AccountId>" if Token.is_unresolved(stack.account) else stack.account
    return f"AwsSolutions::AwsSolutions-IAM5[Resource::arn:{partition}:{service}:{region}:{account}:{resource}]"


def _sagemaker(stack: Stack, settings: Sequence[SageMakerSettings]) -> Grant:
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
    return Grant(
        statements=[
            iam.PolicyStatement(
                actions=["sagemaker:CreateTransformJob"],
                resources=[jobs],
                conditions={"ArnEquals": {"sagemaker:ModelArn": models}},
            ),
            iam.PolicyStatement(
                actions=["sagemaker:DescribeTransformJob", "sagemaker:StopTransformJob", "sagemaker:AddTags"],
                resources=[jobs],
            ),
        ],
        acknowledgments={wildcard_finding(stack, "sagemaker", "transform-job/bl-*"): _JOB_PREFIX_REASON},
    )


def _personalize(stack: Stack, settings: Sequence[PersonalizeSettings]) -> Grant:
    kinds = ("batch-inference-job", "batch-segment-job")
    jobs = [f"arn:{stack.partition}:personalize:{stack.region}:{stack.account}:{kind}/bl-*" for kind in kinds]
    inputs = sorted({s.solution_version_arn for s in settings} | {s.filter_arn for s in settings if s.filter_arn})
    return Grant(
        statements=[
            iam.PolicyStatement(
                actions=[
                    "personalize:CreateBatchInferenceJob",
                    "personalize:CreateBatchSegmentJob",
                    "personalize:DescribeBatchInferenceJob",
                    "personalize:DescribeBatchSegmentJob",
                    "personalize:TagResource",
                ],
                resources=[*jobs, *inputs],
            )
        ],
        acknowledgments={wildcard_finding(stack, "personalize", f"{kind}/bl-*"): _JOB_PREFIX_REASON for kind in kinds},
    )


def _bedrock(stack: Stack, settings: Sequence[BedrockSettings]) -> Grant:
    models = sorted({bedrock_model_arn(stack, s.model_id) for s in settings})
    return Grant(
        statements=[
            iam.PolicyStatement(
                actions=[
                    "bedrock:CreateModelInvocationJob",
                    "bedrock:GetModelInvocationJob",
                    "bedrock:StopModelInvocationJob",
                    "bedrock:TagResource",
                ],
                resources=[
                    f"arn:{stack.partition}:bedrock:{stack.region}:{stack.account}:model-invocation-job/*",
                    *models,
                ],
            ),
            # ListModelInvocationJobs has no resource-level permissions: it finds a job by its name.
            iam.PolicyStatement(actions=["bedrock:ListModelInvocationJobs"], resources=["*"]),
        ],
        acknowledgments={
            wildcard_finding(stack, "bedrock", "model-invocation-job/*"): (
                "Bedrock generates job IDs, so job ARNs are not known before creation."
            ),
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]": (
                "bedrock:ListModelInvocationJobs has no resource-level permissions."
            ),
        },
    )


def _amazonml(stack: Stack, settings: Sequence[AmazonMLSettings]) -> Grant:
    prefix = f"arn:{stack.partition}:machinelearning:{stack.region}:{stack.account}"
    return Grant(
        statements=[
            iam.PolicyStatement(
                actions=[
                    "machinelearning:CreateDataSourceFromS3",
                    "machinelearning:GetDataSource",
                    "machinelearning:CreateBatchPrediction",
                    "machinelearning:GetBatchPrediction",
                    "machinelearning:GetMLModel",
                ],
                resources=[
                    f"{prefix}:datasource/ds-*",
                    f"{prefix}:batchprediction/bp-*",
                    *sorted({f"{prefix}:mlmodel/{s.ml_model_id}" for s in settings}),
                ],
            )
        ],
        acknowledgments={
            wildcard_finding(stack, "machinelearning", resource): _JOB_PREFIX_REASON
            for resource in ("datasource/ds-*", "batchprediction/bp-*")
        },
    )


# provider -> the grant for all pipelines of that provider. Vertex AI calls Google APIs only (no AWS grant).
PROVIDER_GRANTS: dict[str, Callable[[Stack, Sequence[Any]], Grant]] = {
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
    pipelines' services only."""
    for spec in CATALOGUE:
        function = functions[spec.name]
        stack = Stack.of(function)
        if "encode" in spec.jobs:
            model_lookup_permissions(stack, pipelines).apply_to(function)
        if spec.jobs - {"encode"}:
            job_permissions(stack, pipelines, role_arns, passed_to).apply_to(function)


def job_permissions(stack: Stack, pipelines: Pipelines, role_arns: dict[str, str], passed_to: dict[str, str]) -> Grant:
    """For the functions that create, poll and stop jobs (SubmitJob, PollJob, ReportFailure, ExecutionEnded)."""
    by_provider: dict[str, list[Any]] = {}
    for pipeline in pipelines.pipelines.values():
        by_provider.setdefault(pipeline.provider, []).append(pipeline.service)
    grant = Grant()
    for provider in sorted(by_provider):
        builder = PROVIDER_GRANTS.get(provider)
        if builder is not None:
            grant.extend(builder(stack, by_provider[provider]))
    for name, service in sorted(passed_to.items()):
        grant.statements.append(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[role_arns[name]],
                conditions={"StringEquals": {"iam:PassedToService": service}},
            )
        )
    return grant


def model_lookup_permissions(stack: Stack, pipelines: Pipelines) -> Grant:
    """Prepare reads an Amazon ML model's training schema when the config does not give one."""
    models = sorted(
        {
            p.service.ml_model_id
            for p in pipelines.pipelines.values()
            if isinstance(p.service, AmazonMLSettings) and p.service.data_schema is None
        }
    )
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


def bedrock_model_arn(stack: Stack, model_id: str) -> str:
    """A foundation model ID as an ARN; ARNs (inference profiles, provisioned models) are kept as given."""
    if model_id.startswith("arn:"):
        return model_id
    return f"arn:{stack.partition}:bedrock:{stack.region}::foundation-model/{model_id}"
