"""Amazon Personalize batch inference and batch segment jobs.

Input is JSON lines keyed by the query field (userId, itemId or itemAttributes); output is
``<input-file>.out`` JSON lines echoing the input, so records are matched back by that value.
Job names are permanent and there is no client token: the name is derived from the run, and
"already exists" means "describe it". Batch jobs cannot be stopped.
https://docs.aws.amazon.com/personalize/latest/dg/recommendations-batch.html
"""

from __future__ import annotations

import itertools
import json
import posixpath
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from batchline.adapters.base import (
    EncodedRecord,
    FailedRecord,
    JobLimits,
    JobState,
    JobStatus,
    Prediction,
    RecordRejected,
    RunContext,
    StagedRecord,
    UnitFiles,
    translate_client_error,
)
from batchline.clock import iso
from batchline.config import PersonalizeSettings, require_role
from batchline.errors import JobConflict, JobNotFound, OutputInvalid
from batchline.layout import S3Location
from batchline.lines import JsonLineTemplate
from batchline.naming import job_name_for
from batchline.s3io import json_lines, list_keys, list_objects

# Per job: at most 1 GB of input and 50 million records per file (Personalize developer guide, quotas).
LIMITS = JobLimits(max_records_per_job=50_000_000, max_bytes_per_job=1024**3)


def normalise_status(raw: str) -> JobStatus:
    """Status is a free string ("CREATE PENDING", "IN PROGRESS", "CREATE FAILED"): match by its words."""
    words = raw.upper().replace("_", " ").replace("-", " ")
    if "FAILED" in words:
        return JobStatus.FAILED
    if "ACTIVE" in words:
        return JobStatus.SUCCEEDED
    if "PENDING" in words:
        return JobStatus.PENDING
    return JobStatus.RUNNING


class PersonalizeJsonEncoder:
    suffix = ".jsonl"
    content_type = "application/json"
    limits = LIMITS
    max_bytes_per_file = 1024**3

    def __init__(self, settings: PersonalizeSettings) -> None:
        self._settings = settings
        self.max_records_per_file = settings.records_per_file
        self._key_index = 0
        self._item_list_index: int | None = None
        self._filter_indexes: dict[str, int] = {}
        self._template: JsonLineTemplate | None = None

    def start(self, header: list[str], key_index: int) -> dict[str, Any]:
        from batchline.errors import InputRejected

        settings = self._settings
        self._key_index = key_index
        wanted = {name: column for name, column in settings.filter_value_columns.items()}
        if settings.item_list_column:
            wanted["itemList"] = settings.item_list_column
        missing = sorted(column for column in wanted.values() if column not in header)
        if missing:
            raise InputRejected(f"columns named in the pipeline config are not in the header: {', '.join(missing)}")
        if settings.item_list_column:
            self._item_list_index = header.index(settings.item_list_column)
        self._filter_indexes = {name: header.index(column) for name, column in settings.filter_value_columns.items()}
        # The usual query line is {"userId": key}: encoded once, the key spliced in (lines.py).
        plain = self._item_list_index is None and not self._filter_indexes
        field = settings.query_field
        self._template = JsonLineTemplate.compile(lambda key: {field: key}, 1) if plain else None
        return {"keyHeader": header[key_index], "queryField": settings.query_field}

    def encode(self, row: list[str], sequence: int) -> EncodedRecord:
        key = row[self._key_index]
        if self._template is not None:
            return EncodedRecord(self._template.render(key), key)
        line: dict[str, Any] = {self._settings.query_field: key}
        if self._item_list_index is not None:
            items = [item.strip() for item in row[self._item_list_index].split(self._settings.item_list_separator)]
            items = [item for item in items if item]
            if not items:
                raise RecordRejected(f"{self._settings.item_list_column} is empty: nothing to rank")
            line["itemList"] = items
        if self._filter_indexes:
            # Filter values are quoted strings in the filter expression syntax.
            line["filterValues"] = {name: json.dumps(row[index]) for name, index in self._filter_indexes.items()}
        return EncodedRecord(json.dumps(line, ensure_ascii=False) + "\n", key)


