"""The smallest file of each kind the property tests found breaking a run, losing a record or writing a CSV that
does not read back (issue 13), as a plain test: each failed before its fix (as a strict xfail) and passes since.
A kind that breaks again goes in known_broken.py, with its test marked xfail(strict=True) until it is fixed.
"""

from __future__ import annotations

import gzip
import json

import pytest

from tests.property.checks import check_run, parse_strict
from tests.property.flow_driver import FlowDriver
from tests.property.hostile import Record, plain_record, render_csv, render_jsonl
from tests.property.services import SHAPES, pipeline_name


def run_records(
    driver: FlowDriver, provider: str, records: list[Record], *, jsonl: bool = False, **checks: bool
) -> None:
    """GIVEN a plain anchor record and the records given, WHEN the file runs, THEN promises 1 and 2 hold."""
    shape = SHAPES[provider]
    anchor = plain_record(shape, "anchor")
    drawn = [Record(anchor.key, anchor.values, anchor=True), *records]
    upload = render_jsonl(shape, drawn) if jsonl else render_csv(shape, drawn)
    outcome = driver.run(pipeline_name(provider, cut=False), upload.name, upload.body)
    check_run(upload, outcome, provider=provider, **checks)


LONE_CR = (
    "lone CR in a key: prepare.PartWriter writes the staged index with csv.writer, which leaves a bare CR unquoted"
)


@pytest.mark.parametrize(
    "provider",
    [
        "personalize",
        "vertex",
        "bedrock",
        "amazonml",
        "sagemaker",  # refused in Prepare (a line break SageMaker's line split cannot carry): one errors.csv row
    ],
)
def test_a_key_with_a_lone_cr_is_one_record(driver: FlowDriver, provider: str) -> None:
    run_records(driver, provider, [plain_record(SHAPES[provider], "u\rv")])


def test_a_personalize_key_with_crlf_is_one_record(driver: FlowDriver) -> None:
    run_records(driver, "personalize", [plain_record(SHAPES["personalize"], "a\r\nb")])


def test_the_record_column_of_a_rejected_row_with_a_line_break_reads_back(driver: FlowDriver) -> None:
    # SageMaker refuses any cell with a line break in Prepare: the row goes to errors.csv with its record.
    run_records(driver, "sagemaker", [plain_record(SHAPES["sagemaker"], "a\nb")], record_line_breaks=True)


def test_an_amazonml_key_with_lf_is_one_record(driver: FlowDriver) -> None:
    run_records(driver, "amazonml", [plain_record(SHAPES["amazonml"], "a\nb")])


@pytest.mark.parametrize("character", ["\u2028", "\x85"], ids=["U+2028", "U+0085"])
@pytest.mark.parametrize(
    ("provider", "column"),
    [
        ("personalize", "userId"),
        ("bedrock", "prompt"),
        ("vertex", "id"),
        ("vertex", "note"),
    ],
)
def test_unicode_line_separators_stay_inside_their_record(
    driver: FlowDriver, provider: str, column: str, character: str
) -> None:
    shape = SHAPES[provider]
    if column == shape.key:
        record = plain_record(shape, f"k{character}x")
    else:
        record = plain_record(shape, "k1", **{column: f"a{character}b"})
    run_records(driver, provider, [record])


def test_bedrock_keys_shaped_like_record_ids_stay_distinct(driver: FlowDriver) -> None:
    shape = SHAPES["bedrock"]
    # The anchor is record 0 (its own ID): "a-0" is sent second and gets R00000000001, the next key's own ID.
    run_records(driver, "bedrock", [plain_record(shape, "a-0"), plain_record(shape, "R00000000001")])


@pytest.mark.parametrize("provider", list(SHAPES))
def test_a_formula_key_and_its_escaped_form_stay_distinct(driver: FlowDriver, provider: str) -> None:
    shape = SHAPES[provider]
    keys = ["=x", "'=x", "''=x", "@SUM(1)", "'", "-", "-1", "+3", "\t1"]
    run_records(driver, provider, [plain_record(shape, key) for key in keys])


@pytest.mark.parametrize(
    ("provider", "column", "trigger"),
    [("personalize", "userId", "error"), ("personalize", "userId", "dropped"), ("vertex", "note", "bad")],
    ids=["personalize-error-line", "personalize-missing-line", "vertex-error-line"],
)
def test_service_failures_write_the_key_spreadsheet_safe(
    driver: FlowDriver, provider: str, column: str, trigger: str
) -> None:
    # The emulators' hooks: a value with "error"/"bad" gets an error line, "dropped" no line at all.
    shape = SHAPES[provider]
    keys = [f"=HYPERLINK({trigger})", f"@SUM({trigger})", f"\t{trigger}", f"'{trigger}"]
    records = [
        plain_record(shape, key, **({column: f"{trigger} {n}"} if column != shape.key else {}))
        for n, key in enumerate(keys)
    ]
    run_records(driver, provider, records)


def test_sagemaker_bad_feature_fails_only_its_record(driver: FlowDriver) -> None:
    run_records(driver, "sagemaker", [plain_record(SHAPES["sagemaker"], "k1", f1="abc")])


