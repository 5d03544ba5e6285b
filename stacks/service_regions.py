"""Services that exist in some Regions only: a pipeline of one is refused where it cannot run.

Amazon Machine Learning has endpoints in us-east-1 and eu-west-1 only (and is closed to new customers). A stack
whose Region is known at synth (an ``env`` with a Region) is checked then, with a message naming the pipelines.
An environment-agnostic stack (Batchline's default: ``cdk deploy`` picks the Region from the profile) does not
know its Region until deployment, so the template carries a CloudFormation rule instead: the deployment stops
before creating anything, with the same message, in any other Region.
"""

from __future__ import annotations

from aws_cdk import Aws, CfnRule, CfnRuleAssertion, Fn, Stack, Token
from batchline.config import AmazonMLSettings, Pipelines
from batchline.errors import ConfigError

AMAZON_ML_REGIONS = ("us-east-1", "eu-west-1")


def require_service_regions(stack: Stack, pipelines: Pipelines) -> None:
    """Refuse Amazon ML pipelines outside its Regions: at synth when the Region is known, else at deployment."""
    names = sorted(n for n, p in pipelines.pipelines.items() if isinstance(p.service, AmazonMLSettings))
    if not names:
        return
    message = (
        f"Amazon Machine Learning runs only in {' and '.join(AMAZON_ML_REGIONS)}; pipeline(s) {', '.join(names)} "
        "use it: deploy the stack to one of those Regions or remove them"
    )
    if not Token.is_unresolved(stack.region):
        if stack.region not in AMAZON_ML_REGIONS:
            raise ConfigError(f"{message} (the stack's Region is {stack.region})")
        return
    CfnRule(
        stack,
        "AmazonMLRegion",
        assertions=[
            CfnRuleAssertion(
                assert_=Fn.condition_contains(list(AMAZON_ML_REGIONS), Aws.REGION), assert_description=message
            )
        ],
    )
