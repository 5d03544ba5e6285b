"""The one list of hostile kinds each service is known to break on: the property tests leave them out.

Each entry is ``"<role>:<kind>"`` (roles: key, text, number, file; kinds: hostile.py) -> what breaks. The
breakage itself is pinned by a strict xfail in test_known_failures.py, which flips when it is fixed: then
delete the entry here and the property test takes the kind back.
"""

from __future__ import annotations

_LONE_CR_INDEX = (
    "a lone CR in a key: the staged index is written by csv.writer (prepare.PartWriter), which leaves it unquoted"
)
_SPLITLINES = "U+2028/U+0085: the emulator splits its input with str.splitlines(), the run fails (JSONDecodeError)"

KNOWN_BROKEN: dict[str, dict[str, str]] = {
    "sagemaker": {
        "number:bad": "a non-numeric feature fails its file, the job ends Failed and the whole run fails "
        "(flow.plan_collect raises JobFailed; the other files' .out are never read)",
        "number:empty": "same as number:bad (float('') in the model)",
        "number:hostile_text": "same as number:bad",
        "file:repeated_key": "a repeated key discards the first read's parts; the SageMaker emulator lists the "
        "delete-marked keys (AttributeError in emulators/sagemaker._keys)",
    },
    "personalize": {
        "key:cr": _LONE_CR_INDEX + "; DuckDB cannot read it in keyed.reconcile",
        "key:crlf": "a CRLF inside a quoted key: DuckDB cannot read the staged index/keys back in keyed.reconcile "
        "(InvalidInputException, run fails in AssembleOutput)",
        "key:u2028": _SPLITLINES + " (emulators/personalize._write_outputs)",
        "key:u0085": _SPLITLINES + " (emulators/personalize._write_outputs)",
    },
    "bedrock": {
        "key:cr": _LONE_CR_INDEX + "; collect.staged_records reads it back split",
        "text:u2028": _SPLITLINES + " (emulators/bedrock._run)",
        "text:u0085": _SPLITLINES + " (emulators/bedrock._run)",
        "key:record_id": "a key equal to a generated record ID (R00000000000) collides in Bedrock's recordIds",
    },
    "amazonml": {
        "key:cr": _LONE_CR_INDEX + "; collect.staged_records reads it back split",
        "key:lf": "a line break in a key: adapters/amazonml._result_rows reads results line by line "
        "(OutputInvalid: more lines than the staged input)",
        "key:crlf": "same as key:lf",
        "number:large_negative": "the emulated model overflows (math.exp in emulators/amazonml._predict): "
        "OverflowError fails the run",
    },
    "vertex": {
        "key:cr": _LONE_CR_INDEX + "; DuckDB cannot read it in keyed.reconcile",
        "key:crlf": "a CRLF in a key: when a collect unit's keys file has only such keys, DuckDB sniffs CRLF as the "
        "line end and cannot read it (keyed.reconcile, InvalidInputException)",
        "key:u2028": _SPLITLINES + " (emulators/google_cloud._run: the fake drops the connection)",
        "key:u0085": _SPLITLINES + " (emulators/google_cloud._run)",
        "text:u2028": _SPLITLINES + " (emulators/google_cloud._run)",
        "text:u0085": _SPLITLINES + " (emulators/google_cloud._run)",
        "number:special": "NaN/inf/1e400 are staged as NaN/Infinity, which is not JSON (adapters/vertex encode)",
    },
}

# A check of checks.py switched off (None when it runs): the record column of a rejected CSV row with a line break.
RECORD_COLUMN_LINE_BREAK: str | None = (
    "errors.csv's record column leaves CR and LF unquoted (prepare._row_text: csv.writer with lineterminator='' "
    "quotes neither), so a rejected row holding a line break does not read back as its cells"
)
