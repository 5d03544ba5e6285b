"""Bedrock below its batch minimum: SubmitJob answers the chunk's records itself, on demand.

A batch job needs ``minRecordsPerJob`` records (100 for most models); a smaller chunk is answered with
bedrock-runtime InvokeModel (or Converse, for Converse bodies), a few calls at a time, and written where a batch
job writes, in its shape: ``<output>/on-demand/<part>.out`` lines ``{"recordId", "modelInput", "modelOutput"}``
or ``{..., "error": {"errorCode", "errorMessage"}}``, then ``manifest.json.out`` with the counts and tokens
(https://docs.aws.amazon.com/bedrock/latest/userguide/batch-inference-results.html). Collect reads it unchanged.

Retries resume: answers are checkpointed in ``on-demand/progress/`` as they come, so a retried Submit calls the
model only for records not yet answered and writes each output file whole (no duplicate lines); the manifest is
written last and marks the job done. Throttling, ServiceUnavailable and ModelNotReady are retried here with
jittered back-off; still refused after that, or past the time budget, the answers so far are kept and
ServiceThrottled hands the wait to the state machine's back-off, whose retry resumes. A record the model refuses
(ValidationException, ModelErrorException) is one failed record, as in a batch job's output.
"""

from __future__ import annotations

import json
import posixpath
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from batchline.clock import iso, utc_now
from batchline.config import ON_DEMAND_BUDGET_SECONDS, BedrockSettings
from batchline.errors import ServiceThrottled
from batchline.layout import S3Location
from batchline.s3io import json_lines, list_keys, object_exists, open_object, put_bytes

FOLDER = "on-demand/"
MANIFEST = "manifest.json.out"
SUMMARY = "summary.json"
# Worth another try after a pause (the service's own words for "not now").
RETRYABLE = frozenset(
    {
        "ThrottlingException",
        "ServiceUnavailableException",
        "ModelNotReadyException",
        "InternalServerException",
        "ServiceQuotaExceededException",
        "ModelTimeoutException",
    }
)
# The model refuses this record: retrying cannot change the answer.
REFUSALS = frozenset({"ValidationException", "ModelErrorException"})
# Past its attempts, a timeout belongs to the record (a prompt too long to answer in time), the rest to the run.
_RECORD_LEVEL_AFTER_RETRIES = frozenset({"ModelTimeoutException"})
_CHECKPOINT_EVERY = 20  # answers per progress object: a retry loses at most the calls in flight


@dataclass(frozen=True)
class Backoff:
    """Attempts per call and the full-jitter exponential pause between them."""

    attempts: int = 6
    base_seconds: float = 0.5
    cap_seconds: float = 20.0

    def pause(self, attempt: int, draw: Callable[[], float]) -> float:
        return draw() * min(self.cap_seconds, self.base_seconds * 2**attempt)


@dataclass
class Answer:
    """One record's output line as a batch job writes it, with what it cost."""

    part: str
    line: dict[str, Any]
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "part": self.part,
            "line": self.line,
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "calls": self.calls,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Answer:
        return cls(data["part"], data["line"], data["inputTokens"], data["outputTokens"], data["calls"])


@dataclass
class _Stop:
    """Set by the first call that gives up on the run's behalf: the others start no new call."""

    reason: str | None = None
    # Calls made for records left unanswered (their retry calls again): counted in the job's invocations.
    unanswered_calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, reason: str, calls: int = 0) -> None:
        with self.lock:
            self.reason = self.reason or reason
            self.unanswered_calls += calls


def output_folder(output_prefix: S3Location) -> S3Location:
    return S3Location(output_prefix.bucket, output_prefix.key + FOLDER)


def read_finished(s3: Any, output_prefix: S3Location) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The finished on-demand job's manifest and summary, or None while it has not finished."""
    folder = output_folder(output_prefix)
    manifest = S3Location(folder.bucket, folder.key + MANIFEST)
    if not object_exists(s3, manifest):
        return None
    with open_object(s3, manifest) as body:
        counts = json.loads(body.read())
    with open_object(s3, S3Location(folder.bucket, folder.key + SUMMARY)) as body:
        summary = json.loads(body.read())
    return counts, summary


