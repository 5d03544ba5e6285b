"""What the functions may do on each ML service, computed from the configured pipelines.

Job names always start with ``bl-`` (batchline.naming), Amazon ML IDs with ``ds-``/``bp-``, so grants are
scoped to those prefixes. iam:PassRole is granted only on the roles the pipelines name (or the stack
creates) and only towards the service that uses them.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from batchline.config import (
    AmazonMLSettings,
    BedrockSettings,
    PersonalizeSettings,
    Pipelines,
    SageMakerSettings,
)


def provider_statements(
    stack: Stack, pipelines: Pipelines, role_arns: dict[str, str], passed_to: dict[str, str]
) -> list[iam.PolicyStatement]:
    """Statements for the functions that create, poll and stop jobs (SubmitJob, PollJob, ReportFailure)."""
    arn = f"arn:{stack.partition}"
    region_account = f"{stack.region}:{stack.account}"
    settings = [p.service for p in pipelines.pipelines.values()]
    statements: list[iam.PolicyStatement] = []
    if any(isinstance(s, SageMakerSettings) for s in settings):
        statements.append(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateTransformJob",
                    "sagemaker:DescribeTransformJob",
                    "sagemaker:StopTransformJob",
                    "sagemaker:AddTags",
                ],
                resources=[f"{arn}:sagemaker:{region_account}:transform-job/bl-*"],
            )
        )
    personalize = [s for s in settings if isinstance(s, PersonalizeSettings)]
    if personalize:
        jobs = [
            f"{arn}:personalize:{region_account}:{kind}/bl-*" for kind in ("batch-inference-job", "batch-segment-job")
        ]
        inputs = sorted(
            {s.solution_version_arn for s in personalize} | {s.filter_arn for s in personalize if s.filter_arn}
        )
        statements.append(
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
        )
    bedrock = [s for s in settings if isinstance(s, BedrockSettings)]
    if bedrock:
        models = sorted(
            {
                s.model_id
                if s.model_id.startswith("arn:")
                else f"{arn}:bedrock:{stack.region}::foundation-model/{s.model_id}"
                for s in bedrock
            }
        )
        statements.append(
            iam.PolicyStatement(
                actions=[
                    "bedrock:CreateModelInvocationJob",
                    "bedrock:GetModelInvocationJob",
                    "bedrock:StopModelInvocationJob",
                    "bedrock:TagResource",
                ],
                resources=[f"{arn}:bedrock:{region_account}:model-invocation-job/*", *models],
            )
        )
        # ListModelInvocationJobs has no resource-level permissions: it finds a job by its name.
        statements.append(iam.PolicyStatement(actions=["bedrock:ListModelInvocationJobs"], resources=["*"]))
    amazonml = [s for s in settings if isinstance(s, AmazonMLSettings)]
    if amazonml:
        statements.append(
            iam.PolicyStatement(
                actions=[
                    "machinelearning:CreateDataSourceFromS3",
                    "machinelearning:GetDataSource",
                    "machinelearning:CreateBatchPrediction",
                    "machinelearning:GetBatchPrediction",
                    "machinelearning:GetMLModel",
                ],
                resources=[
                    f"{arn}:machinelearning:{region_account}:datasource/ds-*",
                    f"{arn}:machinelearning:{region_account}:batchprediction/bp-*",
                    *sorted({f"{arn}:machinelearning:{region_account}:mlmodel/{s.ml_model_id}" for s in amazonml}),
                ],
            )
        )
    for name, service in sorted(passed_to.items()):
        statements.append(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[role_arns[name]],
                conditions={"StringEquals": {"iam:PassedToService": service}},
            )
        )
    return statements


def model_lookup_statements(stack: Stack, pipelines: Pipelines) -> list[iam.PolicyStatement]:
    """Prepare reads an Amazon ML model's training schema when the config does not give one."""
    models = sorted(
        {
            p.service.ml_model_id
            for p in pipelines.pipelines.values()
            if isinstance(p.service, AmazonMLSettings) and p.service.data_schema is None
        }
    )
    if not models:
        return []
    return [
        iam.PolicyStatement(
            actions=["machinelearning:GetMLModel"],
            resources=[
                f"arn:{stack.partition}:machinelearning:{stack.region}:{stack.account}:mlmodel/{m}" for m in models
            ],
        )
    ]
