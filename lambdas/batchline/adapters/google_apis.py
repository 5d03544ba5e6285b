"""Small clients for the Google REST APIs Batchline needs: STS federation, Cloud Storage, BigQuery, Vertex AI.

google-auth turns the Lambda's AWS credentials into Google tokens (workload identity federation with an
AWS credential source), so no service-account key exists anywhere. Plain REST keeps the Lambda package
small: google-auth + requests instead of the google-cloud-aiplatform client and its gRPC stack.
https://cloud.google.com/iam/docs/workload-identity-federation-with-other-clouds
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, Protocol
from urllib.parse import quote

import requests
from google.auth.exceptions import GoogleAuthError, TransportError
from google.auth.transport.requests import AuthorizedSession

from batchline.config import VertexSettings
from batchline.errors import JobNotFound, ServiceRequestFailed, ServiceThrottled, ServiceUnavailable

# Resumable uploads move this much per request (a multiple of 256 KiB, as the API requires).
UPLOAD_CHUNK = 8 * 1024 * 1024
# Result files are read in blocks of this size and split at LF.
LINE_READ_CHUNK = 1024 * 1024


class Readable(Protocol):
    """What an upload reads from: an S3 body, a file, a header followed by a body."""

    def read(self, size: int = -1, /) -> bytes: ...


def call(http: AuthorizedSession, method: str, url: str, what: str, **kwargs: Any) -> requests.Response:
    """One request; token, throttling and permission problems become the pipeline's named errors. A 404 is
    returned for the caller to read: only an answer from the API itself says that something does not exist."""
    try:
        response = http.request(method, url, timeout=60, **kwargs)
    except (TransportError, requests.ConnectionError, requests.Timeout) as exc:
        raise ServiceThrottled(f"could not reach Google to {what}: {exc}") from exc
    except GoogleAuthError as exc:  # the STS exchange or the impersonation was refused
        raise ServiceUnavailable(f"Google token exchange failed while trying to {what}: {exc}") from exc
    if response.status_code in (429, 500, 502, 503, 504):
        raise ServiceThrottled(f"Google answered {response.status_code} to {what}: {response.text[:300]}")
    if response.status_code in (401, 403):
        raise ServiceUnavailable(f"Google refused to {what} ({response.status_code}): {response.text[:300]}")
    if response.status_code >= 400 and response.status_code != 404:
        raise ServiceRequestFailed(f"Google answered {response.status_code} to {what}: {response.text[:500]}")
    return response


def lf_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """The non-empty lines of a byte stream, split at LF only and decoded as UTF-8.

    requests' iter_lines splits with bytes.splitlines, which also ends a line at a lone CR (JSON whitespace
    the service may write); the results are JSON lines, one per LF.
    """
    pending: list[bytes] = []  # the start of a line that continues in the next chunk (a line may be long)
    for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            line = b"".join([*pending, chunk[start:end]])
            pending = []
            start = end + 1
            if line.strip():
                yield line.decode("utf-8")
        pending.append(chunk[start:])
    line = b"".join(pending)
    if line.strip():
        yield line.decode("utf-8")


def resumable_put(http: AuthorizedSession, session_url: str, body: Readable, what: str) -> tuple[int, Any]:
    """Streams ``body`` to a resumable upload session in fixed chunks (memory stays at one chunk); returns the
    bytes sent and the last response's JSON (the created object or job)."""
    offset = 0
    chunk = body.read(UPLOAD_CHUNK)
    while True:
        following = body.read(UPLOAD_CHUNK) if chunk else b""
        last = not following
        end = offset + len(chunk) - 1
        total = str(offset + len(chunk)) if last else "*"
        content_range = f"bytes {offset}-{end}/{total}" if chunk else f"bytes */{offset}"
        response = call(http, "PUT", session_url, what, data=chunk, headers={"Content-Range": content_range})
        offset += len(chunk)
        if last:
            return offset, response.json() if response.content else {}
        chunk = following


