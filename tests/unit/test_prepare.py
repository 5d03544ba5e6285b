"""Prepare's promises on bad inputs: every record is sent or rejected with file, line and reason."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from batchline import prepare
from batchline.adapters.sagemaker import SageMakerCsvEncoder
from batchline.config import SageMakerSettings
from batchline.errors import InputRejected, InputTooLarge
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
    parts: Parts
    rejected_text: str
    opens: int


class Parts:
    """A PartSink keeping each part's text and index in memory and removing its files, as the flow does."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.indexes: list[str] = []
        self.records: list[int] = []
        self.added = self.discards = 0

    def add(self, part: StagedPart) -> None:
        self.texts.append(Path(part.path).read_text(encoding="utf-8"))
        self.indexes.append(Path(part.index_path).read_text(encoding="utf-8"))
        self.records.append(part.records)
        self.added += 1
        Path(part.path).unlink()
        Path(part.index_path).unlink()

    def discard(self) -> None:
        self.texts, self.indexes, self.records = [], [], []
        self.discards += 1


class Source:
    """open_source for prepare_records: counts the reads; ``then`` (if given) is what every later read sees."""

    def __init__(self, data: bytes, then: bytes | None = None) -> None:
        self.data, self.then, self.opens = data, then, 0

    def __call__(self) -> io.BytesIO:
        self.opens += 1
        return io.BytesIO(self.data if self.opens == 1 or self.then is None else self.then)


def run_prepare(
    data: bytes | Source,
    tmp_path: Path,
    *,
    records_per_file: int = 1000,
    key: str = "id",
    source_name: str = SOURCE,
    parts: Parts | None = None,
    rejected_text: io.StringIO | None = None,
    time_left: Callable[[], float] | None = None,
) -> Prepared:
    encoder = SageMakerCsvEncoder(
        SageMakerSettings(provider="sagemaker", model_name="m", records_per_file=records_per_file)
    )
    source = data if isinstance(data, Source) else Source(data)
    parts = Parts() if parts is None else parts
    rejected_text = io.StringIO() if rejected_text is None else rejected_text
    result = prepare_records(
        source,
        source_name=source_name,
        key_column=key,
        encoder=encoder,
        rejects=RejectWriter(rejected_text, SOURCE),
        parts=parts,
        workdir=str(tmp_path),
        time_left=time_left,
    )
    staged = [row for text in parts.texts for row in csv.reader(io.StringIO(text))]
    lines = [int(row[0]) for index in parts.indexes for row in csv.reader(io.StringIO(index))]
    rejected = list(csv.DictReader(io.StringIO(rejected_text.getvalue())))
    return Prepared(result, staged, lines, rejected, parts.records, parts, rejected_text.getvalue(), source.opens)


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
    return run_prepare(data, tmp_path, source_name="s3://inbox/p/upload.jsonl")


def test_json_lines_are_read_field_by_field_and_bad_lines_rejected(tmp_path: Path) -> None:
    data = b'{"id": "k1", "x": 1.5}\n[1, 2]\n{"id": "k2", "x": null}\nnot json\n{"id": "k3"}\n\n{"x": 2, "id": "k4"}\n'
    out = run_jsonl(data, tmp_path)
    assert out.staged == [["k1", "1.5"], ["k2", ""], ["k4", "2"]]
    assert [(r["line"], r["reason"].split(":")[0]) for r in out.rejected] == [
        ("2", "not a JSON object but list"),
        ("4", "not valid JSON"),
        ("5", "fields differ from the first record (extra"),
    ]
    assert out.rejected[0]["record"] == "[1, 2]"  # the line as written, quoted once by the CSV it is in
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


def test_a_csv_error_late_in_the_file_leaves_nothing_staged(tmp_path: Path) -> None:
    # GIVEN a file whose quoting breaks after parts and rejected rows were already written
    rows = "".join(f"k{i},{i}\n" for i in range(10))
    parts, rejected = Parts(), io.StringIO()
    with pytest.raises(InputRejected, match="line 13: cannot be parsed as CSV"):
        run_prepare(
            ("id,x\n ,blank\n" + rows + 'k,"open\n').encode(),
            tmp_path,
            records_per_file=2,
            parts=parts,
            rejected_text=rejected,
        )
    # THEN the parts handed over were discarded, the open one removed, and rejected.csv is back to its header
    assert parts.added == 3 and parts.discards == 1 and parts.texts == []  # the last two parts are held back
    assert rejected.getvalue() == ",".join(ERROR_COLUMNS) + "\n"
    assert list(tmp_path.iterdir()) == []


def test_a_file_without_repeated_keys_is_read_once(tmp_path: Path) -> None:
    out = run_prepare(b"id,x\nk1,1\n,2\nk2,3\n", tmp_path)
    assert out.opens == 1
    assert out.parts.discards == 0
    assert out.result.counts == {"input": 3, "sent": 2, "rejected": 1}


