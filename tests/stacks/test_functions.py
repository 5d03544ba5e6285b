"""Functions: arm64 Python 3.13 with tracing, one code asset and layer, the shared environment, own logs."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from aws_cdk.assertions import Template
from batchline.functions import CATALOGUE

from stacks import wheelhouse
from stacks.app_factory import build_app, cdk_json_context
from stacks.functions import LAYER_DIR, PipInstallForArm64, environment_size
from tests.stacks.conftest import as_list, function_statements, logical_id, resources

SHARED_VARIABLES = (
    "BATCHLINE_PIPELINES_FILE",
    "BATCHLINE_SERVICE_ROLES",
    "INBOX_BUCKET",
    "WORK_BUCKET",
    "RESULTS_BUCKET",
    "EVENT_BUS_NAME",
    "BATCHLINE_RUNTIME",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
)


def by_handler(template: Template) -> dict[str, dict[str, Any]]:
    return {f["Properties"]["Handler"]: f["Properties"] for f in resources(template, "AWS::Lambda::Function").values()}


def test_every_function_runs_python_313_on_arm64_with_active_tracing(template: Template) -> None:
    functions = resources(template, "AWS::Lambda::Function")
    assert len(functions) == len(CATALOGUE) == 12
    for function in functions.values():
        props = function["Properties"]
        assert props["Runtime"] == "python3.13" and props["Architectures"] == ["arm64"]
        assert props["TracingConfig"] == {"Mode": "Active"}


def test_each_function_has_its_handler_timeout_memory_and_scratch_space(template: Template) -> None:
    functions = by_handler(template)
    assert set(functions) == {spec.handler for spec in CATALOGUE}
    expected = {
        "handlers.start_run.handler": (30, 256, None),
        "handlers.prepare_input.handler": (900, 2048, 10240),
        "handlers.submit_job.handler": (900, 512, None),  # Vertex: streams staged input to Cloud Storage
        "handlers.poll_job.handler": (60, 256, None),
        "handlers.plan_collect.handler": (300, 512, None),
        "handlers.collect_unit.handler": (900, 2048, 10240),
        "handlers.assemble_output.handler": (900, 2048, 10240),
        # These merge rejected.csv (up to every row of an upload of maxInputBytes) into errors.csv inside S3
        # (s3io.concatenate_csv streams a multipart upload), so they keep the default /tmp.
        # They also read predictions.csv and errors.csv once for the summary: one vCPU and time for 100M rows.
        "handlers.finalize_run.handler": (900, 1769, None),
        "handlers.report_failure.handler": (300, 1769, None),
        "handlers.execution_ended.handler": (300, 512, None),
        "handlers.report_failed_invocation.handler": (60, 256, None),
    }
    for handler, (timeout, memory, scratch) in expected.items():
        props = functions[handler]
        assert (props["Timeout"], props["MemorySize"]) == (timeout, memory), handler
        assert props.get("EphemeralStorage", {}).get("Size") == scratch, handler


def test_every_function_gets_the_same_environment_and_only_start_run_the_state_machine(template: Template) -> None:
    for handler, props in by_handler(template).items():
        variables = props["Environment"]["Variables"]
        assert set(SHARED_VARIABLES) <= set(variables), handler
        assert variables["BATCHLINE_RUNTIME"] == "aws"
        # Logs and EMF metrics: the service and namespace the dashboard and alarms read (batchline.metrics).
        assert (variables["POWERTOOLS_SERVICE_NAME"], variables["POWERTOOLS_METRICS_NAMESPACE"]) == (
            "batchline",
            "Batchline",
        )
        assert variables["BATCHLINE_PIPELINES_FILE"] == "/opt/batchline-config/pipelines.json"
        machine = logical_id(template, "AWS::StepFunctions::StateMachine", "BatchPrediction")
        # ReportFailedInvocation looks up the execution an upload would have started (it never starts one).
        if handler in ("handlers.start_run.handler", "handlers.report_failed_invocation.handler"):
            assert variables["STATE_MACHINE_ARN"] == {"Ref": machine}
        else:
            assert "STATE_MACHINE_ARN" not in variables, handler


def test_functions_share_one_code_asset_and_an_arm64_dependency_layer(template: Template) -> None:
    functions = resources(template, "AWS::Lambda::Function").values()
    assert len({json.dumps(f["Properties"]["Code"]) for f in functions}) == 1
    layers = resources(template, "AWS::Lambda::LayerVersion")
    dependencies = layers[logical_id(template, "AWS::Lambda::LayerVersion", "Dependencies")]["Properties"]
    assert dependencies["CompatibleArchitectures"] == ["arm64"]
    assert dependencies["CompatibleRuntimes"] == ["python3.13"]
    engine = logical_id(template, "AWS::Lambda::LayerVersion", "CollectEngine")
    for function in functions:
        expected = set(layers) if {"Ref": engine} in function["Properties"]["Layers"] else set(layers) - {engine}
        assert {layer["Ref"] for layer in function["Properties"]["Layers"]} == expected


def test_only_the_collect_functions_carry_the_duckdb_layer(template: Template) -> None:
    engine = logical_id(template, "AWS::Lambda::LayerVersion", "CollectEngine")
    carriers = {
        handler for handler, props in by_handler(template).items() if {"Ref": engine} in props.get("Layers", [])
    }
    assert carriers == {"handlers.collect_unit.handler", "handlers.assemble_output.handler"}


def test_each_function_writes_only_to_its_own_log_group_kept_a_month(template: Template) -> None:
    groups = resources(template, "AWS::Logs::LogGroup")
    for name, function in resources(template, "AWS::Lambda::Function").items():
        group = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        assert groups[group]["Properties"]["RetentionInDays"] == 30
        short = name.removeprefix("Functions")[: -len("ABCDEF12")]  # "StartRun" from "FunctionsStartRun1A2B3C4D"
        logging = [s for s in function_statements(template, short) if as_list(s["Action"])[0].startswith("logs:")]
        assert logging == [
            {
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Effect": "Allow",
                "Resource": {"Fn::GetAtt": [group, "Arn"]},
            }
        ], name


def test_function_roles_use_no_managed_policies(template: Template) -> None:
    for name, role in resources(template, "AWS::IAM::Role").items():
        if name.startswith("Functions"):
            assert "ManagedPolicyArns" not in role["Properties"], name


def test_an_environment_over_lambdas_4_kb_fails_synth_with_the_reason() -> None:
    # 30 Bedrock pipelines without a roleArn: the stack would create 30 roles and list their ARNs for every function.
    context = cdk_json_context()
    context["batchline"] = {
        "pipelines": {
            f"gen-{n:02d}": {
                "keyColumn": "id",
                "service": {"provider": "bedrock", "modelId": "amazon.nova-lite-v1:0", "promptColumn": "q"},
            }
            for n in range(30)
        }
    }
    with pytest.raises(ValueError, match=r"over Lambda's 4 KB limit.*BATCHLINE_SERVICE_ROLES"):
        build_app(context, bundle=False)


def test_environment_size_counts_keys_values_and_deploy_time_values_at_their_longest() -> None:
    assert environment_size({"A": "bc"}) == 3
    assert environment_size({"A": "x-${Token[TOKEN.12]}"}) == 1 + 2 + 160
    assert environment_size({"ROLES": "${Token[TOKEN.7]}"}, {"ROLES": 1000}) == 5 + 1000


def test_layer_bundles_aarch64_cpython_313_wheels_with_this_python_and_no_docker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[list[str]] = []

    def run(command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", run)
    bundler = PipInstallForArm64(LAYER_DIR / "requirements.txt")
    assert bundler.try_bundle("/out") is True  # False would make CDK try Docker
    command = calls[0]
    assert command[1:4] == ["-m", "pip", "install"]
    assert command[command.index("-r") + 1] == str(LAYER_DIR / "requirements.txt")
    assert command[command.index("--target") + 1] == "/out/python"
    for flag, value in (
        ("--platform", "manylinux2014_aarch64"),
        ("--implementation", "cp"),
        ("--python-version", "3.13"),
    ):
        assert command[command.index(flag) + 1] == value
    assert "--only-binary=:all:" in command and "--no-compile" in command
    platforms = [command[i + 1] for i, flag in enumerate(command) if flag == "--platform"]
    assert platforms == ["manylinux2014_aarch64", "manylinux_2_28_aarch64"]  # Lambda 3.13: glibc 2.34
    # Offline: only the wheels `make setup` fetched, whatever the machine's pip configuration says.
    assert "--no-index" in command and "--isolated" in command
    assert command[command.index("--find-links") + 1] == str(wheelhouse.WHEELHOUSE)
