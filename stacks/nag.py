"""cdk-nag acknowledgments: every one names its rule and says why, next to the construct it concerns."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct

# Where aws-cdk-lib records acknowledgments (Validations.ACKNOWLEDGED_RULES_METADATA_KEY).
_METADATA_TYPE = "aws:cdk:acknowledged-rules"


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge ``rule`` on ``construct`` and its children, with a reason.

    A second acknowledgment of the same rule on the same construct would silently replace the first
    reason (only the last one is reported), so the reasons are joined: two grants that each need, say,
    ``Resource::*`` both stay explained in the validation report.
    """
    earlier = [
        str(entry.data[rule])
        for entry in construct.node.metadata
        if entry.type == _METADATA_TYPE and isinstance(entry.data, dict) and rule in entry.data
    ]
    if earlier and reason in earlier[-1]:
        return
    combined = f"{earlier[-1]} {reason}" if earlier else reason
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=combined))
