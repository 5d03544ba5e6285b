"""The Lambda functions: one code asset (lambdas/), one dependency layer built without Docker."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import BundlingOptions, DockerImage, Duration, ILocalBundling, Size
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.nag import acknowledge

ROOT = Path(__file__).resolve().parent.parent
LAMBDAS_DIR = ROOT / "lambdas"
# The pipelines' JSON travels in a small layer of its own, mounted at /opt/<CONFIG_LAYER_DIR>/pipelines.json.
CONFIG_LAYER_DIR = "batchline-config"
LAYER_DIR = LAMBDAS_DIR / "layer"
# Lambda caps the environment of a function at 4 KB in all.
ENVIRONMENT_LIMIT = 4096


@jsii.implements(ILocalBundling)
class PipInstallForArm64:
    """Builds the layer on this machine: pip fetches manylinux aarch64 wheels for CPython 3.13."""

    def try_bundle(self, output_dir: str, *, image: Any = None, **_: Any) -> bool:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
                str(LAYER_DIR / "requirements.txt"),
                "--target",
                f"{output_dir}/python",
                "--platform",
                "manylinux2014_aarch64",
                "--implementation",
                "cp",
                "--python-version",
                "3.13",
                "--only-binary=:all:",
                "--no-compile",
            ],
            check=True,
        )
        return True


def config_layer_dir(pipelines_json: str) -> Path:
    """Writes the validated pipelines JSON where the config layer's asset is read from (content-addressed)."""
    digest = hashlib.sha256(pipelines_json.encode()).hexdigest()[:16]
    directory = ROOT / ".build" / f"config-{digest}"
    target = directory / CONFIG_LAYER_DIR / "pipelines.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(pipelines_json, encoding="utf-8")
    return directory


# name -> (handler, timeout seconds, memory MB, needs large /tmp)
SPECS = {
    "StartRun": ("handlers.start_run.handler", 30, 256, False),
    "PrepareInput": ("handlers.prepare_input.handler", 900, 2048, True),
    # Vertex pipelines stream the staged input from S3 to Cloud Storage in this step.
    "SubmitJob": ("handlers.submit_job.handler", 900, 512, False),
    "PollJob": ("handlers.poll_job.handler", 60, 256, False),
    "CollectOutput": ("handlers.collect_output.handler", 900, 2048, True),
    "FinalizeRun": ("handlers.finalize_run.handler", 300, 1024, True),
    "ReportFailure": ("handlers.report_failure.handler", 120, 512, False),
    # Executions stopped by hand or timed out: stops their jobs and publishes the failure event.
    "ExecutionEnded": ("handlers.execution_ended.handler", 300, 512, False),
}


class Functions(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: dict[str, str],
        environment_size: int,
        pipelines_json: str,
        key: kms.IKey | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        if environment_size > ENVIRONMENT_LIMIT - 512:
            raise ValueError(
                f"the functions' environment would be {environment_size} bytes: too large for Lambda's 4 KB limit"
            )
        code = lambda_.Code.from_asset(str(LAMBDAS_DIR), exclude=["layer", "**/__pycache__", "**/*.pyc"])
        layer = lambda_.LayerVersion(
            self,
            "Dependencies",
            description="Powertools and pydantic for the Batchline functions",
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_13],
            compatible_architectures=[lambda_.Architecture.ARM_64],
            code=lambda_.Code.from_asset(
                str(LAYER_DIR),
                bundling=BundlingOptions(
                    image=DockerImage.from_registry("public.ecr.aws/sam/build-python3.13"),
                    local=PipInstallForArm64(),
                    command=["bash", "-c", "pip install -r requirements.txt -t /asset-output/python"],
                ),
            ),
        )
        config = lambda_.LayerVersion(
            self,
            "PipelinesConfig",
            description="Batchline pipelines configuration (from cdk.json)",
            code=lambda_.Code.from_asset(str(config_layer_dir(pipelines_json))),
        )
        self.by_name: dict[str, lambda_.Function] = {}
        for name, (handler, timeout, memory, large_tmp) in SPECS.items():
            function = lambda_.Function(
                self,
                name,
                runtime=lambda_.Runtime.PYTHON_3_13,
                architecture=lambda_.Architecture.ARM_64,
                handler=handler,
                code=code,
                layers=[layer, config],
                timeout=Duration.seconds(timeout),
                memory_size=memory,
                ephemeral_storage_size=Size.gibibytes(10) if large_tmp else None,
                tracing=lambda_.Tracing.ACTIVE,
                environment=environment,
                environment_encryption=key,
                log_group=logs.LogGroup(
                    self, f"{name}Logs", retention=logs.RetentionDays.ONE_MONTH, encryption_key=key
                ),
            )
            acknowledge(
                function,
                "AwsSolutions::AwsSolutions-L1",
                "Python 3.13 on arm64 is the runtime Batchline is built and tested for; upgrades are deliberate.",
            )
            self.by_name[name] = function

    def __getitem__(self, name: str) -> lambda_.Function:
        return self.by_name[name]
