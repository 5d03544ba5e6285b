"""The stack's options: batchline.config.StackSettings (what the functions share with the stack) plus the options
only the deployment reads (teardown, reserved concurrency). One object, read from context ``batchline`` once and
validated at synth; no CDK import, so the configuration reference documents it like the other models.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from batchline.config import StackSettings, parse_stack_settings
from batchline.functions import FUNCTION_NAMES
from pydantic import Field, field_validator


class DeploymentSettings(StackSettings):
    """The stack's own options and its pipelines (each validated by parse_pipelines)."""

    remove_on_destroy: bool = Field(
        default=False,
        description="For sandboxes: `cdk destroy` empties and deletes the buckets (every object version), deletes "
        "the log groups and schedules the KMS key's deletion (7 days). Off: all of them stay behind (retained).",
    )
    reserved_concurrency: dict[str, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict,
        description="Function name -> concurrent executions reserved for it (e.g. CollectUnit: 50): the Distributed "
        "Maps' children then never wait for the account's other functions, and never take more than this. "
        "Unset: the account's unreserved pool, with the state machine retrying throttled calls for about an hour.",
    )

    @field_validator("reserved_concurrency")
    @classmethod
    def _known_functions(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(FUNCTION_NAMES))
        if unknown:
            raise ValueError(f"no function named {', '.join(unknown)} (the functions: {', '.join(FUNCTION_NAMES)})")
        return value


def parse_deployment_settings(raw: Mapping[str, Any]) -> DeploymentSettings:
    """Validate context ``batchline`` apart from its pipelines; errors name the field (``reservedConcurrency``)."""
    return parse_stack_settings(raw, DeploymentSettings)
