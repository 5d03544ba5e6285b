"""Bedrock answers as columns, end to end: embedding vectors from a batch job and on demand, and named JSON
fields of a text answer (with the reason when an answer is not the JSON asked for)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchline_local.emulators.bedrock import emulated_vector
from batchline_local.runtime import LocalRuntime
from tests.e2e.conftest import check_every_event, read_s3_csv, write_csv

pytestmark = pytest.mark.timeout(180)
ROLE = "arn:aws:iam::123456789012:role/bedrock-batch"
TITAN_V2 = "amazon.titan-embed-text-v2:0"
COHERE = "cohere.embed-english-v3"


def pipeline(model: str, **service: Any) -> dict[str, Any]:
    return {
        "keyColumn": "id",
        "service": {"provider": "bedrock", "modelId": model, "roleArn": ROLE, "promptColumn": "text", **service},
    }


PIPELINES = {
    # Batch: a job of 4 or more records goes to a batch job.
    "emb-batch": pipeline(TITAN_V2, embeddingDimensions=256, minRecordsPerJob=4),
    "emb-columns": pipeline(TITAN_V2, embeddingDimensions=256, embeddingOutput="columns"),
    "emb-cohere": pipeline(COHERE),
    "fields": pipeline("anthropic.claude-3-haiku-20240307-v1:0", extractFields=["answer", "score", "missing"]),
}


@pytest.fixture(scope="module")
def runtime(validate_event: Any) -> Iterator[LocalRuntime]:
    with LocalRuntime(PIPELINES) as local:
        yield local
        check_every_event(local, validate_event)


def texts(tmp_path: Path, values: list[str]) -> Path:
    return write_csv(tmp_path / "in.csv", ["id", "text"], [[f"k{n}", value] for n, value in enumerate(values)])


def test_a_batch_job_of_an_embedding_model_gives_each_key_its_vector_as_json(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    creates = runtime.bedrock.create_calls
    values = [f"document {n}" for n in range(5)]

    result = runtime.run_file(texts(tmp_path, values), "emb-batch")

    assert result.event is not None and result.event["detail"]["status"] == "SUCCEEDED"
    assert runtime.bedrock.create_calls == creates + 1  # a batch job, not on demand
    rows = read_s3_csv(runtime, result.event["detail"]["outputs"]["predictions"])
    assert list(rows[0]) == ["id", "embedding"]
    assert {row["id"]: json.loads(row["embedding"]) for row in rows} == {
        f"k{n}": emulated_vector(TITAN_V2, value, 256) for n, value in enumerate(values)
    }


def test_on_demand_embeddings_can_be_one_column_per_dimension(runtime: LocalRuntime, tmp_path: Path) -> None:
    calls = runtime.bedrock.runtime_calls["InvokeModel"]

    result = runtime.run_file(texts(tmp_path, ["alpha", "beta"]), "emb-columns")

    assert result.event is not None and result.event["detail"]["status"] == "SUCCEEDED"
    assert runtime.bedrock.runtime_calls["InvokeModel"] == calls + 2
    rows = read_s3_csv(runtime, result.event["detail"]["outputs"]["predictions"])
    assert list(rows[0]) == ["id", *(f"embedding_{n}" for n in range(256))]
    by_key = {row["id"]: [float(row[f"embedding_{n}"]) for n in range(256)] for row in rows}
    assert by_key == {"k0": emulated_vector(TITAN_V2, "alpha", 256), "k1": emulated_vector(TITAN_V2, "beta", 256)}


def test_cohere_embeddings_are_answered_in_their_own_shape(runtime: LocalRuntime, tmp_path: Path) -> None:
    result = runtime.run_file(texts(tmp_path, ["gamma"]), "emb-cohere")

    assert result.event is not None and result.event["detail"]["status"] == "SUCCEEDED"
    (row,) = read_s3_csv(runtime, result.event["detail"]["outputs"]["predictions"])
    assert json.loads(row["embedding"]) == emulated_vector(COHERE, "gamma", 1024)


def test_named_fields_of_json_answers_become_columns_and_other_answers_say_why_they_are_blank(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    prompts = ["reply in json please", "reply in json, fenced", "just talk"]

    result = runtime.run_file(texts(tmp_path, prompts), "fields")

    assert result.event is not None
    detail = result.event["detail"]
    # Every record was answered: a blank field is not a failed record.
    assert detail["status"] == "SUCCEEDED" and detail["counts"]["predicted"] == 3
    rows = {row["id"]: row for row in read_s3_csv(runtime, detail["outputs"]["predictions"])}
    assert list(rows["k0"]) == ["id", "output_text", "answer", "score", "missing", "extract_error"]
    for key in ("k0", "k1"):
        assert rows[key]["answer"].startswith("answer ") and rows[key]["score"] == "0.5"
        assert rows[key]["missing"] == "" and rows[key]["extract_error"] == "the answer has no field missing"
    assert rows["k1"]["output_text"].startswith("```json")
    assert (rows["k2"]["answer"], rows["k2"]["score"]) == ("", "")
    assert rows["k2"]["extract_error"].startswith("the answer is not JSON (")
