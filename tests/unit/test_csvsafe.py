import csv
import io

import pytest
from batchline.csvsafe import CsvWriter, neutralise, restore, sql_neutralise
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("-0.25", "-0.25"),
        ("+3", "+3"),
        ("1e-5", "1e-5"),
        ("plain", "plain"),
        ("", ""),
    ],
)
def test_formula_cells_are_neutralised_and_numbers_kept(cell: str, shown: str) -> None:
    assert neutralise(cell) == shown


def test_writer_can_leave_cells_untouched_for_machine_consumers() -> None:
    safe, raw = io.StringIO(), io.StringIO()
    CsvWriter(safe, safe=True).writerow(["k", "=1+1", None])
    CsvWriter(raw, safe=False).writerow(["k", "=1+1", None])
    assert safe.getvalue() == "k,'=1+1,\n"
    assert raw.getvalue() == "k,=1+1,\n"


def test_many_rows_are_neutralised_like_single_rows() -> None:
    rows = [["k1", "1", "item-1", "0.5"], ["k2", "2", "=cmd()", "-0.1"], ["k3", "3", "@x", "+3"]]
    one_by_one, batched = io.StringIO(), io.StringIO()
    writer = CsvWriter(one_by_one, safe=True)
    for row in rows:
        writer.writerow(row)
    CsvWriter(batched, safe=True).writerows(rows)
    assert batched.getvalue() == one_by_one.getvalue()
    assert "'=cmd()" in batched.getvalue() and ",-0.1" in batched.getvalue() and "'@x" in batched.getvalue()
    clean = io.StringIO()
    CsvWriter(clean, safe=True).writerows([rows[0]])
    assert clean.getvalue() == "k1,1,item-1,0.5\n"


@pytest.mark.parametrize(
    ("cell", "shown"),
    [("=x", "'=x"), ("'=x", "''=x"), ("'", "''"), ("'plain", "''plain"), ("-inf", "'-inf"), ("1_0", "1_0")],
)
def test_a_leading_apostrophe_is_escaped_too_so_distinct_cells_stay_distinct(cell: str, shown: str) -> None:
    assert neutralise(cell) == shown
    assert restore(shown) == cell


@given(st.text())
def test_neutralising_is_reversible_and_never_merges_two_values(cell: str) -> None:
    shown = neutralise(cell)
    assert restore(shown) == cell
    assert not shown or shown[0] not in "=+-@\t\r" or float(shown) == float(cell)


@given(st.text(max_size=12) | st.from_regex(r"\A[+-]?[0-9]{0,3}(\.[0-9]{0,3})?([eE][+-]?[0-9]{1,3})?\Z"))
def test_duckdb_applies_exactly_the_same_rule(cell: str) -> None:
    import duckdb

    if "\x00" in cell:
        return  # DuckDB strings cannot hold NUL
    with duckdb.connect() as connection:
        (shown,) = connection.execute(f"SELECT {sql_neutralise('$cell')}", {"cell": cell}).fetchone()
    assert shown == neutralise(cell)


def test_a_lone_carriage_return_is_quoted_so_the_row_reads_back_whole() -> None:
    written = io.StringIO()
    CsvWriter(written, safe=False).writerows([["u\rv", "a"], ["ok", "b"]])
    assert list(csv.reader(io.StringIO(written.getvalue(), newline=""))) == [["u\rv", "a"], ["ok", "b"]]
