"""The one list of hostile kinds each service is known to break on: the property tests leave them out.

Each entry is ``"<role>:<kind>"`` (roles: key, text, number, file; kinds: hostile.py) -> what breaks. The
breakage itself is pinned by a strict xfail in test_known_failures.py, which flips when it is fixed: then
delete the entry here and the property test takes the kind back.
"""

from __future__ import annotations

# Empty since issue 13's fixes: every kind hostile.py draws runs on every service.
KNOWN_BROKEN: dict[str, dict[str, str]] = {
    provider: {} for provider in ("sagemaker", "personalize", "bedrock", "amazonml", "vertex")
}

# A check of checks.py switched off (None when it runs): the record column of a rejected CSV row with a line break.
RECORD_COLUMN_LINE_BREAK: str | None = None