def split_gcs_uri(uri: str) -> tuple[str, str]:
    bucket, _, name = uri[5:].partition("/")
    return bucket, name


class CloudStorage:
    """The Cloud Storage JSON API calls Batchline makes: resumable upload, list, streamed read, delete."""

    def __init__(self, http: AuthorizedSession, endpoint: str) -> None:
        self._http, self._endpoint = http, endpoint.rstrip("/")

    def size(self, bucket: str, name: str) -> int | None:
        response = call(self._http, "GET", self._object_url(bucket, name), f"read gs://{bucket}/{name}")
        return None if response.status_code == 404 else int(response.json().get("size", 0))

    def upload(self, bucket: str, name: str, body: Readable, content_type: str) -> int:
        """Streams ``body`` in fixed chunks through a resumable session: memory stays at one chunk."""
        start = call(
            self._http,
            "POST",
            f"{self._endpoint}/upload/storage/v1/b/{bucket}/o",
            f"upload gs://{bucket}/{name}",
            params={"uploadType": "resumable", "name": name},
            headers={"X-Upload-Content-Type": content_type},
            data=b"",
        )
        return resumable_put(self._http, start.headers["Location"], body, f"upload gs://{bucket}/{name}")[0]

    def list(self, bucket: str, prefix: str) -> Iterator[str]:
        for item in self.items(bucket, prefix):
            yield item["name"]

    def items(self, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
        """The object resources (name, size, md5Hash, ...) under ``prefix``, following nextPageToken."""
        token = None
        while True:
            params = {"prefix": prefix, **({"pageToken": token} if token else {})}
            page = call(
                self._http,
                "GET",
                f"{self._endpoint}/storage/v1/b/{bucket}/o",
                f"list gs://{bucket}/{prefix}",
                params=params,
            ).json()
            yield from page.get("items", [])
            token = page.get("nextPageToken")
            if not token:
                return

    def lines(self, bucket: str, name: str) -> Iterator[str]:
        response = call(
            self._http,
            "GET",
            self._object_url(bucket, name),
            f"read gs://{bucket}/{name}",
            params={"alt": "media"},
            stream=True,
        )
        with response:
            yield from lf_lines(response.iter_content(chunk_size=LINE_READ_CHUNK))

    def read(self, bucket: str, name: str) -> bytes:
        """A small object's bytes, whole."""
        response = call(
            self._http, "GET", self._object_url(bucket, name), f"read gs://{bucket}/{name}", params={"alt": "media"}
        )
        if response.status_code == 404:
            raise ServiceRequestFailed(f"gs://{bucket}/{name} does not exist")
        return bytes(response.content)

    def delete(self, bucket: str, name: str) -> None:
        call(self._http, "DELETE", self._object_url(bucket, name), f"delete gs://{bucket}/{name}")

    def _object_url(self, bucket: str, name: str) -> str:
        return f"{self._endpoint}/storage/v1/b/{bucket}/o/{quote(name, safe='')}"


class VertexJobs:
    """batchPredictionJobs: create, get, find by label, cancel."""

    def __init__(self, http: AuthorizedSession, settings: VertexSettings) -> None:
        self._http = http
        self._base = f"{settings.vertex_endpoint.rstrip('/')}/v1"
        self._parent = f"projects/{settings.project}/locations/{settings.location}"

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self._base}/{self._parent}/batchPredictionJobs"
        return dict(
            call(
                self._http,
                "POST",
                url,
                "create a batch prediction job",
                data=json.dumps(body),
                headers={"Content-Type": "application/json"},
            ).json()
        )

    def get(self, name: str) -> dict[str, Any]:
        response = call(self._http, "GET", f"{self._base}/{name}", f"read {name}")
        if response.status_code == 404:
            raise JobNotFound(f"Vertex AI has no job {name}: it was never created")
        return dict(response.json())

    def find(self, label: str, value: str) -> dict[str, Any] | None:
        """Create is not idempotent on Vertex: a job is found by the label it was created with."""
        url = f"{self._base}/{self._parent}/batchPredictionJobs"
        page = call(
            self._http, "GET", url, "list batch prediction jobs", params={"filter": f'labels.{label}="{value}"'}
        ).json()
        jobs = [job for job in page.get("batchPredictionJobs", []) if job.get("labels", {}).get(label) == value]
        return dict(jobs[0]) if jobs else None

    def cancel(self, name: str) -> None:
        call(
            self._http,
            "POST",
            f"{self._base}/{name}:cancel",
            f"cancel {name}",
            data=b"{}",
            headers={"Content-Type": "application/json"},
        )


