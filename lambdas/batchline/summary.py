"""The run's summary statistics: each prediction column's distribution and the error reasons, in one streamed pass.

FinalizeRun (and ReportFailure, for errors.csv) reads the run's own files once, row by row, so memory stays flat
at any size: a numeric column keeps a bounded histogram, a text column a bounded table of its frequent values.

- Numbers: count, blanks, non-finite cells (NaN, inf), min, max, mean and an exact histogram. Its bins are
  decimal (width 1, 2 or 5 times a power of ten, edges at multiples of the width) and found in one pass: values
  are counted on a fine grid that coarsens by whole factors (2, then 5) when the range grows, so every count
  stays exact and the displayed bins are unions of fine ones. Bin totals equal the column's finite numbers.
- Text: the most frequent values by the Misra-Gries algorithm over ``TEXT_CAPACITY`` tracked values: exact
  while the column has at most that many distinct values; past it ``approximate`` is true and each count may be
  low by at most ``maxUndercount`` (every value more frequent than that is in the table).
- Errors: errors.csv grouped by stage and reason, where the quoted values and numbers inside a reason (a key,
  a line) are masked so "duplicate key 'a' (first seen on line 3)" and "... 'b' ... line 9" are one group;
  each group keeps its first row as the example. At most ``ERROR_GROUPS`` groups; later new ones count as
  "other reasons", so the group counts always add up to the rows of errors.csv.

A column is numeric when every non-blank cell reads as a number (NaN and inf included), text otherwise.
"""

from __future__ import annotations

import math
import re
import sys
import time
from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from batchline.csvsafe import restore

# Values a text column tracks at once (Misra-Gries counters); the manifest shows the TOP_VALUES largest.
TEXT_CAPACITY = 1000
TOP_VALUES = 10
# A column whose first this many non-blank cells are numbers stops counting its cells as text values (a numeric
# column shows a histogram; counting its values too would cost a third of the time). If a word comes later, the
# column is text, marked approximate by the numbers not counted.
TRACK_NUMBERS_AS_TEXT = 10_000
# A text value is counted by its first this many characters (a model's long answers stay bounded in memory).
VALUE_CHARS = 200
# Error groups tracked; later new groups count as "other reasons".
ERROR_GROUPS = 200
# An example row's reason is cut to this many characters.
EXAMPLE_CHARS = 500
# The fine grid spans at most this many bins before it coarsens; the manifest shows at most DISPLAY_BINS.
FINE_BINS = 2000
DISPLAY_BINS = 40
# Finite numbers are summed in blocks of this many with math.fsum (correctly rounded per block).
SUM_BLOCK = 4096
OTHER_REASONS = "other reasons"
# Reasons whose masked form is remembered (bounded: reasons naming a key are all different).
PATTERN_CACHE = 10_000


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    def dump(self) -> dict[str, object]:
        return self.model_dump(by_alias=True, mode="json")


class HistogramBin(_Model):
    """Values in ``[start, end)`` (the last bin also holds ``end`` when it is the column's maximum)."""

    start: float
    end: float
    count: int


class TopValue(_Model):
    value: str
    count: int


class ColumnSummary(_Model):
    """One prediction column of predictions.csv."""

    name: str
    kind: Literal["numeric", "text"]
    count: int = Field(description="non-blank cells")
    blanks: int
    # Numeric columns only.
    non_finite: int = 0
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    histogram: list[HistogramBin] = Field(default_factory=list)
    # Text columns only.
    top_values: list[TopValue] = Field(default_factory=list)
    distinct: int | None = Field(default=None, description="distinct values, when exact (not approximate)")
    approximate: bool = False
    max_undercount: int = 0


class PredictionsSummary(_Model):
    rows: int
    columns: list[ColumnSummary]
    complete: bool = Field(default=True, description="false when the time budget ended the reading early")


class ErrorExample(_Model):
    line: str
    key: str
    reason: str


class ErrorGroup(_Model):
    stage: str
    reason: str = Field(description="the reason with quoted values and numbers masked")
    count: int
    example: ErrorExample | None = None


class ErrorsSummary(_Model):
    rows: int
    groups: list[ErrorGroup]
    complete: bool = True


class RunSummary(_Model):
    """What manifest.json carries under ``summary`` and report.html shows."""

    predictions: PredictionsSummary | None = None
    errors: ErrorsSummary | None = None