def test_sagemaker_repeated_key_is_one_errors_row(driver: FlowDriver) -> None:
    # Seven records make three parts on the first read; the second stages one and deletes the other two, whose
    # delete markers the emulator then reads (ReportFailure dies on them too: the event has no counts).
    shape = SHAPES["sagemaker"]
    keys = ["k"] * 6
    run_records(driver, "sagemaker", [plain_record(shape, key) for key in keys])


@pytest.mark.parametrize("value", ["NaN", "inf", "1e400", "-Infinity"])
def test_vertex_non_finite_numbers_are_not_staged_as_invalid_json(driver: FlowDriver, value: str) -> None:
    run_records(driver, "vertex", [plain_record(SHAPES["vertex"], "k1", f1=value)])


def test_amazonml_large_negative_feature_does_not_fail_the_run(driver: FlowDriver) -> None:
    run_records(driver, "amazonml", [plain_record(SHAPES["amazonml"], "k1", monthly_spend="-1e6")])


# --- JSON lines: the cases, checked directly -------------------------------------------------


def _jsonl_run(driver: FlowDriver, lines: list[str]) -> tuple[dict, list[list[str]], list[list[str]]]:
    body = "".join(lines).encode()
    outcome = driver.run(pipeline_name("bedrock", cut=False), "upload.jsonl", body)
    assert outcome.failed_step is None, outcome.error
    errors = parse_strict("errors.csv", outcome.csvs["errors.csv"], 6)[1:] if "errors.csv" in outcome.csvs else []
    predictions = parse_strict("predictions.csv", outcome.csvs["predictions.csv"])[1:]
    return outcome.detail["counts"], predictions, errors


def test_a_json_object_with_a_repeated_field_is_refused(driver: FlowDriver) -> None:
    counts, predictions, errors = _jsonl_run(
        driver, ['{"id":"a","prompt":"p"}\n', '{"id":"b","id":"c","prompt":"p"}\n']
    )
    assert [row[0] for row in predictions] == ["a"]
    assert [row[1] for row in errors] == ["2"]


def test_a_cr_between_json_tokens_does_not_split_the_record(driver: FlowDriver) -> None:
    counts, predictions, _ = _jsonl_run(driver, ['{"id":"a","prompt":"p"}\n', '{"id":"b",\r"prompt":"p"}\n'])
    assert counts["input"] == 2
    assert sorted(row[0] for row in predictions) == ["a", "b"]


def test_json_field_names_are_stripped_like_csv_headers(driver: FlowDriver) -> None:
    counts, predictions, _ = _jsonl_run(driver, ['{" id ":"a","prompt":"p"}\n', '{" id ":"b","prompt":"p"}\n'])
    assert sorted(row[0] for row in predictions) == ["a", "b"]


def test_the_record_column_of_a_bad_json_line_is_the_line(driver: FlowDriver) -> None:
    bad = '{"id":"b","prompt":"p",}'
    _, _, errors = _jsonl_run(driver, ['{"id":"a","prompt":"p"}\n', bad + "\n"])
    assert [(row[1], row[5]) for row in errors] == [("2", bad)]


def test_a_json_record_with_a_blank_key_is_one_errors_row(driver: FlowDriver) -> None:
    counts, predictions, errors = _jsonl_run(
        driver, ['{"id":"a","prompt":"p"}\n', json.dumps({"id": " ", "prompt": "p"}) + "\n"]
    )
    assert counts == {**counts, "input": 2, "predicted": 1, "rejected": 1}
    assert [row[1] for row in errors] == ["2"]


@pytest.mark.parametrize(
    "provider",
    [
        "vertex",
        "personalize",
    ],
)
def test_a_collect_unit_whose_only_key_holds_crlf_is_read_back(driver: FlowDriver, provider: str) -> None:
    # The anchor and two plain keys, then the CRLF key last: the last collect unit's keys file holds only it.
    shape = SHAPES[provider]
    run_records(driver, provider, [plain_record(shape, key) for key in ["k1", "k2", "'\r\n"]])


def test_a_truncated_gzip_fails_in_words_and_leaves_nothing_staged(driver: FlowDriver) -> None:
    rows = "".join(f"k{n},plain words\n" for n in range(2000))
    body = gzip.compress(("id,prompt\n" + rows).encode())
    outcome = driver.run(pipeline_name("bedrock", cut=False), "upload.csv.gz", body[: len(body) // 2])
    cause = outcome.detail.get("error", {}).get("cause", "")
    assert outcome.status == "FAILED" and "upload.csv.gz" in cause and "line" in cause, outcome.detail
    assert "EOFError" not in cause and "Compressed file ended" not in cause, cause
    run_id = outcome.detail["runId"]
    assert driver.staged(pipeline_name("bedrock", cut=False), run_id) == {}


@pytest.mark.parametrize("value", ["1_0", "\u0661\u0662"], ids=["underscore", "arabic-indic-digits"])
def test_vertex_numbers_python_reads_but_csv_does_not_are_refused(driver: FlowDriver, value: str) -> None:
    shape = SHAPES["vertex"]
    upload = render_csv(shape, [plain_record(shape, "anchor"), plain_record(shape, "k1", f1=value)])
    outcome = driver.run(pipeline_name("vertex", cut=False), upload.name, upload.body)
    errors = parse_strict("errors.csv", outcome.csvs.get("errors.csv", b"x\n"))
    assert [row[2] for row in errors[1:]] == ["k1"], outcome.staged
