"""Staged service input in the work bucket: Prepare's parts under ``input/`` and the copies each job reads."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from batchline.adapters.base import Chunk
from batchline.layout import RunLayout, S3Location
from batchline.prepare import StagedPart
from batchline.s3io import copy_object, delete_objects, upload_file

# Copies are server-side and each waits on S3, not on this process: a few run at once.
_COPY_THREADS = 16


class StagedInput:
    """Prepare's parts, uploaded under the run's input prefix as they finish (the local copies are removed).

    ``discard`` deletes every uploaded part and its index again: the service reads every object under the
    prefix, so a part from a discarded read must not stay there.
    """

    def __init__(self, s3: Any, layout: RunLayout, content_type: str) -> None:
        self._s3, self._layout, self._content_type = s3, layout, content_type
        self.parts: list[StagedPart] = []

    def add(self, part: StagedPart) -> None:
        upload_file(self._s3, part.path, self._layout.input_part(part.name), self._content_type)
        upload_file(self._s3, part.index_path, self._layout.index_for(part.name), "text/csv")
        os.remove(part.path)
        os.remove(part.index_path)
        self.parts.append(part)

    def discard(self) -> None:
        discard_parts(self._s3, self._layout, [part.name for part in self.parts])
        self.parts = []


def discard_parts(s3: Any, layout: RunLayout, names: list[str]) -> None:
    """Delete staged parts and their indexes by name."""
    keys = []
    for name in names:
        keys += [layout.input_part(name).key, layout.index_for(name).key]
    delete_objects(s3, layout.work_bucket, keys)


def stage_jobs(s3: Any, layout: RunLayout, parts: list[StagedPart], groups: list[list[int]]) -> list[Chunk]:
    """One chunk per job. A single job reads input/ as staged; several jobs each get a prefix of copies."""
    chunks = []
    copies: list[tuple[S3Location, S3Location]] = []
    for job_index, group in enumerate(groups):
        input_prefix = layout.job_input_prefix(job_index, len(groups))
        if len(groups) > 1:
            for part_index in group:
                name = parts[part_index].name
                copies.append((layout.input_part(name), S3Location(input_prefix.bucket, input_prefix.key + name)))
        records = sum(parts[i].records for i in group)
        chunks.append(Chunk(job_index, input_prefix, layout.job_output_prefix(job_index), records))
    with ThreadPoolExecutor(max_workers=_COPY_THREADS) as pool:
        list(pool.map(lambda pair: copy_object(s3, *pair), copies))  # list() raises the first copy's error
    return chunks
