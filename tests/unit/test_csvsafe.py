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
