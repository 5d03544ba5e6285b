"""Prepare's promises on bad inputs: every record is sent or rejected with file, line and reason."""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from pathlib import Path

import pytest
from batchline.adapters.sagemaker import SageMakerCsvEncoder
from batchline.config import SageMakerSettings
from batchline.errors import InputRejected
from batchline.prepare import ERROR_COLUMNS, PrepareResult, RejectWriter, StagedPart, prepare_records
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SOURCE = "s3://inbox/p/upload.csv"


@dataclass
class Prepared:
    result: PrepareResult
    staged: list[list[str]]
    lines: list[int]
    rejected: list[dict[str, str]]
    part_sizes: list[int]


def run_prepare(data: bytes, tmp_path: Path, *, records_per_file: int = 1000, key: str = "id") -> Prepared:
    encoder = SageMakerCsvEncoder(
        SageMakerSettings(provider="sagemaker", model_name="m", records_per_file=records_per_file)
    )
    staged: list[list[str]] = []
    lines: list[int] = []
    sizes: list[int] = []

    def on_part(part: StagedPart) -> None:
        staged.extend(csv.reader(io.StringIO(Path(part.path).read_text(encoding="utf-8"))))
        index = list(csv.reader(io.StringIO(Path(part.index_path).read_text(encoding="utf-8"))))
        lines.extend(int(line) for line, _key, _record_id in index)
        sizes.append(part.records)

    rejected_text = io.StringIO()
    result = prepare_records(
        lambda: io.BytesIO(data),
        source_name=SOURCE,
        key_column=key,
        encoder=encoder,
        rejects=RejectWriter(rejected_text, SOURCE),
        on_part=on_part,
        workdir=str(tmp_path),
    )
    rejected = list(csv.DictReader(io.StringIO(rejected_text.getvalue())))
    return Prepared(result, staged, lines, rejected, sizes)


def test_key_moves_first_and_header_is_stripped(tmp_path: Path) -> None:
    out = run_prepare(b"a,id,b\n1,k1,2\n3,k2,4\n", tmp_path)
    assert out.staged == [["k1", "1", "2"], ["k2", "3", "4"]]
    assert out.result.staging == {"keyHeader": "id", "featureColumns": ["a", "b"]}
    assert out.lines == [2, 3]
    assert out.result.counts == {"input": 2, "sent": 2, "rejected": 0}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"id,x\n", "has a header but no records"),
        (b"name,x\nk,1\n", "key column 'id' is not in the header (columns: name, x)"),
        (b"id,x,x\nk,1,2\n", "repeats column names: x"),
    ],
)
def test_whole_file_problems_fail_the_run_naming_the_file(data: bytes, message: str, tmp_path: Path) -> None:
    with pytest.raises(InputRejected) as error:
        run_prepare(data, tmp_path)
    assert SOURCE in str(error.value)
    assert message in str(error.value)


def test_blank_and_duplicate_keys_are_rejected_with_line_and_reason(tmp_path: Path) -> None:
    out = run_prepare(b"id,x\nk1,1\n ,2\nk1,3\nk2,4\n", tmp_path)
    assert [row[0] for row in out.staged] == ["k1", "k2"]
    assert [(r["line"], r["reason"]) for r in out.rejected] == [
        ("3", "blank key"),
        ("4", "duplicate key 'k1' (first seen on line 2)"),
    ]
    assert all(r["source_file"] == SOURCE and r["stage"] == "prepare" for r in out.rejected)
    assert out.rejected[1]["record"] == "k1,3"
    assert list(out.rejected[0]) == ERROR_COLUMNS


def test_ragged_rows_are_rejected(tmp_path: Path) -> None:
    out = run_prepare(b"id,x\nk1,1,extra\nk2\nk3,3\n", tmp_path)
    assert [row[0] for row in out.staged] == ["k3"]
    assert [r["reason"] for r in out.rejected] == [
        "row has 3 fields, the header has 2",
        "row has 1 fields, the header has 2",
    ]


def test_quoted_commas_survive_and_quoted_newlines_are_refused_for_line_split(tmp_path: Path) -> None:
    out = run_prepare(b'id,x\n"k,1",1\n"k2","two\nlines"\nk3,3\n', tmp_path)
    assert out.staged == [["k,1", "1"], ["k3", "3"]]
    assert out.lines == [2, 5]  # line numbers count physical lines, as an editor shows them
    assert out.rejected[0]["line"] == "3"
    assert "line break" in out.rejected[0]["reason"]


def test_crlf_bom_and_gzip_are_read_transparently(tmp_path: Path) -> None:
    data = "\ufeffid,x\r\nk1,1\r\nk2,2\r\n".encode()
    (tmp_path / "plain").mkdir()
    (tmp_path / "zipped").mkdir()
    plain = run_prepare(data, tmp_path / "plain")
    zipped = run_prepare(gzip.compress(data), tmp_path / "zipped")
    assert plain.staged == zipped.staged == [["k1", "1"], ["k2", "2"]]
    assert plain.result.key_header == "id"


def test_non_utf8_bytes_reject_the_row_not_the_file(tmp_path: Path) -> None:
    out = run_prepare(b"id,x\nk1,caf\xe9\nk2,ok\n", tmp_path)
    assert out.staged == [["k2", "ok"]]
    assert out.rejected[0]["reason"] == "row contains bytes that are not valid UTF-8"
    assert out.rejected[0]["record"] == "k1,caf\ufffd"


