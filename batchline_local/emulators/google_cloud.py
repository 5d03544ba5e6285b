"""A local fake of the Google APIs Batchline calls, served over HTTP on 127.0.0.1 (no network needed).

One server answers: Security Token Service (the AWS-signed subject token is checked for a SigV4 signature),
IAM Credentials generateAccessToken, the Cloud Storage JSON API (resumable upload, list, media download,
delete), BigQuery v2 (load jobs by resumable upload, jobs.get, tables.get, tables.delete, tabledata.list in
small pages; datasets are made with ``bigquery.create_dataset``) and Vertex AI batchPredictionJobs (create,
get, list by label, cancel). Jobs go QUEUED -> PENDING -> RUNNING -> SUCCEEDED over GET calls, carrying
createTime, startTime, endTime and resourcesConsumed.replicaHours as the REST resource does, and then write
predictions/errors files in Vertex's layout, or predictions_/errors_ tables with bigqueryDestination. A result
carries ``key`` with instanceConfig.keyField, else the instance as sent (an object for jsonl, an array for
csv), and an Explanation with generateExplanation. Every API call must carry the impersonated service
account's token.

Only the AWS roles the stack binds may impersonate the service account: the roles of the functions in the stack's
GOOGLE_CALLERS (its GoogleFederatedRoleArns output), read from the stack's source. As on Google, the STS exchange
itself succeeds for any role of the account (the pool's provider has no attribute condition) and
generateAccessToken answers 403 PERMISSION_DENIED to a role with no workloadIdentityUser binding. The caller is the
function the local runtime is running (one handler at a time, each function with its own role, as in the stack):
Google would know its role from the signed request, but the local functions all sign with the same static keys.
Outside any function, as when a test drives an adapter directly, nothing is checked.

Staged instances are read as Vertex reads JSON lines (https://cloud.google.com/vertex-ai/docs/predictions/get-batch-predictions):
split on LF only, each a JSON object; a line that is not JSON (``NaN``, ``Infinity``) or lacks the key field
fails the job with INVALID_ARGUMENT, naming the object and line (whether Vertex fails the job or errors the
instance is not documented: failing is the stricter choice, so such staging can never pass unnoticed).

CSV input is read as the Vertex documentation describes it: a header line, quoted strings, bare numbers, no line
break in a cell; anything else fails the job with INVALID_ARGUMENT.

A create Vertex would refuse (``invalid_job``: a format or source that do not match, instanceConfig fields a
format does not take, dedicatedResources, manualBatchTuningParameters or keyField for a publisher model, a model
of yours without dedicatedResources, explanation settings out of their rules, machineSpec without machineType,
an accelerator without a count or a count without an accelerator, startingReplicaCount over maxReplicaCount, a
batch size under 1, labels that are not lowercase, a CMEK key of another Region) is answered 400
INVALID_ARGUMENT and creates nothing. A model ID containing ``explainable`` has an explanationSpec of its own.

Test hooks: an audience containing ``reject`` fails the token exchange; ``api_status`` answers every API call
(not the token exchange) with that HTTP status, as an outage or a refused permission would; a model containing
``failing`` fails the job; ``partial`` in the model ID ends in JOB_STATE_PARTIALLY_SUCCEEDED; an instance value
containing ``bad`` gets an error line; one with ``lost`` is left out of the output.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from batchline_local.emulators.base import MalformedLine, service_lines, strict_json

STS_TOKEN = "emulated-sts-token"
ACCESS_TOKEN = "emulated-service-account-token"
_PROGRESSION = ["JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING"]
# What IAM Credentials answers generateAccessToken for a principal without roles/iam.workloadIdentityUser.
DENIED = {
    "error": {
        "code": 403,
        "message": "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
        "status": "PERMISSION_DENIED",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "IAM_PERMISSION_DENIED",
                "domain": "iam.googleapis.com",
                "metadata": {"permission": "iam.serviceAccounts.getAccessToken"},
            }
        ],
    }
}


def stack_google_callers() -> tuple[str, ...]:
    """The functions whose roles the stack binds in the workload identity pool (its GoogleFederatedRoleArns
    output): the catalogue the stack builds its functions from says which call Google."""
    from batchline.functions import CATALOGUE

    return tuple(spec.name for spec in CATALOGUE if spec.calls_google)


def local_runtime_caller() -> str | None:
    """The function whose handler the local runtime is running now (one at a time; the fake answers on a thread
    of its own, so the caller's thread cannot say), or None when no handler runs: a call made outside any
    function (a test driving the steps directly) is nobody's to refuse."""
    from batchline_local.runtime import LocalRuntime

    runtime = LocalRuntime.active()
    return runtime.running_function if runtime is not None else None


class GoogleCloudFake:
    """Start with ``with GoogleCloudFake() as fake:``; ``fake.url`` is the base of every endpoint."""

    def __init__(self, polls_until_done: int = 2, *, caller: Callable[[], str | None] = local_runtime_caller) -> None:
        self.polls_until_done = polls_until_done
        self.objects: dict[tuple[str, str], bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.create_calls = 0
        self.token_exchanges = 0
        # The functions whose roles may impersonate the service account; tests may narrow it.
        self.bound_callers: frozenset[str] = frozenset(stack_google_callers())
        self.caller = caller
        self.refused: list[str] = []  # functions refused a token, in order
        self.api_status: int | None = None
        self.bigquery = BigQueryFake()
        self._last_create = datetime.min.replace(tzinfo=UTC)
        self._sts_callers: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> GoogleCloudFake:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def endpoints(self) -> dict[str, str]:
        return {
            "vertex": self.url,
            "storage": self.url,
            "bigquery": self.url,
            "sts": self.url,
            "iamCredentials": self.url,
        }

    def next_create_time(self) -> str:
        """Now, but later by a millisecond than the job created before: output names carry the create time to
        the millisecond, and two jobs writing into one dataset must not share them."""
        moment = max(datetime.now(UTC), self._last_create + timedelta(milliseconds=1))
        self._last_create = moment
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    # --- job behaviour ---------------------------------------------------------------------------

    def advance(self, job: dict[str, Any]) -> None:
        state = job["state"]
        if state == "JOB_STATE_CANCELLING":
            job["state"] = "JOB_STATE_CANCELLED"
            job["endTime"] = job["updateTime"] = _now()
        elif state in _PROGRESSION:
            job["_polls"] += 1
            if job["_polls"] < self.polls_until_done:
                job["state"] = _PROGRESSION[min(job["_polls"], len(_PROGRESSION) - 1)]
                job["updateTime"] = _now()
                if job["state"] == "JOB_STATE_RUNNING":
                    job.setdefault("startTime", job["updateTime"])
            elif "failing" in job["model"]:
                self._end(job, "JOB_STATE_FAILED")
                job["error"] = {"code": 9, "message": "emulated: the model cannot serve batch predictions"}
            else:
                self._run(job)

    def _run(self, job: dict[str, Any]) -> None:
        key_field = (job.get("instanceConfig") or {}).get("keyField")
        try:
            raw = self._instances(job)
            instances = [_to_model_instance(job, record, key_field) for record in raw]
        except InstancesInvalid as exc:
            self._end(job, "JOB_STATE_FAILED")
            job["error"] = {"code": 3, "message": f"emulated: {exc}"}  # 3: INVALID_ARGUMENT
            return
        explain = bool(job.get("generateExplanation"))
        predictions, errors = [], []
        for key, instance in instances:
            echo = {"key": key} if key_field else {"instance": instance}
            values = instance.values() if isinstance(instance, dict) else instance
            if any("lost" in str(value) for value in values):
                continue  # neither predicted nor reported: the instance is missing from the output
            if any("bad" in str(value) for value in values):
                failed = (
                    {"instance": {key_field: key, **instance}} if key_field and isinstance(instance, dict) else echo
                )
                errors.append({**failed, "error": {"code": 3, "message": "emulated: invalid instance"}})
                continue
            digest = int(hashlib.sha256(json.dumps(instance, sort_keys=True).encode()).hexdigest()[:8], 16)
            score = round((digest % 10_000) / 10_000, 4)
            result: dict[str, Any] = {**echo, "prediction": {"score": score, "label": "yes" if score > 0.5 else "no"}}
            if explain:
                result["explanation"] = _explanation(instance, score)
            predictions.append(result)
        destination = job["outputConfig"].get("bigqueryDestination")
        if destination is not None:
            if not self._write_tables(job, destination["outputUri"], predictions, errors):
                return
        else:
            self._write_files(job, predictions, errors)
        job["completionStats"] = {
            "successfulCount": str(len(predictions)),
            "failedCount": str(len(errors)),
            "incompleteCount": "0",
        }
        replicas = (job.get("dedicatedResources") or {}).get("startingReplicaCount", 1)
        job["resourcesConsumed"] = {"replicaHours": round(replicas * (0.25 + len(instances) / 10_000), 4)}
        if errors and "partial" in job["model"]:
            self._end(job, "JOB_STATE_PARTIALLY_SUCCEEDED")
            job["partialFailures"] = [{"code": 3, "message": f"{len(errors)} instances failed"}]
        else:
            self._end(job, "JOB_STATE_SUCCEEDED")

    def _end(self, job: dict[str, Any], state: str) -> None:
        job["state"] = state
        job.setdefault("startTime", job.get("createTime") or _now())  # every job the fake ends has run
        job["endTime"] = job["updateTime"] = _now()

    def _write_files(self, job: dict[str, Any], predictions: list[Any], errors: list[Any]) -> None:
        output_dir = job["outputConfig"]["gcsDestination"]["outputUriPrefix"].rstrip("/") + (
            f"/prediction-{job['model'].rsplit('/', 1)[-1]}-{_stamp(job)}/"
        )
        out_bucket, out_prefix = output_dir[5:].split("/", 1)
        half = (len(predictions) + 1) // 2
        for name, rows in (
            ("predictions_00001.jsonl", predictions[:half]),
            ("predictions_00002.jsonl", predictions[half:]),
            ("errors_0001.jsonl", errors),
        ):
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)  # raw UTF-8, as GCS holds it
            self.objects[(out_bucket, out_prefix + name)] = text.encode("utf-8")
        job["outputInfo"] = {"gcsOutputDirectory": output_dir.rstrip("/")}

    def _write_tables(self, job: dict[str, Any], uri: str, predictions: list[Any], errors: list[Any]) -> bool:
        """predictions_<time> and errors_<time> tables in the destination dataset (a new dataset when only a
        project is named), their columns the echo (key or instance), prediction, explanation and errors."""
        project, _, dataset = uri.removeprefix("bq://").partition(".")
        stamp = _stamp(job)
        if not dataset:
            dataset = f"prediction_{re.sub(r'[^A-Za-z0-9_]', '_', job['model'].rsplit('/', 1)[-1])}_{stamp}"
            self.bigquery.datasets.setdefault((project, dataset), job["_location"])
        elif (project, dataset) not in self.bigquery.datasets:
            self._end(job, "JOB_STATE_FAILED")
            job["error"] = {"code": 5, "message": f"emulated: Not found: Dataset {project}:{dataset}"}
            return False
        echo: dict[str, Any] = (
            {"name": "key", "type": "STRING", "mode": "NULLABLE"}
            if (job.get("instanceConfig") or {}).get("keyField")
            else {"name": "instance", "type": "JSON", "mode": "NULLABLE"}
        )
        prediction = {
            "name": "prediction",
            "type": "RECORD",
            "mode": "NULLABLE",
            "fields": [{"name": "score", "type": "FLOAT", "mode": "NULLABLE"}, {"name": "label", "type": "STRING"}],
        }
        explanation = (
            [{"name": "explanation", "type": "JSON", "mode": "NULLABLE"}] if job.get("generateExplanation") else []
        )
        status = {
            "name": "errors",
            "type": "RECORD",
            "mode": "NULLABLE",
            "fields": [{"name": "code", "type": "INTEGER"}, {"name": "message", "type": "STRING"}],
        }
        self.bigquery.put_table(project, dataset, f"predictions_{stamp}", [echo, prediction, *explanation], predictions)
        if errors:
            rows = [{**{k: v for k, v in e.items() if k != "error"}, "errors": e["error"]} for e in errors]
            for row in rows:  # an errors line of a keyed job names its instance; the table carries the key
                if echo["name"] == "key" and "instance" in row:
                    row["key"] = row.pop("instance").get((job.get("instanceConfig") or {}).get("keyField"))
            self.bigquery.put_table(project, dataset, f"errors_{stamp}", [echo, status], rows)
        job["outputInfo"] = {
            "bigqueryOutputDataset": f"bq://{project}.{dataset}",
            "bigqueryOutputTable": f"predictions_{stamp}",
        }
        return True

    def _instances(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        """Every input record as an ordered object of field -> value, read as Vertex reads the format: JSON lines
        split on LF only, each a JSON object (NaN and Infinity are not JSON); CSV with a header, strings quoted,
        bare values numbers, no line break in a cell; the rows of a BigQuery table. InstancesInvalid otherwise."""
        config = job["inputConfig"]
        if config["instancesFormat"] == "bigquery":
            project, dataset, table = config["bigquerySource"]["inputUri"].removeprefix("bq://").split(".", 2)
            found = self.bigquery.tables.get((project, dataset, table))
            if found is None:
                raise InstancesInvalid(f"Not found: Table {project}:{dataset}.{table}")
            return [dict(row) for row in found["rows"]]
        if config["instancesFormat"] not in ("jsonl", "csv", "file-list"):
            raise InstancesInvalid(
                f"the emulator reads jsonl, csv, file-list and bigquery input only, not {config['instancesFormat']}"
            )
        records: list[dict[str, Any]] = []
        for uri in config["gcsSource"]["uris"]:
            bucket, pattern = uri[5:].split("/", 1)
            prefix = pattern.rstrip("*")
            for (obj_bucket, name), data in sorted(self.objects.items()):
                if obj_bucket != bucket or not name.startswith(prefix):
                    continue
                try:
                    if config["instancesFormat"] == "csv":
                        records += _csv_records(data)
                        continue
                    if config["instancesFormat"] == "file-list":
                        records += self._listed_files(data)
                        continue
                    key_field = (job.get("instanceConfig") or {}).get("keyField")
                    for number, line in service_lines(data):
                        instance = strict_json(line, number)
                        if not isinstance(instance, dict) or (key_field and key_field not in instance):
                            wanted = f" with the key field {key_field!r}" if key_field else ""
                            raise MalformedLine(number, f"not a JSON object{wanted}")
                        records.append(instance)
                except UnicodeDecodeError as exc:
                    raise InstancesInvalid(f"gs://{bucket}/{name} is not UTF-8 ({exc.reason})") from None
                except MalformedLine as exc:
                    raise InstancesInvalid(f"gs://{bucket}/{name} {exc}") from None
        return records

    def _listed_files(self, data: bytes) -> list[dict[str, Any]]:
        """file-list: each line a gs:// URI; the instance is the file's content, base64, as {"b64": ...}."""
        records = []
        for number, line in service_lines(data):
            bucket, _, name = line.strip().removeprefix("gs://").partition("/")
            content = self.objects.get((bucket, name))
            if not line.startswith("gs://") or content is None:
                raise InstancesInvalid(f"file-list line {number}: no such object {line!r}")
            records.append({"b64": base64.b64encode(content).decode()})
        return records

    def public(self, job: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in job.items() if not key.startswith("_")}


class InstancesInvalid(Exception):
    """Input Vertex cannot read at all: the job fails (INVALID_ARGUMENT) rather than erroring instances."""


def _stamp(job: dict[str, Any]) -> str:
    """The job's create time as Vertex names outputs: YYYY_MM_DDThh_mm_ss_sssZ."""
    created = datetime.strptime(job.get("createTime", "2026-11-25T00:00:00.000000Z"), "%Y-%m-%dT%H:%M:%S.%fZ")
    return created.strftime("%Y_%m_%dT%H_%M_%S_") + f"{created.microsecond // 1000:03d}Z"


def _now() -> str:
    """A timestamp as Google's REST resources write them: RFC 3339, UTC, fractional seconds, Z."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _to_model_instance(job: dict[str, Any], record: dict[str, Any], key_field: str | None) -> tuple[Any, Any]:
    """(key, instance sent to the model): keyField's value is taken out; an object for jsonl and bigquery with
    instanceType object, else an array (csv always, bigquery by default) in column order."""
    record = dict(record)
    key = None
    if key_field:
        if key_field not in record:
            raise InstancesInvalid(f"an instance has no key field {key_field!r}")
        key = record.pop(key_field)
    config = job.get("instanceConfig") or {}
    fmt = job["inputConfig"]["instancesFormat"]
    as_object = config.get("instanceType") == "object" or (
        fmt in ("jsonl", "file-list") and config.get("instanceType") != "array"
    )
    return key, record if as_object else list(record.values())


def _explanation(instance: Any, score: float) -> dict[str, Any]:
    """An Explanation (REST reference): one Attribution of the output, feature attributions by feature name."""
    features = instance if isinstance(instance, dict) else {str(i): v for i, v in enumerate(instance)}
    share = round(score / max(len(features), 1), 6)
    return {
        "attributions": [
            {
                "baselineOutputValue": 0.5,
                "instanceOutputValue": score,
                "featureAttributions": {name: share for name in features},
                "outputIndex": [0],
                "outputName": "score",
                "approximationError": 0.0,
            }
        ]
    }


def _csv_records(data: bytes) -> list[dict[str, Any]]:
    """A CSV input file as Vertex documents it: the first line is the header; a quoted value is a string
    (quotes doubled inside), a bare one a number; a line break inside a cell is not read."""
    lines = data.decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        return []
    header = [str(name) for name in _csv_line(lines[0], 1)]
    records = []
    for number, line in enumerate(lines[1:], start=2):
        cells = _csv_line(line, number)
        if len(cells) != len(header):
            raise InstancesInvalid(f"CSV line {number} has {len(cells)} values, the header {len(header)}")
        records.append(dict(zip(header, cells, strict=True)))
    return records


def _csv_line(line: str, number: int) -> list[Any]:
    if "\r" in line:
        raise InstancesInvalid(f"CSV line {number} holds a carriage return: Vertex reads no line break in a cell")
    cells: list[Any] = []
    position = 0
    while True:
        if line.startswith('"', position):
            end, text = position + 1, []
            while True:
                quote_at = line.find('"', end)
                if quote_at == -1:
                    raise InstancesInvalid(f"CSV line {number}: a quoted value is not closed (a line break in it?)")
                text.append(line[end:quote_at])
                if line.startswith('"', quote_at + 1):
                    text.append('"')
                    end = quote_at + 2
                    continue
                position = quote_at + 1
                break
            cells.append("".join(text))
        else:
            comma = line.find(",", position)
            bare = line[position:] if comma == -1 else line[position:comma]
            try:
                cells.append(float(bare))
            except ValueError:
                raise InstancesInvalid(f"CSV line {number}: unquoted value {bare!r} is not a number") from None
            position = len(line) if comma == -1 else comma
        if position >= len(line):
            return cells
        if line[position] != ",":
            raise InstancesInvalid(f"CSV line {number}: text after a quoted value")
        position += 1


class _Handler(BaseHTTPRequestHandler):
    """The fake's HTTP routes; ``fake`` is set on the subclass each server gets (_handler_for)."""

    fake: GoogleCloudFake
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        return

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _authorised(self, token: str) -> bool:
        if self.headers.get("Authorization") != f"Bearer {token}":
            self._send(401, {"error": {"code": 401, "message": "emulated: missing or wrong access token"}})
            return False
        return True

    def do_POST(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        body = self._body()
        with self.fake._lock:
            if url.path == "/v1/token":
                return self._token(body)
            if url.path.endswith(":generateAccessToken"):
                return self._impersonate()
            if not self._authorised(ACCESS_TOKEN) or self._outage():
                return None
            if url.path.startswith("/upload/bigquery/v2/projects/"):
                status, answer, headers = self.fake.bigquery.start_load(url.path.split("/")[5], body, self.fake.url)
                return self._send(status, answer, headers)
            if url.path.startswith("/upload/storage/v1/b/"):
                bucket = url.path.split("/")[5]
                name = parse_qs(url.query)["name"][0]
                session = hashlib.sha256(f"{bucket}/{name}/{len(self.fake.uploads)}".encode()).hexdigest()[:16]
                self.fake.uploads[session] = {"bucket": bucket, "name": name, "data": bytearray()}
                return self._send(200, {}, {"Location": f"{self.fake.url}/upload-session/{session}"})
            if url.path.endswith("/batchPredictionJobs"):
                job = json.loads(body)
                location = url.path.split("/")[5]
                problem = invalid_job(job, location=location)
                if problem:
                    return self._send(400, {"error": {"code": 400, "message": problem, "status": "INVALID_ARGUMENT"}})
                self.fake.create_calls += 1
                name = f"{url.path.removeprefix('/v1/')}/{1000 + len(self.fake.jobs)}"
                created = self.fake.next_create_time()
                self.fake.jobs[name] = {
                    **job,
                    "name": name,
                    "state": "JOB_STATE_QUEUED",
                    "createTime": created,
                    "updateTime": created,
                    "_polls": 0,
                    "_location": location,
                }
                return self._send(200, self.fake.public(self.fake.jobs[name]))
            if url.path.endswith(":cancel"):
                job = self.fake.jobs.get(url.path.removeprefix("/v1/").removesuffix(":cancel"))
                if job is None:
                    return self._send(404, {"error": {"code": 404, "message": "no such job"}})
                if job["state"] in _PROGRESSION:
                    job["state"] = "JOB_STATE_CANCELLING"
                return self._send(200, {})
        return self._send(404, {"error": {"code": 404, "message": f"emulated: no route {url.path}"}})

    def _outage(self) -> bool:
        if self.fake.api_status is None:
            return False
        status = self.fake.api_status
        self._send(status, {"error": {"code": status, "message": f"emulated: the API answered {status}"}})
        return True

    def _impersonate(self) -> None:
        """generateAccessToken: only for an STS token the fake issued, to a function whose role is bound."""
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        if token not in self.fake._sts_callers:
            return self._send(401, {"error": {"code": 401, "message": "emulated: missing or wrong STS token"}})
        caller = self.fake._sts_callers[token]
        if caller is not None and caller not in self.fake.bound_callers:
            self.fake.refused.append(caller)
            return self._send(403, DENIED)
        return self._send(200, {"accessToken": ACCESS_TOKEN, "expireTime": "2099-01-01T00:00:00Z"})

    def _token(self, body: bytes) -> None:
        form = {key: values[0] for key, values in parse_qs(body.decode()).items()}
        self.fake.token_exchanges += 1
        if "reject" in form.get("audience", ""):
            return self._send(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "emulated: this AWS role is not allowed by the provider",
                },
            )
        subject = json.loads(unquote(form.get("subject_token", "{}")))
        signed = any(
            h.get("key") == "Authorization" and "AWS4-HMAC-SHA256" in h.get("value", "")
            for h in subject.get("headers", [])
        )
        if not signed:
            return self._send(400, {"error": "invalid_request", "error_description": "subject token not signed"})
        # The federated token stands for the AWS principal that signed the request: here, the calling function.
        issued = f"{STS_TOKEN}-{len(self.fake._sts_callers) + 1}"
        self.fake._sts_callers[issued] = self.fake.caller()
        return self._send(
            200,
            {
                "access_token": issued,
                "token_type": "Bearer",
                "expires_in": 3600,
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            },
        )

    def do_PUT(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        body = self._body()
        with self.fake._lock:
            if not self._authorised(ACCESS_TOKEN) or self._outage():
                return None
            if url.path.startswith("/bigquery-upload/"):
                status, answer, headers = self.fake.bigquery.put_load(
                    url.path.rsplit("/", 1)[-1], body, self.headers.get("Content-Range", "")
                )
                return self._send(status, answer, headers)
            upload = self.fake.uploads.get(url.path.rsplit("/", 1)[-1])
            if upload is None:
                return self._send(404, {"error": {"code": 404, "message": "no such upload session"}})
            upload["data"].extend(body)
            total = re.search(r"/(\d+|\*)$", self.headers.get("Content-Range", ""))
            if total and total.group(1) != "*" and int(total.group(1)) == len(upload["data"]):
                self.fake.objects[(upload["bucket"], upload["name"])] = bytes(upload["data"])
                return self._send(200, {"name": upload["name"], "size": str(len(upload["data"]))})
            return self._send(308, None, {"Range": f"bytes=0-{len(upload['data']) - 1}"})

    def do_GET(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        with self.fake._lock:
            if not self._authorised(ACCESS_TOKEN) or self._outage():
                return None
            if url.path.startswith("/storage/v1/b/"):
                return self._storage_get(url.path, query)
            if url.path.startswith("/bigquery/v2/projects/"):
                status, answer = self.fake.bigquery.get(url.path, query)
                return self._send(status, answer)
            if url.path.endswith("/batchPredictionJobs"):
                match = re.match(r'labels\.([\w-]+)="([^"]*)"', query.get("filter", ""))
                jobs = [
                    self.fake.public(job)
                    for job in self.fake.jobs.values()
                    if not match or job.get("labels", {}).get(match.group(1)) == match.group(2)
                ]
                return self._send(200, {"batchPredictionJobs": jobs} if jobs else {})
            job = self.fake.jobs.get(url.path.removeprefix("/v1/"))
            if job is None:
                return self._send(404, {"error": {"code": 404, "message": "no such job"}})
            self.fake.advance(job)
            return self._send(200, self.fake.public(job))

    def _storage_get(self, path: str, query: dict[str, str]) -> None:
        parts = path.split("/")
        bucket = parts[4]
        if len(parts) == 6 and parts[5] == "o":
            names = sorted(
                name for (b, name) in self.fake.objects if b == bucket and name.startswith(query.get("prefix", ""))
            )
            start = int(query.get("pageToken", "0"))
            page = names[start : start + 2]  # small pages, so callers must follow nextPageToken
            body: dict[str, Any] = {"items": [self._resource(bucket, name) for name in page]} if page else {}
            if start + 2 < len(names):
                body["nextPageToken"] = str(start + 2)
            return self._send(200, body)
        name = unquote(parts[6])
        data = self.fake.objects.get((bucket, name))
        if data is None:
            return self._send(404, {"error": {"code": 404, "message": f"no object {name}"}})
        if query.get("alt") == "media":
            return self._send(200, data, {"Content-Type": "application/octet-stream"})
        return self._send(200, self._resource(bucket, name))

    def _resource(self, bucket: str, name: str) -> dict[str, Any]:
        """An object resource as the JSON API lists it: name, size and the base64 MD5 of the content."""
        data = self.fake.objects[(bucket, name)]
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324 - GCS's own checksum
        return {"name": name, "bucket": bucket, "size": str(len(data)), "md5Hash": md5}

    def do_DELETE(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        with self.fake._lock:
            if not self._authorised(ACCESS_TOKEN) or self._outage():
                return None
            parts = url.path.split("/")
            if url.path.startswith("/bigquery/v2/projects/"):
                status, answer = self.fake.bigquery.delete(url.path)
                return self._send(status, answer)
            self.fake.objects.pop((parts[4], unquote(parts[6])), None)
            return self._send(204)


# --- BigQuery v2 (https://cloud.google.com/bigquery/docs/reference/rest): the load jobs, tables and
# tabledata.list Batchline uses, strict about names, locations, schemas and page tokens.

_BQ_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,1024}$")
_BQ_TABLE_ID = re.compile(r"^[\w-]{1,1024}$")
_BQ_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,299}$")
_BQ_TYPES = frozenset({"STRING", "FLOAT", "FLOAT64", "INTEGER", "INT64", "BOOLEAN", "BOOL", "JSON", "RECORD"})
Answer = tuple[int, Any, dict[str, str] | None]


def _bq_error(status: int, reason: str, message: str) -> Answer:
    names = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 409: "ALREADY_EXISTS"}
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": names.get(status, "UNKNOWN"),
        }
    }
    return status, body, None


