import io

import pytest
from batchline.csvsafe import CsvWriter, neutralise


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
