"""Personalize adapter: request shapes pinned with botocore's Stubber (moto has no batch jobs)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from batchline.adapters.base import (
    Chunk,
    FailedRecord,
    JobState,
    JobStatus,
    Prediction,
    RecordRejected,
    RunContext,
)
from batchline.adapters.personalize import PersonalizeAdapter, PersonalizeJsonEncoder, normalise_status
from batchline.config import parse_pipelines
from batchline.errors import JobConflict, JobNotFound, QuotaFull, ServiceThrottled
from batchline.layout import RunLayout, S3Location
from botocore.stub import Stubber
from moto import mock_aws

from tests.adapters.staging import HOSTILE_KEYS, stage, staged

SOLUTION = "arn:aws:personalize:eu-west-1:123456789012:solution/movies/1a2b3c"
PIPELINES = parse_pipelines(
    {
        "recs": {
            "keyColumn": "userId",
            "service": {
                "provider": "personalize",
                "recipe": "USER_PERSONALIZATION",
                "solutionVersionArn": SOLUTION,
                "roleArn": "arn:aws:iam::123456789012:role/p",
                "numResults": 25,
                "filterArn": "arn:aws:personalize:eu-west-1:123456789012:filter/genre",
                "filterValueColumns": {"GENRE": "genre"},
            },
        }
    }
)
RUN = RunContext(
    run_id="recs-00112233445566778899aabbccddeeff",
    pipeline=PIPELINES.get("recs"),
    layout=RunLayout("recs", "recs-00112233445566778899aabbccddeeff", "work", "results"),
    staging={"keyHeader": "userId"},
    chunk=Chunk(0, S3Location("work", "recs/r/input/"), S3Location("work", "recs/r/output/job-00000/"), 10),
)


@pytest.fixture
def stubbed() -> Iterator[tuple[PersonalizeAdapter, Stubber]]:
    client = boto3.client("personalize", region_name="eu-west-1")
    with Stubber(client) as stubber:
        yield PersonalizeAdapter(RUN.pipeline.service, client, s3=None), stubber  # type: ignore[arg-type]
        stubber.assert_no_pending_responses()


def described(adapter: PersonalizeAdapter, status: str, solution: str = SOLUTION, **extra: Any) -> dict[str, Any]:
    return {
        "batchInferenceJob": {
            "batchInferenceJobArn": adapter.job_id(RUN),
            "solutionVersionArn": solution,
            "jobInput": {"s3DataSource": {"path": RUN.chunk.input_prefix.uri}},
            "status": status,
            **extra,
        }
    }


def test_create_request_is_valid_and_names_the_job_after_the_run(stubbed: Any) -> None:
    adapter, stubber = stubbed
    request = adapter.create_request(RUN)
    stubber.add_response("create_batch_inference_job", {"batchInferenceJobArn": adapter.job_id(RUN)}, request)
    stubber.add_response(
        "describe_batch_inference_job",
        described(adapter, "CREATE PENDING"),
        {"batchInferenceJobArn": adapter.job_id(RUN)},
    )
    state = adapter.submit(RUN)
    assert state.status is JobStatus.PENDING
    assert request["jobInput"]["s3DataSource"]["path"].endswith("/input/")
    assert request["numResults"] == 25 and request["filterArn"].endswith("filter/genre")
    assert adapter.job_id(RUN) == f"arn:aws:personalize:eu-west-1:123456789012:batch-inference-job/{request['jobName']}"


def test_already_existing_job_is_described_not_recreated(stubbed: Any) -> None:
    adapter, stubber = stubbed
    stubber.add_client_error(
        "create_batch_inference_job",
        "ResourceAlreadyExistsException",
        "exists",
        expected_params=adapter.create_request(RUN),
    )
    stubber.add_response(
        "describe_batch_inference_job",
        described(adapter, "ACTIVE"),
        {"batchInferenceJobArn": adapter.job_id(RUN)},
    )
    assert adapter.submit(RUN).status is JobStatus.SUCCEEDED


def test_existing_job_for_another_solution_is_a_conflict(stubbed: Any) -> None:
    adapter, stubber = stubbed
    stubber.add_client_error(
        "create_batch_inference_job",
        "ResourceAlreadyExistsException",
        "exists",
        expected_params=adapter.create_request(RUN),
    )
    stubber.add_response(
        "describe_batch_inference_job",
        described(adapter, "ACTIVE", solution=SOLUTION + "x"),
        {"batchInferenceJobArn": adapter.job_id(RUN)},
    )
    with pytest.raises(JobConflict):
        adapter.submit(RUN)


@pytest.mark.parametrize(
    ("code", "error"), [("LimitExceededException", QuotaFull), ("ThrottlingException", ServiceThrottled)]
)
def test_quota_and_throttling_are_retryable_named_errors(stubbed: Any, code: str, error: type) -> None:
    adapter, stubber = stubbed
    stubber.add_client_error("create_batch_inference_job", code, "busy", expected_params=adapter.create_request(RUN))
    with pytest.raises(error):
        adapter.submit(RUN)


def test_failure_reason_is_surfaced(stubbed: Any) -> None:
    adapter, stubber = stubbed
    stubber.add_response(
        "describe_batch_inference_job",
        described(adapter, "CREATE FAILED", failureReason="Insufficient privileges"),
        {"batchInferenceJobArn": adapter.job_id(RUN)},
    )
    state = adapter.describe(RUN, adapter.job_id(RUN))
    assert (state.status, state.message) == (JobStatus.FAILED, "Insufficient privileges")


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("PENDING", JobStatus.PENDING),
        ("CREATE PENDING", JobStatus.PENDING),
        ("IN PROGRESS", JobStatus.RUNNING),
        ("CREATE IN_PROGRESS", JobStatus.RUNNING),
        ("ACTIVE", JobStatus.SUCCEEDED),
        ("CREATE FAILED", JobStatus.FAILED),
        ("CREATE_FAILED", JobStatus.FAILED),
    ],
)
def test_free_text_statuses_are_matched_leniently(raw: str, status: JobStatus) -> None:
    assert normalise_status(raw) is status


def test_encoder_writes_query_and_quoted_filter_values() -> None:
    encoder = PersonalizeJsonEncoder(RUN.pipeline.service)  # type: ignore[arg-type]
    encoder.start(["userId", "genre"], 0)
    record = encoder.encode(["u1", "Comedy"], 0)
    assert record.text == '{"userId": "u1", "filterValues": {"GENRE": "\\"Comedy\\""}}\n'
    assert record.record_id == "u1"


def test_ranking_needs_items_to_rank() -> None:
    settings = (
        parse_pipelines(
            {
                "r": {
                    "keyColumn": "u",
                    "service": {
                        "provider": "personalize",
                        "recipe": "PERSONALIZED_RANKING",
                        "solutionVersionArn": SOLUTION,
                        "roleArn": "arn:aws:iam::123456789012:role/p",
                        "itemListColumn": "items",
                    },
                }
            }
        )
        .get("r")
        .service
    )
    encoder = PersonalizeJsonEncoder(settings)  # type: ignore[arg-type]
    encoder.start(["u", "items"], 0)
    assert encoder.encode(["u1", "a| b |"], 0).text == '{"userId": "u1", "itemList": ["a", "b"]}\n'
    with pytest.raises(RecordRejected, match="nothing to rank"):
        encoder.encode(["u2", " "], 1)


# --- reading outputs (moto S3) ---------------------------------------------------------------------


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="work")
        yield client


def test_hostile_keys_are_matched_by_their_echo_on_lines_split_at_lf_only(s3: Any) -> None:
    # GIVEN keys with CR, LF, U+2028, U+0085, NUL, quotes and commas, echoed raw where JSON allows it
    encoder = PersonalizeJsonEncoder(RUN.pipeline.service)  # type: ignore[arg-type]
    encoder.start(["userId", "genre"], 0)
    rows = [[key, "Comedy"] for key in HOSTILE_KEYS]
    stage(s3, RUN.layout, RUN.chunk.input_prefix, encoder, rows, part="part-00000.jsonl")
    lines = []
    for n, key in enumerate(HOSTILE_KEYS):
        answer: dict[str, Any] = {"input": {"userId": key}, "output": {"recommendedItems": [f"i{n}\u2028"]}}
        if n == 3:
            answer = {"input": {"userId": key}, "output": None, "error": "cannot \u0085 score"}
        # a CR as JSON whitespace between tokens, and U+2028/U+0085 left raw in strings (ensure_ascii=False)
        lines.append(json.dumps(answer, ensure_ascii=False).replace(", ", ",\r ", 1) + "\n")
    s3.put_object(Bucket="work", Key=RUN.chunk.output_prefix.key + "part-00000.jsonl.out", Body="".join(lines).encode())
    # WHEN the output is read
    adapter = PersonalizeAdapter(RUN.pipeline.service, None, s3)  # type: ignore[arg-type]
    job = JobState(adapter.job_id(RUN), JobStatus.SUCCEEDED, "ACTIVE")
    out = list(adapter.read_results(RUN, job, iter(staged(s3, RUN.layout, RUN.chunk.input_prefix))))
    # THEN every key comes back once, under its own key and line
    assert [(r.key, r.line) for r in out] == [(key, n + 2) for n, key in enumerate(HOSTILE_KEYS)]
    assert isinstance(out[3], FailedRecord) and "cannot \u0085 score" in out[3].reason
    assert out[1] == Prediction("a-0", 3, [["1", "i1\u2028", ""]])


def test_a_job_personalize_does_not_know_was_never_created(stubbed: Any) -> None:
    adapter, stubber = stubbed
    job = adapter.job_id(RUN)
    stubber.add_client_error(
        "describe_batch_inference_job", "ResourceNotFoundException", "no such job", 404, {"batchInferenceJobArn": job}
    )
    with pytest.raises(JobNotFound):
        adapter.describe(RUN, job)


def test_any_other_error_while_looking_is_not_never_created(stubbed: Any) -> None:
    adapter, stubber = stubbed
    job = adapter.job_id(RUN)
    stubber.add_client_error(
        "describe_batch_inference_job", "AccessDeniedException", "denied", 403, {"batchInferenceJobArn": job}
    )
    with pytest.raises(Exception) as raised:
        adapter.describe(RUN, job)
    assert not isinstance(raised.value, JobNotFound)


# --- service depth: segment sizes and filters, exploration, themes, KMS keys, tags -------------------------


def personalize_service(**service: Any) -> Any:
    body = {"provider": "personalize", "solutionVersionArn": SOLUTION, "roleArn": "arn:aws:iam::123456789012:role/p"}
    return parse_pipelines({"recs": {"keyColumn": "k", "service": {**body, **service}}}).get("recs").service


def stubbed_adapter(settings: Any) -> tuple[PersonalizeAdapter, Stubber, Any]:
    client = boto3.client("personalize", region_name="eu-west-1")
    return PersonalizeAdapter(settings, client, s3=None), Stubber(client), client


def test_segment_job_takes_the_apis_user_limit_and_a_filter() -> None:
    settings = personalize_service(
        recipe="ITEM_AFFINITY",
        numResults=5_000_000,
        filterArn="arn:aws:personalize:eu-west-1:123456789012:filter/active-users",
    )
    adapter, stubber, _ = stubbed_adapter(settings)
    request = adapter.create_request(RUN)
    assert request["numResults"] == 5_000_000
    assert request["filterArn"].endswith("filter/active-users")
    with stubber:
        stubber.add_response("create_batch_segment_job", {"batchSegmentJobArn": adapter.job_id(RUN)}, request)
        adapter._personalize.create_batch_segment_job(**request)  # noqa: SLF001 - the request shape, checked


def test_numeric_exploration_values_are_sent_as_the_strings_the_api_takes() -> None:
    settings = personalize_service(
        recipe="USER_PERSONALIZATION",
        batchInferenceJobConfig={
            "itemExplorationConfig": {"explorationWeight": 0.3, "explorationItemAgeCutOff": 30},
            "rankingInfluence": {"FRESHNESS": 0.5},
        },
    )
    adapter, stubber, client = stubbed_adapter(settings)
    request = adapter.create_request(RUN)
    assert request["batchInferenceJobConfig"] == {
        "itemExplorationConfig": {"explorationWeight": "0.3", "explorationItemAgeCutOff": "30"},
        "rankingInfluence": {"FRESHNESS": 0.5},
    }
    with stubber:
        stubber.add_response("create_batch_inference_job", {"batchInferenceJobArn": adapter.job_id(RUN)}, request)
        client.create_batch_inference_job(**request)


def test_theme_generation_request_names_the_item_name_column() -> None:
    settings = personalize_service(
        recipe="RELATED_ITEMS",
        batchInferenceJobMode="THEME_GENERATION",
        themeGenerationConfig={"fieldsForThemeGeneration": {"itemName": "TITLE"}},
    )
    adapter, stubber, client = stubbed_adapter(settings)
    request = adapter.create_request(RUN)
    assert request["batchInferenceJobMode"] == "THEME_GENERATION"
    assert request["themeGenerationConfig"] == {"fieldsForThemeGeneration": {"itemName": "TITLE"}}
    assert settings.records_per_file == 100  # a theme job's input file holds at most 100 items
    assert adapter.result_columns(RUN) == ["rank", "item_id", "score", "theme"]
    with stubber:
        stubber.add_response("create_batch_inference_job", {"batchInferenceJobArn": adapter.job_id(RUN)}, request)
        client.create_batch_inference_job(**request)


def test_input_and_output_have_their_own_kms_keys_and_the_users_tags_come_before_ours() -> None:
    key = "arn:aws:kms:eu-west-1:123456789012:key/{}"
    settings = personalize_service(
        recipe="USER_PERSONALIZATION",
        inputKmsKeyArn=key.format("in"),
        outputKmsKeyArn=key.format("out"),
        tags={"team": "growth", "cost-centre": "42"},
    )
    adapter, stubber, client = stubbed_adapter(settings)
    request = adapter.create_request(RUN)
    assert request["jobInput"]["s3DataSource"]["kmsKeyArn"] == key.format("in")
    assert request["jobOutput"]["s3DataDestination"]["kmsKeyArn"] == key.format("out")
    assert request["tags"] == [
        {"tagKey": "team", "tagValue": "growth"},
        {"tagKey": "cost-centre", "tagValue": "42"},
        {"tagKey": "batchline:pipeline", "tagValue": "recs"},
    ]
    with stubber:
        stubber.add_response("create_batch_inference_job", {"batchInferenceJobArn": adapter.job_id(RUN)}, request)
        client.create_batch_inference_job(**request)


def test_one_kms_key_still_covers_input_and_output() -> None:
    key = "arn:aws:kms:eu-west-1:123456789012:key/both"
    request = PersonalizeAdapter(personalize_service(recipe="USER_PERSONALIZATION", kmsKeyArn=key), None, None)
    built = request.create_request(RUN)
    assert built["jobInput"]["s3DataSource"]["kmsKeyArn"] == built["jobOutput"]["s3DataDestination"]["kmsKeyArn"]


def test_theme_rows_carry_the_theme_and_the_items_relevance_to_it() -> None:
    settings = personalize_service(
        recipe="RELATED_ITEMS",
        batchInferenceJobMode="THEME_GENERATION",
        themeGenerationConfig={"fieldsForThemeGeneration": {"itemName": "TITLE"}},
        outputFormat="wide",
    )
    adapter = PersonalizeAdapter(settings, None, None)
    output = {"recommendedItems": ["36", "50"], "theme": "Rise and shine", "itemsThemeRelevanceScores": [0.2, -0.1]}
    assert adapter._rows(output) == [["36|50", "0.2|-0.1", "Rise and shine"]]  # noqa: SLF001
