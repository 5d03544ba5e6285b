"""Amazon Bedrock batch inference, emulated (moto raises NotImplementedError for these calls).

Jobs go Submitted -> Validating -> Scheduled -> InProgress -> Completed over GetModelInvocationJob calls,
then write ``<output>/<job-id>/<input-file>.out`` (records shuffled: the service keeps no order) and
``manifest.json.out`` with the record counts. A retried create with the same clientRequestToken returns
the same job, as on the service. The "model" answers with a deterministic, clearly emulated sentence in
the response shape of the request's family (Anthropic messages, Titan text, Converse/Nova, or generic).

Test hooks: a model ID containing ``failing`` fails the job; a record whose body mentions ``error``
gets a per-record error; ``always-error`` in every record makes a "Completed" job with no successes.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from typing import Any

import boto3

from batchline_local.emulators.base import EmulatedError, ServiceEmulator

_PROGRESSION = ["Submitted", "Validating", "Scheduled", "InProgress"]


def emulated_text(model_id: str, body: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:8]
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

    def __init__(self, polls_until_done: int = 2, region: str = "us-east-1", account: str = "123456789012"):
        self.polls_until_done = polls_until_done
        self.region, self.account = region, account
        self.jobs: dict[str, dict[str, Any]] = {}
        self.create_calls = 0
        self.tokens_seen: list[str] = []

    def create_model_invocation_job(self, **params: Any) -> dict[str, Any]:
        token = params.get("clientRequestToken", "")
        self.tokens_seen.append(token)
        for job in self.jobs.values():
            if job["clientRequestToken"] == token:
                return {"jobArn": job["jobArn"]}  # idempotent retry
            if job["jobName"] == params["jobName"]:
                raise EmulatedError("ValidationException", f"a job named {params['jobName']} already exists")
        job_id = hashlib.sha256(params["jobName"].encode()).hexdigest()[:12]
        arn = f"arn:aws:bedrock:{self.region}:{self.account}:model-invocation-job/{job_id}"
        self.create_calls += 1
        self.jobs[arn] = {
            **params,
            "jobArn": arn,
            "jobId": job_id,
            "status": "Submitted",
            "step": 0,
            "counts": {},
        }
        return {"jobArn": arn}

    def get_model_invocation_job(self, jobIdentifier: str) -> dict[str, Any]:
        job = self._job(jobIdentifier)
        if job["status"] in _PROGRESSION:
            job["step"] += 1
            if job["status"] == "Stopping" or job.get("stop_requested"):
                job["status"] = "Stopped"
            elif job["step"] < self.polls_until_done:
                job["status"] = _PROGRESSION[min(job["step"], len(_PROGRESSION) - 1)]
            elif "failing" in job["modelId"]:
                job["status"], job["message"] = (
                    "Failed",
                    "emulated: the model is not available for batch inference",
                )
            else:
                self._run(job)
        elif job["status"] == "Stopping":
            job["status"] = "Stopped"
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
            )
        }
        if job.get("message"):
            answer["message"] = job["message"]
        answer.update(job["counts"])
        return answer

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
        s3 = boto3.client("s3")
        in_bucket, in_prefix = job["inputDataConfig"]["s3InputDataConfig"]["s3Uri"][5:].split("/", 1)
        out_bucket, out_prefix = job["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"][5:].split("/", 1)
        base = f"{out_prefix.rstrip('/')}/{job['jobId']}"
        total = success = 0
        for item in s3.list_objects_v2(Bucket=in_bucket, Prefix=in_prefix).get("Contents", []):
            body = s3.get_object(Bucket=in_bucket, Key=item["Key"])["Body"].read().decode()
            lines = []
            for line in body.splitlines():
                if not line.strip():
                    continue
                record = json.loads(line)
                total += 1
                if "error" in json.dumps(record["modelInput"]):
                    record["error"] = {
                        "errorCode": 400,
                        "errorMessage": "emulated: the model rejected this input",
                    }
                else:
                    record["modelOutput"] = emulated_output(job["modelId"], record["modelInput"])
                    success += 1
                lines.append(json.dumps(record) + "\n")
            lines.sort(key=lambda text: hashlib.sha256(text.encode()).hexdigest())  # no order promised
            s3.put_object(
                Bucket=out_bucket,
                Key=f"{base}/{posixpath.basename(item['Key'])}.out",
                Body="".join(lines).encode(),
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
