"""The emulators are as strict as the services: they split lines only where the service does (LF), parse
JSON as a conforming parser, refuse what the service refuses and list S3 as S3 lists it.

Each test drives an emulator directly over moto's S3, as the local runtime does.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from batchline_local.emulators.amazonml import AmazonMLEmulator
from batchline_local.emulators.base import MalformedLine, service_lines, strict_json
from batchline_local.emulators.bedrock import BedrockEmulator, BedrockQuotas
from batchline_local.emulators.google_cloud import GoogleCloudFake
from batchline_local.emulators.personalize import PersonalizeEmulator

BUCKET = "work"
# Characters str.splitlines() breaks on that a JSON string may carry raw (or, for CR, escaped).
HOSTILE = ["line\u2028sep", "next\u0085line", "para\u2029sep", "lone\rcr", "crlf\r\nend", "plain"]


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client


def json_line(value: Any) -> str:
    """A staged line as Prepare writes it: raw UTF-8 (U+2028, U+0085 unescaped), control characters escaped."""
    return json.dumps(value, ensure_ascii=False) + "\n"


def put(s3: Any, key: str, text: str | bytes) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=text.encode("utf-8") if isinstance(text, str) else text)


def read_lines(s3: Any, key: str) -> list[Any]:
    """An output object's JSON lines, split on LF only (as a conforming JSON lines reader does)."""
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode("utf-8")
    return [json.loads(line) for line in body.split("\n") if line]


# --- the shared line reader ------------------------------------------------------------------------


def test_lines_split_on_lf_only_and_the_final_lf_ends_the_last_line() -> None:
    text = "a\u2028b\u0085c\u2029d\x0be\x0cf\x1cg\rh\r\nnext\n"
    assert service_lines(text.encode()) == [(1, "a\u2028b\u0085c\u2029d\x0be\x0cf\x1cg\rh\r"), (2, "next")]


def test_a_file_without_a_final_lf_keeps_its_last_line_and_a_blank_line_is_a_line() -> None:
    assert service_lines(b"a\n\nb") == [(1, "a"), (2, ""), (3, "b")]


@pytest.mark.parametrize("text", ["NaN", '{"x": NaN}', '{"x": Infinity}', "[-Infinity]", '{"x": "a\rb"}', ""])
def test_strict_json_refuses_what_is_not_json(text: str) -> None:
    with pytest.raises(MalformedLine, match="line 7: not valid JSON"):
        strict_json(text, 7)


def test_strict_json_takes_a_trailing_cr_as_whitespace() -> None:
    assert strict_json('{"x": "\u2028"}\r', 1) == {"x": "\u2028"}


# --- Bedrock ----------------------------------------------------------------------------------------


