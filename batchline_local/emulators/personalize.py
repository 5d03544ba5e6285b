"""Amazon Personalize batch inference and batch segment jobs, emulated (moto has no backend for them).

Jobs move CREATE PENDING -> CREATE IN_PROGRESS -> ACTIVE over DescribeBatch*Job calls and then write
``<input-file>.out`` JSON lines in the documented layout, in reverse input order (the service does not
promise order, so neither does the emulator). Recommendations are a deterministic ranking of a fixed
catalogue by a hash of (query, item): emulated, labelled as such in the run's events.

Input is read as the service reads it (https://docs.aws.amazon.com/personalize/latest/dg/batch-data-upload.html):
every object under the path, lines split on LF only, each a strict JSON object with the fields of the
solution's recipe. Input the service would refuse (a line that is not such an object, more than 1000 files
or 1 GB) ends the job CREATE FAILED with no output.

The request is checked as the service checks it (botocore validates only shapes and types): numResults within
the job kind's limit, itemExplorationConfig values that parse as the recipe's numbers, theme generation only
with its config on a RELATED_ITEMS solution, KMS key ARNs of the API's pattern, at most 50 tags none of them
``aws:``. A theme job's input file holds at most 100 records and its output lines carry ``theme`` and
``itemsThemeRelevanceScores`` (no ``scores``, no ``error``), as the themed-batch-recommendations guide shows.

Test hooks: a solution version ARN containing ``failing`` makes the job end CREATE FAILED; a query value
containing ``error`` gets a per-record error line.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import random
import re
from datetime import UTC, datetime
from typing import Any

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

PRINCIPAL = "personalize.amazonaws.com"

CATALOGUE = [f"item-{n:03d}" for n in range(1, 201)]
USERS = [f"user-{n:03d}" for n in range(1, 101)]
# A segment asked for more users than USERS holds is drawn from this many (a large user base).
USER_BASE = 1_000_000
THEMES = ["Rise and shine", "Movies with a strong female lead", "The best of 1995", "=SUM(A1)"]


def _ranked(query: str, candidates: list[str], count: int) -> list[tuple[str, float]]:
    scored = sorted(candidates, key=lambda item: hashlib.sha256(f"{query}|{item}".encode()).hexdigest())
    return [(item, round(0.9 / (rank + 1), 7)) for rank, item in enumerate(scored[:count])]


class PersonalizeEmulator(ServiceEmulator):
    service = "personalize"
    validation_error = "InvalidInputException"

    def __init__(
        self, polls_until_done: int = 2, concurrent_jobs: int = 5, services: PipelineServices = no_pipelines
    ) -> None:
        self.polls_until_done = polls_until_done
        self._services = services
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
        _check_request(kind, params, self._services)
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
            "creationDateTime": (now := datetime.now(UTC)),
            "lastUpdatedDateTime": now,
        }
        return arn

    def _describe(self, arn: str, arn_field: str) -> dict[str, Any]:
        job = self.jobs.get(arn)
        if job is None:
            raise EmulatedError("ResourceNotFoundException", f"{arn} does not exist")
        if job["status"] not in ("ACTIVE", "CREATE FAILED"):
            before = job["status"]
            job["polls_left"] -= 1
            if job["polls_left"] > 0:
                job["status"] = "CREATE IN_PROGRESS"
            elif "failing" in job["solutionVersionArn"]:
                job["status"] = "CREATE FAILED"
                job["failureReason"] = "emulated: the solution version is not ACTIVE"
            else:
                failure = self._write_outputs(job)
                job["status"] = "CREATE FAILED" if failure else "ACTIVE"
                if failure:
                    job["failureReason"] = f"emulated: {failure}"
            if job["status"] != before:
                job["lastUpdatedDateTime"] = datetime.now(UTC)
        described = {
            "jobName": job["jobName"],
            arn_field + "Arn": arn,
            "solutionVersionArn": job["solutionVersionArn"],
            "roleArn": job["roleArn"],
            "jobInput": job["jobInput"],
            "jobOutput": job["jobOutput"],
            "status": job["status"],
            # As botocore parses them: the times the job was created and last changed status.
            "creationDateTime": job["creationDateTime"],
            "lastUpdatedDateTime": job["lastUpdatedDateTime"],
        }
        for field in ("numResults", "filterArn", "batchInferenceJobConfig", "batchInferenceJobMode"):
            if field in job:
                described[field] = job[field]
        if "themeGenerationConfig" in job:
            described["themeGenerationConfig"] = job["themeGenerationConfig"]
        if job.get("failureReason"):
            described["failureReason"] = job["failureReason"]
        return described

    def _write_outputs(self, job: dict[str, Any]) -> str | None:
        """Read every input file as the service does, then write ``<file>.out``; or the reason the job fails
        (no output at all), checking the whole input first as the service does before it scores anything."""
        # Personalize reads and writes as the role passed to it (its bucket policy must let the service in too).
        source = job["jobInput"]["s3DataSource"]["path"]
        s3 = s3_client(ServiceIdentity(PRINCIPAL, pipeline_of(source), role_arn=job["roleArn"], source_arn=job["arn"]))
        in_bucket, in_prefix = split_s3_uri(job["jobInput"]["s3DataSource"]["path"])
        out_bucket, out_prefix = split_s3_uri(job["jobOutput"]["s3DataDestination"]["path"])
        count = job.get("numResults") or 25
        themed = job.get("batchInferenceJobMode") == "THEME_GENERATION"
        keys = list_keys(s3, in_bucket, in_prefix)  # every object under the prefix is input
        if not keys:
            return "the input path holds no file"
        if len(keys) > MAX_INPUT_FILES:
            return f"the input path holds {len(keys)} files, over the {MAX_INPUT_FILES} allowed"
        fields = _query_fields(job, self._services)
        files, total_bytes = [], 0
        for key in keys:
            data = s3.get_object(Bucket=in_bucket, Key=key)["Body"].read()
            total_bytes += len(data)
            if total_bytes > MAX_INPUT_BYTES:
                return f"the input is over {MAX_INPUT_BYTES} bytes"
            try:
                queries = [_query(line, number, fields) for number, line in service_lines(data)]
            except UnicodeDecodeError as exc:
                return f"{key} is not UTF-8 ({exc.reason} at byte {exc.start})"
            except MalformedLine as exc:
                return f"{key} {exc}"
            if len(queries) > MAX_RECORDS_PER_FILE:
                return f"{key} has {len(queries)} records, over the {MAX_RECORDS_PER_FILE} per file"
            if themed and len(queries) > MAX_THEME_RECORDS_PER_FILE:
                return f"{key} has {len(queries)} items, over the {MAX_THEME_RECORDS_PER_FILE} a theme job reads"
            files.append((key, queries))
        for key, queries in files:
            lines = [self._answer(query, job["kind"], count, themed) for query in queries]
            out_key = f"{out_prefix.rstrip('/')}/{posixpath.basename(key)}.out"
            s3.put_object(Bucket=out_bucket, Key=out_key, Body="".join(reversed(lines)).encode("utf-8"))
        return None

    @staticmethod
    def _answer(query: dict[str, Any], kind: str, count: int, themed: bool = False) -> str:
        value = str(next(iter(v for k, v in query.items() if k in ("userId", "itemId", "itemAttributes"))))
        if "dropped" in value:
            return ""  # the service left the record out of its output altogether
        if "error" in value:
            return _line({"input": query, "output": None, "error": f"emulated: cannot score {value!r}"})
        if kind == "batch-segment-job":
            users = _segment(value, count)
            if "itemAttributes" in query:  # Item-Attribute-Affinity echoes its query at top level
                return _line({**query, "output": {"usersList": users}})
            return _line({"input": query, "output": {"recommendedUsers": users}})
        candidates = query.get("itemList") or CATALOGUE
        ranked = _ranked(value, candidates, min(count, len(candidates)))
        if themed:
            theme = THEMES[int(hashlib.sha256(value.encode()).hexdigest(), 16) % len(THEMES)]
            relevance = [round(0.6 - 0.07 * rank, 7) for rank in range(len(ranked))]
            output = {"recommendedItems": [item for item, _ in ranked], "theme": theme}
            return _line({"input": query, "output": {**output, "itemsThemeRelevanceScores": relevance}})
        output = {"recommendedItems": [item for item, _ in ranked], "scores": [score for _, score in ranked]}
        return _line({"input": query, "output": output, "error": None})


def _segment(query: str, count: int) -> list[str]:
    """Up to ``count`` users for one query: ranked from USERS, or drawn from the large base past its size."""
    if count <= len(USERS):
        return [user for user, _ in _ranked(query, USERS, count)]
    seed = int(hashlib.sha256(query.encode()).hexdigest(), 16)
    return [f"user-{n:07d}" for n in random.Random(seed).sample(range(1, USER_BASE + 1), min(count, USER_BASE))]


# What CreateBatchInferenceJob / CreateBatchSegmentJob refuse beyond botocore's shape checks.
MAX_RECOMMENDATIONS = 500  # items per record, batch inference (Personalize quotas)
MAX_SEGMENT_USERS = 5_000_000  # users per segment (CreateBatchSegmentJob, numResults)
MAX_THEME_RECORDS_PER_FILE = 100  # themed-batch-recommendations.html, "Guidelines and requirements"
MAX_TAGS = 50
KMS_KEY_ARN = re.compile(r"arn:aws.*:kms:.*:[0-9]{12}:key/.*")


def _check_request(kind: str, params: dict[str, Any], services: PipelineServices) -> None:
    def refuse(message: str) -> None:
        raise EmulatedError("InvalidInputException", message)

    limit = MAX_SEGMENT_USERS if kind == "batch-segment-job" else MAX_RECOMMENDATIONS
    if "numResults" in params and not 1 <= params["numResults"] <= limit:
        refuse(f"numResults must be between 1 and {limit} for a {kind}, got {params['numResults']}")
    for config in (params["jobInput"]["s3DataSource"], params["jobOutput"]["s3DataDestination"]):
        if "kmsKeyArn" in config and not KMS_KEY_ARN.fullmatch(config["kmsKeyArn"]):
            refuse(f"kmsKeyArn {config['kmsKeyArn']!r} is not a KMS key ARN")
    tags = params.get("tags", [])
    if len(tags) > MAX_TAGS:
        raise EmulatedError("TooManyTagsException", f"{len(tags)} tags: a resource takes at most {MAX_TAGS}")
    if any(tag["tagKey"].lower().startswith("aws:") for tag in tags):
        refuse("tag keys starting aws: are reserved")
    exploration = params.get("batchInferenceJobConfig", {}).get("itemExplorationConfig", {})
    for name, lowest, highest in (("explorationWeight", 0.0, 1.0), ("explorationItemAgeCutOff", 1.0, None)):
        if name in exploration:
            try:
                number = float(exploration[name])
            except ValueError:
                refuse(f"{name} {exploration[name]!r} is not a number")
            if number < lowest or (highest is not None and number > highest):
                refuse(f"{name} {exploration[name]} is out of range")
    recipe = getattr(services(_pipeline_of(params)), "recipe", None)
    themed = params.get("batchInferenceJobMode") == "THEME_GENERATION"
    if themed and "themeGenerationConfig" not in params:
        refuse("THEME_GENERATION needs themeGenerationConfig")
    if themed and recipe not in (None, "RELATED_ITEMS"):
        refuse(f"theme generation needs a Similar-Items solution, not a {recipe} one")
    if "themeGenerationConfig" in params and not themed:
        refuse("themeGenerationConfig is only taken with batchInferenceJobMode THEME_GENERATION")


def _pipeline_of(params: dict[str, Any]) -> str | None:
    return next((t["tagValue"] for t in params.get("tags", []) if t.get("tagKey") == "batchline:pipeline"), None)


def _line(answer: dict[str, Any]) -> str:
    # Raw UTF-8, as the service writes it: U+2028 and U+0085 in an echoed ID reach the reader unescaped.
    return json.dumps(answer, ensure_ascii=False) + "\n"


# Per job: at most 1000 input files and 1 GB; 50 million records per file (Personalize quotas).
MAX_INPUT_FILES = 1000
MAX_INPUT_BYTES = 1024**3
MAX_RECORDS_PER_FILE = 50_000_000
# The query line each recipe takes (batch-data-upload.html): required fields, then the optional ones.
RECIPE_FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "USER_PERSONALIZATION": (frozenset({"userId"}), frozenset({"filterValues"})),
    "PERSONALIZED_RANKING": (frozenset({"userId", "itemList"}), frozenset({"filterValues"})),
    "RELATED_ITEMS": (frozenset({"itemId"}), frozenset({"filterValues"})),
    "ITEM_AFFINITY": (frozenset({"itemId"}), frozenset()),
    "ITEM_ATTRIBUTE_AFFINITY": (frozenset({"itemAttributes"}), frozenset()),
}


def _query_fields(job: dict[str, Any], services: PipelineServices) -> list[tuple[frozenset[str], frozenset[str]]]:
    """The line shapes the job's solution accepts: its recipe's, known from the pipeline config (the real
    service knows it from the solution version); unknown, any shape of the job's kind."""
    service = services(_pipeline_of(job))
    if service is not None and getattr(service, "recipe", None) in RECIPE_FIELDS:
        return [RECIPE_FIELDS[service.recipe]]
    if job["kind"] == "batch-segment-job":
        return [RECIPE_FIELDS["ITEM_AFFINITY"], RECIPE_FIELDS["ITEM_ATTRIBUTE_AFFINITY"]]
    return [RECIPE_FIELDS[r] for r in ("USER_PERSONALIZATION", "PERSONALIZED_RANKING", "RELATED_ITEMS")]


def _query(line: str, number: int, shapes: list[tuple[frozenset[str], frozenset[str]]]) -> dict[str, Any]:
    """One input line: a JSON object with exactly the fields of one accepted shape, IDs as strings."""
    query = strict_json(line, number)
    if not isinstance(query, dict):
        raise MalformedLine(number, f"a query must be a JSON object, not {type(query).__name__}")
    present = frozenset(query)
    if not any(required <= present <= required | optional for required, optional in shapes):
        wanted = " or ".join("{" + ", ".join(sorted(required)) + "}" for required, _ in shapes)
        raise MalformedLine(number, f"fields {sorted(present)} do not match the recipe's input {wanted}")
    for field in ("userId", "itemId", "itemAttributes"):
        if field in query and not isinstance(query[field], str):
            raise MalformedLine(number, f"{field} must be a string, not {type(query[field]).__name__}")
    items = query.get("itemList", [])
    if not (isinstance(items, list) and all(isinstance(item, str) for item in items)):
        raise MalformedLine(number, "itemList must be a list of item ID strings")
    return query
