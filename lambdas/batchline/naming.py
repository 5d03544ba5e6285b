"""Deterministic names: the same upload always maps to the same run, and the same run to the same job."""

from __future__ import annotations

import hashlib
import re

_EXECUTION_NAME_MAX = 80
# Every service job Batchline creates starts with this: IAM policies and the job-event rules are scoped to it.
JOB_NAME_PREFIX = "bl-"


def run_id_for(pipeline: str, bucket: str, key: str, version_id: str | None) -> str:
    """Execution name for one object version: a duplicate event starts nothing new, a re-upload runs again.

    Step Functions names are 1-80 characters of [A-Za-z0-9-_]; the digest keeps them unique and stable.
    """
    digest = hashlib.sha256(f"{bucket}\n{key}\n{version_id or 'null'}".encode()).hexdigest()[:32]
    stem = re.sub(r"[^a-z0-9-]", "-", pipeline.lower())[: _EXECUTION_NAME_MAX - len(digest) - 1]
    return f"{stem}-{digest}"


def job_name_for(run_id: str, *, max_length: int = 63, suffix: str = "") -> str:
    """Service job name: ``bl-`` (the prefix IAM policies are scoped to) + a digest of the run ID."""
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:24]
    readable = re.sub(r"[^a-z0-9]+", "-", run_id.rsplit("-", 1)[0].lower()).strip("-")
    room = max_length - len(JOB_NAME_PREFIX) - len(digest) - 1 - len(suffix)
    stem = readable[: max(room, 0)].strip("-")
    return "-".join(part for part in (JOB_NAME_PREFIX.rstrip("-"), stem, digest) if part) + suffix
