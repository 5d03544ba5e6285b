"""The run's summary statistics (batchline.summary) against counts made independently from the same rows."""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from fractions import Fraction

import pytest
from batchline.csvsafe import CsvWriter
from batchline.summary import (
    OTHER_REASONS,
    DecimalHistogram,
    FrequentValues,
    HistogramBin,
    reason_pattern,
    summarize_errors,
    summarize_predictions,
)
from hypothesis import given, settings
from hypothesis import strategies as st

HOSTILE = ["", "  ", "nan", "NaN", "inf", "-inf", "1e308", "-1e308", "5e-324", "0.3", "0.7", "1_000"]


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def brute_bins(values: list[str], bins: list[HistogramBin]) -> list[int]:
    """Each bin's count by comparing each cell's decimal value with the bin's edges (shortest decimals)."""
    edges = [(Fraction(repr(b.start)), Fraction(repr(b.end))) for b in bins]
    counts = [0] * len(bins)
    for value in values:
        exact = Fraction(value.strip())
        for index, (start, end) in enumerate(edges):
            last = index == len(edges) - 1
            if start <= exact < end or (last and exact == end):
                counts[index] += 1
                break
        else:
            raise AssertionError(f"{value} is in no bin")
    return counts


def test_histogram_bins_add_up_to_the_finite_numbers_and_hold_each_value_by_its_decimal_edges() -> None:
    values = ["0.1", "0.2", "0.3", "0.3", "0.7", "1.1", "0.05", "0.99", "1", "0"]
    text = "id,score\n" + "".join(f"k{n},{value}\n" for n, value in enumerate(values))

    column = summarize_predictions(rows_of(text)).columns[0]

    assert column.kind == "numeric"
    assert sum(b.count for b in column.histogram) == len(values) == column.count
    assert [b.count for b in column.histogram] == brute_bins(values, column.histogram)
    # 0.3 as a float is below the decimal 0.3, but the cell says 0.3: it starts its bin.
    assert any(b.start == 0.3 and b.count == 2 for b in column.histogram)
    assert column.min == 0.0 and column.max == 1.1
    assert column.mean == pytest.approx(math.fsum(float(v) for v in values) / len(values), rel=1e-15)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**12), max_value=10**12, places=4),
        min_size=1,
        max_size=300,
    )
)
def test_any_decimals_land_in_the_bins_their_edges_say(numbers: list) -> None:  # type: ignore[type-arg]
    values = [str(number) for number in numbers]
    histogram = DecimalHistogram()
    for value in values:
        histogram.add(float(value), value)

    bins = histogram.display(min(float(v) for v in values), max(float(v) for v in values))

    assert sum(b.count for b in bins) == len(values)
    assert len(bins) <= 40
    if len(bins) > 1:
        assert [b.count for b in bins] == brute_bins(values, bins)


def test_hostile_numbers_blank_nan_inf_huge_and_tiny_are_counted_apart() -> None:
    cells = ["", " ", "nan", "NaN", "inf", "-inf", "1e308", "-1e308", "5e-324", "0.5", "2"]
    text = "id,score\n" + "".join(f"k{n},{cell}\n" for n, cell in enumerate(cells))

    column = summarize_predictions(rows_of(text)).columns[0]

    assert column.kind == "numeric"
    assert column.blanks == 2
    assert column.non_finite == 4
    assert column.count == len(cells) - 2
    finite = [float(c) for c in cells if c.strip() and math.isfinite(float(c))]
    assert sum(b.count for b in column.histogram) == len(finite) == 5
    assert column.min == -1e308 and column.max == 1e308
    assert column.mean == pytest.approx(math.fsum(finite) / len(finite))
    assert all(math.isfinite(b.start) and math.isfinite(b.end) for b in column.histogram)


def test_a_column_with_one_word_among_numbers_is_text_with_its_values_counted() -> None:
    cells = ["1", "2", "2", "<script>alert(1)</script>", "1_000", ""]
    text = "id,label\n" + "".join(f"k{n},{cell}\n" for n, cell in enumerate(cells))

    column = summarize_predictions(rows_of(text)).columns[0]

    assert column.kind == "text"
    expected = Counter(c for c in cells if c)
    assert {t.value: t.count for t in column.top_values} == dict(expected)
    assert column.top_values[0].value == "2" and column.top_values[0].count == 2
    assert column.distinct == len(expected) and not column.approximate and column.blanks == 1


def test_spreadsheet_escaped_cells_are_summarised_as_their_original_values() -> None:
    buffer = io.StringIO()
    writer = CsvWriter(buffer, safe=True)
    writer.writerow(["id", "score", "label"])
    for n, (score, label) in enumerate([("-inf", "=cmd"), ("-0.5", "@x"), ("0.25", "=cmd")]):
        writer.writerow([f"k{n}", score, label])

    score, label = summarize_predictions(rows_of(buffer.getvalue()), spreadsheet_safe=True).columns

    assert score.kind == "numeric" and score.non_finite == 1 and score.min == -0.5
    assert [(t.value, t.count) for t in label.top_values] == [("=cmd", 2), ("@x", 1)]


