"""Template-encoded JSON lines are byte for byte what json.dumps writes, or the template is refused."""

import csv
import io
import json
from typing import Any

import pytest
from batchline.adapters.bedrock import model_input
from batchline.config import BedrockSettings
from batchline.csvsafe import format_row
from batchline.lines import CsvLineWriter, JsonLineTemplate
from hypothesis import given
from hypothesis import strategies as st

# Any text a record can hold: control characters, quotes, backslashes, non-BMP characters.
TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=40)


def bedrock(**fields: Any) -> BedrockSettings:
    return BedrockSettings.model_validate(
        {"provider": "bedrock", "modelId": "m", "roleArn": "arn:aws:iam::123456789012:role/r", "promptColumn": "p"}
        | fields
    )


FAMILIES = {
    "anthropic": bedrock(modelFamily="anthropic", temperature=0.5),
    "titan": bedrock(modelFamily="titan"),
    "nova": bedrock(modelFamily="nova"),
    "converse": bedrock(invocationType="Converse"),
    "custom": bedrock(modelFamily="custom", bodyTemplate={"inputs": "{prompt}", "parameters": {"max_new_tokens": 9}}),
}


def dumps_line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) + "\n"


@given(key=TEXT)
def test_a_personalize_query_line_is_what_json_dumps_writes(key: str) -> None:
    template = JsonLineTemplate.compile(lambda k: {"userId": k}, 1)
    assert template is not None
    assert template.render(key) == dumps_line({"userId": key})


@pytest.mark.parametrize("family", sorted(FAMILIES))
@given(record_id=TEXT, prompt=TEXT)
def test_a_bedrock_line_is_what_json_dumps_writes_for_every_body_family(
    family: str, record_id: str, prompt: str
) -> None:
    settings = FAMILIES[family]
    resolved = settings.resolved_family

    def build(rid: str, text: str) -> dict[str, Any]:
        return {"recordId": rid, "modelInput": model_input(resolved, text, settings)}

    template = JsonLineTemplate.compile(build, 2)
    assert template is not None
    assert template.render(record_id, prompt) == dumps_line(build(record_id, prompt))


@pytest.mark.parametrize(
    "build",
    [
        lambda text: {"inputs": f"Human: {text}\n\nAssistant:"},  # the value inside a longer string
        lambda text: {"a": text, "b": text},  # the value twice
        lambda text: {"n": len(text)},  # not a string of the line at all
    ],
)
def test_a_shape_where_the_value_is_not_one_whole_string_gets_no_template(build: Any) -> None:
    assert JsonLineTemplate.compile(build, 1) is None


def read_back(line: str) -> list[str]:
    """The cells a CSV reader finds in one written line: the promise is that it is exactly one record."""
    rows = list(csv.reader(io.StringIO(line, newline=""), strict=True))
    assert len(rows) == 1, rows
    return rows[0]


# Cells drawn from the characters that matter to csv (delimiter, quote, line breaks, NUL, spaces) and any text.
CELL = st.one_of(st.text(alphabet=st.sampled_from(list(',"\r\n\x00 ab')), max_size=6), TEXT)


@given(cells=st.lists(CELL, min_size=1, max_size=6))
def test_a_csv_line_reads_back_as_the_same_cells_in_one_record(cells: list[str]) -> None:
    line = CsvLineWriter().line(cells)
    assert line == format_row(cells)
    assert read_back(line) == cells


@pytest.mark.parametrize(
    "cells",
    [[""], ["", ""], ["a,b", "c"], ['say "hi"'], ["two\nlines"], ["\r"], ["u\rv", "a"], [" padded "], ["é", "漢字"]],
)
def test_the_cells_csv_treats_specially_are_quoted_on_every_python_version(cells: list[str]) -> None:
    writer = CsvLineWriter()
    assert read_back(writer.line(cells)) == cells
    assert writer.line(["plain", "row"]) == "plain,row\n"  # the slow path leaves nothing behind for the next line


def test_a_lone_carriage_return_is_quoted_although_python_3_11_csv_writer_does_not() -> None:
    assert CsvLineWriter().line(["u\rv", "a"]) == '"u\rv",a\n'
