"""Bedrock answers as columns: embedding vectors (a JSON array or one column per dimension) and named JSON fields
of a text answer, with the request bodies embedding models take."""

from __future__ import annotations

import json
from typing import Any

import pytest
from batchline.adapters.bedrock import AnswerReader, embedding_vector, extract_fields, model_input, result_columns
from batchline.config import parse_pipelines
from batchline.errors import ConfigError


def service(**fields: Any) -> Any:
    base = {"provider": "bedrock", "roleArn": "arn:aws:iam::123456789012:role/b", "promptColumn": "q", **fields}
    return parse_pipelines({"p": {"keyColumn": "id", "service": base}}).get("p").service


TITAN_V2 = "amazon.titan-embed-text-v2:0"
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"


@pytest.mark.parametrize(
    ("model", "fields", "body"),
    [
        (TITAN_V2, {"embeddingDimensions": 256}, {"inputText": "hello", "dimensions": 256}),
        (TITAN_V2, {}, {"inputText": "hello"}),
        ("amazon.titan-embed-text-v1", {}, {"inputText": "hello"}),
        ("cohere.embed-english-v3", {}, {"texts": ["hello"], "input_type": "search_document"}),
        (
            "cohere.embed-multilingual-v3",
            {"embeddingInputType": "clustering"},
            {"texts": ["hello"], "input_type": "clustering"},
        ),
    ],
)
def test_embedding_models_get_their_own_request_body(model: str, fields: dict[str, Any], body: dict[str, Any]) -> None:
    settings = service(modelId=model, **fields)
    assert settings.is_embedding
    assert model_input(settings.resolved_family, "hello", settings) == body


def test_the_vector_is_one_json_column_or_one_column_per_dimension() -> None:
    as_json = service(modelId=TITAN_V2)
    assert result_columns(as_json) == ["embedding"]
    assert AnswerReader(as_json).row({"embedding": [0.5, -1, 2e-7]}) == ["[0.5, -1.0, 2e-07]"]
    spread = service(modelId=TITAN_V2, embeddingOutput="columns", embeddingDimensions=256)
    assert result_columns(spread) == [f"embedding_{n}" for n in range(256)]
    row = AnswerReader(spread).row({"embedding": [n / 4 for n in range(256)]})
    assert isinstance(row, list) and len(row) == 256 and row[:3] == ["0.0", "0.25", "0.5"]
    assert [float(cell) for cell in row] == [n / 4 for n in range(256)]


def test_an_answer_without_a_vector_of_the_right_length_is_a_failed_record() -> None:
    reader = AnswerReader(service(modelId=TITAN_V2, embeddingDimensions=512))
    assert reader.row({"embedding": [0.1] * 256}) == "the embedding has 256 values, not embeddingDimensions 512"
    assert "without an embedding" in str(reader.row({"results": []}))
    assert "without an embedding" in str(reader.row({"embedding": ["a"]}))


@pytest.mark.parametrize(
    ("output", "vector"),
    [
        ({"embedding": [1, 2]}, [1.0, 2.0]),  # Titan
        ({"embeddings": [[3, 4]], "response_type": "embeddings_floats"}, [3.0, 4.0]),  # Cohere
        ({"embeddings": {"float": [[5, 6]]}, "response_type": "embeddings_by_type"}, [5.0, 6.0]),  # Cohere, typed
        ({"embeddings": [[1], [2]]}, None),  # one record is one text: two vectors are not its answer
        ({"embedding": [True]}, None),
        (None, None),
    ],
)
def test_the_vector_is_read_from_each_familys_answer(output: Any, vector: list[float] | None) -> None:
    assert embedding_vector(output) == vector


@pytest.mark.parametrize(
    ("model", "fields", "says"),
    [
        (TITAN_V2, {"embeddingOutput": "columns"}, "needs embeddingDimensions"),
        (TITAN_V2, {"embeddingDimensions": 300}, "256, 512 or 1024"),
        (TITAN_V2, {"invocationType": "Converse"}, "Converse does not apply"),
        (TITAN_V2, {"extractFields": ["a"]}, "an embedding model answers a vector"),
        (CLAUDE, {"embeddingDimensions": 256}, "embedding models only"),
        (CLAUDE, {"extractFields": ["a", "a"]}, "a named more than once"),
        (CLAUDE, {"extractFields": ["output_text"]}, "a column Batchline writes itself"),
        (CLAUDE, {"extractFields": [" "]}, "must not be blank"),
    ],
)
def test_answer_settings_are_checked_at_synth(model: str, fields: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        service(modelId=model, **fields)


def test_named_fields_of_a_json_answer_become_columns_with_a_reason_column() -> None:
    settings = service(modelId=CLAUDE, extractFields=["label", "confidence", "tags", "note"])
    assert result_columns(settings) == ["output_text", "label", "confidence", "tags", "note", "extract_error"]
    text = json.dumps({"label": "spam", "confidence": 0.9, "tags": ["a", "é"], "note": None, "other": 1})
    row = AnswerReader(settings).row({"content": [{"type": "text", "text": text}]})
    assert row == [text, "spam", "0.9", '["a", "é"]', "", ""]


@pytest.mark.parametrize(
    ("text", "values", "reason"),
    [
        ('{"a": "x", "b": 2}', ["x", "2"], ""),
        ('```json\n{"a": "x", "b": 2}\n```', ["x", "2"], ""),  # the fence models often write
        ('```\n{"a": "x"}\n```', ["x", ""], "the answer has no field b"),
        ('{"c": 1}', ["", ""], "the answer has no field a, b"),
        ('Sure! Here it is: {"a": 1}', ["", ""], "the answer is not JSON (Expecting value at line 1 column 1)"),
        ("[1, 2]", ["", ""], "the answer is JSON but not an object (a list)"),
        ("", ["", ""], "the answer has no text to read fields from"),
        (None, ["", ""], "the answer has no text to read fields from"),
    ],
)
def test_an_answer_that_is_not_the_json_asked_for_leaves_blanks_and_says_why(
    text: str | None, values: list[str], reason: str
) -> None:
    assert extract_fields(text, ["a", "b"]) == (values, reason)
