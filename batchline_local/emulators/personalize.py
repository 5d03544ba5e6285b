"""Amazon Personalize batch inference and batch segment jobs, emulated (moto has no backend for them).

Jobs move CREATE PENDING -> CREATE IN_PROGRESS -> ACTIVE over DescribeBatch*Job calls and then write
``<input-file>.out`` JSON lines in the documented layout, in reverse input order (the service does not
promise order, so neither does the emulator). Recommendations are a deterministic ranking of a fixed
catalogue by a hash of (query, item): emulated, labelled as such in the run's events.

Test hooks: a solution version ARN containing ``failing`` makes the job end CREATE FAILED; a query value
containing ``error`` gets a per-record error line.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from typing import Any

import boto3

from batchline_local.emulators.base import EmulatedError, ServiceEmulator

CATALOGUE = [f"item-{n:03d}" for n in range(1, 201)]
USERS = [f"user-{n:03d}" for n in range(1, 101)]


def _ranked(query: str, candidates: list[str], count: int) -> list[tuple[str, float]]:
    scored = sorted(candidates, key=lambda item: hashlib.sha256(f"{query}|{item}".encode()).hexdigest())
    return [(item, round(0.9 / (rank + 1), 7)) for rank, item in enumerate(scored[:count])]


class PersonalizeEmulator(ServiceEmulator):
    service = "personalize"

    def __init__(self, polls_until_done: int = 2, concurrent_jobs: int = 5) -> None:
        self.polls_until_done = polls_until_done
        self.concurrent_jobs = concurrent_jobs
        self.jobs: dict[str, dict[str, Any]] = {}
        self.create_calls = 0
        # Fault injection: answer this many creates with LimitExceededException, as a full account quota would.
        self.quota_full_for = 0

    # --- operations ------------------------------------------------------------------------------

    def create_batch_inference_job(self, **params: Any) -> dict[str, Any]:
        return {"batchInferenceJobArn": self._create("batch-inference-job", params)}

    def create_batch_segment_job(self, **params: Any) -> dict[str, Any]:
        return {"batchSegmentJobArn": self._create("batch-segment-job", params)}

    def describe_batch_inference_job(self, batchInferenceJobArn: str) -> dict[str, Any]:
        return {"batchInferenceJob": self._describe(batchInferenceJobArn, "batchInferenceJob")}

    def describe_batch_segment_job(self, batchSegmentJobArn: str) -> dict[str, Any]:
        return {"batchSegmentJob": self._describe(batchSegmentJobArn, "batchSegmentJob")}

    # --- behaviour -------------------------------------------------------------------------------

    def _create(self, kind: str, params: dict[str, Any]) -> str:
        name = params["jobName"]
        arn_parts = params["solutionVersionArn"].split(":")
        arn = f"arn:{arn_parts[1]}:personalize:{arn_parts[3]}:{arn_parts[4]}:{kind}/{name}"
        if arn in self.jobs:
            raise EmulatedError("ResourceAlreadyExistsException", f"{kind} {arn} already exists")
        running = sum(1 for job in self.jobs.values() if job["status"] not in ("ACTIVE", "CREATE FAILED"))
        if self.quota_full_for > 0:
            self.quota_full_for -= 1
            raise EmulatedError("LimitExceededException", f"at most {self.concurrent_jobs} concurrent {kind}s")
        if running >= self.concurrent_jobs:
            raise EmulatedError("LimitExceededException", f"at most {self.concurrent_jobs} concurrent {kind}s")
        self.create_calls += 1
        self.jobs[arn] = {
            **params,
            "arn": arn,
            "kind": kind,
            "status": "CREATE PENDING",
            "polls_left": self.polls_until_done,
        }
        return arn

    def _describe(self, arn: str, arn_field: str) -> dict[str, Any]:
        job = self.jobs.get(arn)
        if job is None:
            raise EmulatedError("ResourceNotFoundException", f"{arn} does not exist")
        if job["status"] not in ("ACTIVE", "CREATE FAILED"):
            job["polls_left"] -= 1
            if job["polls_left"] > 0:
                job["status"] = "CREATE IN_PROGRESS"
            elif "failing" in job["solutionVersionArn"]:
                job["status"] = "CREATE FAILED"
                job["failureReason"] = "emulated: the solution version is not ACTIVE"
            else:
                self._write_outputs(job)
                job["status"] = "ACTIVE"
        described = {
            "jobName": job["jobName"],
            arn_field + "Arn": arn,
            "solutionVersionArn": job["solutionVersionArn"],
            "roleArn": job["roleArn"],
            "jobInput": job["jobInput"],
            "jobOutput": job["jobOutput"],
            "status": job["status"],
        }
        if job.get("failureReason"):
            described["failureReason"] = job["failureReason"]
        return described

    def _write_outputs(self, job: dict[str, Any]) -> None:
        s3 = boto3.client("s3")
        source = job["jobInput"]["s3DataSource"]["path"]
        in_bucket, in_prefix = source[5:].split("/", 1)
        out_bucket, out_prefix = job["jobOutput"]["s3DataDestination"]["path"][5:].split("/", 1)
        count = job.get("numResults") or 25
        listing = s3.list_objects_v2(Bucket=in_bucket, Prefix=in_prefix).get("Contents", [])
        for item in listing:
            body = s3.get_object(Bucket=in_bucket, Key=item["Key"])["Body"].read().decode()
            lines = [self._answer(json.loads(line), job["kind"], count) for line in body.splitlines() if line.strip()]
            out_key = f"{out_prefix.rstrip('/')}/{posixpath.basename(item['Key'])}.out"
            s3.put_object(Bucket=out_bucket, Key=out_key, Body="".join(reversed(lines)).encode())

    @staticmethod
    def _answer(query: dict[str, Any], kind: str, count: int) -> str:
        value = str(next(iter(v for k, v in query.items() if k in ("userId", "itemId", "itemAttributes"))))
        if "dropped" in value:
            return ""  # the service left the record out of its output altogether
        if "error" in value:
            return json.dumps({"input": query, "output": None, "error": f"emulated: cannot score {value!r}"}) + "\n"
        if kind == "batch-segment-job":
            users = [user for user, _ in _ranked(value, USERS, min(count, len(USERS)))]
            if "itemAttributes" in query:  # Item-Attribute-Affinity echoes its query at top level
                return json.dumps({**query, "output": {"usersList": users}}) + "\n"
            return json.dumps({"input": query, "output": {"recommendedUsers": users}}) + "\n"
        candidates = query.get("itemList") or CATALOGUE
        ranked = _ranked(value, candidates, min(count, len(candidates)))
        output = {"recommendedItems": [item for item, _ in ranked], "scores": [score for _, score in ranked]}
        return json.dumps({"input": query, "output": output, "error": None}) + "\n"