# --- numbers -------------------------------------------------------------------------------------------------


def read_number(cell: str) -> float | None:
    """The cell as a number, or None when it is not one. float() also reads "1_000", which is a code, not a number."""
    try:
        value = float(cell)
    except ValueError:
        return None
    return None if "_" in cell else value


def _width(mantissa: int, exponent: int) -> Fraction:
    return Fraction(mantissa) * Fraction(10) ** exponent


def _exact(value: float, text: str | None) -> Fraction:
    """The cell's decimal value exactly (its float's when the text is not a plain decimal)."""
    if text is not None:
        try:
            return Fraction(text.strip())
        except (ValueError, ZeroDivisionError):
            pass
    return Fraction(value)


def _to_float(value: Fraction) -> float:
    """The nearest float (huge edges clamp to the largest float rather than overflow)."""
    try:
        return float(value)
    except OverflowError:
        return math.copysign(sys.float_info.max, value)


class DecimalHistogram:
    """Exact counts on a decimal grid found in one pass (see the module's docstring)."""

    def __init__(self) -> None:
        self.bins: dict[int, int] = {}
        self.mantissa, self.exponent = 1, 0  # the fine width: mantissa * 10**exponent, mantissa 1 or 2
        self._started = False
        self._low: int | None = None  # the lowest and highest fine bins counted
        self._high: int | None = None
        self._set_width(1, 0)

    def _set_width(self, mantissa: int, exponent: int) -> None:
        self.mantissa, self.exponent = mantissa, exponent
        self._exact_width = _width(mantissa, exponent)
        self._float_width = float(self._exact_width)

    def _start(self, value: float) -> None:
        # As fine as a billionth of the first value (never below 1e-300, so the width is a normal float):
        # the grid only ever coarsens.
        exponent = (math.floor(math.log10(abs(value))) if value else 0) - 9
        self._set_width(1, max(-300, min(300, exponent)))
        self._started = True

    def _coarsen(self) -> None:
        factor = 2 if self.mantissa == 1 else 5
        merged: dict[int, int] = {}
        for index, count in self.bins.items():
            merged[index // factor] = merged.get(index // factor, 0) + count
        self.bins = merged
        if self._low is not None and self._high is not None:
            self._low, self._high = self._low // factor, self._high // factor
        if self.mantissa == 1:
            self._set_width(2, self.exponent)
        else:
            self._set_width(1, self.exponent + 1)

    def _index(self, value: float, text: str | None) -> int:
        """floor(value / width), exactly: the float quotient, checked exactly when it is near a bin edge. The
        check reads the cell's own decimal text, so "0.3" counts from the edge 0.3 though its float is below it."""
        while True:
            quotient = value / self._float_width
            if abs(quotient) < 2.0**50:
                break
            self._coarsen()
        index = math.floor(quotient)
        fraction = quotient - index
        tolerance = 1e-9 * max(1.0, abs(quotient))
        if fraction < tolerance or fraction > 1 - tolerance:
            index = math.floor(_exact(value, text) / self._exact_width)
        return index

    def add(self, value: float, text: str | None = None) -> None:
        """Count one finite value (``text``: the cell it was read from, whose decimal value decides its bin)."""
        if not self._started:
            self._start(value)
        index = self._index(value, text)
        self.bins[index] = self.bins.get(index, 0) + 1
        if self._low is None or self._high is None:
            self._low = self._high = index
            return
        if index < self._low:
            self._low = index
        elif index > self._high:
            self._high = index
        else:
            return
        while self._high - self._low >= FINE_BINS:
            self._coarsen()

    def add_fast(self, value: float, text: str) -> None:
        """``add`` for a value well inside the counted range and away from an edge (most values): no checks."""
        quotient = value / self._float_width
        if self._low is not None and self._high is not None and abs(quotient) < 2.0**50:
            index = math.floor(quotient)
            fraction = quotient - index
            if self._low <= index <= self._high and 1e-9 * max(1.0, abs(quotient)) < fraction < 1 - 1e-9 * max(
                1.0, abs(quotient)
            ):
                self.bins[index] = self.bins.get(index, 0) + 1
                return
        self.add(value, text)

    def display(self, minimum: float, maximum: float, limit: int = DISPLAY_BINS) -> list[HistogramBin]:
        """At most ``limit`` bins of a width 1, 2 or 5 times a power of ten, each a union of fine bins."""
        if not self.bins:
            return []
        total = sum(self.bins.values())
        if minimum == maximum:
            return [HistogramBin(start=minimum, end=maximum, count=total)]
        low, high = min(self.bins), max(self.bins)
        fine = self._exact_width
        for exponent in range(self.exponent, self.exponent + 700):
            for mantissa in (1, 2, 5):
                ratio = _width(mantissa, exponent) / fine
                if ratio < 1 or ratio.denominator != 1:
                    continue
                step = int(ratio)
                first, last = low // step, high // step
                if last - first + 1 <= limit:
                    return self._merged(first, last, step, _width(mantissa, exponent))
        raise AssertionError("no display width fits")  # unreachable: widths grow without bound

    def _merged(self, first: int, last: int, step: int, width: Fraction) -> list[HistogramBin]:
        counts = [0] * (last - first + 1)
        for index, count in self.bins.items():
            counts[index // step - first] += count
        return [
            HistogramBin(
                start=_to_float((first + offset) * width), end=_to_float((first + offset + 1) * width), count=count
            )
            for offset, count in enumerate(counts)
        ]


# --- text ----------------------------------------------------------------------------------------------------


class FrequentValues:
    """Misra-Gries: at most ``capacity`` counters; exact while the values seen fit in them."""

    def __init__(self, capacity: int = TEXT_CAPACITY) -> None:
        self.capacity = capacity
        self.counts: dict[str, int] = {}
        self.undercount = 0  # decrement rounds: each count may be low by at most this

    def add(self, value: str) -> None:
        counts = self.counts
        if value in counts:
            counts[value] += 1
        elif len(counts) < self.capacity:
            counts[value] = 1
        else:
            # The new value and one count of every tracked value cancel out (amortised O(1) per value).
            self.undercount += 1
            self.counts = {key: count - 1 for key, count in counts.items() if count > 1}

    def top(self, limit: int = TOP_VALUES) -> list[TopValue]:
        ranked = sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))[:limit]
        return [TopValue(value=value, count=count) for value, count in ranked]