def bedrock_job(emulator: BedrockEmulator, prefix: str = "in/") -> dict[str, Any]:
    """Create a job over s3://work/<prefix> and poll it to its end; the described job."""
    arn = emulator.create_model_invocation_job(
        jobName="job-1",
        roleArn="arn:aws:iam::123456789012:role/r",
        clientRequestToken="token-1",
        modelId="anthropic.claude-3-haiku-20240307-v1:0",
        inputDataConfig={"s3InputDataConfig": {"s3Uri": f"s3://{BUCKET}/{prefix}"}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": f"s3://{BUCKET}/out/"}},
    )["jobArn"]
    for _ in range(10):
        described = emulator.get_model_invocation_job(jobIdentifier=arn)
        if described["status"] not in ("Submitted", "Validating", "Scheduled", "InProgress"):
            return described
    raise AssertionError("the emulated job never ended")


def anthropic(prompt: str) -> dict[str, Any]:
    return {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
    }


def small_quotas(job: dict[str, Any]) -> BedrockQuotas:
    return BedrockQuotas(min_records_per_job=1, max_records_per_job=10, max_records_per_file=10)


def output_records(s3: Any, job: dict[str, Any], name: str = "part-00000.jsonl") -> list[Any]:
    job_id = job["jobArn"].rsplit("/", 1)[1]
    return read_lines(s3, f"out/{job_id}/{name}.out")


def test_bedrock_reads_each_prompt_with_line_separators_as_one_record(s3: Any) -> None:
    put(
        s3,
        "in/part-00000.jsonl",
        "".join(json_line({"recordId": f"R{i}", "modelInput": anthropic(p)}) for i, p in enumerate(HOSTILE)),
    )

    job = bedrock_job(BedrockEmulator(quotas=small_quotas))

    assert job["status"] == "Completed", job.get("message")
    assert job["totalRecordCount"] == job["successRecordCount"] == len(HOSTILE)
    echoed = {r["recordId"]: r["modelInput"]["messages"][0]["content"][0]["text"] for r in output_records(s3, job)}
    assert echoed == {f"R{i}": prompt for i, prompt in enumerate(HOSTILE)}


def test_bedrock_fails_a_job_whose_line_is_not_json_naming_file_and_line(s3: Any) -> None:
    good = json_line({"recordId": "R1", "modelInput": anthropic("x")})
    put(s3, "in/part-00000.jsonl", good + '{"recordId": "R2", "modelInput": {"temperature": NaN}}\n')

    job = bedrock_job(BedrockEmulator(quotas=small_quotas))

    assert job["status"] == "Failed"
    assert "in/part-00000.jsonl line 2: not valid JSON" in job["message"]


@pytest.mark.parametrize("record_id", ["a-0", "", 12, "R\u2028", "R1\n"])
def test_bedrock_refuses_a_record_id_that_is_not_an_alphanumeric_string(s3: Any, record_id: Any) -> None:
    put(s3, "in/part-00000.jsonl", json_line({"recordId": record_id, "modelInput": anthropic("x")}))

    job = bedrock_job(BedrockEmulator(quotas=small_quotas))

    assert job["status"] == "Failed" and "recordId must be an alphanumeric string" in job["message"]


@pytest.mark.parametrize(
    ("records", "expected"),
    [(1, "the job has 1 records, under the minimum of 2"), (4, "the job has 4 records, over the maximum of 3")],
)
def test_bedrock_enforces_the_records_per_job_quota(s3: Any, records: int, expected: str) -> None:
    put(
        s3,
        "in/p.jsonl",
        "".join(json_line({"recordId": f"R{i}", "modelInput": anthropic("x")}) for i in range(records)),
    )
    emulator = BedrockEmulator(quotas=lambda job: BedrockQuotas(min_records_per_job=2, max_records_per_job=3))

    job = bedrock_job(emulator)

    assert job["status"] == "Failed" and expected in job["message"]


def test_bedrock_answers_a_record_the_model_cannot_take_with_an_error_object_not_a_failed_job(s3: Any) -> None:
    lines = [
        {"recordId": "R1", "modelInput": anthropic("fine")},
        {"recordId": "R2", "modelInput": {}},
        {"recordId": "R3", "modelInput": anthropic("please error")},
        {"modelInput": anthropic("no id")},
    ]
    put(s3, "in/part-00000.jsonl", "".join(json_line(line) for line in lines))
    put(s3, "in/notes.txt", "not input: only .jsonl objects are read\n")

    job = bedrock_job(BedrockEmulator(quotas=small_quotas))

    assert job["status"] == "PartiallyCompleted"
    assert (job["totalRecordCount"], job["successRecordCount"], job["errorRecordCount"]) == (4, 2, 2)
    by_id = {record["recordId"]: record for record in output_records(s3, job)}
    assert by_id["R2"]["error"]["errorCode"] == 400 and "modelOutput" not in by_id["R2"]
    assert by_id["R3"]["error"]["errorCode"] == 400
    added = [record for key, record in by_id.items() if key not in ("R1", "R2", "R3")]
    assert len(added) == 1 and added[0]["recordId"].isalnum() and "modelOutput" in added[0]


# --- Personalize ------------------------------------------------------------------------------------


def personalize_job(emulator: PersonalizeEmulator, kind: str = "inference", prefix: str = "in/") -> dict[str, Any]:
    create = emulator.create_batch_inference_job if kind == "inference" else emulator.create_batch_segment_job
    describe = emulator.describe_batch_inference_job if kind == "inference" else emulator.describe_batch_segment_job
    answer = create(
        jobName="job-1",
        solutionVersionArn="arn:aws:personalize:us-east-1:123456789012:solution/demo/abcdef12",
        roleArn="arn:aws:iam::123456789012:role/r",
        jobInput={"s3DataSource": {"path": f"s3://{BUCKET}/{prefix}"}},
        jobOutput={"s3DataDestination": {"path": f"s3://{BUCKET}/out/"}},
    )
    arn = next(iter(answer.values()))
    for _ in range(10):
        described = next(iter(describe(arn).values()))
        if described["status"] in ("ACTIVE", "CREATE FAILED"):
            return dict(described)
    raise AssertionError("the emulated job never ended")


def test_personalize_reads_each_user_id_with_line_separators_as_one_record(s3: Any) -> None:
    put(s3, "in/part-00000.jsonl", "".join(json_line({"userId": user}) for user in HOSTILE))

    job = personalize_job(PersonalizeEmulator())

    assert job["status"] == "ACTIVE", job.get("failureReason")
    answers = read_lines(s3, "out/part-00000.jsonl.out")
    assert sorted(answer["input"]["userId"] for answer in answers) == sorted(HOSTILE)
    assert all(answer["error"] is None and answer["output"]["recommendedItems"] for answer in answers)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"userId": NaN}', "line 2: not valid JSON"),
        ('"u1"', "line 2: a query must be a JSON object"),
        ('{"user": "u1"}', "line 2: fields ['user'] do not match"),
        ('{"userId": 42}', "line 2: userId must be a string"),
        ('{"userId": "u", "itemId": "i"}', "line 2: fields ['itemId', 'userId'] do not match"),
        ("", "line 2: not valid JSON"),
    ],
)
def test_personalize_fails_a_job_whose_line_the_recipe_cannot_take(s3: Any, line: str, reason: str) -> None:
    put(s3, "in/part-00000.jsonl", json_line({"userId": "u0"}) + line + "\n")

    job = personalize_job(PersonalizeEmulator())

    assert job["status"] == "CREATE FAILED"
    assert f"in/part-00000.jsonl {reason}" in job["failureReason"]
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="out/").get("KeyCount") == 0


