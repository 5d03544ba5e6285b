"""Roles the ML services assume for pipelines that do not bring their own (Personalize, Bedrock)."""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from batchline.config import BedrockSettings, PersonalizeSettings, Pipelines
from constructs import Construct

from stacks.nag import acknowledge
from stacks.provider_permissions import bedrock_model_grant


class ServiceRoles(Construct):
    """One role per pipeline, trusting only its service from this account, reading and writing its prefix."""

    def __init__(self, scope: Construct, construct_id: str, *, pipelines: Pipelines, work: s3.IBucket) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # pipeline name -> (role ARN, service principal the role is passed to)
        self.role_arns: dict[str, str] = {}
        self.passed_to: dict[str, str] = {}
        # Only the roles created here (the functions learn their ARNs from the environment at deploy time).
        self.created: dict[str, str] = {}
        self.created_roles: list[iam.Role] = []
        for name, pipeline in pipelines.pipelines.items():
            settings = pipeline.service
            if isinstance(settings, PersonalizeSettings):
                service, source_arn = (
                    "personalize.amazonaws.com",
                    f"arn:{stack.partition}:personalize:{stack.region}:{stack.account}:*",
                )
            elif isinstance(settings, BedrockSettings):
                service = "bedrock.amazonaws.com"
                source_arn = f"arn:{stack.partition}:bedrock:{stack.region}:{stack.account}:model-invocation-job/*"
            else:
                continue
            self.passed_to[name] = service
            if settings.role_arn:
                self.role_arns[name] = settings.role_arn
                continue
            role = iam.Role(
                self,
                f"{name}-role",
                description=f"Assumed by {service} for Batchline pipeline {name}",
                assumed_by=iam.ServicePrincipal(service).with_conditions(
                    {
                        "StringEquals": {"aws:SourceAccount": stack.account},
                        "ArnLike": {"aws:SourceArn": source_arn},
                    }
                ),
            )
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["s3:GetObject", "s3:PutObject"],
                    resources=[work.arn_for_objects(f"{name}/*")],
                )
            )
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["s3:ListBucket"],
                    resources=[work.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{name}/*"]}},
                )
            )
            if isinstance(settings, PersonalizeSettings) and grant_personalize_keys(role, settings):
                # The keys' policies must name this role too (the stack cannot edit a key it does not own).
                CfnOutput(
                    self,
                    f"{name}-role-arn",
                    value=role.role_arn,
                    description=f"Personalize role of pipeline {name}: name it in the key policies of its KMS keys",
                )
            if isinstance(settings, BedrockSettings):
                # A job invokes the model as this role: through an inference profile, on the profile and on the
                # foundation model in each Region the profile routes to.
                models, findings = bedrock_model_grant(stack, settings.model_id)
                role.add_to_policy(iam.PolicyStatement(actions=["bedrock:InvokeModel"], resources=models))
                for finding, reason in findings.items():
                    acknowledge(role, finding, reason)
            work_id = stack.resolve(stack.get_logical_id(work.node.default_child))  # type: ignore[arg-type]
            acknowledge(
                role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::<{work_id}.Arn>/{name}/*]",
                "Objects under this pipeline's own prefix of the work bucket, keyed by run at run time.",
            )
            self.role_arns[name] = self.created[name] = role.role_arn
            self.created_roles.append(role)


# "Giving Amazon Personalize permission to use your AWS KMS key"
# (https://docs.aws.amazon.com/personalize/latest/dg/granting-personalize-key-access.html): the role's IAM policy must
# allow these on a key a batch job names; kms:CreateGrant is needed in the key policy only (see README).
PERSONALIZE_KEY_ACTIONS = ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey", "kms:ListGrants"]


def grant_personalize_keys(role: iam.Role, settings: PersonalizeSettings) -> bool:
    """The KMS keys a pipeline's jobs name (input, output), on those key ARNs only; False when it names none. The
    keys are the user's: their key policies must also let this role and Personalize in, which the stack cannot
    write."""
    keys = sorted({key for key in (settings.input_kms_key, settings.output_kms_key) if key})
    if keys:
        role.add_to_policy(iam.PolicyStatement(actions=PERSONALIZE_KEY_ACTIONS, resources=keys))
    return bool(keys)
