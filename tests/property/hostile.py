"""Hostile but legal input files, and what each record's fate must look like afterwards.

A file is drawn as records (column -> value) and rendered to bytes with correct quoting (CSV: RFC 4180, a
cell with a comma, quote, CR or LF quoted; JSON lines: json.dumps), in one of a few legal layouts (LF or
CRLF line ends, a UTF-8 BOM, every cell quoted). Each record remembers the line where it starts, counted as
Python's universal newlines count (CR LF, lone CR and lone LF each end a line; U+2028 and U+0085 do not),
the header being line 1 of a CSV and the first object line 1 of JSON lines.

What is drawn is chosen by *kinds* (``KEY_KINDS``, ``TEXT_KINDS``, ``NUMBER_KINDS``, ``FILE_KINDS``); a kind a
service is known to break on is switched off in ``known_broken.py``, the one list to shrink as fixes land.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

# Characters each single-character kind stands for: switching the kind off also keeps the character out of
# the "unicode" kind, so an exclusion really excludes it.
CHARACTER_KINDS = {
    "cr": "\r",
    "lf": "\n",
    "crlf": "\r\n",
    "u2028": "\u2028",
    "u0085": "\x85",
    "nul": "\x00",
    "quote": '"',
    "comma": ",",
}
# Strings shaped like the record IDs Batchline makes up (Bedrock: R + 11 digits).
RECORD_ID_SHAPES = st.integers(0, 10**11 - 1).map(lambda n: f"R{n:011d}") | st.sampled_from(
    ["R00000000000", "R00000000001", "R00000000002", "R00000000003"]
)
FORMULAS = st.sampled_from(["=", "+", "-", "@", "\t", '=HYPERLINK("http://x")', "@SUM(1)", "-2+3", "+x", "=1+1"])
APOSTROPHES = st.sampled_from(["'", "''", "'=", "'+1", "'@x", "'-"])
NUMBER_SHAPED = st.sampled_from(["-1", "+3", "1e-5", "-0.25", ".5", "0", "007"])
SPACES = st.sampled_from([" ", "  ", "\t ", "\u00a0", "\u3000"])
PLAIN = st.text(string.ascii_letters + string.digits, min_size=1, max_size=6)

KEY_KINDS = (
    "plain",
    "unicode",
    *CHARACTER_KINDS,
    "edge_spaces",
    "formula",
    "apostrophe",
    "record_id",
    "number_shaped",
    "huge",
)
TEXT_KINDS = KEY_KINDS
# Values of columns the service reads as numbers.
NUMBER_KINDS = (
    "decimal",
    "large_negative",
    "signed",
    "special",
    "underscore",
    "padded",
    "bad",
    "empty",
    "hostile_text",
)
# Record- and file-level shapes.
FILE_KINDS = ("repeated_key", "blank_key", "crlf_lines", "bom", "quote_all", "ensure_ascii")

HUGE_CHARS = 140_000  # over csv's default field limit (128 KiB)


def _fragment(kind: str, unicode_excluded: str) -> st.SearchStrategy[str]:
    if kind in CHARACTER_KINDS:
        return st.just(CHARACTER_KINDS[kind])
    return {
        "plain": PLAIN,
        "unicode": st.text(st.characters(codec="utf-8", exclude_characters=unicode_excluded), min_size=1, max_size=5),
        "edge_spaces": SPACES,
        "formula": FORMULAS,
        "apostrophe": APOSTROPHES,
        "record_id": RECORD_ID_SHAPES,
        "number_shaped": NUMBER_SHAPED,
        "huge": st.just("h" * HUGE_CHARS),
    }[kind]


def _excluded_characters(kinds: frozenset[str]) -> str:
    return "".join(chars for kind, chars in CHARACTER_KINDS.items() if kind not in kinds and len(chars) == 1)


def hostile_text(kinds: frozenset[str], *, min_size: int = 1) -> st.SearchStrategy[str]:
    """A string of one to four fragments of the kinds given (a fragment leading, inside or trailing)."""
    excluded = _excluded_characters(kinds)
    small = sorted(kind for kind in kinds if kind != "huge")
    fragment = st.sampled_from(small).flatmap(lambda kind: _fragment(kind, excluded))
    text = st.lists(fragment, min_size=min_size, max_size=4).map("".join)
    if "huge" in kinds:
        text = st.one_of(text, st.tuples(text, st.just("h" * HUGE_CHARS)).map("".join))
    return text


def number_text(kinds: frozenset[str], text_kinds: frozenset[str]) -> st.SearchStrategy[str]:
    options = []
    if "decimal" in kinds:
        options.append(st.floats(-1e4, 1e6, allow_nan=False).map(lambda x: f"{x:.4g}"))
    if "large_negative" in kinds:
        options.append(st.sampled_from(["-1e6", "-123456789", "-9.5e300"]))
    if "signed" in kinds:
        options.append(st.sampled_from(["-0.25", "+3", "-0", "1e-5", "-1E+2"]))
    if "special" in kinds:
        options.append(st.sampled_from(["NaN", "nan", "inf", "-inf", "Infinity", "-Infinity", "1e400", "-1e400"]))
    if "underscore" in kinds:
        options.append(st.sampled_from(["1_0", "1_000.5"]))
    if "padded" in kinds:
        options.append(st.sampled_from([" 1", "2 ", " 3.5 "]))
    if "bad" in kinds:
        options.append(st.sampled_from(["abc", "1,5", "0x10", "--1", "1.2.3", "½", "\u0661\u0662"]))
    if "empty" in kinds:
        options.append(st.just(""))
    if "hostile_text" in kinds:
        options.append(hostile_text(text_kinds))
    return st.one_of(options)


@dataclass(frozen=True)
class Shape:
    """The columns of one service's test pipeline: the key, free-text columns and numeric columns."""

    key: str
    text: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    # Text columns that must not be blank for the record to be sendable (Bedrock's prompt).
    anchor_values: dict[str, str] = field(default_factory=dict)

    @property
    def header(self) -> list[str]:
        return [self.key, *self.text, *self.numeric]


