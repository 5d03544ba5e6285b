"""The Personalize emulator refuses the requests Personalize refuses and writes theme and large segment output as
the service documents it (CreateBatchInferenceJob, CreateBatchSegmentJob, themed-batch-recommendations.html)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from batchline_local.emulators.base import EmulatedError
from batchline_local.emulators.personalize import PersonalizeEmulator

BUCKET = "work"
SOLUTION = "arn:aws:personalize:us-east-1:123456789012:solution/demo/abcdef12"


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def request(**extra: Any) -> dict[str, Any]:
    return {
        "jobName": "job-1",
        "solutionVersionArn": SOLUTION,
        "roleArn": "arn:aws:iam::123456789012:role/r",
        "jobInput": {"s3DataSource": {"path": f"s3://{BUCKET}/in/"}},
        "jobOutput": {"s3DataDestination": {"path": f"s3://{BUCKET}/out/"}},
        **extra,
    }


def run(emulator: PersonalizeEmulator, kind: str, **extra: Any) -> dict[str, Any]:
    create = emulator.create_batch_inference_job if kind == "inference" else emulator.create_batch_segment_job
    describe = emulator.describe_batch_inference_job if kind == "inference" else emulator.describe_batch_segment_job
    arn = next(iter(create(**request(**extra)).values()))
    for _ in range(10):
        described = dict(next(iter(describe(arn).values())))
        if described["status"] in ("ACTIVE", "CREATE FAILED"):
            return described
    raise AssertionError("the emulated job never ended")


def lines(s3: Any, key: str) -> list[Any]:
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    return [json.loads(line) for line in body.split("\n") if line]


def put_lines(s3: Any, key: str, queries: list[dict[str, Any]]) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body="".join(json.dumps(q) + "\n" for q in queries).encode())


@pytest.mark.parametrize(
    ("kind", "extra", "message"),
    [
        ("inference", {"numResults": 501}, "numResults must be between 1 and 500"),
        ("segment", {"numResults": 5_000_001}, "numResults must be between 1 and 5000000"),
        ("inference", {"batchInferenceJobConfig": {"itemExplorationConfig": {"explorationWeight": "2"}}}, "range"),
        ("inference", {"batchInferenceJobConfig": {"itemExplorationConfig": {"explorationWeight": "x"}}}, "number"),
        (
            "inference",
            {"batchInferenceJobConfig": {"itemExplorationConfig": {"explorationItemAgeCutOff": "0"}}},
            "range",
        ),
        ("inference", {"batchInferenceJobMode": "THEME_GENERATION"}, "needs themeGenerationConfig"),
        ("inference", {"themeGenerationConfig": {"fieldsForThemeGeneration": {"itemName": "T"}}}, "only taken with"),
        ("inference", {"tags": [{"tagKey": "aws:x", "tagValue": "y"}]}, "reserved"),
        ("inference", {"jobInput": {"s3DataSource": {"path": "s3://work/in/", "kmsKeyArn": "alias/k"}}}, "KMS key"),
    ],
)
def test_requests_personalize_refuses_are_refused(kind: str, extra: dict[str, Any], message: str) -> None:
    emulator = PersonalizeEmulator()
    create = emulator.create_batch_inference_job if kind == "inference" else emulator.create_batch_segment_job
    with pytest.raises(EmulatedError, match=message) as refused:
        create(**request(**extra))
    assert refused.value.code == "InvalidInputException"


def test_more_than_50_tags_are_too_many() -> None:
    tags = [{"tagKey": f"k{n}", "tagValue": "v"} for n in range(51)]
    with pytest.raises(EmulatedError) as refused:
        PersonalizeEmulator().create_batch_inference_job(**request(tags=tags))
    assert refused.value.code == "TooManyTagsException"


def test_a_segment_job_returns_as_many_users_as_asked_past_the_small_catalogue(s3: Any) -> None:
    put_lines(s3, "in/a.jsonl", [{"itemId": "i1"}, {"itemId": "i2"}])

    job = run(PersonalizeEmulator(), "segment", numResults=10_000, filterArn=SOLUTION.replace("solution", "filter"))

    assert job["status"] == "ACTIVE" and job["numResults"] == 10_000 and job["filterArn"].endswith("abcdef12")
    segments = {line["input"]["itemId"]: line["output"]["recommendedUsers"] for line in lines(s3, "out/a.jsonl.out")}
    assert {item: len(set(users)) for item, users in segments.items()} == {"i1": 10_000, "i2": 10_000}
    assert segments["i1"] != segments["i2"]


def test_a_theme_job_writes_a_theme_and_relevance_scores_and_no_error_field(s3: Any) -> None:
    put_lines(s3, "in/a.jsonl", [{"itemId": "40"}, {"itemId": "43"}])
    theme = {"fieldsForThemeGeneration": {"itemName": "TITLE"}}

    job = run(
        PersonalizeEmulator(),
        "inference",
        numResults=3,
        batchInferenceJobMode="THEME_GENERATION",
        themeGenerationConfig=theme,
    )

    assert job["status"] == "ACTIVE" and job["themeGenerationConfig"] == theme
    for line in lines(s3, "out/a.jsonl.out"):
        assert set(line) == {"input", "output"}
        assert set(line["output"]) == {"recommendedItems", "theme", "itemsThemeRelevanceScores"}
        assert len(line["output"]["recommendedItems"]) == len(line["output"]["itemsThemeRelevanceScores"]) == 3


def test_a_theme_job_fails_on_a_file_of_more_than_100_items(s3: Any) -> None:
    put_lines(s3, "in/a.jsonl", [{"itemId": str(n)} for n in range(101)])
    theme = {"fieldsForThemeGeneration": {"itemName": "TITLE"}}

    job = run(PersonalizeEmulator(), "inference", batchInferenceJobMode="THEME_GENERATION", themeGenerationConfig=theme)

    assert job["status"] == "CREATE FAILED" and "over the 100 a theme job reads" in job["failureReason"]
