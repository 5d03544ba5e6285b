"""A local fake of the Google APIs Batchline calls, served over HTTP on 127.0.0.1 (no network needed).

One server answers: Security Token Service (the AWS-signed subject token is checked for a SigV4 signature),
IAM Credentials generateAccessToken, the Cloud Storage JSON API (resumable upload, list, media download,
delete) and Vertex AI batchPredictionJobs (create, get, list by label, cancel). Jobs go QUEUED -> PENDING ->
RUNNING -> SUCCEEDED over GET calls and then write predictions/errors files in Vertex's layout. Every API
call must carry the impersonated service account's token.

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

A create Vertex would refuse (``invalid_job``: machineSpec without machineType, an accelerator without a count
or a count without an accelerator, startingReplicaCount over maxReplicaCount, a batch size under 1, labels that
are not lowercase, a CMEK key of another Region) is answered 400 INVALID_ARGUMENT and creates nothing.

Test hooks: an audience containing ``reject`` fails the token exchange; ``api_status`` answers every API call
(not the token exchange) with that HTTP status, as an outage or a refused permission would; a model containing
``failing`` fails the job; ``partial`` in the model ID ends in JOB_STATE_PARTIALLY_SUCCEEDED; an instance value
containing ``bad`` gets an error line; one with ``lost`` is left out of the output.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
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
        return {"vertex": self.url, "storage": self.url, "sts": self.url, "iamCredentials": self.url}

    # --- job behaviour ---------------------------------------------------------------------------

    def advance(self, job: dict[str, Any]) -> None:
        state = job["state"]
        if state == "JOB_STATE_CANCELLING":
            job["state"] = "JOB_STATE_CANCELLED"
        elif state in _PROGRESSION:
            job["_polls"] += 1
            if job["_polls"] < self.polls_until_done:
                job["state"] = _PROGRESSION[min(job["_polls"], len(_PROGRESSION) - 1)]
            elif "failing" in job["model"]:
                job["state"] = "JOB_STATE_FAILED"
                job["error"] = {"code": 9, "message": "emulated: the model cannot serve batch predictions"}
            else:
                self._run(job)

    def _run(self, job: dict[str, Any]) -> None:
        key_field = job["instanceConfig"]["keyField"]
        output_dir = job["outputConfig"]["gcsDestination"]["outputUriPrefix"].rstrip("/") + (
            f"/prediction-{job['model'].rsplit('/', 1)[-1]}-2026_11_25T00_00_00_000Z/"
        )
        out_bucket, out_prefix = output_dir[5:].split("/", 1)
        try:
            instances = self._instances(job, key_field)
        except InstancesInvalid as exc:
            job["state"] = "JOB_STATE_FAILED"
            job["error"] = {"code": 3, "message": f"emulated: {exc}"}  # 3: INVALID_ARGUMENT
            return
        predictions, errors = [], []
        for instance in instances:
            key = instance.pop(key_field)
            if any("lost" in str(value) for value in instance.values()):
                continue  # neither predicted nor reported: the instance is missing from the output
            if any("bad" in str(value) for value in instance.values()):
                errors.append(
                    {
                        "instance": {key_field: key, **instance},
                        "error": {"code": 3, "message": "emulated: invalid instance"},
                    }
                )
                continue
            digest = int(hashlib.sha256(json.dumps(instance, sort_keys=True).encode()).hexdigest()[:8], 16)
            score = round((digest % 10_000) / 10_000, 4)
            predictions.append({"key": key, "prediction": {"score": score, "label": "yes" if score > 0.5 else "no"}})
        half = (len(predictions) + 1) // 2
        for name, rows in (
            ("predictions_00001.jsonl", predictions[:half]),
            ("predictions_00002.jsonl", predictions[half:]),
            ("errors_0001.jsonl", errors),
        ):
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)  # raw UTF-8, as GCS holds it
            self.objects[(out_bucket, out_prefix + name)] = text.encode("utf-8")
        job["outputInfo"] = {"gcsOutputDirectory": output_dir.rstrip("/")}
        job["completionStats"] = {
            "successfulCount": str(len(predictions)),
            "failedCount": str(len(errors)),
            "incompleteCount": "0",
        }
        if errors and "partial" in job["model"]:
            job["state"] = "JOB_STATE_PARTIALLY_SUCCEEDED"
            job["partialFailures"] = [{"code": 3, "message": f"{len(errors)} instances failed"}]
        else:
            job["state"] = "JOB_STATE_SUCCEEDED"

    def _instances(self, job: dict[str, Any], key_field: str) -> list[dict[str, Any]]:
        """Every staged instance, read as Vertex reads JSON lines: LF-separated, each a JSON object (NaN and
        Infinity are not JSON), carrying the key field; or InstancesInvalid naming the object and line."""
        if job["inputConfig"].get("instancesFormat") != "jsonl":
            raise InstancesInvalid(
                f"the emulator reads jsonl input only, not {job['inputConfig'].get('instancesFormat')}"
            )
        instances = []
        for uri in job["inputConfig"]["gcsSource"]["uris"]:
            bucket, pattern = uri[5:].split("/", 1)
            prefix = pattern.rstrip("*")
            for (obj_bucket, name), data in sorted(self.objects.items()):
                if obj_bucket != bucket or not name.startswith(prefix):
                    continue
                try:
                    for number, line in service_lines(data):
                        instance = strict_json(line, number)
                        if not isinstance(instance, dict) or key_field not in instance:
                            raise MalformedLine(number, f"not a JSON object with the key field {key_field!r}")
                        instances.append(instance)
                except UnicodeDecodeError as exc:
                    raise InstancesInvalid(f"gs://{bucket}/{name} is not UTF-8 ({exc.reason})") from None
                except MalformedLine as exc:
                    raise InstancesInvalid(f"gs://{bucket}/{name} {exc}") from None
        return instances

    def public(self, job: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in job.items() if not key.startswith("_")}


class InstancesInvalid(Exception):
    """Input Vertex cannot read at all: the job fails (INVALID_ARGUMENT) rather than erroring instances."""


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
            if url.path.startswith("/upload/storage/v1/b/"):
                bucket = url.path.split("/")[5]
                name = parse_qs(url.query)["name"][0]
                session = hashlib.sha256(f"{bucket}/{name}/{len(self.fake.uploads)}".encode()).hexdigest()[:16]
                self.fake.uploads[session] = {"bucket": bucket, "name": name, "data": bytearray()}
                return self._send(200, {}, {"Location": f"{self.fake.url}/upload-session/{session}"})
            if url.path.endswith("/batchPredictionJobs"):
                job = json.loads(body)
                problem = invalid_job(job, location=url.path.split("/")[5])
                if problem:
                    return self._send(400, {"error": {"code": 400, "message": problem, "status": "INVALID_ARGUMENT"}})
                self.fake.create_calls += 1
                name = f"{url.path.removeprefix('/v1/')}/{1000 + len(self.fake.jobs)}"
                self.fake.jobs[name] = {**job, "name": name, "state": "JOB_STATE_QUEUED", "_polls": 0}
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
            body: dict[str, Any] = {"items": [{"name": name} for name in page]} if page else {}
            if start + 2 < len(names):
                body["nextPageToken"] = str(start + 2)
            return self._send(200, body)
        name = unquote(parts[6])
        data = self.fake.objects.get((bucket, name))
        if data is None:
            return self._send(404, {"error": {"code": 404, "message": f"no object {name}"}})
        if query.get("alt") == "media":
            return self._send(200, data, {"Content-Type": "application/octet-stream"})
        return self._send(200, {"name": name, "size": str(len(data))})

    def do_DELETE(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        with self.fake._lock:
            if not self._authorised(ACCESS_TOKEN) or self._outage():
                return None
            parts = url.path.split("/")
            self.fake.objects.pop((parts[4], unquote(parts[6])), None)
            return self._send(204)


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
