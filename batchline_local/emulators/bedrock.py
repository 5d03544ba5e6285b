"""Amazon Bedrock batch inference, emulated (moto raises NotImplementedError for these calls).

Jobs go Submitted -> Validating -> Scheduled -> InProgress -> Completed over GetModelInvocationJob calls,
then write ``<output>/<job-id>/<input-file>.out`` (records shuffled: the service keeps no order) and
``manifest.json.out`` with the record counts. A retried create with the same clientRequestToken returns
the same job, as on the service. The "model" answers with a deterministic, clearly emulated sentence in
the response shape of the request's family (Anthropic messages, Titan text, Converse/Nova, or generic).

Input is read as the service reads it (https://docs.aws.amazon.com/bedrock/latest/userguide/batch-inference-data.html):
the ``.jsonl`` objects under the prefix, lines split on LF only, each a strict JSON object. A line that is not
one, a recordId that is not alphanumeric, or a job outside the records/bytes quotas (the pipeline config's
values, else the common ones) fails the job while Validating. A record the model cannot take gets an
``error`` object instead of ``modelOutput`` (batch-inference-results.html); a missing recordId is added.

Job state change events: each status a job reaches is handed to ``on_event`` as the "Batch Inference Job State
Change" event Bedrock puts on the account's default bus, best effort (``batch_job_event``). With ``job_seconds``
set, a job ends that many seconds after its creation whatever the polls (a timer thread runs it), so a test can
end a job between two polls; otherwise it ends at its ``polls_until_done``-th GetModelInvocationJob.

Job quotas (``job_quotas``, by model ID; unset means the default 20): a create past "Sum of in-progress and
submitted batch inference jobs using a base model for <model>" is refused with ServiceQuotaExceededException
naming the quota, its value and the jobs counted. Bedrock's own wording for it is not published: the message
here is the emulator's, and the adapter reads from it only what it must (see adapters/bedrock.py).

Test hooks: a model ID containing ``failing`` fails the job; a record whose body mentions ``error``
gets a per-record error; ``always-error`` in every record makes a "Completed" job with no successes; a body
saying ``reply in json`` is answered with a JSON object (see emulated_text). Embedding models (Titan Text
Embeddings V1/V2, Cohere Embed) answer a deterministic vector of the model's length in their documented shape.

bedrock-runtime (on-demand inference) is answered by the same emulator: InvokeModel checks the body against
the model family's documented request (Anthropic Messages, Titan Text, Nova; a family it does not know takes
any JSON object) and answers in that family's response shape with its token usage; Converse checks what the
service checks beyond botocore's model (a non-empty conversation that starts with the user and alternates).
A body mentioning ``error`` is refused with ValidationException, as a batch record is. ``throttle_next`` makes
that many of the next runtime calls fail with ThrottlingException; ``runtime_calls`` counts the calls made.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.response import StreamingBody

from batchline_local.emulators.base import (
    EmulatedError,
    MalformedLine,
    PipelineServices,
    ServiceEmulator,
    ServiceIdentity,
    list_keys,
    no_pipelines,
    pipeline_of,
    s3_client,
    service_lines,
    split_s3_uri,
    strict_json,
)

PRINCIPAL = "bedrock.amazonaws.com"

_PROGRESSION = ["Submitted", "Validating", "Scheduled", "InProgress"]
# Jobs that take a slot of the model's quota (Stopping still runs until it is Stopped).
_HOLDING = (*_PROGRESSION, "Stopping")
_ENDED = ("Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired")
DEFAULT_JOB_QUOTA = 20


def job_quota_name(model_id: str) -> str:
    """The Service Quotas name of a model's concurrent batch job quota (the console shows the model's name)."""
    return f"Sum of in-progress and submitted batch inference jobs using a base model for {model_id}"


def emulated_text(model_id: str, body: dict[str, Any]) -> str:
    """The emulated model's answer: a sentence naming the model, or, when the request says ``reply in json``, a JSON
    object (in a ```json fence when it says ``fenced``) with the fields ``answer`` and ``model``."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:8]
    request = json.dumps(body, ensure_ascii=False).lower()
    if "reply in json" in request:
        answer = json.dumps({"answer": f"answer {digest}", "model": model_id, "score": 0.5})
        return f"```json\n{answer}\n```" if "fenced" in request else answer
    return f"[emulated {model_id}] answer {digest}"


def emulated_output(model_id: str, body: dict[str, Any]) -> dict[str, Any]:
    text = emulated_text(model_id, body)
    if "anthropic_version" in body:
        return {"content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "role": "assistant"}
    if "inputText" in body:
        return {"results": [{"outputText": text, "completionReason": "FINISH"}]}
    if "messages" in body:
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": "end_turn",
        }
    return {"result": {"answer": text}}


class BedrockEmulator(ServiceEmulator):
    service = "bedrock"

    def handles(self, client: Any) -> bool:
        """The control plane (batch jobs) and bedrock-runtime (on-demand calls): one service, one state."""
        return bool(client.meta.service_model.service_name in ("bedrock", "bedrock-runtime"))

    def __init__(
        self,
        polls_until_done: int = 2,
        region: str = "us-east-1",
        account: str = "123456789012",
        quotas: Callable[[dict[str, Any]], BedrockQuotas] | None = None,
        services: PipelineServices = no_pipelines,
        *,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        job_seconds: float | None = None,
    ):
        self.polls_until_done = polls_until_done
        self.on_event = on_event  # each job state change, as the service's event
        self.job_seconds = job_seconds  # when set, a job ends this long after its creation, whatever the polls
        self._lock = threading.RLock()
        self._quotas = quotas or (lambda job: quotas_from_pipeline_config(job, services))
        self.region, self.account = region, account
        self.jobs: dict[str, dict[str, Any]] = {}
        self.create_calls = 0
        self.tokens_seen: list[str] = []
        # Applied value of each model's concurrent batch job quota (tests set it; unset: DEFAULT_JOB_QUOTA).
        self.job_quotas: dict[str, int] = {}
        # bedrock-runtime: calls answered or refused, by operation; and how many of the next are throttled.
        self.runtime_calls: dict[str, int] = {"InvokeModel": 0, "Converse": 0}
        self.throttle_next = 0

    # --- bedrock-runtime -----------------------------------------------------------------------------

    def _runtime_call(self, operation: str, model_id: str) -> None:
        with self._lock:
            self.runtime_calls[operation] += 1
            if self.throttle_next > 0:
                self.throttle_next -= 1
                raise EmulatedError("ThrottlingException", "Too many requests, please wait before trying again.", 429)
        if "failing" in model_id:
            raise EmulatedError("ResourceNotFoundException", "Model not found: emulated failing model.", 404)

    def invoke_model(
        self,
        modelId: str,
        body: Any = b"",
        contentType: str = "application/json",
        accept: str = "application/json",
        **_: Any,
    ) -> dict[str, Any]:
        self._runtime_call("InvokeModel", modelId)
        if contentType != "application/json" or accept not in ("application/json", "*/*"):
            raise EmulatedError("ValidationException", f"Unsupported content type or accept: {contentType}, {accept}")
        raw = body.read() if hasattr(body, "read") else body
        try:
            request = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise EmulatedError(
                "ValidationException", "Malformed input request, please reformat your input and try again."
            ) from None
        family = runtime_family(modelId)
        problem = invoke_body_problem(family, request, modelId)
        if problem is not None:
            raise EmulatedError(
                "ValidationException", f"Malformed input request: {problem}, please reformat your input and try again."
            )
        if "error" in json.dumps(request, ensure_ascii=False):
            raise EmulatedError("ValidationException", "emulated: the model rejected this input")
        data = json.dumps(runtime_output(family, modelId, request)).encode()
        return {"body": StreamingBody(io.BytesIO(data), len(data)), "contentType": "application/json"}

    def converse(self, modelId: str, messages: list[dict[str, Any]] | None = None, **rest: Any) -> dict[str, Any]:
        self._runtime_call("Converse", modelId)
        problem = conversation_problem(messages or [], converse=True)
        if problem is not None:
            raise EmulatedError("ValidationException", problem)
        request = {"messages": messages, **rest}
        if "error" in json.dumps(request, ensure_ascii=False, default=str):
            raise EmulatedError("ValidationException", "emulated: the model rejected this input")
        text = emulated_text(modelId, request)
        usage = _usage(request, text)
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": usage[0], "outputTokens": usage[1], "totalTokens": sum(usage)},
            "metrics": {"latencyMs": 1},
        }

    def create_model_invocation_job(self, **params: Any) -> dict[str, Any]:
        token = params.get("clientRequestToken", "")
        self.tokens_seen.append(token)
        for job in self.jobs.values():
            if job["clientRequestToken"] == token:
                return {"jobArn": job["jobArn"]}  # idempotent retry
            if job["jobName"] == params["jobName"]:
                raise EmulatedError("ValidationException", f"a job named {params['jobName']} already exists")
        self._check_job_quota(params["modelId"])
        job_id = hashlib.sha256(params["jobName"].encode()).hexdigest()[:12]
        arn = f"arn:aws:bedrock:{self.region}:{self.account}:model-invocation-job/{job_id}"
        self.create_calls += 1
        now = datetime.now(UTC)
        self.jobs[arn] = {
            **params,
            "submitTime": now,
            "lastModifiedTime": now,
            "jobArn": arn,
            "jobId": job_id,
            "status": "Submitted",
            "step": 0,
            "counts": {},
        }
        self._announce(self.jobs[arn])
        if self.job_seconds is not None:
            timer = threading.Timer(self.job_seconds, self._end, args=(self.jobs[arn],))
            timer.daemon = True
            timer.start()
        return {"jobArn": arn}

    def _check_job_quota(self, model_id: str) -> None:
        limit = self.job_quotas.get(model_id, DEFAULT_JOB_QUOTA)
        usage = sum(1 for job in self.jobs.values() if job["modelId"] == model_id and job["status"] in _HOLDING)
        if usage + 1 > limit:
            raise EmulatedError(
                "ServiceQuotaExceededException",
                f"The request would exceed the quota '{job_quota_name(model_id)}', which is {limit} for this "
                f"account ({usage} in progress or submitted). Request an increase in Service Quotas.",
            )

    def get_model_invocation_job(self, jobIdentifier: str) -> dict[str, Any]:
        job = self._job(jobIdentifier)
        with self._lock:
            before = job["status"]
            if self.job_seconds is not None and not job.get("stop_requested"):
                if job["status"] in _PROGRESSION:
                    job["status"] = "InProgress"  # until its timer ends it
            elif job["status"] in _PROGRESSION:
                job["step"] += 1
                if job["status"] == "Stopping" or job.get("stop_requested"):
                    job["status"] = "Stopped"
                elif job["step"] < self.polls_until_done:
                    job["status"] = _PROGRESSION[min(job["step"], len(_PROGRESSION) - 1)]
                else:
                    self._finish(job)
            elif job["status"] == "Stopping":
                job["status"] = "Stopped"
            changed = job["status"] != before
            if changed:
                job["lastModifiedTime"] = datetime.now(UTC)
                if job["status"] in _ENDED:
                    job["endTime"] = job["lastModifiedTime"]
        if changed:
            self._announce(job)
        answer = {
            key: job[key]
            for key in (
                "jobArn",
                "jobName",
                "modelId",
                "roleArn",
                "status",
                "inputDataConfig",
                "outputDataConfig",
                "clientRequestToken",
                "submitTime",
                "lastModifiedTime",
            )
        }
        if "endTime" in job:
            answer["endTime"] = job["endTime"]
        if job.get("message"):
            answer["message"] = job["message"]
        answer.update(job["counts"])
        return answer

    def _finish(self, job: dict[str, Any]) -> None:
        if "failing" in job["modelId"]:
            job["status"], job["message"] = "Failed", "emulated: the model is not available for batch inference"
        else:
            self._run(job)

    def _end(self, job: dict[str, Any]) -> None:
        """A timed job's end (``job_seconds``): it runs, once, and says so."""
        with self._lock:
            if job["status"] not in _PROGRESSION:
                return
            self._finish(job)
            job["lastModifiedTime"] = job["endTime"] = datetime.now(UTC)
        self._announce(job)

    def _announce(self, job: dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(batch_job_event(job, self.region, self.account))

    def list_model_invocation_jobs(self, nameContains: str = "", **_: Any) -> dict[str, Any]:
        return {
            "invocationJobSummaries": [
                {
                    "jobArn": job["jobArn"],
                    "jobName": job["jobName"],
                    "modelId": job["modelId"],
                    "status": job["status"],
                }
                for job in self.jobs.values()
                if nameContains in job["jobName"]
            ]
        }

    def stop_model_invocation_job(self, jobIdentifier: str) -> dict[str, Any]:
        job = self._job(jobIdentifier)
        if job["status"] in _PROGRESSION:
            job["status"], job["stop_requested"] = "Stopping", True
        return {}

    def _job(self, identifier: str) -> dict[str, Any]:
        for arn, job in self.jobs.items():
            if identifier in (arn, job["jobId"]):
                return job
        raise EmulatedError("ResourceNotFoundException", f"no model invocation job {identifier}", 404)

    def _run(self, job: dict[str, Any]) -> None:
        """Validate the whole input as the service's Validating step does, then answer record by record."""
        # Bedrock reads the input and writes the output as the service role passed to the job.
        source = job["inputDataConfig"]["s3InputDataConfig"]["s3Uri"]
        identity = ServiceIdentity(PRINCIPAL, pipeline_of(source), role_arn=job["roleArn"], source_arn=job["jobArn"])
        s3 = s3_client(identity)
        in_bucket, in_prefix = split_s3_uri(job["inputDataConfig"]["s3InputDataConfig"]["s3Uri"])
        out_bucket, out_prefix = split_s3_uri(job["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"])
        # Only .jsonl objects are input (the location may also hold content the records point to).
        keys = [key for key in list_keys(s3, in_bucket, in_prefix) if key.endswith(".jsonl")]
        try:
            files = self._validated(job, s3, in_bucket, keys)
        except InputInvalid as exc:
            job["status"], job["message"] = "Failed", f"emulated validation failed: {exc}"
            return
        base = f"{out_prefix.rstrip('/')}/{job['jobId']}"
        total = success = 0
        for key, records in files:
            lines = []
            for number, record in records:
                total += 1
                if "recordId" not in record:  # the service adds one in the output
                    record = {"recordId": _generated_id(key, number), **record}
                body = record.get("modelInput")
                problem = _model_input_problem(body) or self._body_problem(job, body)
                if problem is None and "error" in json.dumps(body, ensure_ascii=False):
                    problem = "emulated: the model rejected this input"
                if problem is not None:
                    record["error"] = {"errorCode": 400, "errorMessage": problem}
                else:
                    record["modelOutput"] = self._batch_output(job, body)
                    success += 1
                # Raw UTF-8, as the service writes it: U+2028 and U+0085 reach the reader unescaped.
                lines.append(json.dumps(record, ensure_ascii=False) + "\n")
            lines.sort(key=lambda text: hashlib.sha256(text.encode()).hexdigest())  # no order promised
            s3.put_object(
                Bucket=out_bucket,
                Key=f"{base}/{posixpath.basename(key)}.out",
                Body="".join(lines).encode("utf-8"),
            )
        counts = {
            "totalRecordCount": total,
            "processedRecordCount": total,
            "successRecordCount": success,
            "errorRecordCount": total - success,
        }
        manifest = {**counts, "inputTokenCount": total * 20, "outputTokenCount": success * 8}
        s3.put_object(Bucket=out_bucket, Key=f"{base}/manifest.json.out", Body=json.dumps(manifest).encode())
        job["counts"] = counts
        job["status"] = "Completed" if success == total or success == 0 else "PartiallyCompleted"

    @staticmethod
    def _body_problem(job: dict[str, Any], body: dict[str, Any]) -> str | None:
        """What the model refuses in one record's body: a Converse request for Converse jobs, else the family's."""
        if job.get("modelInvocationType") == "Converse":
            return conversation_problem(body.get("messages"), converse=True)
        return invoke_body_problem(runtime_family(job["modelId"]), body, job["modelId"])

    @staticmethod
    def _batch_output(job: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """The record's modelOutput: the InvokeModel response body of the family, or Converse's response."""
        if job.get("modelInvocationType") == "Converse":
            text = emulated_text(job["modelId"], body)
            usage = _usage(body, text)
            return {
                "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": usage[0], "outputTokens": usage[1], "totalTokens": sum(usage)},
                "metrics": {"latencyMs": 1},
            }
        return runtime_output(runtime_family(job["modelId"]), job["modelId"], body)

    def _validated(
        self, job: dict[str, Any], s3: Any, bucket: str, keys: list[str]
    ) -> list[tuple[str, list[tuple[int, dict[str, Any]]]]]:
        """Every input file's records, or InputInvalid naming the file (and line) that breaks a rule."""
        quotas = self._quotas(job)
        if not keys:
            raise InputInvalid("the input location holds no .jsonl file")
        files, total, total_bytes = [], 0, 0
        for key in keys:
            data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            total_bytes += len(data)
            if len(data) > quotas.max_bytes_per_file:
                raise InputInvalid(f"{key} is {len(data)} bytes, over the {quotas.max_bytes_per_file} per file")
            try:
                records = [(number, _record(line, number)) for number, line in service_lines(data)]
            except UnicodeDecodeError as exc:
                raise InputInvalid(f"{key} is not UTF-8 ({exc.reason} at byte {exc.start})") from None
            except MalformedLine as exc:
                raise InputInvalid(f"{key} {exc}") from None
            if len(records) > quotas.max_records_per_file:
                raise InputInvalid(f"{key} has {len(records)} records, over the {quotas.max_records_per_file} per file")
            total += len(records)
            files.append((key, records))
        if total_bytes > quotas.max_bytes_per_job:
            raise InputInvalid(f"the input is {total_bytes} bytes, over the {quotas.max_bytes_per_job} per job")
        if total < quotas.min_records_per_job:
            raise InputInvalid(f"the job has {total} records, under the minimum of {quotas.min_records_per_job}")
        if total > quotas.max_records_per_job:
            raise InputInvalid(f"the job has {total} records, over the maximum of {quotas.max_records_per_job}")
        return files


def batch_job_event(job: dict[str, Any], region: str, account: str) -> dict[str, Any]:
    """The "Batch Inference Job State Change" event for the job's current status, as Bedrock sends it to the
    default bus (best effort): https://docs.aws.amazon.com/bedrock/latest/userguide/monitoring-eventbridge-how-it-works.html"""
    counts = job.get("counts") or {}
    detail: dict[str, Any] = {
        "version": "0.0",
        "accountId": account,
        "batchJobName": job["jobName"],
        "batchJobArn": job["jobArn"],
        "batchModelId": job["modelId"],
        "status": job["status"],
        "failureMessage": job.get("message", "") if job["status"] == "Failed" else "",
        "processedRecordCount": counts.get("processedRecordCount", 0),
        "successRecordCount": counts.get("successRecordCount", 0),
        "errorRecordCount": counts.get("errorRecordCount", 0),
    }
    return {
        "version": "0",
        "id": f"local-{time.time_ns()}",
        "detail-type": "Batch Inference Job State Change",
        "source": "aws.bedrock",
        "account": account,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": region,
        "resources": [job["jobArn"]],
        "detail": detail,
    }


class InputInvalid(Exception):
    """Input the service refuses as a whole: the job ends Failed during validation."""


@dataclass(frozen=True)
class BedrockQuotas:
    """The account's batch inference quotas for a model (Service Quotas). Defaults: the common values."""

    min_records_per_job: int = 100
    max_records_per_job: int = 50_000
    max_records_per_file: int = 50_000
    max_bytes_per_file: int = 1024**3
    max_bytes_per_job: int = 5 * 1024**3


def quotas_from_pipeline_config(job: dict[str, Any], services: PipelineServices = no_pipelines) -> BedrockQuotas:
    """The quotas the job's pipeline config states (its ``batchline:pipeline`` tag), else the defaults."""
    name = next((tag["value"] for tag in job.get("tags", []) if tag.get("key") == "batchline:pipeline"), None)
    service = services(name)
    if service is None or getattr(service, "provider", None) != "bedrock":
        return BedrockQuotas()
    return BedrockQuotas(
        min_records_per_job=service.min_records_per_job,
        max_records_per_job=service.max_records_per_job,
        max_records_per_file=service.max_records_per_job,
        max_bytes_per_file=service.max_bytes_per_file,
        max_bytes_per_job=service.max_bytes_per_job,
    )


_RECORD_ID = re.compile(r"[A-Za-z0-9]+")


def _record(line: str, number: int) -> dict[str, Any]:
    """One input line: a JSON object whose recordId, when present, is an alphanumeric string."""
    record = strict_json(line, number)
    if not isinstance(record, dict):
        raise MalformedLine(number, f"a record must be a JSON object, not {type(record).__name__}")
    record_id = record.get("recordId")
    if "recordId" in record and not (isinstance(record_id, str) and _RECORD_ID.fullmatch(record_id)):
        raise MalformedLine(number, f"recordId must be an alphanumeric string, not {record_id!r}")
    return record


def _model_input_problem(body: Any) -> str | None:
    """What the model would refuse with a 400 about this request body, or None."""
    if not isinstance(body, dict) or not body:
        return "modelInput must be a non-empty JSON object (the model's request body)"
    messages = body.get("messages")
    if "messages" in body and not (isinstance(messages, list) and messages):
        return "messages must be a non-empty list"
    return None


def _generated_id(key: str, number: int) -> str:
    return hashlib.sha256(f"{key}|{number}".encode()).hexdigest()[:11].upper()


# --- bedrock-runtime request bodies, per model family -----------------------------------------------------------

# https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-anthropic-claude-messages.html
_ANTHROPIC_KEYS = {
    "anthropic_version",
    "anthropic_beta",
    "max_tokens",
    "messages",
    "system",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "tools",
    "tool_choice",
    "thinking",
}
# https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-text.html
_TITAN_CONFIG_KEYS = {"maxTokenCount", "temperature", "topP", "stopSequences"}
# https://docs.aws.amazon.com/nova/latest/userguide/complete-request-schema.html
_NOVA_KEYS = {"schemaVersion", "system", "messages", "inferenceConfig", "toolConfig"}
_NOVA_CONFIG_KEYS = {"maxTokens", "max_new_tokens", "temperature", "topP", "top_p", "topK", "top_k", "stopSequences"}


def runtime_family(model_id: str) -> str:
    """The request family of a model ID or inference profile ID (``us.anthropic...`` is Anthropic)."""
    model = model_id.rsplit("/", 1)[-1].lower()
    for marker, family in (
        ("anthropic.", "anthropic"),
        ("amazon.titan-text", "titan"),
        ("amazon.nova", "nova"),
        ("amazon.titan-embed-text", "titan-embed"),
        ("cohere.embed", "cohere-embed"),
    ):
        if marker in model:
            return family
    return "other"


def invoke_body_problem(family: str, body: Any, model_id: str = "") -> str | None:
    """Why the family's model refuses this InvokeModel body, or None (an unknown family takes any object)."""
    if not isinstance(body, dict) or not body:
        return "the body must be a non-empty JSON object"
    check = _BODY_CHECKS.get(family)
    return check(body, model_id) if check is not None else None


def _extra_key(body: dict[str, Any], allowed: set[str]) -> str | None:
    extra = sorted(set(body) - allowed)
    return f"extraneous key [{extra[0]}] is not permitted" if extra else None


def _anthropic_problem(body: dict[str, Any], model_id: str) -> str | None:
    extra = _extra_key(body, _ANTHROPIC_KEYS)
    if extra:
        return extra
    if body.get("anthropic_version") != "bedrock-2023-05-31":
        return "anthropic_version must be bedrock-2023-05-31"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: a positive integer is required"
    return conversation_problem(body.get("messages"), converse=False)


def _titan_text_problem(body: dict[str, Any], model_id: str) -> str | None:
    if not isinstance(body.get("inputText"), str):
        return "required key [inputText] not found"
    config = body.get("textGenerationConfig", {})
    if not isinstance(config, dict):
        return "textGenerationConfig must be an object"
    return _extra_key(body, {"inputText", "textGenerationConfig"}) or _extra_key(config, _TITAN_CONFIG_KEYS)


def _nova_problem(body: dict[str, Any], model_id: str) -> str | None:
    extra = _extra_key(body, _NOVA_KEYS)
    if extra:
        return extra
    if "schemaVersion" in body and body["schemaVersion"] != "messages-v1":
        return "schemaVersion must be messages-v1"
    config = body.get("inferenceConfig", {})
    if not isinstance(config, dict) or set(config) - _NOVA_CONFIG_KEYS:
        return "inferenceConfig holds an unknown key"
    return conversation_problem(body.get("messages"), converse=False)


def _titan_embed_problem(body: dict[str, Any], model_id: str) -> str | None:
    # V1 takes the text alone; V2 also its dimensions, normalize and embeddingTypes.
    extra = _extra_key(body, _TITAN_EMBED_V2_KEYS if _titan_v2(model_id) else {"inputText"})
    if extra:
        return extra
    if not isinstance(body.get("inputText"), str) or not body["inputText"]:
        return "required key [inputText] not found"
    if "dimensions" in body and body["dimensions"] not in (256, 512, 1024):
        return f"dimensions: {body['dimensions']} is not a valid enum value (256, 512, 1024)"
    return None


def _cohere_embed_problem(body: dict[str, Any], model_id: str) -> str | None:
    extra = _extra_key(body, _COHERE_EMBED_KEYS)
    if extra:
        return extra
    if body.get("input_type") not in _COHERE_INPUT_TYPES:
        return "input_type: one of search_document, search_query, classification, clustering or image is required"
    texts = body.get("texts")
    if not isinstance(texts, list) or not 1 <= len(texts) <= 96 or not all(isinstance(t, str) for t in texts):
        return "texts: a list of 1 to 96 strings is required"
    if any(len(text) > 2048 for text in texts):
        return "texts: each text must be at most 2048 characters"
    return None


_BODY_CHECKS: dict[str, Callable[[dict[str, Any], str], str | None]] = {
    "anthropic": _anthropic_problem,
    "titan": _titan_text_problem,
    "nova": _nova_problem,
    "titan-embed": _titan_embed_problem,
    "cohere-embed": _cohere_embed_problem,
}


_STARTS_WITH_USER = (
    "A conversation must start with a user message. Try again with a conversation that starts with a user message."
)
_ALTERNATES = (
    "A conversation must alternate between user and assistant roles. Make sure the conversation alternates "
    "between user and assistant roles and try again."
)


def conversation_problem(messages: Any, *, converse: bool) -> str | None:
    """A conversation the models refuse: empty, not starting with the user, roles not alternating, empty content."""
    if not isinstance(messages, list) or not messages:
        return (
            "A conversation must start with a user message." if converse else "messages: a non-empty list is required"
        )
    previous = None
    for number, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            return f"messages.{number}.role must be user or assistant"
        if number == 0 and role != "user":
            return _STARTS_WITH_USER
        if role == previous:
            return _ALTERNATES
        content = message.get("content")
        if not content or (isinstance(content, list) and any(not block for block in content)):
            return f"messages.{number}.content must not be empty"
        previous = role
    return None


def _usage(body: Any, text: str) -> tuple[int, int]:
    """Emulated token counts: about four characters a token, as the models' guides estimate."""
    return max(1, len(json.dumps(body, ensure_ascii=False)) // 4), max(1, len(text) // 4)


def runtime_output(family: str, model_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The InvokeModel response body of the family, with its own usage fields."""
    if family == "titan-embed":
        size = body.get("dimensions", 1024) if _titan_v2(model_id) else 1536
        vector = emulated_vector(model_id, body["inputText"], size)
        answer: dict[str, Any] = {"embedding": vector, "inputTextTokenCount": _usage(body, "")[0]}
        if _titan_v2(model_id):
            answer["embeddingsByType"] = {"float": vector}
        return answer
    if family == "cohere-embed":
        size = 384 if "light" in model_id else 1024
        return {
            "embeddings": [emulated_vector(model_id, text, size) for text in body["texts"]],
            "id": hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:36],
            "response_type": "embeddings_floats",
            "texts": list(body["texts"]),
        }
    output = emulated_output(model_id, body)
    input_tokens, output_tokens = _usage(body, emulated_text(model_id, body))
    if family == "anthropic":
        output.update(
            id="msg_emulated",
            type="message",
            model=model_id,
            stop_sequence=None,
            usage={"input_tokens": input_tokens, "output_tokens": output_tokens},
        )
    elif family == "titan":
        output["inputTextTokenCount"] = input_tokens
        output["results"][0]["tokenCount"] = output_tokens
    elif family == "nova":
        output["usage"] = {
            "inputTokens": input_tokens,
            "outputTokens": output_tokens,
            "totalTokens": input_tokens + output_tokens,
        }
    return output


def emulated_vector(model_id: str, text: str, size: int) -> list[float]:
    """A deterministic vector for a text: the same text always embeds the same, a different one differently."""
    seed = hashlib.sha256(f"{model_id}|{text}".encode()).digest()
    return [round(random.Random(seed + bytes([n % 256, n // 256])).uniform(-1, 1), 6) for n in range(size)]


def _titan_v2(model_id: str) -> bool:
    return "titan-embed-text-v2" in model_id


# https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html
_TITAN_EMBED_V2_KEYS = {"inputText", "dimensions", "normalize", "embeddingTypes"}
# https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-embed.html
_COHERE_EMBED_KEYS = {"texts", "images", "input_type", "truncate", "embedding_types"}
_COHERE_INPUT_TYPES = {"search_document", "search_query", "classification", "clustering", "image"}
