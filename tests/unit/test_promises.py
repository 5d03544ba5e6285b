"""docs/promises.md names the tests that keep each promise: every one it names must exist."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROMISES = ROOT / "docs" / "promises.md"
_REFERENCE = re.compile(r"`([^`]*::[^`]*)`")


def named_tests() -> list[tuple[str, str]]:
    """(file pattern, test pattern) for every `path::test` (and `::test` of the path before it) in the table."""
    found = []
    for row in PROMISES.read_text(encoding="utf-8").splitlines():
        if not row.startswith("|"):
            continue
        path = ""
        for reference in _REFERENCE.findall(row):
            file_part, test = reference.split("::", 1)
            path = file_part or path
            found.append((path, test))
    return found


def test_every_test_a_promise_names_exists() -> None:
    references = named_tests()
    assert len(references) > 40
    missing = []
    for file_pattern, test_pattern in references:
        files = sorted((ROOT / "tests").glob(file_pattern))
        names = {name for path in files for name in re.findall(r"^def (test_\w+)", path.read_text(), re.MULTILINE)}
        if not fnmatch.filter(names, test_pattern):
            missing.append(f"{file_pattern}::{test_pattern}")
    assert not missing, missing
