"""The event contract: a draft-4 JSON Schema (the registry's dialect) that still says what version 1 promised."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from batchline.events import SCHEMA_FILE, registry_schema
from jsonschema import Draft4Validator, FormatChecker, ValidationError

# Keywords added after draft 4: a draft-4 validator (the registry's, a subscriber's) would silently ignore them.
LATER_KEYWORDS = {"const", "if", "then", "else", "$id", "$defs", "contains", "propertyNames", "dependentRequired"}


def schema() -> dict[str, Any]:
    return dict(json.loads(SCHEMA_FILE.read_text()))


def keywords(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            if key != "properties":
                yield from keywords(value)
            else:
                for sub in value.values():
                    yield from keywords(sub)
    elif isinstance(node, list):
        for item in node:
            yield from keywords(item)


def succeeded() -> dict[str, Any]:
    return {
        "schemaVersion": "1",
        "status": "SUCCEEDED",
        "runId": "churn-3f2a",
        "pipeline": "churn",
        "provider": "sagemaker",
        "runtime": "aws",
        "input": {"bucket": "inbox", "key": "churn/a.csv", "versionId": "v1", "size": 10, "etag": "e"},
        "jobs": [{"jobId": "bl-churn-0", "status": "SUCCEEDED", "rawStatus": "Completed", "pollCount": 3}],
        "counts": {"input": 2, "sent": 2, "predicted": 2, "failed": 0, "rejected": 0},
        "outputs": {"predictions": "s3://results/p.csv", "errors": None, "manifest": "s3://results/m.json"},
        "timings": {"startedAt": "2026-11-25T10:00:00Z", "finishedAt": "2026-11-25T10:10:00Z", "durationSeconds": 600},
        "error": None,
    }


def failed() -> dict[str, Any]:
    return {
        **succeeded(),
        "status": "FAILED",
        "jobs": [],
        "outputs": {"predictions": None, "errors": None, "manifest": "s3://results/m.json"},
        "error": {"error": "InputRejected", "cause": "s3://inbox/churn/a.csv: header only"},
    }


def validator() -> Draft4Validator:
    return Draft4Validator(schema(), format_checker=FormatChecker())


def test_the_schema_file_is_draft_4_and_uses_no_later_keyword() -> None:
    document = schema()
    assert document["$schema"] == "http://json-schema.org/draft-04/schema#"
    Draft4Validator.check_schema(document)
    assert not LATER_KEYWORDS & set(keywords(document))


def test_the_file_name_carries_the_detail_schema_version() -> None:
    assert SCHEMA_FILE.name == "batch-prediction-event.v1.json"
    assert schema()["properties"]["schemaVersion"] == {"enum": ["1"]}


def test_successful_and_failed_details_are_valid() -> None:
    validator().validate(succeeded())
    validator().validate({**succeeded(), "status": "PARTIALLY_SUCCEEDED"})
    validator().validate(failed())


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"status": "FAILED", "error": None}, "a failure says why"),
        ({"error": {"error": "X", "cause": "y"}}, "a success carries no error"),
        ({"outputs": {"predictions": None, "errors": None, "manifest": None}}, "a success has its predictions"),
        ({"schemaVersion": "2"}, "version 2 is another schema"),
        ({"status": "DONE"}, "three statuses only"),
    ],
)
def test_details_breaking_the_version_1_promises_are_invalid(change: dict[str, Any], why: str) -> None:
    with pytest.raises(ValidationError):
        validator().validate({**succeeded(), **change})


def test_a_success_without_counts_outputs_or_jobs_is_invalid() -> None:
    for field in ("counts", "outputs", "jobs"):
        detail = succeeded()
        del detail[field]
        with pytest.raises(ValidationError):
            validator().validate(detail)


def test_the_registry_schema_is_the_event_envelope_around_the_file_unchanged() -> None:
    published = registry_schema(schema())
    Draft4Validator.check_schema(published)
    expected_detail = copy.deepcopy(schema())
    del expected_detail["$schema"]  # draft 4 allows $schema only at the root
    assert published["properties"]["detail"] == expected_detail
    assert published["properties"]["source"] == {"enum": ["batchline"]}
    assert published["properties"]["detail-type"]["enum"] == [
        "Batch Prediction Succeeded",
        "Batch Prediction Partially Succeeded",
        "Batch Prediction Failed",
    ]


def test_a_delivered_event_is_valid_against_the_registry_schema_and_a_foreign_one_is_not() -> None:
    event = {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "Batch Prediction Succeeded",
        "source": "batchline",
        "account": "111122223333",
        "time": "2026-11-25T10:10:01Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": succeeded(),
    }
    published = Draft4Validator(registry_schema(schema()), format_checker=FormatChecker())
    published.validate(event)
    with pytest.raises(ValidationError):
        published.validate({**event, "source": "someone.else"})


def test_only_a_draft_4_schema_can_be_published() -> None:
    with pytest.raises(ValueError, match="draft-04"):
        registry_schema({**schema(), "$schema": "https://json-schema.org/draft/2020-12/schema"})


def test_job_figures_are_the_adapters_one_vocabulary_and_refuse_unknown_names() -> None:
    from batchline.adapters.base import JOB_FIGURES

    figures = schema()["properties"]["jobs"]["items"]["properties"]["figures"]
    assert set(figures["properties"]) == set(JOB_FIGURES)
    detail = succeeded()
    detail["jobs"][0]["figures"] = {"startedAt": "2026-11-25T10:01:00Z", "computeSeconds": 12.5, "inputTokens": 40}
    validator().validate(detail)
    detail["jobs"][0]["figures"] = {"computeTime": 12}
    with pytest.raises(ValidationError):
        validator().validate(detail)
