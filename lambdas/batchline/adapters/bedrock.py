"""Amazon Bedrock batch inference: one JSON line per record, ``{"recordId", "modelInput"}``.

Every record's recordId is generated, ``R<sequence>`` (alphanumeric, as the service wants), and the index
sidecar maps it back to the key: a user's key is never sent, so no key can collide with another record's
ID, whatever it looks like. The sequence is unique within a run and fixed by the input, so a retried
Prepare stages the same lines. Output order is not guaranteed: results are keyed by recordId, and the
counts in ``manifest.json.out`` are reconciled with what was read. botocore fills a random clientRequestToken when
none is given, so a deterministic one is always passed: a retried create returns the same job.
https://docs.aws.amazon.com/bedrock/latest/userguide/batch-inference-data.html
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import posixpath
import re
from collections.abc import Callable, Iterator
from typing import Any

from botocore.exceptions import ClientError

from batchline.adapters.base import (
    EncodedRecord,
    FailedRecord,
    JobLimits,
    JobState,
    JobStatus,
    Prediction,
    QuotaReading,
    RecordRejected,
    RunContext,
    StagedRecord,
    translate_client_error,
)
from batchline.adapters.bedrock_on_demand import FOLDER, OnDemandJob, read_finished
from batchline.clock import iso
from batchline.config import BedrockSettings, require_role
from batchline.errors import InputRejected, JobNotFound, OutputInvalid
from batchline.layout import S3Location
from batchline.lines import JsonLineTemplate
from batchline.naming import job_name_for
from batchline.s3io import json_lines, list_keys, open_object

_STATUS = {
    "submitted": JobStatus.PENDING,
    "validating": JobStatus.PENDING,
    "scheduled": JobStatus.PENDING,
    "inprogress": JobStatus.RUNNING,
    "stopping": JobStatus.RUNNING,
    "completed": JobStatus.SUCCEEDED,
    "partiallycompleted": JobStatus.PARTIAL,
    "failed": JobStatus.FAILED,
    "stopped": JobStatus.STOPPED,
    "expired": JobStatus.FAILED,
}
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
_JOB_ARN = re.compile(r"^arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:\d{12}:model-invocation-job/[a-z0-9]{12}$")
MANIFEST = "manifest.json.out"
# ServiceQuotaExceededException's wording is not published for batch jobs, and no API answers whether a slot can
# free (the quota, "Sum of in-progress and submitted batch inference jobs using a base model for <model>", is per
# model and Region). So the message is read narrowly: a quota named in quotes and stated to be 0 can never take
# this job (a job takes one slot). Anything else, worded otherwise or not, waits for a slot, bounded by the
# run's deadline (maxRunHours).
_QUOTA_IS = re.compile(r"'(?P<name>[^']+)'[^'.]*?\bis (?P<limit>\d+)\b")
_IN_USE = re.compile(r"\b(?P<usage>\d+) (?:jobs? )?(?:are |is )?(?:in progress|in use|submitted)")


def record_id_for(sequence: int) -> str:
    """The recordId of the record staged at ``sequence``: alphanumeric and distinct for distinct sequences."""
    return f"R{sequence:011d}"


def normalise_status(raw: str) -> JobStatus:
    return _STATUS.get(raw.replace(" ", "").replace("_", "").lower(), JobStatus.RUNNING)


def model_input(family: str, prompt: str, settings: BedrockSettings) -> dict[str, Any]:
    """The request body for one record, in the shape the model family expects."""
    if family == "anthropic":
        body: dict[str, Any] = {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": settings.max_tokens,
            "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
        }
        if settings.temperature is not None:
            body["temperature"] = settings.temperature
        return body
    if family == "titan":
        config: dict[str, Any] = {"maxTokenCount": settings.max_tokens}
        if settings.temperature is not None:
            config["temperature"] = settings.temperature
        return {"inputText": prompt, "textGenerationConfig": config}
    if family == "titan-embed":
        # https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html
        embed: dict[str, Any] = {"inputText": prompt}
        if settings.titan_embed_v2 and settings.embedding_dimensions is not None:
            embed["dimensions"] = settings.embedding_dimensions
        return embed
    if family == "cohere-embed":
        # https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-embed.html
        return {"texts": [prompt], "input_type": settings.embedding_input_type}
    if family in ("nova", "converse"):
        inference: dict[str, Any] = {"maxTokens": settings.max_tokens}
        if settings.temperature is not None:
            inference["temperature"] = settings.temperature
        body = {"messages": [{"role": "user", "content": [{"text": prompt}]}], "inferenceConfig": inference}
        if family == "nova":
            body["schemaVersion"] = "messages-v1"
        return body
    return _fill(copy.deepcopy(settings.body_template or {}), prompt)


def _fill(value: Any, prompt: str) -> Any:
    if isinstance(value, str):
        return value.replace("{prompt}", prompt)
    if isinstance(value, list):
        return [_fill(item, prompt) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, prompt) for key, item in value.items()}
    return value


def output_text(model_output: Any) -> str | None:
    """The generated text for the common families, or None when the shape is not one we know."""
    if not isinstance(model_output, dict):
        return None
    content = model_output.get("content")  # Anthropic messages
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    message = (
        (model_output.get("output") or {}).get("message") if isinstance(model_output.get("output"), dict) else None
    )
    if isinstance(message, dict):  # Converse and Nova
        return "".join(part.get("text", "") for part in message.get("content", []) if isinstance(part, dict))
    results = model_output.get("results")  # Titan text
    if isinstance(results, list) and results and isinstance(results[0], dict):
        return "".join(str(result.get("outputText", "")) for result in results)
    for key in ("generation", "completion", "outputText"):  # Llama, Claude v2 text, others
        if isinstance(model_output.get(key), str):
            return str(model_output[key])
    return None


def result_columns(settings: BedrockSettings) -> list[str]:
    """The prediction columns after the key: the vector for embedding models; else the text, the raw output for a
    family we do not know, and the extracted fields with the reason any is blank."""
    if settings.is_embedding:
        if settings.embedding_output == "columns" and settings.embedding_dimensions is not None:
            return [f"embedding_{n}" for n in range(settings.embedding_dimensions)]
        return ["embedding"]
    columns = ["output_text"]
    if settings.resolved_family == "custom":
        columns.append("model_output")
    if settings.extract_fields:
        columns += [*settings.extract_fields, "extract_error"]
    return columns


class AnswerReader:
    """One modelOutput -> its CSV cells (after the key), or the reason the record failed."""

    def __init__(self, settings: BedrockSettings) -> None:
        self._settings = settings

    def row(self, model_output: Any) -> list[str] | str:
        settings = self._settings
        if settings.is_embedding:
            return self._embedding(model_output)
        text = output_text(model_output)
        row = [text or ""]
        if settings.resolved_family == "custom":
            row.append(json.dumps(model_output, ensure_ascii=False))
        if settings.extract_fields:
            values, reason = extract_fields(text, settings.extract_fields)
            row += [*values, reason]
        return row

    def _embedding(self, model_output: Any) -> list[str] | str:
        vector = embedding_vector(model_output)
        if vector is None:
            return "Bedrock answered without an embedding (no numeric vector in the model's output)"
        expected = self._settings.embedding_dimensions
        if expected is not None and len(vector) != expected:
            return f"the embedding has {len(vector)} values, not embeddingDimensions {expected}"
        if self._settings.embedding_output == "columns":
            return [repr(float(value)) for value in vector]
        return [json.dumps(vector)]


def embedding_vector(model_output: Any) -> list[float] | None:
    """The vector of a Titan (``embedding``) or Cohere (``embeddings[0]``, or ``embeddings.float[0]``) answer."""
    if not isinstance(model_output, dict):
        return None
    vector: Any = model_output.get("embedding")
    if vector is None:
        embeddings = model_output.get("embeddings")
        if isinstance(embeddings, dict):  # Cohere with embedding_types: {"float": [[...]]}
            embeddings = embeddings.get("float")
        if isinstance(embeddings, list) and len(embeddings) == 1:
            vector = embeddings[0]
    if not isinstance(vector, list) or not vector:
        return None
    if not all(isinstance(value, int | float) and not isinstance(value, bool) for value in vector):
        return None
    return [float(value) for value in vector]


_FENCE = re.compile(r"^```[A-Za-z]*[ \t]*\r?\n(?P<body>.*?)\r?\n?```$", re.DOTALL)


def extract_fields(text: str | None, fields: list[str]) -> tuple[list[str], str]:
    """The named top-level fields of a JSON object answer, as cells, and why any is blank ("" when none is).

    A string value is written as it is, null as blank, any other value as its JSON text. The answer may be wrapped
    in one Markdown code fence (```json ... ```), as models often write it; nothing else around it is guessed at.
    """
    blank = [""] * len(fields)
    if text is None or not text.strip():
        return blank, "the answer has no text to read fields from"
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced["body"].strip()
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        detail = f"{exc.msg} at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else exc
        return blank, f"the answer is not JSON ({detail})"
    if not isinstance(parsed, dict):
        return blank, f"the answer is JSON but not an object (a {type(parsed).__name__})"
    values, missing = [], []
    for name in fields:
        if name not in parsed:
            missing.append(name)
            values.append("")
        elif parsed[name] is None:
            values.append("")
        elif isinstance(parsed[name], str):
            values.append(parsed[name])
        else:
            values.append(json.dumps(parsed[name], ensure_ascii=False))
    return values, (f"the answer has no field {', '.join(missing)}" if missing else "")


class BedrockJsonEncoder:
    suffix = ".jsonl"
    content_type = "application/json"

    def __init__(self, settings: BedrockSettings) -> None:
        self._settings = settings
        self._family = settings.resolved_family
        self.max_records_per_file = min(settings.records_per_file, settings.max_records_per_job)
        self.max_bytes_per_file = settings.max_bytes_per_file
        self.limits = JobLimits(
            min_records_per_job=settings.min_records_per_job,
            max_records_per_job=settings.max_records_per_job,
            max_bytes_per_job=settings.max_bytes_per_job,
            below_minimum_allowed=settings.on_demand_below_minimum,
        )
        self._header: list[str] = []
        self._key_index = 0
        self._template: JsonLineTemplate | None = None

    def start(self, header: list[str], key_index: int) -> dict[str, Any]:
        settings = self._settings
        needed = (
            [settings.prompt_column] if settings.prompt_column else _PLACEHOLDER.findall(settings.prompt_template or "")
        )
        missing = [column for column in needed if column not in header]
        if missing:
            raise InputRejected(
                f"prompt columns not in the header: {', '.join(missing)} (columns: {', '.join(header)})"
            )
        self._header, self._key_index = header, key_index
        # Every line has the same body around its prompt: encoded once, the record's strings spliced in
        # (lines.py), unless the prompt lands inside a longer string of a custom bodyTemplate.
        self._template = JsonLineTemplate.compile(self._line, 2)
        return {"keyHeader": header[key_index], "modelFamily": self._family}

    def _line(self, record_id: str, prompt: str) -> dict[str, Any]:
        return {"recordId": record_id, "modelInput": model_input(self._family, prompt, self._settings)}

    def encode(self, row: list[str], sequence: int) -> EncodedRecord:
        prompt = self._prompt(row)
        if not prompt.strip():
            raise RecordRejected("the prompt is empty")
        record_id = record_id_for(sequence)
        if self._template is not None:
            return EncodedRecord(self._template.render(record_id, prompt), record_id)
        return EncodedRecord(json.dumps(self._line(record_id, prompt), ensure_ascii=False) + "\n", record_id)

    def _prompt(self, row: list[str]) -> str:
        """Plain substitution of {column} placeholders: nothing in a row is ever evaluated or formatted."""
        if self._settings.prompt_column:
            return row[self._header.index(self._settings.prompt_column)]
        values = dict(zip(self._header, row, strict=True))
        return _PLACEHOLDER.sub(lambda match: values[match.group(1)], self._settings.prompt_template or "")


class BedrockAdapter:
    provider = "bedrock"

    def __init__(
        self, settings: BedrockSettings, bedrock: Any, s3: Any, runtime: Callable[[], Any] | None = None
    ) -> None:
        self._settings = settings
        self._bedrock = bedrock
        self._s3 = s3
        # bedrock-runtime, made only when a chunk is answered on demand.
        self._runtime = runtime

    def on_demand(self, run: RunContext) -> bool:
        """True when the chunk is under the batch minimum and is answered on demand instead of by a batch job."""
        settings = self._settings
        return settings.on_demand_below_minimum and run.chunk.records < settings.min_records_per_job

    def input_encoder(self) -> BedrockJsonEncoder:
        return BedrockJsonEncoder(self._settings)

    def job_id(self, run: RunContext) -> str:
        """The job name: Bedrock's ARNs carry a generated ID, so describe() looks names up."""
        return job_name_for(run.run_id, suffix=f"-{run.chunk.index}")

    def create_request(self, run: RunContext) -> dict[str, Any]:
        settings = self._settings
        name = self.job_id(run)
        output: dict[str, Any] = {"s3Uri": run.chunk.output_prefix.uri}
        if settings.kms_key_arn:
            output["s3EncryptionKeyId"] = settings.kms_key_arn
        request: dict[str, Any] = {
            "jobName": name,
            "roleArn": require_role(settings.role_arn, "Bedrock"),
            "clientRequestToken": hashlib.sha256(f"{run.run_id}/{run.chunk.index}".encode()).hexdigest(),
            "modelId": settings.model_id,
            "inputDataConfig": {"s3InputDataConfig": {"s3Uri": run.chunk.input_prefix.uri, "s3InputFormat": "JSONL"}},
            "outputDataConfig": {"s3OutputDataConfig": output},
            "timeoutDurationInHours": settings.timeout_hours,
            "tags": [
                *({"key": key, "value": value} for key, value in settings.tags.items()),
                {"key": "batchline:pipeline", "value": run.pipeline.name},
            ],
        }
        if settings.invocation_type == "Converse":
            request["modelInvocationType"] = "Converse"
        return request

    def submit(self, run: RunContext) -> JobState:
        if self.on_demand(run):
            if self._runtime is None:
                raise ValueError("answering on demand needs a bedrock-runtime client")
            job = OnDemandJob(self._settings, self._runtime(), self._s3)
            manifest, summary = job.run(run.chunk.input_prefix, run.chunk.output_prefix)
            return self._on_demand_state(run, manifest, summary)
        try:
            arn = self._bedrock.create_model_invocation_job(**self.create_request(run))["jobArn"]
        except ClientError as exc:
            raise _translate(exc) from exc
        return self.describe(run, arn)

    def describe(self, run: RunContext, job_id: str) -> JobState:
        if self.on_demand(run):
            finished = read_finished(self._s3, run.chunk.output_prefix)
            if finished is None:  # answered inside Submit only: no output means no job (yet)
                raise JobNotFound(f"Bedrock on demand has not answered job {job_id}: its submit never finished")
            return self._on_demand_state(run, *finished)
        arn = self._resolve(job_id)
        try:
            described = self._bedrock.get_model_invocation_job(jobIdentifier=arn)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                raise JobNotFound(f"Bedrock has no batch inference job {job_id}: it was never created") from exc
            raise _translate(exc) from exc
        raw = described["status"]
        counts = {
            name: int(described[field])
            for name, field in (
                ("total", "totalRecordCount"),
                ("processed", "processedRecordCount"),
                ("succeeded", "successRecordCount"),
                ("errored", "errorRecordCount"),
            )
            if described.get(field) is not None
        }
        message = described.get("message") or ("the job expired before it finished" if raw == "Expired" else None)
        status = normalise_status(raw)
        return JobState(described["jobArn"], status, raw, message, counts, self._figures(run, described, status))

    def _figures(self, run: RunContext, described: dict[str, Any], status: JobStatus) -> dict[str, Any]:
        """The job's own times and, once it has results, the tokens its manifest.json.out counts. Bedrock gives
        no start time (lastModifiedTime is any change), so startedAt is not reported for a batch job."""
        figures: dict[str, Any] = {}
        if described.get("submitTime") is not None:
            figures["createdAt"] = iso(described["submitTime"])
        if described.get("endTime") is not None:
            figures["endedAt"] = iso(described["endTime"])
        if status in (JobStatus.SUCCEEDED, JobStatus.PARTIAL):
            figures.update(self._manifest_tokens(run))
        return figures

    def _manifest_tokens(self, run: RunContext) -> dict[str, int]:
        prefix = run.chunk.output_prefix
        for key in list_keys(self._s3, prefix):
            if posixpath.basename(key) == MANIFEST and FOLDER not in key[len(prefix.key) :]:
                with open_object(self._s3, S3Location(prefix.bucket, key)) as body:
                    manifest = json.loads(body.read())
                return {
                    name: int(manifest[field])
                    for name, field in (("inputTokens", "inputTokenCount"), ("outputTokens", "outputTokenCount"))
                    if manifest.get(field) is not None
                }
        return {}

    def _on_demand_state(self, run: RunContext, manifest: dict[str, Any], summary: dict[str, Any]) -> JobState:
        """An on-demand job as a batch job's look: the same statuses, counts and figures from its own manifest."""
        total, succeeded = int(manifest["totalRecordCount"]), int(manifest["successRecordCount"])
        raw = "PartiallyCompleted" if 0 < succeeded < total else "Completed"  # as a batch job ends
        counts = {
            "total": total,
            "processed": int(manifest["processedRecordCount"]),
            "succeeded": succeeded,
            "errored": int(manifest["errorRecordCount"]),
        }
        figures = {
            "startedAt": summary["startedAt"],
            "endedAt": summary["endedAt"],
            "invocations": int(summary["invocations"]),
            "inputTokens": int(manifest["inputTokenCount"]),
            "outputTokens": int(manifest["outputTokenCount"]),
        }
        message = (
            f"answered on demand ({summary['invocationType']}): {total} records, under the batch minimum of "
            f"{self._settings.min_records_per_job}"
        )
        return JobState(self.job_id(run), normalise_status(raw), raw, message, counts, figures)

    def _resolve(self, job_id: str) -> str:
        if _JOB_ARN.match(job_id):
            return job_id
        try:
            summaries = self._bedrock.list_model_invocation_jobs(nameContains=job_id).get("invocationJobSummaries", [])
        except ClientError as exc:
            raise _translate(exc) from exc
        for summary in summaries:
            if summary["jobName"] == job_id:
                return str(summary["jobArn"])
        raise JobNotFound(f"no Bedrock batch inference job is named {job_id}: it was never created")

    def stop(self, run: RunContext, job_id: str) -> bool:
        state = self.describe(run, job_id)
        if not state.status.is_terminal and state.raw_status != "Stopping":
            try:
                self._bedrock.stop_model_invocation_job(jobIdentifier=state.job_id)
            except ClientError as exc:
                raise _translate(exc) from exc
        return True

    def result_columns(self, run: RunContext) -> list[str]:
        return result_columns(self._settings)

    def read_results(
        self, run: RunContext, job: JobState, staged: Iterator[StagedRecord]
    ) -> Iterator[Prediction | FailedRecord]:
        outputs: dict[str, str] = {}
        manifest_key = None
        for key in list_keys(self._s3, run.chunk.output_prefix):  # <prefix>/<job-id>/<file>.out: list, don't guess
            name = posixpath.basename(key)
            if name == MANIFEST:
                manifest_key = key
            elif name.endswith(".out"):
                outputs[name] = key
        succeeded = errored = 0
        # One part's records at a time (staged yields them part by part): memory is bounded by a part.
        for part, records in itertools.groupby(staged, key=lambda record: record.part):
            by_id = {record.record_id: record for record in records}
            output_key = outputs.pop(part + ".out", None)
            if output_key is not None:
                for result in self._read_part(S3Location(run.chunk.output_prefix.bucket, output_key), by_id, part):
                    succeeded += isinstance(result, Prediction)
                    errored += isinstance(result, FailedRecord)
                    yield result
            for record in by_id.values():
                yield FailedRecord(record.key, record.line, f"Bedrock returned no output for it ({job.raw_status})")
        if outputs:
            raise OutputInvalid(f"output files match no staged input: {', '.join(sorted(outputs))}")
        if manifest_key:
            self._reconcile(S3Location(run.chunk.output_prefix.bucket, manifest_key), succeeded, errored)

    def _read_part(
        self, location: S3Location, by_id: dict[str, StagedRecord], part: str
    ) -> Iterator[Prediction | FailedRecord]:
        answer = AnswerReader(self._settings)
        for number, data in json_lines(self._s3, location):
            record = by_id.pop(str(data.get("recordId")), None)
            if record is None:
                raise OutputInvalid(f"{part}.out line {number}: recordId {data.get('recordId')!r} was not staged")
            if data.get("error"):
                error = data["error"]
                message = error.get("errorMessage") if isinstance(error, dict) else str(error)
                code = error.get("errorCode") if isinstance(error, dict) else None
                yield FailedRecord(record.key, record.line, f"Bedrock error {code}: {message}")
                continue
            row = answer.row(data.get("modelOutput"))
            if isinstance(row, str):
                yield FailedRecord(record.key, record.line, row)
            else:
                yield Prediction(record.key, record.line, [row])

    def _reconcile(self, location: S3Location, succeeded: int, errored: int) -> None:
        with open_object(self._s3, location) as body:
            manifest = json.loads(body.read())
        expected = manifest.get("successRecordCount")
        if expected is not None and int(expected) != succeeded:
            raise OutputInvalid(
                f"{location.uri} counts {expected} successful records but the output holds {succeeded} "
                f"(and {errored} errors)"
            )


def read_quota(message: str) -> QuotaReading | None:
    """The quota a ServiceQuotaExceededException names and its stated value (a job asks for one slot), or None."""
    match = _QUOTA_IS.search(message)
    if match is None:
        return None
    in_use = _IN_USE.search(message)
    return QuotaReading(match["name"], int(match["limit"]), int(in_use["usage"]) if in_use else 0, 1)


def _translate(exc: ClientError) -> Exception:
    return translate_client_error(
        exc,
        "Bedrock",
        frozenset({"ServiceQuotaExceededException"}),
        read_quota,
        "Ask for more in Service Quotas (service Amazon Bedrock, the quota named here, in this Region), or use a "
        "model the account has batch inference quota for.",
    )