def test_personalize_answers_a_record_it_cannot_score_with_a_non_null_error(s3: Any) -> None:
    put(s3, "in/part-00000.jsonl", json_line({"userId": "u1"}) + json_line({"userId": "error-u2"}))

    job = personalize_job(PersonalizeEmulator())

    assert job["status"] == "ACTIVE"
    by_user = {answer["input"]["userId"]: answer for answer in read_lines(s3, "out/part-00000.jsonl.out")}
    assert by_user["u1"]["error"] is None and by_user["error-u2"]["error"]
    assert by_user["error-u2"]["output"] is None


def test_personalize_segment_jobs_take_item_ids_or_item_attributes(s3: Any) -> None:
    put(s3, "in/a.jsonl", json_line({"itemId": "i\u20281"}) + json_line({"itemAttributes": 'ITEMS.genre = "x"'}))

    job = personalize_job(PersonalizeEmulator(), kind="segment")

    assert job["status"] == "ACTIVE", job.get("failureReason")
    assert len(read_lines(s3, "out/a.jsonl.out")) == 2


# --- Amazon ML --------------------------------------------------------------------------------------

ML_SCHEMA = {
    "version": "1.0",
    "rowId": "id",
    "dataFormat": "CSV",
    "dataFileContainsHeader": False,
    "attributes": [
        {"attributeName": "age", "attributeType": "NUMERIC"},
        {"attributeName": "plan", "attributeType": "CATEGORICAL"},
        {"attributeName": "monthly_spend", "attributeType": "NUMERIC"},
        {"attributeName": "churned", "attributeType": "BINARY"},
        {"attributeName": "id", "attributeType": "CATEGORICAL"},
    ],
}


def ml_prediction(emulator: AmazonMLEmulator, schema: dict[str, Any] = ML_SCHEMA) -> tuple[dict[str, Any], list[str]]:
    """Run a batch prediction over s3://work/in/; its description and the result file's lines."""
    emulator.create_data_source_from_s3(
        DataSourceId="ds-1",
        DataSpec={"DataLocationS3": f"s3://{BUCKET}/in/", "DataSchema": json.dumps(schema)},
    )
    emulator.create_batch_prediction(
        BatchPredictionId="bp-1",
        MLModelId="ml-binary",
        BatchPredictionDataSourceId="ds-1",
        OutputUri=f"s3://{BUCKET}/out/",
    )
    for _ in range(10):
        described = emulator.get_batch_prediction(BatchPredictionId="bp-1")
        if described["Status"] in ("COMPLETED", "FAILED"):
            break
    s3 = boto3.client("s3", region_name="us-east-1")
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key="out/batch-prediction/bp-1.manifest")["Body"].read())
    result_bucket, result_key = manifest[f"s3://{BUCKET}/in/part-00000.csv"][5:].split("/", 1)
    data = gzip.decompress(s3.get_object(Bucket=result_bucket, Key=result_key)["Body"].read()).decode()
    assert data.endswith("\n")
    return described, data[:-1].split("\n")


