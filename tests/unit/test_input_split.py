"""Cutting an upload for Prepare's fan-out: every piece starts at a record, and reading the pieces one by one
yields exactly the records, line numbers and problems a whole-file read yields."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from batchline.duplicates import DuplicateKeys
from batchline.errors import InputRejected
from batchline.input_split import Cut, csv_header_end, plan_cuts
from batchline.prepare import FileSection, _records, read_header
from hypothesis import given, settings
from hypothesis import strategies as st


def whole_file(data: bytes, name: str) -> list[tuple[int, list[str], str | None]]:
    records = _records(io.BytesIO(data), name)
    next(records)
    return list(records)


def cut(data: bytes, name: str, piece_bytes: int, block: int = 7, threads: int = 1) -> tuple[list[str], list[Cut]]:
    """The header and the cuts, the file read in small blocks so cuts and line ends fall across block edges."""
    if name.endswith(".jsonl"):
        start, first_line = 0, 1
    else:
        found = csv_header_end(data)
        assert found is not None
        start, lines = found
        first_line = 1 + lines
    header = read_header(io.BytesIO(data[: start or len(data)]), name)

    def read(begin: int, end: int) -> Iterator[bytes]:
        return (data[offset : min(offset + block, end)] for offset in range(begin, end, block))

    cuts = plan_cuts(
        read,
        start=start,
        first_line=first_line,
        size=len(data),
        piece_bytes=piece_bytes,
        quoted=name.endswith(".csv"),
        threads=threads,
    )
    return header, cuts


def by_pieces(
    data: bytes, name: str, piece_bytes: int, block: int = 7, threads: int = 1
) -> list[tuple[int, list[str], str | None]]:
    header, cuts = cut(data, name, piece_bytes, block, threads)
    found = []
    for index, piece in enumerate(cuts):
        section = FileSection(index, header, piece.first_line, piece.end, last=index == len(cuts) - 1)
        records = _records(io.BytesIO(data[piece.start : piece.end]), name, section)
        assert next(records)[1] == header
        found += list(records)
    return found


CELL = st.text(alphabet=st.sampled_from(list('ab,"\n\r x1é')), max_size=6)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.lists(CELL, min_size=3, max_size=3), min_size=1, max_size=30),
    terminator=st.sampled_from(["\n", "\r\n"]),
    piece_bytes=st.integers(min_value=1, max_value=40),
    block=st.integers(min_value=1, max_value=16),
    threads=st.sampled_from([1, 3]),
)
def test_csv_pieces_read_the_same_records_on_the_same_lines_as_the_whole_file(
    rows: list[list[str]], terminator: str, piece_bytes: int, block: int, threads: int
) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=terminator)
    writer.writerow(["id", "a", "b"])
    writer.writerows(rows)
    data = buffer.getvalue().encode()
    assert by_pieces(data, "f.csv", piece_bytes, block, threads) == whole_file(data, "f.csv")


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(
        st.text(alphabet=st.sampled_from(list('a\n"\\é{\u2028\u0085\r')), max_size=5), min_size=1, max_size=30
    ),
    piece_bytes=st.integers(min_value=1, max_value=60),
    blank_every=st.integers(min_value=2, max_value=9),
    cr_whitespace=st.booleans(),
)
def test_json_lines_pieces_read_the_same_records_as_the_whole_file(
    values: list[str], piece_bytes: int, blank_every: int, cr_whitespace: bool
) -> None:
    lines = []
    for number, value in enumerate(values):
        line = json.dumps({"id": f"k{number}", "v": value}, ensure_ascii=False)
        # A CR is JSON whitespace: between tokens it must not end the line (only LF does in JSON lines).
        lines.append(line.replace('", "', '",\r"', 1) if cr_whitespace else line)
        if number % blank_every == 0:
            lines.append("")  # blank lines count as lines but are not records
    lines.insert(len(lines) // 2, "not json")
    data = ("\n".join(lines) + "\n").encode()
    assert by_pieces(data, "f.jsonl", piece_bytes) == whole_file(data, "f.jsonl")


def test_cuts_cover_the_file_end_to_end_and_are_about_the_size_asked() -> None:
    data = b"id,v\n" + b"".join(b"k%04d,%d\n" % (n, n) for n in range(1000))
    _, cuts = cut(data, "f.csv", 1000, block=4096)
    assert cuts[0].start == 5 and cuts[-1].end == len(data)
    assert all(left.end == right.start for left, right in zip(cuts, cuts[1:], strict=False))
    assert all(1000 <= piece.end - piece.start <= 1011 for piece in cuts[:-1])
    assert all(data[piece.start - 1 : piece.start] == b"\n" for piece in cuts)
    assert all(piece.first_line == data[: piece.start].count(b"\n") + 1 for piece in cuts)
    assert len(cuts) == len(data) // 1000 + 1


def test_a_cut_is_never_inside_quotes_even_when_a_quoted_field_spans_the_whole_target() -> None:
    long_cell = "line\n" * 100
    data = f'id,v\nk1,"{long_cell}"\nk2,x\nk3,y\n'.encode()
    _, cuts = cut(data, "f.csv", 10)
    assert cuts[0].end == data.index(b"k2")  # the first newline outside quotes after the 10th byte
    # Segments every 10 bytes: those inside the quoted field all find that same cut; later ones cut again.
    assert [piece.first_line for piece in cuts] == [2, 103, 104]


def test_a_header_holding_a_bare_quote_is_not_located() -> None:
    assert csv_header_end(b'id,na"me\nk1,x\nk2,"y\n"\n') is None  # counting would end the header at the wrong line
    assert csv_header_end(b"id,v") is None  # no newline: read whole
    assert csv_header_end(b'"i\nd",v\r\nk,1\r\n') == (9, 2)


def test_a_bare_quote_that_moves_a_cut_into_a_quoted_field_is_reported_by_the_piece_that_ends_there() -> None:
    # 'ab"c' is legal CSV for Python but flips the quote count: the cut then lands in the quoted newline below.
    data = b'id,v\nk1,ab"c\nk2,"x\ny"\nk3,z\n'
    header, cuts = cut(data, "f.csv", 13)
    assert whole_file(data, "f.csv")[1][1] == ["k2", "x\ny"]
    first = cuts[0]
    assert data[first.end - 2 : first.end] == b"x\n"  # inside "x\ny"
    section = FileSection(0, header, first.first_line, first.end, last=False)
    with pytest.raises(InputRejected, match=r"line 3: a quoted field is still open at byte 19, where Prepare split"):
        list(_records(io.BytesIO(data[first.start : first.end]), "f.csv", section))


def test_spilled_keys_shipped_between_processes_find_repeats_across_pieces(tmp_path: Path) -> None:
    pieces = [[("a", 2), ("b", 3)], [("c", 4), ("a", 5)], [("b", 6), ("d", 7), ("d", 8)]]
    spills = []
    for number, piece in enumerate(pieces):
        with DuplicateKeys(str(tmp_path), partitions=4, stable=True) as keys:
            for key, line in piece:
                keys.add(key, line)
            path = tmp_path / f"piece-{number}"
            with path.open("wb") as out:
                spills.append((path, keys.write_spill(out)))
    with DuplicateKeys(str(tmp_path), partitions=4, stable=True) as merged:
        for partition in range(4):
            for path, lengths in spills:
                with path.open("rb") as handle:
                    handle.seek(sum(lengths[:partition]))
                    if lengths[partition]:
                        merged.add_spill(partition, handle, lengths[partition])
        assert list(merged.duplicates()) == [(5, 2), (6, 3), (8, 7)]