def test_short_rows_count_their_missing_cells_as_blank_and_the_key_is_not_summarised() -> None:
    summary = summarize_predictions(rows_of("id,a,b\nk1,1\nk2,2,x\n"))

    assert summary.rows == 2
    assert [c.name for c in summary.columns] == ["a", "b"]
    assert summary.columns[1].blanks == 1


def test_frequent_values_say_when_they_are_approximate_and_by_how_much() -> None:
    stream = ["a"] * 50 + ["b"] * 30 + [f"x{n}" for n in range(100)] + ["a"] * 10
    counter = FrequentValues(capacity=5)
    for value in stream:
        counter.add(value)

    truth = Counter(stream)
    assert counter.undercount > 0
    for value, count in counter.counts.items():
        assert truth[value] - counter.undercount <= count <= truth[value]
    # Misra-Gries keeps every value seen more than N/(k+1) times.
    assert {"a", "b"} <= set(counter.counts)
    assert counter.top(1)[0].value == "a"


def test_text_columns_past_the_capacity_are_marked_approximate() -> None:
    distinct = "".join(f"k{n},note {n}\n" for n in range(1500))
    text = "id,note\n" + distinct + "".join(f"j{n},common\n" for n in range(900))

    column = summarize_predictions(rows_of(text)).columns[0]

    assert column.kind == "text" and column.approximate and column.distinct is None
    assert column.top_values[0].value == "common"
    assert 900 - column.max_undercount <= column.top_values[0].count <= 900


ERRORS_HEADER = "source_file,line,key,stage,reason,record\n"


def test_error_reasons_group_by_stage_and_masked_reason_with_the_first_row_as_example() -> None:
    rows = [
        ["in.csv", "3", "a", "prepare", "duplicate key 'a' (first seen on line 2)", "a,1"],
        ["in.csv", "9", "<s>x</s>", "prepare", "duplicate key '<s>x</s>' (first seen on line 4)", ""],
        ["in.csv", "5", "c", "service", "job j-1 ended with status Failed: <b>bad</b>", ""],
        ["in.csv", "6", "d", "prepare", "blank key", "d"],
    ]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)

    summary = summarize_errors(rows_of(ERRORS_HEADER + buffer.getvalue()))

    assert summary.rows == 4
    assert sum(g.count for g in summary.groups) == 4
    expected = Counter((row[3], reason_pattern(row[4])) for row in rows)
    assert {(g.stage, g.reason): g.count for g in summary.groups} == dict(expected)
    duplicate = next(g for g in summary.groups if g.reason.startswith("duplicate key"))
    assert duplicate.count == 2 and duplicate.reason == "duplicate key '…' (first seen on line N)"
    assert duplicate.example is not None and duplicate.example.line == "3" and duplicate.example.key == "a"


def test_error_groups_past_the_limit_are_counted_as_other_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("batchline.summary.ERROR_GROUPS", 3)
    body = "".join(f"in.csv,{n},k{n},prepare,reason {chr(97 + n)},\n" for n in range(6))

    summary = summarize_errors(rows_of(ERRORS_HEADER + body))

    assert [g.count for g in summary.groups] == [1, 1, 1, 3]
    assert summary.groups[-1].reason == OTHER_REASONS
    assert sum(g.count for g in summary.groups) == summary.rows == 6


def test_a_deadline_passed_marks_the_summary_partial() -> None:
    text = "id,score\n" + "".join(f"k{n},{n}\n" for n in range(70_000))

    summary = summarize_predictions(rows_of(text), deadline=0.0)

    assert not summary.complete and summary.rows < 70_000


def test_a_word_after_many_numbers_makes_the_column_text_marked_approximate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("batchline.summary.TRACK_NUMBERS_AS_TEXT", 5)
    cells = ["1", "2", "2", "3", "4", "2", "2", "n/a", "n/a"]
    text = "id,value\n" + "".join(f"k{n},{cell}\n" for n, cell in enumerate(cells))

    column = summarize_predictions(rows_of(text)).columns[0]

    assert column.kind == "text" and column.approximate and column.distinct is None
    truth = Counter(cells)
    for top in column.top_values:
        assert truth[top.value] - column.max_undercount <= top.count <= truth[top.value]


def test_a_long_numeric_column_does_not_claim_an_exact_distinct_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("batchline.summary.TRACK_NUMBERS_AS_TEXT", 5)
    text = "id,value\n" + "".join(f"k{n},{n}\n" for n in range(20))

    column = summarize_predictions(rows_of(text)).columns[0]

    assert column.kind == "numeric" and column.distinct is None and column.count == 20