def _counted_form(value: str) -> str:
    return value if len(value) <= VALUE_CHARS else value[:VALUE_CHARS] + "…"


# --- columns -------------------------------------------------------------------------------------------------


class ColumnStats:
    """One column, fed cell by cell."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = self.blanks = self.non_finite = self.finite = 0
        self.numeric = True
        self.minimum = math.inf
        self.maximum = -math.inf
        self._block: list[float] = []
        self._sums: list[float] = []
        self.histogram = DecimalHistogram()
        self.values = FrequentValues()

    def add(self, cell: str) -> None:
        """One cell. The hot path of a 10-million-row file: kept flat on purpose (benchmarks/report_summary.py)."""
        if not cell or cell.isspace():
            self.blanks += 1
            return
        self.count += 1
        if self.count <= TRACK_NUMBERS_AS_TEXT or not self.numeric:
            counts = self.values.counts
            if cell in counts:
                counts[cell] += 1
            else:
                self.values.add(cell if len(cell) <= VALUE_CHARS else _counted_form(cell))
        if not self.numeric:
            return
        try:
            number = float(cell)
        except ValueError:
            self._turn_text()
            return
        if "_" in cell:  # float() reads "1_000", which is a code, not a number
            self._turn_text()
            return
        if number - number != 0.0:  # NaN or an infinity
            self.non_finite += 1
            return
        self.finite += 1
        if number < self.minimum:
            self.minimum = number
        if number > self.maximum:
            self.maximum = number
        block = self._block
        block.append(number)
        if len(block) >= SUM_BLOCK:
            self._sums.append(math.fsum(block))
            block.clear()
        self.histogram.add_fast(number, cell)

    def _turn_text(self) -> None:
        """A cell that is no number makes the column text. Past TRACK_NUMBERS_AS_TEXT numbers, the numbers were not
        counted as values: the counts may be low by that many (the bound Misra-Gries' ``undercount`` carries)."""
        self.numeric = False
        skipped = self.count - 1 - TRACK_NUMBERS_AS_TEXT
        if skipped > 0:
            self.values.undercount += skipped

    def summary(self) -> ColumnSummary:
        distinct = None if self.values.undercount else len(self.values.counts)
        if self.numeric and self.count:
            if self.count > TRACK_NUMBERS_AS_TEXT:
                distinct = None  # not every number was counted as a value
            finite = self.finite
            mean = math.fsum([*self._sums, math.fsum(self._block)]) / finite if finite else None
            return ColumnSummary(
                name=self.name,
                kind="numeric",
                count=self.count,
                blanks=self.blanks,
                non_finite=self.non_finite,
                min=self.minimum if finite else None,
                max=self.maximum if finite else None,
                mean=mean if mean is None or math.isfinite(mean) else None,
                histogram=self.histogram.display(self.minimum, self.maximum) if finite else [],
                distinct=distinct,
            )
        return ColumnSummary(
            name=self.name,
            kind="text",
            count=self.count,
            blanks=self.blanks,
            top_values=self.values.top(),
            distinct=distinct,
            approximate=bool(self.values.undercount),
            max_undercount=self.values.undercount,
        )


def summarize_predictions(
    rows: Iterable[list[str]], *, spreadsheet_safe: bool = False, deadline: float | None = None
) -> PredictionsSummary:
    """predictions.csv's rows (header first; its first column, the key, is not summarised).

    ``spreadsheet_safe``: cells were written with csvsafe's escape, which is undone first. ``deadline``
    (time.monotonic()) ends the reading early, marked ``complete: false``, so the run's event still goes out.
    """
    iterator = iter(rows)
    header = next(iterator, None)
    if not header:
        return PredictionsSummary(rows=0, columns=[])
    columns = [ColumnStats(name) for name in header[1:]]
    width = len(columns)
    count = 0
    complete = True
    for row in iterator:
        count += 1
        if deadline is not None and count % 65536 == 0 and time.monotonic() > deadline:
            complete = False
            break
        cells = row[1 : width + 1]
        if len(cells) < width:
            cells = cells + [""] * (width - len(cells))
        for column, cell in zip(columns, cells, strict=True):
            column.add(restore(cell) if spreadsheet_safe else cell)
    return PredictionsSummary(rows=count, columns=[column.summary() for column in columns], complete=complete)


# --- errors --------------------------------------------------------------------------------------------------

# Quoted values ('a', "b") and numbers inside a reason: the parts that differ from row to row.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def reason_pattern(reason: str) -> str:
    """The reason with its quoted values and numbers masked, so rows that fail for one reason group together."""
    return _NUMBER.sub("N", _QUOTED.sub("'…'", reason))


def summarize_errors(
    rows: Iterable[list[str]], *, spreadsheet_safe: bool = False, deadline: float | None = None
) -> ErrorsSummary:
    """errors.csv's rows (header first: source_file,line,key,stage,reason,record) grouped by stage and reason."""
    iterator: Iterator[list[str]] = iter(rows)
    next(iterator, None)
    groups: dict[tuple[str, str], list[object]] = {}
    patterns: dict[str, str] = {}  # a service's reason repeats row after row: mask it once
    other = 0
    other_example: ErrorExample | None = None
    count = 0
    complete = True
    for row in iterator:
        count += 1
        if deadline is not None and count % 65536 == 0 and time.monotonic() > deadline:
            complete = False
            break
        line, key, stage, reason = (row + [""] * 6)[1:5]
        if spreadsheet_safe:
            key, reason = restore(key), restore(reason)
        pattern = patterns.get(reason)
        if pattern is None:
            pattern = reason_pattern(reason)
            if len(patterns) < PATTERN_CACHE:
                patterns[reason] = pattern
        group = (stage, pattern)
        entry = groups.get(group)
        if entry is not None:
            entry[0] += 1  # type: ignore[operator]
        elif len(groups) < ERROR_GROUPS:
            groups[group] = [1, _example(line, key, reason)]
        else:
            other += 1
            other_example = other_example or _example(line, key, reason)
    result = [
        ErrorGroup(stage=stage, reason=pattern, count=int(entry[0]), example=entry[1])  # type: ignore[call-overload,arg-type]
        for (stage, pattern), entry in groups.items()
    ]
    result.sort(key=lambda group: -group.count)
    if other:
        result.append(ErrorGroup(stage="", reason=OTHER_REASONS, count=other, example=other_example))
    return ErrorsSummary(rows=count, groups=result, complete=complete)


def _example(line: str, key: str, reason: str) -> ErrorExample:
    cut = reason if len(reason) <= EXAMPLE_CHARS else reason[:EXAMPLE_CHARS] + "…"
    return ErrorExample(line=line, key=_counted_form(key), reason=cut)
