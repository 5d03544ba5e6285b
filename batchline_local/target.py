"""Where the CLI acts: a deployed stack (names from its CloudFormation outputs) or the local runtime.

Both resolve to one ``Target``: the buckets, the state machine and the pipelines, plus a boto3 session. Every
command then uses plain boto3 clients the same way, whichever it is.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from batchline.layout import RunLayout
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    TokenRetrievalError,
)

if TYPE_CHECKING:
    from batchline_local.runtime import LocalRuntime

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"
DEFAULT_STACK_NAME = "Batchline"
# CfnOutput name -> Target field (stacks/batchline_stack.py writes these).
REQUIRED_OUTPUTS = {
    "InboxBucketName": "inbox_bucket",
    "WorkBucketName": "work_bucket",
    "ResultsBucketName": "results_bucket",
    "StateMachineArn": "state_machine_arn",
}
PIPELINES_OUTPUT = "PipelineNames"
# Error codes with which AWS refuses credentials it was given (as opposed to finding none).
REFUSED_CREDENTIALS = {
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "AuthFailure",
}
_RUN_ID = re.compile(r"^[a-z0-9-]+-[0-9a-f]{32}$")
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 6}, connect_timeout=10, read_timeout=60)


class TargetError(Exception):
    """Something the user has to fix (credentials, stack, pipeline, run): the message names it and the fix."""


@dataclass(frozen=True)
class Target:
    """The names every command needs, and the session that reaches them."""

    label: str  # for messages: "stack Batchline (eu-west-1)" or "the local runtime"
    inbox_bucket: str
    work_bucket: str
    results_bucket: str
    state_machine_arn: str
    pipelines: tuple[str, ...] | None  # None: the stack does not say (deployed before the PipelineNames output)
    session: boto3.session.Session
    endpoint_url: str | None = None
    poll_seconds: float = 5.0
    # Deployed, S3 -> EventBridge -> StartRun starts the run; the local runtime has no such route (moto),
    # so its target delivers the Object Created event itself.
    on_upload: Callable[[dict[str, Any]], None] | None = None
    # Deployed, `cancel` calls StopExecution and the stack's rule on the status change runs ExecutionEnded; the
    # local runtime has no such rule, so its target stops a run by hand: StopExecution, then ExecutionEnded's
    # answer (what it stopped and reported).
    stop_by_hand: Callable[[str], dict[str, Any]] | None = None
    _clients: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def client(self, service: str) -> Any:
        """One client per service for the command's life: the only place the commands get clients."""
        if service not in self._clients:
            config = _CONFIG
            if self.endpoint_url and service == "s3":
                config = _CONFIG.merge(Config(s3={"addressing_style": "path"}))
            self._clients[service] = self.session.client(service, endpoint_url=self.endpoint_url, config=config)
        return self._clients[service]

    def check_pipeline(self, name: str) -> None:
        if self.pipelines is not None and name not in self.pipelines:
            known = ", ".join(self.pipelines) or "none"
            raise TargetError(
                f"no pipeline named {name!r} in {self.label} (configured: {known}); "
                "add it to cdk.json and deploy, or pick one of those"
            )

    def execution_arn(self, run_id: str) -> str:
        return self.state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{run_id}"

    def layout(self, pipeline: str, run_id: str) -> RunLayout:
        return RunLayout(pipeline, run_id, self.work_bucket, self.results_bucket)


def run_id_of(text: str) -> str:
    """A run ID as the user typed it, or the execution ARN it names; anything else is refused."""
    run_id = text.rsplit(":", 1)[-1] if text.startswith("arn:") else text
    if not _RUN_ID.match(run_id):
        raise TargetError(
            f"{text!r} is not a run ID (they look like <pipeline>-<32 hex digits>); list runs with `batchline runs`"
        )
    return run_id


def pipeline_of(run_id: str) -> str:
    """Run IDs are ``<pipeline>-<digest>`` (batchline.naming.run_id_for); pipeline names fit whole."""
    return run_id.rsplit("-", 1)[0]