class BigQuery:
    """The BigQuery v2 calls Batchline makes: a load job streamed by resumable upload (no Cloud Storage), the
    job's status, a table's schema and its rows page by page (tabledata.list).
    https://cloud.google.com/bigquery/docs/reference/rest/v2/tabledata/list"""

    def __init__(self, http: AuthorizedSession, endpoint: str, location: str) -> None:
        self._http, self._endpoint, self._location = http, endpoint.rstrip("/"), location

    def load(self, project: str, job_id: str, load: dict[str, Any], body: Readable) -> dict[str, Any]:
        """Insert a load job under ``job_id`` with ``body`` (newline-delimited JSON) as its data."""
        job = {
            "jobReference": {"projectId": project, "jobId": job_id, "location": self._location},
            "configuration": {"load": load},
        }
        start = call(
            self._http,
            "POST",
            f"{self._endpoint}/upload/bigquery/v2/projects/{project}/jobs",
            f"start BigQuery load job {job_id}",
            params={"uploadType": "resumable"},
            data=json.dumps(job),
            headers={"Content-Type": "application/json", "X-Upload-Content-Type": "application/octet-stream"},
        )
        if start.status_code == 404:
            raise ServiceRequestFailed(f"BigQuery answered 404 to load job {job_id}: {start.text[:300]}")
        return dict(resumable_put(self._http, start.headers["Location"], body, f"load BigQuery job {job_id}")[1])

    def job(self, project: str, job_id: str) -> dict[str, Any] | None:
        """The job, or None when BigQuery has none of that ID (a 404)."""
        response = call(
            self._http,
            "GET",
            f"{self._endpoint}/bigquery/v2/projects/{project}/jobs/{quote(job_id, safe='')}",
            f"read BigQuery job {job_id}",
            params={"location": self._location},
        )
        return None if response.status_code == 404 else dict(response.json())

    def table(self, project: str, dataset: str, table: str) -> dict[str, Any] | None:
        """tables.get, or None when the table does not exist."""
        response = call(self._http, "GET", self._table_url(project, dataset, table), f"read {dataset}.{table}")
        return None if response.status_code == 404 else dict(response.json())

    def rows(self, project: str, dataset: str, table: str) -> Iterator[list[Any]]:
        """Every row's cells (``f[].v``), following pageToken to the last page."""
        token = None
        while True:
            params = {"maxResults": "10000", **({"pageToken": token} if token else {})}
            response = call(
                self._http,
                "GET",
                self._table_url(project, dataset, table) + "/data",
                f"read the rows of {dataset}.{table}",
                params=params,
            )
            if response.status_code == 404:
                raise ServiceRequestFailed(f"BigQuery has no table {project}.{dataset}.{table}")
            page = response.json()
            for row in page.get("rows", []):
                yield [cell.get("v") for cell in row["f"]]
            token = page.get("pageToken")
            if not token:
                return

    def delete_table(self, project: str, dataset: str, table: str) -> None:
        """tables.delete; a table already gone (404) is what was asked for."""
        call(self._http, "DELETE", self._table_url(project, dataset, table), f"delete {dataset}.{table}")

    def _table_url(self, project: str, dataset: str, table: str) -> str:
        return f"{self._endpoint}/bigquery/v2/projects/{project}/datasets/{dataset}/tables/{quote(table, safe='')}"
