"""The function catalogue (batchline.functions) is the one list: the stack, the ASL and the grants follow it."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Template
from batchline.functions import CATALOGUE, FunctionSpec, placeholders

from stacks.orchestration import ASL_FILE, FUNCTION_PLACEHOLDERS, placeholders_in
from tests.stacks.conftest import as_list, function_statements, logical_id, resources

BUCKETS = {"inbox": "StorageInbox", "work": "StorageWork", "results": "StorageResults"}


def test_the_stack_builds_exactly_the_catalogues_functions(template: Template) -> None:
    functions = resources(template, "AWS::Lambda::Function")
    built = {name.removeprefix("Functions")[: -len("ABCDEF12")] for name in functions}
    assert built == {spec.name for spec in CATALOGUE}


def test_the_asl_file_invokes_the_functions_the_catalogue_gives_a_placeholder() -> None:
    assert placeholders() == FUNCTION_PLACEHOLDERS
    functions_in_asl = {p for p in placeholders_in(ASL_FILE.read_text()) if p.endswith("FunctionArn")}
    assert functions_in_asl == set(placeholders())


@pytest.mark.parametrize("spec", CATALOGUE, ids=lambda spec: spec.name)
def test_each_function_gets_the_bucket_objects_its_entry_declares_and_no_others(
    template: Template, spec: FunctionSpec
) -> None:
    statements = function_statements(template, spec.name)
    for bucket, part in BUCKETS.items():
        objects = json.dumps([{"Fn::GetAtt": [logical_id(template, "AWS::S3::Bucket", part), "Arn"]}, "/*"])
        on_all_objects = [s for s in statements if objects in json.dumps(s["Resource"])]
        actions = {action for s in on_all_objects for action in as_list(s["Action"])}
        assert ("s3:GetObject" in actions) == (bucket in spec.data.read), (bucket, actions)
        assert ("s3:PutObject" in actions) == (bucket in spec.data.write), (bucket, actions)
    rendered = json.dumps(statements)
    assert ("/*/state/job-*" in rendered) == spec.data.job_looks
    assert ("s3:DeleteObject" in rendered) == spec.data.discard_staged_parts
