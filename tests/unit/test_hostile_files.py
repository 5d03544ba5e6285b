"""Hostile but legal files through Prepare: each case was found failing a whole run, losing or merging records.

The rule they check: a bad record is one row of errors.csv; a file fails only when it cannot be read as a whole,
and then the error names the file, the line where reading stopped and what is wrong, in words; nothing stays
staged after a failure.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import tempfile
from pathlib import Path

import pytest
from batchline.adapters.bedrock import BedrockJsonEncoder
from batchline.config import BedrockSettings
from batchline.errors import InputRejected
from batchline.prepare import RejectWriter, StagedPart, chunk_parts, prepare_records
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_prepare import Parts, run_jsonl, run_prepare


def test_a_key_with_a_lone_cr_is_rejected_and_every_index_line_reads_back_as_one_record(tmp_path: Path) -> None:
    out = run_prepare(b'id,x\n"u\rv",1\nok,2\n"a\r\nb",3\n', tmp_path)
    assert out.staged == [["ok", "2"]]
    # A lone CR ends a line as an editor shows it, so the record after "u\rv" starts on line 4.
    assert [(r["line"], r["key"]) for r in out.rejected] == [("2", "u\rv"), ("5", "a\r\nb")]
    assert out.result.counts == {"input": 3, "sent": 1, "rejected": 2}


def test_a_repeated_field_in_a_json_object_is_refused_not_silently_keyed_by_its_last_value(tmp_path: Path) -> None:
    out = run_jsonl(b'{"id": "a", "x": 1}\n{"id": "b", "id": "c", "x": 2}\n', tmp_path)
    assert out.staged == [["a", "1"]]
    assert [(r["line"], r["reason"]) for r in out.rejected] == [
        ("2", "the object repeats the field 'id', so its value is ambiguous")
    ]
    assert out.rejected[0]["record"] == '{"id": "b", "id": "c", "x": 2}'


def test_json_field_names_are_compared_without_surrounding_spaces_as_csv_headers_are(tmp_path: Path) -> None:
    out = run_jsonl(b'{" id ": "a", "x": 1}\n{"id": "b", " x": 2}\n{"id": "c", "x": 3, "x ": 4}\n', tmp_path)
    assert out.staged == [["a", "1"], ["b", "2"]]
    assert [r["line"] for r in out.rejected] == ["3"]
    assert "surrounding spaces" in out.rejected[0]["reason"]


def test_a_cr_used_as_json_whitespace_does_not_split_an_object(tmp_path: Path) -> None:
    out = run_jsonl(b'{"id": "a",\r"x": 1}\r\n{"id": "b",\r\r"x": 2}\n', tmp_path)
    assert out.staged == [["a", "1"], ["b", "2"]]
    assert out.lines == [1, 2]
    assert out.result.counts == {"input": 2, "sent": 2, "rejected": 0}


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085"])
def test_unicode_line_separators_inside_json_strings_stay_inside_their_record(tmp_path: Path, separator: str) -> None:
    data = f'{{"id": "a{separator}b", "x": "1"}}\n{{"id": "c", "x": "2{separator}"}}\n'.encode()
    out = run_jsonl(data, tmp_path)
    assert out.staged == [[f"a{separator}b", "1"], ["c", f"2{separator}"]]
    assert out.result.input_records == 2


@pytest.mark.parametrize("control", ["\x0b", "\x0c", "\x1c", "\r"])
def test_a_raw_control_character_in_a_json_string_rejects_its_one_record(tmp_path: Path, control: str) -> None:
    data = f'{{"id": "a", "x": "1"}}\n{{"id": "b{control}c", "x": "2"}}\n{{"id": "d", "x": "3"}}\n'.encode()
    out = run_jsonl(data, tmp_path)
    assert out.staged == [["a", "1"], ["d", "3"]]
    assert [(r["line"], r["reason"].split(":")[0]) for r in out.rejected] == [("2", "not valid JSON")]


def test_the_record_column_of_a_rejected_json_line_is_the_line_as_written(tmp_path: Path) -> None:
    out = run_jsonl(b'{"id": "a", "x": 1}\n{"id": "", "x": "say \\"hi\\", twice"}\n', tmp_path)
    assert out.rejected[0]["record"] == '{"id": "", "x": "say \\"hi\\", twice"}'


def big_csv(rows: int) -> bytes:
    return b"id,x\n" + b"".join(f"k{n},{n}\n".encode() for n in range(rows))


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda data: data[: len(data) // 2], "cut short"),
        (lambda data: data + b"trailing junk", "not gzip"),
    ],
)
def test_a_damaged_gzip_fails_naming_the_file_and_line_in_words_and_leaves_nothing_staged(
    tmp_path: Path, damage, words: str
) -> None:
    parts = Parts()
    data = damage(gzip.compress(big_csv(20_000), mtime=0))
    with pytest.raises(InputRejected) as raised:
        run_prepare(data, tmp_path, records_per_file=100, parts=parts, source_name="s3://inbox/p/upload.csv.gz")
    message = str(raised.value)
    assert message.startswith("s3://inbox/p/upload.csv.gz: reading stopped after line ")
    assert words in message and "Error" not in message
    assert parts.texts == [] and parts.discards >= 1
    if words == "cut short":
        assert parts.added > 0  # parts had been staged before the damage was reached, and were discarded


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\xef\xbb\xbf\xef\xbb\xbfid,x\nk,1\n", "byte order mark (U+FEFF) after the first"),
        ("id,x\nk,1\n".encode("utf-16"), "UTF-16 byte order mark"),
        ("id,x\nk,1\n".encode("utf-16-le"), "looks like UTF-16 without a byte order mark"),
        ("id,x\nk,1\n".encode("utf-16-be"), "looks like UTF-16 without a byte order mark"),
    ],
)
def test_a_file_that_is_not_utf8_says_so_in_words(tmp_path: Path, data: bytes, words: str) -> None:
    with pytest.raises(InputRejected) as raised:
        run_prepare(data, tmp_path)
    assert words in str(raised.value)
    assert "\ufeff" not in str(raised.value)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b'\xef\xbb\xbf\xef\xbb\xbf{"id": "k"}\n', "byte order mark (U+FEFF) after the first"),
        ('{"id": "k"}\n'.encode("utf-16-le"), "looks like UTF-16 without a byte order mark"),
    ],
)
def test_a_json_lines_file_that_is_not_utf8_says_so_in_words(tmp_path: Path, data: bytes, words: str) -> None:
    with pytest.raises(InputRejected) as raised:
        run_jsonl(data, tmp_path)
    assert words in str(raised.value)


def test_every_written_error_row_reads_back_as_one_record(tmp_path: Path) -> None:
    out = run_prepare(b'id,x\n"=x\r",1\n"\'=x",2\n,3\n', tmp_path)
    rows = list(csv.reader(io.StringIO(out.rejected_text, newline=""), strict=True))
    assert len(rows) == 1 + out.result.rejected


def bedrock_encoder(minimum: int, per_file: int, per_job: int) -> BedrockJsonEncoder:
    settings = BedrockSettings(
        provider="bedrock",
        model_id="amazon.nova-lite-v1:0",
        role_arn="arn:aws:iam::123456789012:role/r",
        prompt_column="text",
        min_records_per_job=minimum,
        max_records_per_job=per_job,
        records_per_file=per_file,
    )
    return BedrockJsonEncoder(settings)


def stage(encoder: BedrockJsonEncoder, records: int, tmp_path: Path) -> tuple[Parts, list[list[int]]]:
    data = "id,text\n" + "".join(f"k{n},prompt {n}\n" for n in range(records))
    parts = Parts()
    result = prepare_records(
        lambda: io.BytesIO(data.encode()),
        source_name="s3://inbox/p/prompts.csv",
        key_column="id",
        encoder=encoder,
        rejects=RejectWriter(io.StringIO(), "s3://inbox/p/prompts.csv"),
        parts=parts,
        workdir=str(tmp_path),
    )
    assert result.sent == records
    staged = [StagedPart(f"p{n}", "", "", count, 0) for n, count in enumerate(parts.records)]
    return parts, chunk_parts(staged, encoder.limits, "s3://inbox/p/prompts.csv")


def test_50050_bedrock_records_are_split_into_two_jobs_over_the_minimum(tmp_path: Path) -> None:
    parts, groups = stage(bedrock_encoder(100, 50_000, 50_000), 50_050, tmp_path)
    assert parts.records == [25_025, 25_025]
    assert groups == [[0], [1]]
    # Each part's index names the same records, in the same order, as its data.
    for text, index in zip(parts.texts, parts.indexes, strict=True):
        ids = [json.loads(line)["recordId"] for line in text.splitlines()]
        assert ids == [row[2] for row in csv.reader(io.StringIO(index, newline=""))]
    keys = [row[1] for index in parts.indexes for row in csv.reader(io.StringIO(index, newline=""))]
    assert keys == [f"k{n}" for n in range(50_050)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    minimum=st.integers(min_value=1, max_value=6),
    per_file_factor=st.integers(min_value=2, max_value=4),
    jobs_factor=st.integers(min_value=1, max_value=3),
    extra=st.integers(min_value=0, max_value=60),
)
def test_any_count_at_or_over_the_minimum_is_split_into_jobs_within_bounds(
    tmp_path: Path, minimum: int, per_file_factor: int, jobs_factor: int, extra: int
) -> None:
    per_file = minimum * per_file_factor
    per_job = per_file * jobs_factor
    encoder = bedrock_encoder(minimum, per_file, per_job)
    with tempfile.TemporaryDirectory(dir=tmp_path) as workdir:
        parts, groups = stage(encoder, minimum + extra, Path(workdir))
    assert sum(parts.records) == minimum + extra
    assert all(count <= per_file for count in parts.records)
    for group in groups:
        assert minimum <= sum(parts.records[i] for i in group) <= per_job


def test_a_nul_inside_a_record_is_a_character_of_that_record_not_a_sign_of_utf16(tmp_path: Path) -> None:
    out = run_prepare(b"id,x\nn\x00ul,1\nok,2\n", tmp_path)
    assert [row[0] for row in out.staged] == ["n\x00ul", "ok"]
