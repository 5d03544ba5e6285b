"""What `cdk destroy` leaves: everything holding data by default; nothing in a sandbox (removeOnDestroy)."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Template

from stacks.app_factory import ConfigError, build_app, cdk_json_context
from tests.stacks.conftest import resources, synth_with_pipelines

KEPT = ("AWS::S3::Bucket", "AWS::Logs::LogGroup", "AWS::KMS::Key")


def _sandbox() -> Template:
    return synth_with_pipelines(
        cdk_json_context()["batchline"]["pipelines"], removeOnDestroy=True, customerManagedKey=True
    )


def test_by_default_buckets_log_groups_and_the_key_outlive_the_stack() -> None:
    template = synth_with_pipelines(cdk_json_context()["batchline"]["pipelines"], customerManagedKey=True)
    for kind in KEPT:
        for name, resource in resources(template, kind).items():
            assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain", name
    assert not resources(template, "Custom::S3AutoDeleteObjects")


def test_a_sandbox_empties_and_deletes_its_buckets_and_deletes_its_log_groups_and_key() -> None:
    template = _sandbox()
    buckets = resources(template, "AWS::S3::Bucket")
    for kind in KEPT:
        for name, resource in resources(template, kind).items():
            assert resource["DeletionPolicy"] == "Delete", name
    emptied = {
        r["Properties"]["BucketName"]["Ref"] for r in resources(template, "Custom::S3AutoDeleteObjects").values()
    }
    assert emptied == set(buckets)  # versioned buckets: CloudFormation deletes only empty ones
    [key] = resources(template, "AWS::KMS::Key").values()
    assert key["Properties"]["PendingWindowInDays"] == 7


def test_reserved_concurrency_is_set_per_function_by_name() -> None:
    context = cdk_json_context()
    context["batchline"] = {**context["batchline"], "reservedConcurrency": {"CollectUnit": 50, "PollJob": 5}}
    _, stack = build_app(context, bundle=False)
    reserved = {
        name.removeprefix("Functions")[: -len("ABCDEF12")]: f["Properties"].get("ReservedConcurrentExecutions")
        for name, f in resources(Template.from_stack(stack), "AWS::Lambda::Function").items()
    }
    assert {name: n for name, n in reserved.items() if n is not None} == {"CollectUnit": 50, "PollJob": 5}


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"Collect": 5}, r"field 'reservedConcurrency': no function named Collect"),
        ({"CollectUnit": 0}, r"field 'reservedConcurrency.CollectUnit': Input should be greater than or equal to 1"),
    ],
)
def test_reserved_concurrency_for_an_unknown_function_or_of_zero_is_refused(
    setting: dict[str, int], message: str
) -> None:
    context = cdk_json_context()
    context["batchline"] = {**context["batchline"], "reservedConcurrency": setting}
    with pytest.raises(ConfigError, match=message):
        build_app(context, bundle=False)