@dataclass(frozen=True)
class Hostility:
    """The kinds switched on for one service (every kind, less its known-broken ones)."""

    key: frozenset[str]
    text: frozenset[str]
    number: frozenset[str]
    file: frozenset[str]

    @classmethod
    def everything(cls) -> Hostility:
        return cls(frozenset(KEY_KINDS), frozenset(TEXT_KINDS), frozenset(NUMBER_KINDS), frozenset(FILE_KINDS))

    def without(self, broken: dict[str, str]) -> Hostility:
        """Less the kinds named ``key:<kind>``, ``text:<kind>``, ``number:<kind>`` or ``file:<kind>``."""
        off: dict[str, set[str]] = {"key": set(), "text": set(), "number": set(), "file": set()}
        for name in broken:
            role, _, kind = name.partition(":")
            off[role].add(kind)
        return Hostility(
            self.key - off["key"], self.text - off["text"], self.number - off["number"], self.file - off["file"]
        )

    def but_not(self, *kinds: str) -> Hostility:
        return self.without(dict.fromkeys(kinds, ""))


@dataclass(frozen=True)
class Record:
    key: str
    values: dict[str, str]  # column -> value, the key column included
    line: int = 0  # where the record starts in the file (set when rendered)
    anchor: bool = False  # a plain record with a unique key: must be predicted whatever its neighbours are


@dataclass(frozen=True)
class HostileFile:
    name: str
    body: bytes
    header: list[str]
    records: list[Record]
    layout: dict[str, Any]

    def describe(self) -> str:
        return f"{self.name} {self.layout}: " + repr(self.body[:600])


@st.composite
def records(draw: Any, shape: Shape, hostility: Hostility, *, max_records: int = 6, anchors: int = 2) -> list[Record]:
    keys = hostile_text(hostility.key)
    texts = hostile_text(hostility.text, min_size=0)
    numbers = number_text(hostility.number, hostility.text)
    drawn: list[Record] = []
    for _ in range(draw(st.integers(0, max_records))):
        choice = draw(st.sampled_from(["new", "new", "new", "repeat", "blank"]))
        if choice == "repeat" and "repeated_key" in hostility.file and drawn:
            key = draw(st.sampled_from([record.key for record in drawn]))
        elif choice == "blank" and "blank_key" in hostility.file:
            key = draw(st.sampled_from(["", " ", "  "]))
        else:
            key = draw(keys)
            if "repeated_key" not in hostility.file:
                while key in {record.key for record in drawn}:
                    key += "u"  # drawn twice by chance: keep keys unique when repeats are switched off
        values = {shape.key: key}
        values.update({column: draw(texts) for column in shape.text})
        values.update({column: draw(numbers) for column in shape.numeric})
        drawn.append(Record(key, values))
    taken = {record.key for record in drawn}
    for number in range(anchors):
        key = f"anchor{number}"
        while key in taken:
            key += "x"
        values = {shape.key: key, **{c: shape.anchor_values.get(c, "plain words") for c in shape.text}}
        values.update({column: "1.5" for column in shape.numeric})
        position = draw(st.integers(0, len(drawn)))
        drawn.insert(position, Record(key, values, anchor=True))
    return drawn


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _csv_cell(text: str, quote_all: bool) -> str:
    if quote_all or re.search('[,"\r\n]', text):
        return '"' + text.replace('"', '""') + '"'
    return text


