"""The Lambda functions of the catalogue (batchline.functions): one code asset (lambdas/), dependency layers
built without Docker.

Each function has its own role that may write only to its own log group (no AWSLambdaBasicExecutionRole,
whose logs grant covers every log group), and the environment every function shares. Each other construct
grants the functions what their catalogue entries declare for its concern (storage: buckets; provider
permissions: the services; encryption: the key), and the constructs that own a function's trigger grant it
what that trigger needs (notifications).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import BundlingOptions, DockerImage, Duration, ILocalBundling, RemovalPolicy, Size
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from batchline.functions import CATALOGUE, DEFAULT_EPHEMERAL_MB
from batchline.metrics import NAMESPACE, SERVICE
from constructs import Construct

from stacks import wheelhouse
from stacks.nag import acknowledge

ROOT = Path(__file__).resolve().parent.parent
LAMBDAS_DIR = ROOT / "lambdas"
# The pipelines' JSON travels in a small layer of its own, mounted at /opt/<CONFIG_LAYER_DIR>/pipelines.json
# (Lambda environments cap at 4 KB, which a few pipelines would exceed).
CONFIG_LAYER_DIR = "batchline-config"
LAYER_DIR = LAMBDAS_DIR / "layer"
# DuckDB for Collect (a ~22 MB wheel): only the functions whose catalogue entry has engine_layer get it.
COLLECT_LAYER_DIR = LAMBDAS_DIR / "collect_layer"
# Lambda caps the environment of a function at 4 KB: every key plus every value.
ENVIRONMENT_LIMIT = 4096
# A value known only at deploy time (bucket or bus name, ARN) counts as this many bytes: longer than any
# of ours (a state machine ARN with an 80-character name is about 140).
TOKEN_BYTES = 160
# How an unresolved token looks inside a string before deployment.
_TOKEN = re.compile(r"\$\{Token\[[^\]]+\]\}")
# Powertools' settings, the same in every function: the service name is the "service" key of every log line
# and metric dimension; metrics go to one namespace (batchline.metrics names what is in it).
POWERTOOLS_ENVIRONMENT = {
    "POWERTOOLS_SERVICE_NAME": SERVICE,
    "POWERTOOLS_METRICS_NAMESPACE": NAMESPACE,
    "POWERTOOLS_LOG_LEVEL": "INFO",
}


def environment_size(environment: Mapping[str, str], estimates: Mapping[str, int] | None = None) -> int:
    """An upper bound of the bytes Lambda counts; ``estimates`` overrides the size of deploy-time values."""
    total = 0
    for key, value in environment.items():
        if estimates and key in estimates:
            size = estimates[key]
        else:
            tokens = len(_TOKEN.findall(value))
            size = len(_TOKEN.sub("", value).encode()) + TOKEN_BYTES * tokens
        total += len(key.encode()) + size
    return total


@jsii.implements(ILocalBundling)
class PipInstallForArm64:
    """Builds a layer on this machine from the wheels `make setup` fetched (stacks/wheelhouse.py): manylinux
    aarch64 wheels for CPython 3.13, installed with no index, so synth needs no network."""

    def __init__(self, requirements: Path) -> None:
        self._requirements = requirements

    def try_bundle(self, output_dir: str, *, image: Any = None, **_: Any) -> bool:
        wheelhouse.install(self._requirements, Path(output_dir) / "python")
        return True


def config_layer_dir(pipelines_json: str) -> Path:
    """Writes the validated pipelines JSON where the config layer's asset is read from (content-addressed)."""
    digest = hashlib.sha256(pipelines_json.encode()).hexdigest()[:16]
    directory = ROOT / ".build" / f"config-{digest}"
    target = directory / CONFIG_LAYER_DIR / "pipelines.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(pipelines_json, encoding="utf-8")
    return directory


def _dependency_layer(scope: Construct, construct_id: str, directory: Path, description: str) -> lambda_.LayerVersion:
    return lambda_.LayerVersion(
        scope,
        construct_id,
        description=description,
        compatible_runtimes=[lambda_.Runtime.PYTHON_3_13],
        compatible_architectures=[lambda_.Architecture.ARM_64],
        code=lambda_.Code.from_asset(
            str(directory),
            bundling=BundlingOptions(
                # Only used if local bundling declined; PipInstallForArm64 never does (it raises instead).
                image=DockerImage.from_registry("public.ecr.aws/sam/build-python3.13"),
                local=PipInstallForArm64(directory / "requirements.txt"),
                command=["bash", "-c", "pip install -r requirements.txt -t /asset-output/python"],
            ),
        ),
    )