def test_a_repeated_key_costs_a_second_read_with_the_same_output_as_one_read(tmp_path: Path) -> None:
    # GIVEN a file with a repeat, a blank key and a cell a spreadsheet would run, staged one record per part
    data = b"id,x\nk1,1\nk2,=2\nk1,3\n ,4\nk3,5\nk2,6\nk4,7\n"
    out = run_prepare(data, tmp_path, records_per_file=1)
    # THEN the first read's parts (six, repeats included) were discarded and the second read staged four
    assert out.opens == 2
    assert out.parts.discards == 1 and out.parts.added == 6 + 4
    assert out.parts.texts == ["k1,1\n", "k2,=2\n", "k3,5\n", "k4,7\n"]
    assert out.parts.indexes == ["2,k1,k1\n", "3,k2,k2\n", "6,k3,k3\n", "8,k4,k4\n"]
    assert out.rejected_text == (
        "source_file,line,key,stage,reason,record\n"
        "s3://inbox/p/upload.csv,4,k1,prepare,duplicate key 'k1' (first seen on line 2),\"k1,3\"\n"
        's3://inbox/p/upload.csv,5, ,prepare,blank key," ,4"\n'
        "s3://inbox/p/upload.csv,7,k2,prepare,duplicate key 'k2' (first seen on line 3),\"k2,6\"\n"
    )
    assert out.result.counts == {"input": 7, "sent": 4, "rejected": 3}
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "then",
    [
        b"id,x\nk1,1\nk2,2\nk1,3\nk4,4\n",  # a record more
        b"id,y\nk1,1\nk2,2\nk1,3\n",  # another header
        b"id,x\nk1,1\nk2,2\n\nk1,3\n",  # the repeat moved to another line
        b"id,x\nk1,1\nk1,3\n",  # a record less
    ],
)
def test_a_file_that_changes_before_the_second_read_fails_and_leaves_nothing_staged(
    then: bytes, tmp_path: Path
) -> None:
    parts, rejected = Parts(), io.StringIO()
    source = Source(b"id,x\nk1,1\nk2,2\nk1,3\n", then=then)
    with pytest.raises(InputRejected, match="the file changed while it was being read"):
        run_prepare(source, tmp_path, records_per_file=1, parts=parts, rejected_text=rejected)
    assert source.opens == 2
    assert parts.texts == [] and rejected.getvalue() == ",".join(ERROR_COLUMNS) + "\n"
    assert list(tmp_path.iterdir()) == []


class FunctionClock:
    """Lambda's remaining time for a function that has ``seconds`` left and spends ``per_check`` between checks."""

    def __init__(self, seconds: float, per_check: float) -> None:
        self.seconds, self.per_check, self.checks = seconds, per_check, 0

    def __call__(self) -> float:
        self.checks += 1
        return self.seconds - self.checks * self.per_check


def test_a_file_too_large_for_the_functions_time_stops_cleanly_naming_the_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prepare, "CHECK_EVERY_RECORDS", 3)
    # GIVEN 20 records with a blank key and two-record parts, in a function whose time runs out at the third check
    rows = "".join(f"k{i},{i}\n" for i in range(20))
    parts, rejected = Parts(), io.StringIO()
    clock = FunctionClock(seconds=prepare.STOP_MARGIN_SECONDS + 25, per_check=10)
    with pytest.raises(InputTooLarge) as error:
        run_prepare(
            ("id,x\n ,blank\n" + rows).encode(),
            tmp_path,
            records_per_file=2,
            parts=parts,
            rejected_text=rejected,
            time_left=clock,
        )
    # THEN the read stopped at the ninth record (line 10), said so and what to do, and left nothing behind
    message = str(error.value)
    assert message.startswith(f"{SOURCE}: line 10: Prepare stopped after reading 9 records")
    assert "too large to prepare in one function" in message and "Split it into files of at most about" in message
    assert isinstance(error.value, InputRejected)  # a whole-file refusal: the run ends in one failure event
    assert clock.checks == 3
    assert parts.added == 1 and parts.discards == 1 and parts.texts == []  # the last two parts are held back
    assert rejected.getvalue() == ",".join(ERROR_COLUMNS) + "\n"
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_fits_the_functions_time_is_staged_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prepare, "CHECK_EVERY_RECORDS", 2)
    clock = FunctionClock(seconds=900, per_check=1)
    out = run_prepare(b"id,x\nk1,1\nk2,2\nk3,3\nk4,4\nk5,5\n", tmp_path, time_left=clock)
    assert out.result.counts == {"input": 5, "sent": 5, "rejected": 0}
    assert clock.checks == 2  # every CHECK_EVERY_RECORDS records, not every record


def test_running_out_of_time_on_the_second_read_says_the_file_is_read_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prepare, "CHECK_EVERY_RECORDS", 2)
    # GIVEN a repeated key (two reads of five records: two checks each) and time for three checks
    clock = FunctionClock(seconds=prepare.STOP_MARGIN_SECONDS + 35, per_check=10)
    # THEN the second read stops at its second check
    twice = r"line 5: Prepare stopped after reading 4 records .* \(it repeats a key, so it is read twice\)"
    with pytest.raises(InputTooLarge, match=twice):
        run_prepare(b"id,x\nk1,1\nk2,2\nk1,3\nk4,4\nk5,5\n", tmp_path, time_left=clock)