class PersonalizeAdapter:
    provider = "personalize"

    def __init__(self, settings: PersonalizeSettings, personalize: Any, s3: Any) -> None:
        self._settings = settings
        self._personalize = personalize
        self._s3 = s3

    def input_encoder(self) -> PersonalizeJsonEncoder:
        return PersonalizeJsonEncoder(self._settings)

    @property
    def _kind(self) -> str:
        return "batch-segment-job" if self._settings.is_segment_job else "batch-inference-job"

    def job_id(self, run: RunContext) -> str:
        """The job's ARN, built from the solution version's partition, region and account."""
        arn = self._settings.solution_version_arn.split(":")
        name = job_name_for(run.run_id, suffix=f"-{run.chunk.index}")
        return f"arn:{arn[1]}:personalize:{arn[3]}:{arn[4]}:{self._kind}/{name}"

    def create_request(self, run: RunContext) -> dict[str, Any]:
        settings = self._settings
        source: dict[str, Any] = {"path": run.chunk.input_prefix.uri}
        destination: dict[str, Any] = {"path": run.chunk.output_prefix.uri}
        if settings.input_kms_key:
            source["kmsKeyArn"] = settings.input_kms_key
        if settings.output_kms_key:
            destination["kmsKeyArn"] = settings.output_kms_key
        # Ours last: a user's tag can never replace it (config refuses the batchline: prefix anyway).
        tags = {**settings.tags, "batchline:pipeline": run.pipeline.name}
        request: dict[str, Any] = {
            "jobName": self.job_id(run).rsplit("/", 1)[1],
            "solutionVersionArn": settings.solution_version_arn,
            "roleArn": require_role(settings.role_arn, "Personalize"),
            "jobInput": {"s3DataSource": source},
            "jobOutput": {"s3DataDestination": destination},
            "tags": [{"tagKey": key, "tagValue": value} for key, value in tags.items()],
        }
        if settings.num_results:
            request["numResults"] = settings.num_results
        if settings.filter_arn:
            request["filterArn"] = settings.filter_arn
        if settings.batch_inference_job_config:
            request["batchInferenceJobConfig"] = settings.batch_inference_job_config.model_dump(
                by_alias=True, exclude_none=True
            )
        if settings.generates_themes and settings.theme_generation_config:
            # https://docs.aws.amazon.com/personalize/latest/dg/themed-batch-recommendations.html
            request["batchInferenceJobMode"] = "THEME_GENERATION"
            request["themeGenerationConfig"] = settings.theme_generation_config.model_dump(by_alias=True)
        return request

    def submit(self, run: RunContext) -> JobState:
        request = self.create_request(run)
        operation = "create_batch_segment_job" if self._settings.is_segment_job else "create_batch_inference_job"
        try:
            getattr(self._personalize, operation)(**request)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceAlreadyExistsException":
                raise _translate(exc) from exc
            # Names are permanent: the job exists because an earlier attempt created it. Check it is ours.
            described = self._describe_raw(self.job_id(run))
            if described.get("solutionVersionArn") != request["solutionVersionArn"] or (
                described.get("jobInput", {}).get("s3DataSource", {}).get("path") != run.chunk.input_prefix.uri
            ):
                raise JobConflict(f"{self.job_id(run)} exists for another solution version or input") from exc
            return _state(self.job_id(run), described)
        return self.describe(run, self.job_id(run))

    def describe(self, run: RunContext, job_id: str) -> JobState:
        return _state(job_id, self._describe_raw(job_id))

    def _describe_raw(self, job_id: str) -> dict[str, Any]:
        try:
            if self._settings.is_segment_job:
                return dict(self._personalize.describe_batch_segment_job(batchSegmentJobArn=job_id)["batchSegmentJob"])
            return dict(
                self._personalize.describe_batch_inference_job(batchInferenceJobArn=job_id)["batchInferenceJob"]
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                raise JobNotFound(f"Personalize has no batch job {job_id}: it was never created") from exc
            raise _translate(exc) from exc

    def stop(self, run: RunContext, job_id: str) -> bool:
        return False  # Personalize has no API to stop a batch job

    def result_columns(self, run: RunContext) -> list[str]:
        if self._settings.is_segment_job:
            return ["user_id"] if self._settings.output_format == "long" else ["user_ids"]
        theme = ["theme"] if self._settings.generates_themes else []
        if self._settings.output_format == "long":
            return ["rank", "item_id", "score", *theme]
        return ["item_ids", "scores", *theme]

    # --- Sharded collect (base.ShardedOutput): every .out line echoes its key, so byte ranges of one
    # output object can be turned into rows apart, by DuckDB (see personalize_duckdb for the measurements).

    def output_objects(self, run: RunContext) -> list[tuple[str, int]]:
        staged = {posixpath.basename(key) for key in list_keys(self._s3, run.chunk.input_prefix)}
        objects = [(key, size) for key, size in list_objects(self._s3, run.chunk.output_prefix) if key.endswith(".out")]
        unknown = sorted(posixpath.basename(key) for key, _ in objects if posixpath.basename(key)[:-4] not in staged)
        if unknown:
            raise OutputInvalid(f"output files match no staged input: {', '.join(unknown)}")
        return objects

    def collect_shard(self, run: RunContext, source_path: str, *, workdir: str, files: UnitFiles) -> dict[str, int]:
        from batchline.adapters import personalize_duckdb

        counts = personalize_duckdb.shard_to_csv(
            personalize_duckdb.connect(workdir),
            source_path,
            settings=self._settings,
            predictions_path=files.predictions,
            keys_path=files.keys,
            failed_path=files.failed,
            header=files.header,
            spreadsheet_safe=files.spreadsheet_safe,
        )
        return {"lines": counts.records, "predicted": counts.predicted, "failed": counts.failed, "rows": counts.rows}

    def missing_reason(self, run: RunContext, job: JobState) -> str:
        return "Personalize returned no output line for it ({part})"

    def read_results(
        self, run: RunContext, job: JobState, staged: Iterator[StagedRecord]
    ) -> Iterator[Prediction | FailedRecord]:
        """Match each ``.out`` line to its staged record by the echoed query value (not by order)."""
        outputs = {
            posixpath.basename(key): key for key in list_keys(self._s3, run.chunk.output_prefix) if key.endswith(".out")
        }
        # One part's records at a time (staged yields them part by part): memory is bounded by a part.
        for part, records in itertools.groupby(staged, key=lambda record: record.part):
            by_key = {record.key: record for record in records}
            output_key = outputs.pop(part + ".out", None)
            if output_key is not None:
                yield from self._read_part(S3Location(run.layout.work_bucket, output_key), by_key, part)
            for record in by_key.values():  # whatever the output did not mention
                yield FailedRecord(record.key, record.line, f"Personalize returned no output line for it ({part})")
        if outputs:
            raise OutputInvalid(f"output files match no staged input: {', '.join(sorted(outputs))}")

    def _read_part(
        self, location: S3Location, by_key: dict[str, StagedRecord], part: str
    ) -> Iterator[Prediction | FailedRecord]:
        field = self._settings.query_field
        for number, data in json_lines(self._s3, location):
            echoed = (data.get("input") or {}).get(field, data.get(field))
            record = by_key.pop(str(echoed), None) if echoed is not None else None
            if record is None:
                raise OutputInvalid(f"{part}.out line {number} echoes {field}={echoed!r}, which was not staged")
            if data.get("error"):
                error = data["error"]
                yield FailedRecord(
                    record.key,
                    record.line,
                    f"Personalize: {error if isinstance(error, str) else json.dumps(error)}",
                )
                continue
            yield Prediction(record.key, record.line, self._rows(data.get("output") or {}))

    def _rows(self, output: dict[str, Any]) -> list[list[str]]:
        long = self._settings.output_format == "long"
        if self._settings.is_segment_job:
            users = [str(u) for u in output.get("recommendedUsers", output.get("usersList", []))]
            if not long:
                return [["|".join(users)]]
            return [[user] for user in users] or [[""]]
        items = [str(i) for i in output.get("recommendedItems", [])]
        # Theme jobs score each item by its relevance to the theme instead (itemsThemeRelevanceScores).
        raw_scores = output.get("itemsThemeRelevanceScores" if self._settings.generates_themes else "scores", [])
        scores = [_number(s) for s in raw_scores or []] + [""] * len(items)
        theme = [str(output.get("theme") or "")] if self._settings.generates_themes else []
        if not long:
            return [["|".join(items), "|".join(scores[: len(items)]), *theme]]
        rows = [[str(rank), item, scores[rank - 1], *theme] for rank, item in enumerate(items, start=1)]
        return rows or [["", "", "", *theme]]


def _number(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _state(job_id: str, described: dict[str, Any]) -> JobState:
    raw = str(described.get("status", ""))
    status = normalise_status(raw)
    return JobState(job_id, status, raw, described.get("failureReason") or None, figures=job_figures(described, status))


def job_figures(described: dict[str, Any], status: JobStatus) -> dict[str, Any]:
    """DescribeBatch*Job's own figures: creationDateTime, and lastUpdatedDateTime as the end once the job ended.

    A batch job cannot be updated (the API has no update, stop or delete for it), so the last update of an ACTIVE
    or CREATE FAILED job is its move to that status. The API gives no start time and no consumption.
    """
    figures: dict[str, Any] = {}
    created, updated = described.get("creationDateTime"), described.get("lastUpdatedDateTime")
    if isinstance(created, datetime):
        figures["createdAt"] = iso(created)
    if status.is_terminal and isinstance(updated, datetime):
        figures["endedAt"] = iso(updated)
    return figures


def _translate(exc: ClientError) -> Exception:
    return translate_client_error(exc, "Personalize", frozenset({"LimitExceededException"}))