class Functions(Construct):
    """The catalogue's functions (batchline.functions), by name (``functions["StartRun"]``), sharing one code
    asset and two layers."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: dict[str, str],
        pipelines_json: str,
        size_estimates: Mapping[str, int] | None = None,
        key: kms.IKey | None = None,
        reserved_concurrency: Mapping[str, int] | None = None,
        remove_on_destroy: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        reserved = dict(reserved_concurrency or {})
        self._environment = {**POWERTOOLS_ENVIRONMENT, **environment}
        self._estimates = dict(size_estimates or {})
        self._check_environment("every function", self._environment)
        code = lambda_.Code.from_asset(
            str(LAMBDAS_DIR), exclude=["layer", "collect_layer", "**/__pycache__", "**/*.pyc"]
        )
        layer = _dependency_layer(
            self, "Dependencies", LAYER_DIR, "Powertools and pydantic for the Batchline functions"
        )
        engine = _dependency_layer(self, "CollectEngine", COLLECT_LAYER_DIR, "DuckDB for Batchline's Collect functions")
        config = lambda_.LayerVersion(
            self,
            "PipelinesConfig",
            description="Batchline pipelines configuration (from cdk.json)",
            code=lambda_.Code.from_asset(str(config_layer_dir(pipelines_json))),
        )
        self.by_name: dict[str, lambda_.Function] = {}
        self.log_groups: dict[str, logs.LogGroup] = {}
        for spec in CATALOGUE:
            name = spec.name
            log_group = logs.LogGroup(
                self,
                f"{name}Logs",
                retention=logs.RetentionDays.ONE_MONTH,
                encryption_key=key,
                removal_policy=RemovalPolicy.DESTROY if remove_on_destroy else RemovalPolicy.RETAIN,
            )
            role = iam.Role(
                self,
                f"{name}Role",
                description=f"Batchline {name} function",
                assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            )
            log_group.grant_write(role)  # CreateLogStream and PutLogEvents on this function's log group only
            function = lambda_.Function(
                self,
                name,
                runtime=lambda_.Runtime.PYTHON_3_13,
                architecture=lambda_.Architecture.ARM_64,
                handler=spec.handler,
                code=code,
                layers=[layer, engine, config] if spec.engine_layer else [layer, config],
                timeout=Duration.seconds(spec.timeout_seconds),
                memory_size=spec.memory_mb,
                ephemeral_storage_size=(
                    Size.mebibytes(spec.ephemeral_storage_mb)
                    if spec.ephemeral_storage_mb != DEFAULT_EPHEMERAL_MB
                    else None
                ),
                tracing=lambda_.Tracing.ACTIVE,
                # Reserved for this function alone (context reservedConcurrency), else the account's pool.
                reserved_concurrent_executions=reserved.get(name),
                environment=self._environment,
                environment_encryption=key,
                log_group=log_group,
                role=role,
            )
            acknowledge(
                function,
                "AwsSolutions::AwsSolutions-L1",
                "Python 3.13 on arm64 is the runtime Batchline is built and tested for; upgrades are deliberate.",
            )
            acknowledge(
                role,
                "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                "Active tracing: xray:PutTraceSegments and xray:PutTelemetryRecords have no resource-level "
                "permissions.",
            )
            self.by_name[name] = function
            self.log_groups[name] = log_group

    def __getitem__(self, name: str) -> lambda_.Function:
        return self.by_name[name]

    def add_environment(self, name: str, key: str, value: str, *, estimate: int | None = None) -> None:
        """One function's own variable (set beside its grant), still within Lambda's 4 KB."""
        variables = {**self._environment, key: value}
        estimates = {**self._estimates, **({key: estimate} if estimate is not None else {})}
        self._check_environment(name, variables, estimates)
        self.by_name[name].add_environment(key, value)

    def _check_environment(
        self, whose: str, variables: Mapping[str, str], estimates: Mapping[str, int] | None = None
    ) -> None:
        size = environment_size(variables, self._estimates if estimates is None else estimates)
        if size > ENVIRONMENT_LIMIT:
            raise ValueError(
                f"the environment of {whose} could reach {size} bytes once deployed, over Lambda's 4 KB limit "
                f"({ENVIRONMENT_LIMIT} bytes for all keys and values). Largest values: "
                + ", ".join(sorted(variables, key=lambda k: -environment_size({k: variables[k]}, estimates))[:3])
                + ". If BATCHLINE_SERVICE_ROLES is among them, name existing roles (roleArn) for some "
                "Personalize or Bedrock pipelines so the stack creates fewer."
            )