def test_amazonml_writes_a_header_then_one_line_per_observation_in_order_blank_when_unusable(s3: Any) -> None:
    put(
        s3,
        "in/part-00000.csv",
        '30,basic,12.5,,a\u2028\u00851\n41,"pro, yearly",80,,b2\nx,basic,1,,c3\n50,basic,2,,"d,4"\n',
    )

    described, lines = ml_prediction(AmazonMLEmulator())

    assert (described["Status"], described["TotalRecordCount"], described["InvalidRecordCount"]) == ("COMPLETED", 4, 1)
    assert lines[0] == "tag,bestAnswer,score"  # the rowId column is headed "tag", whatever the attribute's name
    assert [(next(csv.reader([line])) or [""])[0] for line in lines[1:]] == ["a\u2028\u00851", "b2", "", "d,4"]
    assert lines[3] == ""  # "x" is not NUMERIC: that observation's line is blank, the order kept
    assert re.fullmatch(r"[01],\d\.\d{6}E-?\d+", lines[1].split(",", 1)[1])  # 7.899012E-1, as the service


@pytest.mark.parametrize("end_of_line", ["\n", "\r\n", "\r"])
def test_amazonml_ends_an_observation_at_any_end_of_line_even_inside_quotes(s3: Any, end_of_line: str) -> None:
    # Attribute values cannot include end-of-line characters, even in double quotes (Amazon ML data format).
    put(s3, "in/part-00000.csv", f'30,basic,1,,"a{end_of_line}b"\n41,basic,2,,c\n')

    described, lines = ml_prediction(AmazonMLEmulator())

    assert (described["TotalRecordCount"], described["InvalidRecordCount"]) == (3, 2)
    assert lines[1:3] == ["", ""] and lines[3].startswith("c,")


def test_amazonml_skips_the_header_when_the_schema_says_the_file_has_one(s3: Any) -> None:
    put(s3, "in/part-00000.csv", "age,plan,monthly_spend,churned,id\n30,basic,1,,a\n")

    described, lines = ml_prediction(AmazonMLEmulator(), {**ML_SCHEMA, "dataFileContainsHeader": True})

    assert described["TotalRecordCount"] == 1 and lines[1].startswith("a,")


def test_amazonml_ignores_a_part_whose_latest_version_is_a_delete_marker(s3: Any) -> None:
    put(s3, "in/part-00000.csv", "30,basic,1,,a\n")
    put(s3, "in/part-00001.csv", "30,basic,1,,stale\n")
    s3.delete_object(Bucket=BUCKET, Key="in/part-00001.csv")

    described, _ = ml_prediction(AmazonMLEmulator())

    assert described["TotalRecordCount"] == 1


# --- Vertex AI --------------------------------------------------------------------------------------


def vertex_job(fake: GoogleCloudFake, lines: str) -> dict[str, Any]:
    """Stage one JSON lines object in the fake GCS and run a job over it to its end."""
    fake.objects[("stage", "run/input/part-00000.jsonl")] = lines.encode("utf-8")
    job = {
        "displayName": "job-1",
        "model": "projects/p/locations/us-central1/models/123",
        "inputConfig": {"instancesFormat": "jsonl", "gcsSource": {"uris": ["gs://stage/run/input/*"]}},
        "instanceConfig": {"instanceType": "object", "keyField": "id"},
        "outputConfig": {"predictionsFormat": "jsonl", "gcsDestination": {"outputUriPrefix": "gs://stage/run/output/"}},
        "name": "projects/p/locations/us-central1/batchPredictionJobs/1",
        "state": "JOB_STATE_QUEUED",
        "_polls": 0,
    }
    for _ in range(10):
        fake.advance(job)
        if job["state"] in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_PARTIALLY_SUCCEEDED"):
            return job
    raise AssertionError("the emulated job never ended")


@pytest.fixture
def google() -> Iterator[GoogleCloudFake]:
    with GoogleCloudFake(polls_until_done=1) as fake:
        yield fake


def test_vertex_reads_each_instance_with_line_separators_as_one_instance(google: GoogleCloudFake) -> None:
    job = vertex_job(google, "".join(json_line({"id": key, "x": 1.5}) for key in HOSTILE))

    assert job["state"] == "JOB_STATE_SUCCEEDED", job.get("error")
    assert job["completionStats"]["successfulCount"] == str(len(HOSTILE))


@pytest.mark.parametrize("bad", ['{"id": "b", "x": NaN}', '{"id": "b", "x": Infinity}', '["b", 1]', '{"x": 1}'])
def test_vertex_fails_a_job_whose_instance_is_not_a_json_object_with_its_key(google: GoogleCloudFake, bad: str) -> None:
    job = vertex_job(google, json_line({"id": "a", "x": 1.0}) + bad + "\n")

    assert job["state"] == "JOB_STATE_FAILED"
    assert job["error"]["code"] == 3 and "gs://stage/run/input/part-00000.jsonl line 2" in job["error"]["message"]