def default_stack_name(cdk_json: Path = CDK_JSON) -> str:
    """cdk.json's ``batchline.stackName``: the stack `npx cdk deploy` made from this checkout."""
    try:
        context = json.loads(cdk_json.read_text())["context"]
    except (OSError, ValueError, KeyError):
        return DEFAULT_STACK_NAME
    return str((context.get("batchline") or {}).get("stackName") or DEFAULT_STACK_NAME)


def aws_session(profile: str | None, region: str | None) -> boto3.session.Session:
    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
        if not session.region_name and os.environ.get("AWS_REGION"):
            # boto3 reads AWS_DEFAULT_REGION only; the AWS CLI and the Lambda runtime set AWS_REGION too.
            session = boto3.session.Session(profile_name=profile, region_name=os.environ["AWS_REGION"])
    except ProfileNotFound as exc:
        raise TargetError(f"{exc}; check `aws configure list-profiles` or drop --profile") from exc
    if not session.region_name:
        raise TargetError("no AWS region set; pass --region REGION, set AWS_REGION, or give the profile a region")
    return session


def stack_target(stack_name: str, session: boto3.session.Session, endpoint_url: str | None = None) -> Target:
    """The deployed stack, found by name; its CloudFormation outputs name everything the CLI touches."""
    label = f"stack {stack_name} ({session.region_name})"
    cloudformation = session.client("cloudformation", endpoint_url=endpoint_url, config=_CONFIG)
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        # DescribeStacks answers a missing stack with the generic ValidationError code (no dedicated one):
        # https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeStacks.html
        if exc.response["Error"]["Code"] == "ValidationError":
            raise TargetError(
                f"no stack named {stack_name!r} in {session.region_name}; deploy it with `npx cdk deploy`, "
                "or pass --stack NAME / --region REGION"
            ) from exc
        raise
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs") or []}
    missing = [name for name in REQUIRED_OUTPUTS if name not in outputs]
    if missing:
        raise TargetError(
            f"{label} is not a Batchline stack, or not fully deployed (no output {', '.join(missing)}); "
            "pass --stack NAME of a Batchline stack"
        )
    names = outputs.get(PIPELINES_OUTPUT)
    return Target(
        label=label,
        **{field: outputs[output] for output, field in REQUIRED_OUTPUTS.items()},
        pipelines=tuple(name for name in names.split(",") if name) if names is not None else None,
        session=session,
        endpoint_url=endpoint_url,
        poll_seconds=1.0 if endpoint_url else 5.0,  # an emulator's calls cost nothing
    )


def local_target(runtime: LocalRuntime) -> Target:
    """The in-process local runtime: its fixed names, its pipelines, and the S3 event it must deliver itself."""
    from batchline_local.runtime import BUCKETS

    def deliver(obj: dict[str, Any]) -> None:
        runtime.deliver(runtime.object_created_event(obj))

    return Target(
        label="the local runtime",
        inbox_bucket=BUCKETS["inbox"],
        work_bucket=BUCKETS["work"],
        results_bucket=BUCKETS["results"],
        state_machine_arn=runtime.state_machine_arn,
        pipelines=tuple(sorted(runtime.pipelines.pipelines)),
        session=runtime.session,
        poll_seconds=0.05,
        on_upload=deliver,
        stop_by_hand=runtime.stop_by_hand,
    )


def explain(exc: Exception) -> TargetError | None:
    """The one-line cause and fix for the AWS errors a user meets first; None for anything else."""
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return TargetError(
            "no AWS credentials found; run `aws configure` or `aws sso login`, pass --profile NAME, "
            "or use --local for the local runtime"
        )
    if isinstance(exc, TokenRetrievalError):
        return TargetError(f"the AWS SSO session has expired ({exc}); run `aws sso login` and try again")
    if isinstance(exc, NoRegionError):
        return TargetError("no AWS region set; pass --region REGION, set AWS_REGION, or give the profile a region")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in REFUSED_CREDENTIALS:
            return TargetError(f"AWS refused the credentials ({code}); refresh them or pass another --profile")
        if code in ("AccessDenied", "AccessDeniedException"):
            operation = getattr(exc, "operation_name", "the call")
            return TargetError(
                f"access denied to {operation} ({exc.response['Error'].get('Message', '')}); "
                "the CLI's identity needs the permissions listed in the README's CLI section"
            )
    return None