def test_all_rows_rejected_still_returns_counts(tmp_path: Path) -> None:
    out = run_prepare(b"id,x\n,1\n,2\n", tmp_path)
    assert out.result.counts == {"input": 2, "sent": 0, "rejected": 2}


def test_input_is_split_into_parts_of_the_configured_size(tmp_path: Path) -> None:
    rows = "".join(f"k{i},{i}\n" for i in range(7))
    out = run_prepare(("id,x\n" + rows).encode(), tmp_path, records_per_file=3)
    assert out.part_sizes == [3, 3, 1]
    assert len(out.staged) == 7


def test_blank_lines_are_not_records(tmp_path: Path) -> None:
    out = run_prepare(b"id,x\nk1,1\n\n\nk2,2\n", tmp_path)
    assert out.result.counts == {"input": 2, "sent": 2, "rejected": 0}


cell = st.text(alphabet=st.sampled_from(list('ab,"\n\r ;é1')), max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(cell, min_size=1, max_size=4), min_size=1, max_size=25))
def test_every_generated_record_is_sent_or_rejected(
    rows: list[list[str]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "f1", "f2"])
    writer.writerows(rows)
    data = buffer.getvalue().encode()
    try:
        out = run_prepare(data, tmp_path_factory.mktemp("fuzz"))
    except InputRejected as error:
        assert "no records" in str(error)  # only possible when every generated row was blank
        return
    result = out.result
    assert result.input_records == result.sent + result.rejected
    assert len(out.staged) == result.sent and len(out.rejected) == result.rejected
    assert len({row[0] for row in out.staged}) == len(out.staged)  # keys sent are unique


def run_jsonl(data: bytes, tmp_path: Path) -> Prepared:
    encoder = SageMakerCsvEncoder(SageMakerSettings(provider="sagemaker", model_name="m"))
    staged: list[list[str]] = []
    rejected_text = io.StringIO()

    def on_part(part: StagedPart) -> None:
        staged.extend(csv.reader(io.StringIO(Path(part.path).read_text(encoding="utf-8"))))

    result = prepare_records(
        lambda: io.BytesIO(data),
        source_name="s3://inbox/p/upload.jsonl",
        key_column="id",
        encoder=encoder,
        rejects=RejectWriter(rejected_text, SOURCE),
        on_part=on_part,
        workdir=str(tmp_path),
    )
    return Prepared(result, staged, [], list(csv.DictReader(io.StringIO(rejected_text.getvalue()))), [])


def test_json_lines_are_read_field_by_field_and_bad_lines_rejected(tmp_path: Path) -> None:
    data = b'{"id": "k1", "x": 1.5}\n[1, 2]\n{"id": "k2", "x": null}\nnot json\n{"id": "k3"}\n\n{"x": 2, "id": "k4"}\n'
    out = run_jsonl(data, tmp_path)
    assert out.staged == [["k1", "1.5"], ["k2", ""], ["k4", "2"]]
    assert [(r["line"], r["reason"].split(":")[0]) for r in out.rejected] == [
        ("2", "not a JSON object but list"),
        ("4", "not valid JSON"),
        ("5", "fields differ from the first record (extra"),
    ]
    assert out.rejected[0]["record"] == '"[1, 2]"'
    assert out.result.counts == {"input": 6, "sent": 3, "rejected": 3}


def test_json_lines_whose_first_record_is_unusable_fail_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputRejected, match="line 1 \\(first record\\) is not a JSON object"):
        run_jsonl(b'"just a string"\n{"id": "k"}\n', tmp_path)


def test_a_single_enormous_line_fails_the_file_naming_the_line(tmp_path: Path) -> None:
    huge = b"id,x\nk1,1\nk2," + b"y" * (17 * 1024 * 1024) + b"\n"
    with pytest.raises(InputRejected, match="line 3: cannot be parsed as CSV: field larger than field limit"):
        run_prepare(huge, tmp_path)


def test_every_repeat_of_a_key_names_the_first_line_and_only_the_first_is_sent(tmp_path: Path) -> None:
    out = run_prepare(b"id,x\nk1,1\nk2,2\nk1,3\nk1,4\nk2,5\n", tmp_path, records_per_file=1)
    assert out.staged == [["k1", "1"], ["k2", "2"]]
    assert out.part_sizes == [1, 1]
    assert [(r["line"], r["reason"]) for r in out.rejected] == [
        ("4", "duplicate key 'k1' (first seen on line 2)"),
        ("5", "duplicate key 'k1' (first seen on line 2)"),
        ("6", "duplicate key 'k2' (first seen on line 3)"),
    ]
    assert out.result.counts == {"input": 5, "sent": 2, "rejected": 3}


def test_a_key_refused_by_the_encoder_still_counts_as_seen(tmp_path: Path) -> None:
    # The first k1 passes the row checks but SageMaker cannot carry its line break; the second k1 is still a repeat.
    out = run_prepare(b'id,x\nk1,"a\nb"\nk1,2\n', tmp_path)
    assert out.staged == []
    assert [(r["line"], r["reason"].split(",")[0]) for r in out.rejected] == [
        ("2", "a cell contains a line break"),
        ("4", "duplicate key 'k1' (first seen on line 2)"),
    ]


def test_a_csv_error_late_in_the_file_stages_nothing(tmp_path: Path) -> None:
    rows = "".join(f"k{i},{i}\n" for i in range(10))
    with pytest.raises(InputRejected, match="line 12: cannot be parsed as CSV"):
        run_prepare(("id,x\n" + rows + 'k,"open\n').encode(), tmp_path, records_per_file=2)
    assert list(tmp_path.iterdir()) == []  # no part was written: the first read found the error
