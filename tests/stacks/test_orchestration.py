"""The state machine runs the one ASL file, logs and traces everything, and may call exactly what it names."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from aws_cdk.assertions import Template
from batchline.functions import CATALOGUE

from stacks.orchestration import ASL_FILE, FUNCTION_PLACEHOLDERS, SUBSTITUTION_KEYS, placeholders_in
from tests.stacks.conftest import as_list, logical_id, policy_statements, resources


def machine(template: Template) -> dict[str, Any]:
    return next(iter(resources(template, "AWS::StepFunctions::StateMachine").values()))["Properties"]


def test_every_placeholder_in_the_asl_file_is_substituted_and_nothing_else(template: Template) -> None:
    assert placeholders_in(ASL_FILE.read_text()) == SUBSTITUTION_KEYS
    assert set(machine(template)["DefinitionSubstitutions"]) == SUBSTITUTION_KEYS


def test_placeholders_in_finds_each_name_once() -> None:
    assert placeholders_in('{"A": "${One}", "B": "${Two}:${One}", "C": "$.plain"}') == {"One", "Two"}


def test_state_machine_is_standard_logs_all_with_execution_data_and_traces(template: Template) -> None:
    props = machine(template)
    assert props["StateMachineType"] == "STANDARD"
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    assert props["LoggingConfiguration"]["IncludeExecutionData"] is True
    assert props["TracingConfiguration"] == {"Enabled": True}
    group = props["LoggingConfiguration"]["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]
    log_group = resources(template, "AWS::Logs::LogGroup")[group["Fn::GetAtt"][0]]["Properties"]
    assert log_group["RetentionInDays"] > 0
    # Vended logs go to log groups under /aws/vendedlogs/, which CloudWatch Logs' resource policy covers at once.
    assert log_group["LogGroupName"] == f"/aws/vendedlogs/states/{props['StateMachineName']}"


def test_function_placeholders_are_filled_with_the_functions_arns(template: Template) -> None:
    substitutions = machine(template)["DefinitionSubstitutions"]
    for placeholder, function in FUNCTION_PLACEHOLDERS.items():
        arn = substitutions[placeholder]["Fn::GetAtt"]
        assert arn[0].startswith(f"Functions{function}") and arn[1] == "Arn"


def test_state_machine_may_invoke_exactly_its_functions_publish_events_and_keep_refused_ones(
    template: Template,
) -> None:
    statements = policy_statements(template, "OrchestrationBatchPredictionRole")
    invoke = [s for s in statements if "lambda:InvokeFunction" in as_list(s["Action"])]
    assert len(invoke) == 1 and as_list(invoke[0]["Action"]) == ["lambda:InvokeFunction"]
    invoked = {resource["Fn::GetAtt"][0] for resource in invoke[0]["Resource"]}
    assert invoked == {
        logical_id(template, "AWS::Lambda::Function", f"Functions{f}") for f in FUNCTION_PLACEHOLDERS.values()
    }
    bus = logical_id(template, "AWS::Events::EventBus", "Events")
    puts = [s for s in statements if "events:PutEvents" in as_list(s["Action"])]
    assert [s["Resource"] for s in puts] == [{"Fn::GetAtt": [bus, "Arn"]}]
    queue = logical_id(template, "AWS::SQS::Queue", "UndeliveredEvents")
    sends = [s for s in statements if "sqs:SendMessage" in as_list(s["Action"])]
    assert [s["Resource"] for s in sends] == [{"Fn::GetAtt": [queue, "Arn"]}]


def test_distributed_maps_may_start_and_stop_only_their_own_children_read_their_plans_and_write_results(
    template: Template,
) -> None:
    name = machine(template)["StateMachineName"]
    statements = policy_statements(template, "OrchestrationBatchPredictionRole")
    starts = [s for s in statements if "states:StartExecution" in as_list(s["Action"])]
    assert len(starts) == 1 and name in str(starts[0]["Resource"]) and ":stateMachine:" in str(starts[0]["Resource"])
    children = [s for s in statements if "states:StopExecution" in as_list(s["Action"])]
    assert len(children) == 1 and f"execution:{name}/*" in str(children[0]["Resource"])
    reads = [s for s in statements if as_list(s["Action"]) == ["s3:GetObject"]]
    assert len(reads) == 1
    suffixes = sorted(str(resource["Fn::Join"][1][1]) for resource in as_list(reads[0]["Resource"]))
    assert suffixes == [
        "/*/collect/units.json",
        "/*/prepare/redo.json",
        "/*/prepare/shards.json",
        "/*/state/jobs.json",
    ]
    # ResultWriter: the children's results in S3, under map-runs/ only
    writes = [s for s in statements if "s3:PutObject" in as_list(s["Action"])]
    assert len(writes) == 1 and [str(r["Fn::Join"][1][1]) for r in as_list(writes[0]["Resource"])] == ["/map-runs/*"]


def test_the_asl_collects_through_a_distributed_map_reading_its_plan_from_s3() -> None:
    import json

    states = json.loads(ASL_FILE.read_text())["States"]
    collect = states["CollectUnits"]
    assert collect["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert collect["ItemReader"]["Resource"] == "arn:aws:states:::s3:getObject"
    assert collect["ResultPath"] is None  # children's summaries go to S3, not into the state
    assert [states["PlanCollect"]["Next"], collect["Next"], states["AssembleOutput"]["Next"]] == [
        "CollectUnits",
        "AssembleOutput",
        "FinalizeRun",
    ]


def test_a_large_upload_is_prepared_through_a_distributed_map_that_loops_back_through_one_choice() -> None:
    import json

    states = json.loads(ASL_FILE.read_text())["States"]
    choice, shards, merge = states["IsPrepareFannedOut"], states["PrepareShards"], states["MergeShards"]
    assert states["PrepareInput"]["Next"] == "IsPrepareFannedOut"
    assert choice["Choices"] == [{"Variable": "$.prepared.fanOut", "IsPresent": True, "Next": "PrepareShards"}]
    assert choice["Default"] == "RunJobs"
    assert shards["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert shards["ItemReader"]["Parameters"] == {
        "Bucket.$": "$.prepared.fanOut.plan.bucket",
        "Key.$": "$.prepared.fanOut.plan.key",
    }
    assert shards["ItemSelector"]["step"] == "shard" and shards["ResultPath"] is None
    child = shards["ItemProcessor"]["States"]["PrepareShard"]
    # One function serves the three Prepare states: the same grants, the same 15-minute timeout.
    assert child["Resource"] == merge["Resource"] == states["PrepareInput"]["Resource"]
    assert merge["Parameters"]["step"] == "merge" and merge["ResultPath"] == "$.prepared"
    assert [shards["Next"], merge["Next"]] == ["MergeShards", "IsPrepareFannedOut"]
    assert shards["Catch"][0]["Next"] == merge["Catch"][0]["Next"] == "ReportFailure"


def _task_states(states: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for state in states.values():
        if state["Type"] == "Task":
            yield state
        if "ItemProcessor" in state:
            yield from _task_states(state["ItemProcessor"]["States"])
        for branch in state.get("Branches", []):
            yield from _task_states(branch["States"])


def test_a_function_that_may_run_15_minutes_retries_a_timeout_once_not_six_times() -> None:
    # An attempt that timed out cost the function's whole timeout; six more would cost an hour and a half.
    definition = json.loads(ASL_FILE.read_text())
    long_running = {spec.name for spec in CATALOGUE if spec.timeout_seconds >= 900}
    checked = set()
    for state in _task_states(definition["States"]):
        placeholder = state["Resource"].removeprefix("${").removesuffix("}")
        function = FUNCTION_PLACEHOLDERS.get(placeholder)
        timeouts = [rule for rule in state.get("Retry", []) if "Sandbox.Timedout" in rule["ErrorEquals"]]
        if function in long_running:
            assert [rule["ErrorEquals"] for rule in timeouts] == [["Sandbox.Timedout"]], function
            assert timeouts[0]["MaxAttempts"] == 1, function
            checked.add(function)
    assert checked == long_running & set(FUNCTION_PLACEHOLDERS.values())
    assert {"PrepareInput", "SubmitJob", "CollectUnit", "AssembleOutput"} <= checked


def _backoff_seconds(rule: dict[str, Any]) -> float:
    """The longest total wait of a retrier: every attempt's interval, capped at MaxDelaySeconds."""
    interval, rate = rule.get("IntervalSeconds", 1), rule.get("BackoffRate", 2.0)
    cap = rule.get("MaxDelaySeconds", float("inf"))
    return sum(min(interval * rate**attempt, cap) for attempt in range(rule.get("MaxAttempts", 3)))


def test_every_function_call_rides_out_lambda_throttling_for_longer_than_a_15_minute_function_runs() -> None:
    # A Distributed Map fails when one child fails (ToleratedFailurePercentage 0): a child throttled by a low
    # account concurrency must wait for the functions holding it, and CollectUnit may hold it for 15 minutes.
    throttling = {
        "Lambda.TooManyRequestsException",
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
    }
    calls = [
        s
        for s in _task_states(json.loads(ASL_FILE.read_text())["States"])
        if s["Resource"] != s["Resource"].lstrip("$")
    ]
    assert len(calls) >= 10
    for state in calls:
        for error in throttling:
            rule = next(r for r in state["Retry"] if error in r["ErrorEquals"] or "States.ALL" in r["ErrorEquals"])
            assert rule["JitterStrategy"] == "FULL", state["Resource"]  # children throttled together spread out
            # Full jitter waits half of it on average: still more than 15 minutes.
            assert _backoff_seconds(rule) / 2 > 15 * 60, (state["Resource"], error, _backoff_seconds(rule))
