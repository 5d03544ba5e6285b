"""`batchline validate`: Prepare's own checks on a local file, before anything is uploaded or billed."""

from __future__ import annotations

import csv
import itertools
import os
from pathlib import Path
from typing import Any

from batchline.adapters.base import InputEncoder
from batchline.config import PipelineConfig
from batchline.errors import InputRejected
from batchline.prepare import RejectWriter, StagedPart, chunk_parts, prepare_records, temp_workdir

SHOWN_REJECTIONS = 20


def validate_file(path: Path, pipeline: PipelineConfig, encoder: InputEncoder) -> dict[str, Any]:
    """Counts, the first rejected rows with line and reason, and how many service jobs the file would make."""
    report: dict[str, Any] = {
        "file": str(path),
        "pipeline": pipeline.name,
        "provider": pipeline.provider,
        "records": 0,
        "sent": 0,
        "rejected": 0,
        "jobs": 0,
        "rejections": [],
        "error": None,
    }
    size = path.stat().st_size
    if size > pipeline.max_input_bytes:
        report["error"] = f"{path}: {size} bytes, over this pipeline's maxInputBytes ({pipeline.max_input_bytes})"
        return report
    with temp_workdir() as workdir:
        # Rejected rows go to disk and only the first few are read back: a bad 100-million-row file stays small here.
        rejected_path = os.path.join(workdir, "rejected.csv")
        with open(rejected_path, "w", encoding="utf-8", newline="") as rejected:
            try:
                result = prepare_records(
                    lambda: path.open("rb"),
                    source_name=str(path),
                    key_column=pipeline.key_column,
                    encoder=encoder,
                    rejects=RejectWriter(rejected, str(path), spreadsheet_safe=False),
                    parts=_LocalParts(),
                    workdir=workdir,
                )
                report.update(records=result.input_records, sent=result.sent, rejected=result.rejected)
                if result.sent:
                    report["jobs"] = len(chunk_parts(result.parts, encoder.limits, str(path)))
            except InputRejected as exc:
                report["error"] = str(exc)
        with open(rejected_path, encoding="utf-8", newline="") as rejected:
            rows = itertools.islice(csv.DictReader(rejected), SHOWN_REJECTIONS)
            report["rejections"] = [{"line": int(r["line"]), "key": r["key"], "reason": r["reason"]} for r in rows]
    return report


class _LocalParts:
    """Nothing is uploaded: a part's files are removed as it finishes (result.parts keeps its size for the jobs)."""

    def add(self, part: StagedPart) -> None:
        os.remove(part.path)
        os.remove(part.index_path)

    def discard(self) -> None:
        pass  # nothing was kept
