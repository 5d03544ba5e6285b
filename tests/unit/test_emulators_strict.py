"""The emulators are as strict as the services: they split lines only where the service does (LF), parse
JSON as a conforming parser, refuse what the service refuses and list S3 as S3 lists it.

Each test drives an emulator directly over moto's S3, as the local runtime does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from batchline_local.emulators.base import MalformedLine, service_lines, strict_json
from batchline_local.emulators.bedrock import BedrockEmulator, BedrockQuotas

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