def render_csv(
    shape: Shape,
    drawn: list[Record],
    *,
    eol: str = "\n",
    bom: bool = False,
    quote_all: bool = False,
    min_bytes: int = 0,
) -> HostileFile:
    """CSV bytes for the records (RFC 4180 quoting), each record placed at the line where it starts; plain
    padding records are added until the file has ``min_bytes``."""
    header = shape.header
    text = ",".join(_csv_cell(name, quote_all) for name in header) + eol
    line = 1 + len(_LINE_BREAK.findall(text))
    placed = []
    for record in drawn:
        placed.append(Record(record.key, record.values, line, record.anchor))
        row = ",".join(_csv_cell(record.values[name], quote_all) for name in header) + eol
        text += row
        line += len(_LINE_BREAK.findall(row))
    for values in _padding(shape, len(text.encode()), min_bytes, len(eol)):
        placed.append(Record(values[shape.key], values, line, True))
        text += ",".join(_csv_cell(values[name], quote_all) for name in header) + eol
        line += 1
    body = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    return HostileFile("upload.csv", body, header, placed, {"eol": eol, "bom": bom, "quote_all": quote_all})


def _padding(shape: Shape, size: int, min_bytes: int, eol_bytes: int) -> list[dict[str, str]]:
    rows, number = [], 0
    while size < min_bytes:
        values = {shape.key: f"pad{number}", **{c: shape.anchor_values.get(c, "plain words") for c in shape.text}}
        values.update({column: "2.5" for column in shape.numeric})
        rows.append(values)
        size += len(",".join(values.values())) + eol_bytes + 20  # about a JSON line's or a CSV row's length
        number += 1
    return rows


def plain_record(shape: Shape, key: str, **values: str) -> Record:
    """A record with plain values but the key (and any column) given."""
    filled = {shape.key: key, **{c: "plain words" for c in shape.text}, **{c: "1.5" for c in shape.numeric}}
    return Record(key, {**filled, **values})


@st.composite
def csv_files(draw: Any, shape: Shape, hostility: Hostility, *, min_bytes: int = 0, **options: Any) -> HostileFile:
    drawn = draw(records(shape, hostility, **options))
    eol = "\r\n" if "crlf_lines" in hostility.file and draw(st.booleans()) else "\n"
    bom = "bom" in hostility.file and draw(st.booleans())
    quote_all = "quote_all" in hostility.file and draw(st.booleans())
    return render_csv(shape, drawn, eol=eol, bom=bom, quote_all=quote_all, min_bytes=min_bytes)


_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|NaN|-?Infinity")


def render_jsonl(
    shape: Shape, drawn: list[Record], *, eol: str = "\n", ensure_ascii: bool = False, min_bytes: int = 0
) -> HostileFile:
    """JSON lines: strings as JSON strings; a numeric column's value as a bare JSON number when it is one."""

    def line_of(values: dict[str, str]) -> str:
        fields = []
        for name in shape.header:
            value = values[name]
            literal = value if name in shape.numeric and _JSON_NUMBER.fullmatch(value) else None
            fields.append(json.dumps(name) + ":" + (literal or json.dumps(value, ensure_ascii=ensure_ascii)))
        return "{" + ",".join(fields) + "}" + eol

    text, placed = "", []
    for number, record in enumerate(drawn, start=1):
        placed.append(Record(record.key, record.values, number, record.anchor))
        text += line_of(record.values)
    for values in _padding(shape, len(text.encode()), min_bytes, len(eol)):
        placed.append(Record(values[shape.key], values, len(placed) + 1, True))
        text += line_of(values)
    layout = {"eol": eol, "ensure_ascii": ensure_ascii}
    return HostileFile("upload.jsonl", text.encode("utf-8"), shape.header, placed, layout)


@st.composite
def jsonl_files(draw: Any, shape: Shape, hostility: Hostility, *, min_bytes: int = 0, **options: Any) -> HostileFile:
    drawn = draw(records(shape, hostility, **options))
    eol = "\r\n" if "crlf_lines" in hostility.file and draw(st.booleans()) else "\n"
    ensure_ascii = "ensure_ascii" in hostility.file and draw(st.booleans())
    return render_jsonl(shape, drawn, eol=eol, ensure_ascii=ensure_ascii, min_bytes=min_bytes)