class BigQueryFake:
    """Datasets (``create_dataset``), tables with a schema and rows, load jobs by resumable upload, and
    tabledata.list in small pages (``page_rows``) so that a reader must follow pageToken."""

    def __init__(self, page_rows: int = 2) -> None:
        self.page_rows = page_rows
        self.datasets: dict[tuple[str, str], str] = {}  # (project, dataset) -> location
        self.tables: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self._sessions: dict[str, dict[str, Any]] = {}

    def create_dataset(self, project: str, dataset: str, location: str) -> None:
        self.datasets[(project, dataset)] = location

    def put_table(
        self, project: str, dataset: str, table: str, fields: list[dict[str, Any]], rows: list[dict[str, Any]]
    ) -> None:
        self.tables[(project, dataset, table)] = {"fields": fields, "rows": rows}

    def start_load(self, project: str, body: bytes, base_url: str) -> Answer:
        job = json.loads(body or b"{}")
        reference = job.get("jobReference") or {}
        job_id, location = str(reference.get("jobId", "")), reference.get("location")
        if not _BQ_JOB_ID.match(job_id):
            return _bq_error(400, "invalid", f"Invalid job ID {job_id!r}: letters, digits, _ and - only, at most 1024")
        if (project, job_id) in self.jobs:
            return _bq_error(409, "duplicate", f"Already Exists: Job {project}:{location}.{job_id}")
        load = (job.get("configuration") or {}).get("load")
        if not isinstance(load, dict):
            return _bq_error(400, "invalid", "configuration.load is required for an upload")
        problem = self._invalid_load(load, location)
        if problem is not None:
            return problem
        session = hashlib.sha256(f"{project}/{job_id}".encode()).hexdigest()[:16]
        self._sessions[session] = {"project": project, "job": job, "data": bytearray()}
        return 200, {}, {"Location": f"{base_url}/bigquery-upload/{session}"}

    def _invalid_load(self, load: dict[str, Any], location: str | None) -> Answer | None:
        table = load.get("destinationTable") or {}
        key = (table.get("projectId"), table.get("datasetId"))
        if key not in self.datasets:
            return _bq_error(404, "notFound", f"Not found: Dataset {key[0]}:{key[1]}")
        if location is not None and self.datasets[key].lower() != str(location).lower():  # type: ignore[index]
            return _bq_error(
                404, "notFound", f"Not found: Dataset {key[0]}:{key[1]} was not found in location {location}"
            )
        if not _BQ_TABLE_ID.match(str(table.get("tableId", ""))):
            return _bq_error(400, "invalid", f"Invalid table ID {table.get('tableId')!r}")
        if load.get("sourceFormat") != "NEWLINE_DELIMITED_JSON":
            return _bq_error(
                400, "invalid", f"the emulator loads NEWLINE_DELIMITED_JSON only, not {load.get('sourceFormat')}"
            )
        for field in (load.get("schema") or {}).get("fields", []):
            if not _BQ_COLUMN.match(str(field.get("name", ""))):
                return _bq_error(400, "invalid", f"Invalid field name {field.get('name')!r}")
            if str(field.get("type", "")).upper() not in _BQ_TYPES:
                return _bq_error(400, "invalid", f"Invalid type {field.get('type')!r} for field {field.get('name')}")
        return None

    def put_load(self, session_id: str, body: bytes, content_range: str) -> Answer:
        session = self._sessions.get(session_id)
        if session is None:
            return _bq_error(404, "notFound", "no such upload session")
        session["data"].extend(body)
        total = re.search(r"/(\d+|\*)$", content_range)
        if not total or total.group(1) == "*" or int(total.group(1)) != len(session["data"]):
            return 308, None, {"Range": f"bytes=0-{len(session['data']) - 1}"}
        del self._sessions[session_id]
        job = session["job"]
        reference = job["jobReference"]
        done = {**job, "status": {"state": "DONE"}, "kind": "bigquery#job"}
        error = self._load_rows(job["configuration"]["load"], bytes(session["data"]))
        if error is not None:
            done["status"] = {"state": "DONE", "errorResult": {"reason": "invalid", "message": error}}
        self.jobs[(session["project"], reference["jobId"])] = done
        return 200, done, None

    def _load_rows(self, load: dict[str, Any], data: bytes) -> str | None:
        """Append the rows to the table (created with the schema when absent), or why the load fails (nothing
        is written then: a load job is atomic)."""
        reference = load["destinationTable"]
        key = (reference["projectId"], reference["datasetId"], reference["tableId"])
        fields = (load.get("schema") or {}).get("fields")
        table = self.tables.get(key)
        if table is None:
            if load.get("createDisposition") == "CREATE_NEVER" or not fields:
                return f"Not found: Table {key[0]}:{key[1]}.{key[2]}"
            table = {"fields": fields, "rows": []}
        elif load.get("writeDisposition") == "WRITE_EMPTY" and table["rows"]:
            return f"Already Exists: Table {key[0]}:{key[1]}.{key[2]} is not empty"
        names = {field["name"]: field for field in table["fields"]}
        rows = []
        try:
            for number, line in service_lines(data):
                row = strict_json(line, number)
                if not isinstance(row, dict):
                    return f"Error while reading data, line {number}: not a JSON object"
                unknown = [name for name in row if name not in names]
                if unknown and not load.get("ignoreUnknownValues"):
                    return f"Error while reading data, line {number}: no such field: {unknown[0]}"
                for name, field in names.items():
                    problem = _bq_cell_problem(field, row.get(name))
                    if problem:
                        return f"Error while reading data, line {number}, field {name}: {problem}"
                rows.append({name: row.get(name) for name in names})
        except (MalformedLine, UnicodeDecodeError) as exc:
            return f"Error while reading data: {exc}"
        table["rows"] = [*table["rows"], *rows]
        self.tables[key] = table
        return None

    def get(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        parts = path.split("/")  # /bigquery/v2/projects/{p}/jobs/{id} or .../datasets/{d}/tables/{t}[/data]
        project = parts[4]
        if len(parts) == 7 and parts[5] == "jobs":
            job = self.jobs.get((project, unquote(parts[6])))
            location = query.get("location")
            if job is None or (location and job["jobReference"].get("location", "").lower() != location.lower()):
                return _bq_error(404, "notFound", f"Not found: Job {project}:{location}.{unquote(parts[6])}")[:2]
            return 200, job
        if len(parts) in (9, 10) and parts[5] == "datasets" and parts[7] == "tables":
            key = (project, parts[6], unquote(parts[8]))
            table = self.tables.get(key)
            if table is None:
                return _bq_error(404, "notFound", f"Not found: Table {key[0]}:{key[1]}.{key[2]}")[:2]
            if len(parts) == 9:
                reference = {"projectId": key[0], "datasetId": key[1], "tableId": key[2]}
                return 200, {
                    "kind": "bigquery#table",
                    "tableReference": reference,
                    "schema": {"fields": table["fields"]},
                    "numRows": str(len(table["rows"])),
                    "location": self.datasets.get((key[0], key[1]), ""),
                }
            return self._page(table, query)
        return _bq_error(404, "notFound", f"emulated: no route {path}")[:2]

    def delete(self, path: str) -> tuple[int, Any]:
        """tables.delete: 204, or 404 notFound for a table that does not exist."""
        parts = path.split("/")
        key = (parts[4], parts[6], unquote(parts[8])) if len(parts) == 9 and parts[7] == "tables" else None
        if key is None or self.tables.pop(key, None) is None:
            return _bq_error(404, "notFound", f"Not found: Table {path}")[:2]
        return 204, None

    def _page(self, table: dict[str, Any], query: dict[str, str]) -> tuple[int, Any]:
        """tabledata.list: at most maxResults rows (and never more than page_rows), pageToken to the next page."""
        token = query.get("pageToken")
        start = 0
        if token is not None:
            match = re.fullmatch(r"BQ([0-9]+)T", token)
            if match is None or int(match.group(1)) > len(table["rows"]):
                return _bq_error(400, "invalid", f"Invalid page token: {token}")[:2]
            start = int(match.group(1))
        size = min(int(query.get("maxResults", "100000")), self.page_rows)
        rows = table["rows"][start : start + size]
        body: dict[str, Any] = {
            "kind": "bigquery#tableDataList",
            "totalRows": str(len(table["rows"])),
            "rows": [
                {"f": [{"v": _bq_cell(field, row.get(field["name"]))} for field in table["fields"]]} for row in rows
            ],
        }
        if start + size < len(table["rows"]):
            body["pageToken"] = f"BQ{start + size}T"
        return 200, body


def _bq_cell_problem(field: dict[str, Any], value: Any) -> str | None:
    kind = str(field.get("type", "STRING")).upper()
    if value is None:
        return "missing a REQUIRED value" if field.get("mode") == "REQUIRED" else None
    if kind == "STRING" and not isinstance(value, str):
        return f"{value!r} is not a string"
    if kind in ("FLOAT", "FLOAT64") and (isinstance(value, bool) or not isinstance(value, int | float)):
        return f"{value!r} is not a number"
    return None


def _bq_cell(field: dict[str, Any], value: Any) -> Any:
    """A value as tabledata.list writes it: scalars as text, a RECORD as {"f": [{"v": ...}]}, JSON as its text."""
    if value is None:
        return None
    kind = str(field.get("type", "STRING")).upper()
    if kind in ("RECORD", "STRUCT"):
        return {"f": [{"v": _bq_cell(sub, value.get(sub["name"]))} for sub in field.get("fields", [])]}
    if kind == "JSON":
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if kind in ("BOOLEAN", "BOOL"):
        return "true" if value else "false"
    if kind in ("FLOAT", "FLOAT64"):
        return repr(float(value))
    return str(value)


# BatchPredictionJob as the v1 REST reference defines it
# (https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.batchPredictionJobs).
ACCELERATORS = frozenset(
    {
        "NVIDIA_TESLA_K80", "NVIDIA_TESLA_P100", "NVIDIA_TESLA_V100", "NVIDIA_TESLA_P4", "NVIDIA_TESLA_T4",
        "NVIDIA_TESLA_A100", "NVIDIA_A100_80GB", "NVIDIA_L4", "NVIDIA_H100_80GB", "NVIDIA_H100_MEGA_80GB",
        "NVIDIA_H200_141GB", "NVIDIA_B200", "NVIDIA_GB200", "NVIDIA_RTX_PRO_6000",
        "TPU_V2", "TPU_V3", "TPU_V4_POD", "TPU_V5_LITEPOD",
    }
)  # fmt: skip
_LABEL_KEY = re.compile(r"^[^\W\dA-Z_][\w-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[\w-]{0,63}$")
_KMS_KEY = re.compile(r"^projects/[^/]+/locations/([^/]+)/keyRings/[^/]+/cryptoKeys/[^/]+$")


def invalid_job(job: dict[str, Any], *, location: str) -> str | None:
    """Why Vertex answers 400 INVALID_ARGUMENT to this create, or None: required fields, machineSpec, replica
    counts, batch size, labels and the CMEK key's form and Region."""
    for field in ("displayName", "model", "inputConfig", "outputConfig"):
        if not job.get(field):
            return f"{field} is required"
    if len(job["displayName"]) > 128:
        return "displayName is longer than 128 characters"
    checks = (_invalid_input, _invalid_output, _invalid_instance_config, _invalid_model_use, _invalid_explanation)
    for check in checks:
        problem = check(job)
        if problem:
            return problem
    return _invalid_settings(job, location)


def _invalid_settings(job: dict[str, Any], location: str) -> str | None:
    """Resources, batch size, labels, the CMEK key's form and Region, the logging flag."""
    dedicated = job.get("dedicatedResources")
    if dedicated is not None:
        problem = _invalid_resources(dedicated)
        if problem:
            return problem
    batch_size = job.get("manualBatchTuningParameters", {}).get("batchSize")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        return f"manualBatchTuningParameters.batchSize must be a positive integer, got {batch_size!r}"
    labels = job.get("labels", {})
    if len(labels) > 64:
        return f"{len(labels)} labels: a resource takes at most 64"
    for key, value in labels.items():
        if not _LABEL_KEY.match(key) or key != key.lower() or not _LABEL_VALUE.match(value) or value != value.lower():
            return f"label {key!r}={value!r}: keys and values are lowercase letters, digits, _ and -"
    key_name = job.get("encryptionSpec", {}).get("kmsKeyName")
    if "encryptionSpec" in job:
        match = _KMS_KEY.match(key_name or "")
        if match is None:
            return f"encryptionSpec.kmsKeyName {key_name!r} is not projects/*/locations/*/keyRings/*/cryptoKeys/*"
        if match.group(1) != location:
            return f"encryptionSpec.kmsKeyName is in {match.group(1)}, not the job's location {location}"
    if not isinstance(job.get("disableContainerLogging", False), bool):
        return "disableContainerLogging must be a boolean"
    return None


INSTANCES_FORMATS = frozenset({"jsonl", "csv", "tf-record", "tf-record-gzip", "bigquery", "file-list"})
PREDICTIONS_FORMATS = frozenset({"jsonl", "csv", "bigquery"})
_BQ_INPUT_URI = re.compile(r"^bq://[a-z][a-z0-9-]{4,28}[a-z0-9]\.\w{1,1024}\.[\w-]{1,1024}$")
_BQ_OUTPUT_URI = re.compile(r"^bq://[a-z][a-z0-9-]{4,28}[a-z0-9](\.\w{1,1024}(\.[\w-]{1,1024})?)?$")
PUBLISHER_MODEL = re.compile(r"^(projects/[^/]+/locations/[^/]+/)?publishers/[^/]+/models/[^/]+$")


def _invalid_input(job: dict[str, Any]) -> str | None:
    """InputConfig: instancesFormat required, one source; bigquery reads a bigquerySource, the others GCS."""
    config = job["inputConfig"]
    fmt = config.get("instancesFormat")
    if not fmt:
        return "inputConfig.instancesFormat is required"
    if fmt not in INSTANCES_FORMATS:
        return f"inputConfig.instancesFormat {fmt!r} is not one the model supports"
    sources = [name for name in ("gcsSource", "bigquerySource") if name in config]
    if len(sources) != 1:
        return "inputConfig takes exactly one of gcsSource and bigquerySource"
    if (fmt == "bigquery") != (sources[0] == "bigquerySource"):
        return f"inputConfig.instancesFormat {fmt} does not match the source {sources[0]}"
    if fmt == "bigquery" and not _BQ_INPUT_URI.match(str(config["bigquerySource"].get("inputUri", ""))):
        return f"bigquerySource.inputUri {config['bigquerySource'].get('inputUri')!r} is not bq://project.dataset.table"
    if fmt != "bigquery" and not config["gcsSource"].get("uris"):
        return "gcsSource.uris is required"
    return None


def _invalid_output(job: dict[str, Any]) -> str | None:
    config = job["outputConfig"]
    fmt = config.get("predictionsFormat")
    if not fmt:
        return "outputConfig.predictionsFormat is required"
    if fmt not in PREDICTIONS_FORMATS:
        return f"outputConfig.predictionsFormat {fmt!r} is not one the model supports"
    destinations = [name for name in ("gcsDestination", "bigqueryDestination") if name in config]
    if len(destinations) != 1:
        return "outputConfig takes exactly one of gcsDestination and bigqueryDestination"
    if (fmt == "bigquery") != (destinations[0] == "bigqueryDestination"):
        return f"outputConfig.predictionsFormat {fmt} does not match the destination {destinations[0]}"
    if fmt == "bigquery" and not _BQ_OUTPUT_URI.match(str(config["bigqueryDestination"].get("outputUri", ""))):
        return f"bigqueryDestination.outputUri {config['bigqueryDestination'].get('outputUri')!r} is not bq://project[.dataset[.table]]"
    return None


def _invalid_instance_config(job: dict[str, Any]) -> str | None:
    """InstanceConfig as documented: instanceType object or array, for jsonl and bigquery only; keyField for
    jsonl, csv, bigquery and tf-record; includedFields and excludedFields not both, and not with file-list."""
    config = job.get("instanceConfig")
    if config is None:
        return None
    fmt = job["inputConfig"].get("instancesFormat")
    kind = config.get("instanceType")
    if kind is not None and kind not in ("object", "array"):
        return f"instanceConfig.instanceType {kind!r} is not object or array"
    if kind and fmt not in ("jsonl", "bigquery"):
        return f"instanceConfig.instanceType does not apply to {fmt} input"
    if config.get("keyField") and fmt not in ("jsonl", "csv", "bigquery", "tf-record", "tf-record-gzip"):
        return f"instanceConfig.keyField is not supported with {fmt} input"
    included, excluded = config.get("includedFields"), config.get("excludedFields")
    if included and excluded:
        return "instanceConfig.includedFields and excludedFields cannot both be set"
    if (included or excluded) and fmt == "file-list":
        return "instanceConfig.includedFields and excludedFields are not supported with file-list input"
    return None


def _invalid_model_use(job: dict[str, Any]) -> str | None:
    """A publisher model runs on Vertex's own resources and takes no keyField; a model of yours (custom
    trained) has no automatic resources, so its batch job needs dedicatedResources."""
    if PUBLISHER_MODEL.match(job["model"]):
        if "dedicatedResources" in job:
            return f"Model {job['model']} does not support dedicatedResources"
        if "manualBatchTuningParameters" in job:
            return f"Model {job['model']} does not support manualBatchTuningParameters"
        if (job.get("instanceConfig") or {}).get("keyField"):
            return f"Model {job['model']} does not support instanceConfig.keyField"
        return None
    if "dedicatedResources" not in job:
        return f"Model {job['model']} does not support AUTOMATIC_RESOURCES: dedicatedResources is required"
    return None


def _invalid_explanation(job: dict[str, Any]) -> str | None:
    """explanationSpec only with generateExplanation; explanations need a spec (the model's own when the model
    ID contains "explainable", else the request's) and are not generated for csv predictions."""
    generate = job.get("generateExplanation", False)
    if not isinstance(generate, bool):
        return "generateExplanation must be a boolean"
    spec = job.get("explanationSpec")
    if spec is not None and not generate:
        return "explanationSpec can be specified only if generateExplanation is set to true"
    if not generate:
        return None
    if PUBLISHER_MODEL.match(job["model"]):
        return f"Model {job['model']} does not support explanations"
    if job["outputConfig"].get("predictionsFormat") == "csv":
        return "Generating explanations for csv predictionsFormat is not supported"
    if spec is None and "explainable" not in job["model"]:
        return "generateExplanation needs the Model's explanation_spec or explanationSpec to be populated"
    if spec is not None and (not isinstance(spec, dict) or set(spec) - {"parameters", "metadata"}):
        return "explanationSpec takes parameters and metadata only"
    return None


def _invalid_resources(dedicated: dict[str, Any]) -> str | None:
    machine = dedicated.get("machineSpec") or {}
    if not machine.get("machineType"):
        return "dedicatedResources.machineSpec.machineType is required for a batch prediction job"
    accelerator, count = machine.get("acceleratorType"), machine.get("acceleratorCount")
    if accelerator is not None and accelerator not in ACCELERATORS:
        return f"machineSpec.acceleratorType {accelerator!r} is not an AcceleratorType"
    if accelerator and not (isinstance(count, int) and count >= 1):
        return "machineSpec.acceleratorCount must be at least 1 with an acceleratorType"
    if count and not accelerator:
        return "machineSpec.acceleratorCount needs an acceleratorType"
    starting, most = dedicated.get("startingReplicaCount"), dedicated.get("maxReplicaCount")
    for name, value in (("startingReplicaCount", starting), ("maxReplicaCount", most)):
        if value is not None and (not isinstance(value, int) or value < 1):
            return f"dedicatedResources.{name} must be a positive integer, got {value!r}"
    if starting is not None and most is not None and starting > most:
        return f"startingReplicaCount {starting} is greater than maxReplicaCount {most}"
    return None


def _handler_for(fake: GoogleCloudFake) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_Handler,), {"fake": fake})