class OnDemandJob:
    """Answers one chunk's staged records with bedrock-runtime, resumably (see the module's docstring)."""

    def __init__(
        self,
        settings: BedrockSettings,
        runtime: Any,
        s3: Any,
        *,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
        draw: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
        budget_seconds: float = ON_DEMAND_BUDGET_SECONDS,
    ) -> None:
        self._settings = settings
        self._runtime = runtime
        self._s3 = s3
        self._backoff = backoff or Backoff()
        self._sleep, self._draw, self._clock = sleep, draw, clock
        self._budget = budget_seconds

    def run(self, input_prefix: S3Location, output_prefix: S3Location) -> tuple[dict[str, Any], dict[str, Any]]:
        """Answer every record not yet answered, then write the output; returns (manifest, summary)."""
        finished = read_finished(self._s3, output_prefix)
        if finished is not None:
            return finished  # a retried Submit after the job finished: nothing to call
        folder = output_folder(output_prefix)
        started = self._started_at(folder)
        records = list(self._staged(input_prefix))
        answers, segments, unanswered_calls = self._progress(folder)
        remaining = [record for record in records if record[1]["recordId"] not in answers]
        stop = _Stop()
        deadline = self._clock() + self._budget
        pending: list[Answer] = []
        try:
            with ThreadPoolExecutor(max_workers=self._settings.on_demand_concurrency) as pool:
                for answer in pool.map(lambda record: self._answer(record, stop, deadline), remaining):
                    if answer is None:
                        continue
                    answers[answer.line["recordId"]] = answer
                    pending.append(answer)
                    if len(pending) >= _CHECKPOINT_EVERY:
                        segments = self._checkpoint(folder, segments, pending)
                        pending = []
        finally:  # also when a call failed the job: what was answered is kept for the retry
            if pending:
                segments = self._checkpoint(folder, segments, pending)
        if stop.reason is not None:
            self._count_unanswered(folder, segments, stop.unanswered_calls)
            left = len(records) - len(answers)
            raise ServiceThrottled(
                f"Bedrock on demand: {len(answers)} of {len(records)} records answered, {left} left ({stop.reason}); "
                "the answers are kept and the retried submit goes on from there"
            )
        return self._finish(folder, records, answers, started, unanswered_calls)

    # --- reading -----------------------------------------------------------------------------------

    def _staged(self, input_prefix: S3Location) -> Iterator[tuple[str, dict[str, Any]]]:
        """(part name, staged line) of every record, in staging order."""
        for key in list_keys(self._s3, input_prefix):
            if key.endswith(".jsonl"):
                part = posixpath.basename(key)
                for _, line in json_lines(self._s3, S3Location(input_prefix.bucket, key)):
                    yield part, line

    def _progress(self, folder: S3Location) -> tuple[dict[str, Answer], int, int]:
        """The answers earlier attempts checkpointed, by recordId; how many progress objects hold them; and the
        calls earlier attempts made for records they left unanswered."""
        answers: dict[str, Answer] = {}
        segments = unanswered_calls = 0
        progress = S3Location(folder.bucket, folder.key + "progress/")
        for key in list_keys(self._s3, progress):
            name = posixpath.basename(key)
            if name.startswith("answers-"):
                segments += 1
                for _, data in json_lines(self._s3, S3Location(folder.bucket, key)):
                    answer = Answer.from_json(data)
                    answers[answer.line["recordId"]] = answer
            elif name.startswith("unanswered-"):
                with open_object(self._s3, S3Location(folder.bucket, key)) as body:
                    unanswered_calls += int(json.loads(body.read())["calls"])
        return answers, segments, unanswered_calls

    def _started_at(self, folder: S3Location) -> str:
        location = S3Location(folder.bucket, folder.key + "progress/started.json")
        if object_exists(self._s3, location):
            with open_object(self._s3, location) as body:
                return str(json.loads(body.read())["startedAt"])
        started = iso(utc_now())
        put_bytes(self._s3, location, json.dumps({"startedAt": started}).encode(), "application/json")
        return started

    # --- calling -----------------------------------------------------------------------------------

    def _answer(self, record: tuple[str, dict[str, Any]], stop: _Stop, deadline: float) -> Answer | None:
        """One record's answer, or None when the job stops first (its record stays for the retry)."""
        part, staged = record
        body = staged["modelInput"]
        line: dict[str, Any] = {"recordId": staged["recordId"], "modelInput": body}
        for attempt in range(self._backoff.attempts):
            if stop.reason is not None:
                stop.set(stop.reason, attempt)
                return None
            if self._clock() >= deadline:
                stop.set(f"the {self._budget:.0f} s budget of one submit ran out", attempt)
                return None
            try:
                output, tokens = self._call(body)
            except ClientError as exc:
                code = exc.response["Error"]["Code"]
                message = exc.response["Error"].get("Message", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 400
                if code in REFUSALS:
                    line["error"] = {"errorCode": status, "errorMessage": f"{code}: {message}"}
                    return Answer(part, line, calls=attempt + 1)
                if code not in RETRYABLE:
                    stop.set(f"{code}: {message}", attempt + 1)  # the calls not yet made are not made
                    raise
                if attempt + 1 == self._backoff.attempts:
                    if code in _RECORD_LEVEL_AFTER_RETRIES:
                        line["error"] = {"errorCode": status, "errorMessage": f"{code}: {message}"}
                        return Answer(part, line, calls=attempt + 1)
                    stop.set(f"{code} after {self._backoff.attempts} attempts: {message}", attempt + 1)
                    return None
                self._sleep(self._backoff.pause(attempt, self._draw))
                continue
            line["modelOutput"] = output
            return Answer(part, line, tokens[0], tokens[1], attempt + 1)
        return None  # not reached: the last attempt returns above

    def _call(self, body: dict[str, Any]) -> tuple[dict[str, Any], tuple[int, int]]:
        """The model's answer to one body, as a batch job's modelOutput, and its (input, output) tokens."""
        model = self._settings.model_id
        if self._settings.invocation_type == "Converse":
            response = self._runtime.converse(modelId=model, **body)
            output = {key: response[key] for key in ("output", "stopReason", "usage", "metrics") if key in response}
            return output, token_counts(output, {})
        response = self._runtime.invoke_model(
            modelId=model, body=json.dumps(body).encode(), contentType="application/json", accept="application/json"
        )
        output = json.loads(response["body"].read())
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return output, token_counts(output, headers)

    # --- writing -----------------------------------------------------------------------------------

    def _checkpoint(self, folder: S3Location, segments: int, answers: list[Answer]) -> int:
        text = "".join(json.dumps(answer.to_json(), ensure_ascii=False) + "\n" for answer in answers)
        location = S3Location(folder.bucket, f"{folder.key}progress/answers-{segments:05d}.jsonl")
        put_bytes(self._s3, location, text.encode("utf-8"), "application/x-ndjson")
        return segments + 1

    def _count_unanswered(self, folder: S3Location, segments: int, calls: int) -> None:
        # Named by time too: an attempt that answered nothing has the same segment count as the one before it.
        location = S3Location(folder.bucket, f"{folder.key}progress/unanswered-{segments:05d}-{time.time_ns()}.json")
        put_bytes(self._s3, location, json.dumps({"calls": calls}).encode(), "application/json")

    def _finish(
        self,
        folder: S3Location,
        records: list[tuple[str, dict[str, Any]]],
        answers: dict[str, Answer],
        started: str,
        unanswered_calls: int,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        by_part: dict[str, list[str]] = {}
        for part, staged in records:
            answer = answers[staged["recordId"]]
            by_part.setdefault(part, []).append(json.dumps(answer.line, ensure_ascii=False) + "\n")
        for part, lines in by_part.items():  # each file whole: a rewrite after a retry duplicates nothing
            location = S3Location(folder.bucket, f"{folder.key}{part}.out")
            put_bytes(self._s3, location, "".join(lines).encode("utf-8"), "application/x-ndjson")
        chosen = [answers[staged["recordId"]] for _, staged in records]
        succeeded = sum(1 for answer in chosen if "modelOutput" in answer.line)
        manifest = {
            "totalRecordCount": len(chosen),
            "processedRecordCount": len(chosen),
            "successRecordCount": succeeded,
            "errorRecordCount": len(chosen) - succeeded,
            "inputTokenCount": sum(answer.input_tokens for answer in chosen),
            "outputTokenCount": sum(answer.output_tokens for answer in chosen),
        }
        summary = {
            "invocationType": self._settings.invocation_type,
            "invocations": unanswered_calls + sum(answer.calls for answer in answers.values()),
            "startedAt": started,
            "endedAt": iso(utc_now()),
        }
        put_bytes(
            self._s3, S3Location(folder.bucket, folder.key + SUMMARY), json.dumps(summary).encode(), "application/json"
        )
        # Last: its presence says the job finished (read_finished).
        put_bytes(
            self._s3,
            S3Location(folder.bucket, folder.key + MANIFEST),
            json.dumps(manifest).encode(),
            "application/json",
        )
        return manifest, summary


def token_counts(output: Any, headers: dict[str, str]) -> tuple[int, int]:
    """(input, output) tokens of one answer: InvokeModel's token headers, else the body's usage in the
    family's own names (Converse and Nova ``usage``, Anthropic ``usage``, Titan's counts); 0 when none says."""
    if "x-amzn-bedrock-input-token-count" in headers:
        return (
            int(headers["x-amzn-bedrock-input-token-count"]),
            int(headers.get("x-amzn-bedrock-output-token-count", 0)),
        )
    if not isinstance(output, dict):
        return 0, 0
    usage = output.get("usage")
    if isinstance(usage, dict):
        if "inputTokens" in usage:
            return int(usage.get("inputTokens") or 0), int(usage.get("outputTokens") or 0)
        return int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    if "inputTextTokenCount" in output:
        results = output.get("results")
        listed: list[Any] = results if isinstance(results, list) else []
        produced = sum(int(result.get("tokenCount") or 0) for result in listed if isinstance(result, dict))
        return int(output["inputTextTokenCount"] or 0), produced
    return 0, 0
