"""Vertex adapter pieces against the local Google fake on 127.0.0.1: federation, GCS, job states."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from batchline.adapters import google_apis
from batchline.adapters.base import Chunk, JobState, JobStatus, RecordRejected, RunContext, UnitFiles
from batchline.adapters.google_apis import CloudStorage, VertexJobs, lf_lines
from batchline.adapters.vertex import VertexAdapter, VertexJsonEncoder, _state, normalise_state
from batchline.clients import google_session
from batchline.config import parse_pipelines
from batchline.errors import JobNotFound, ServiceThrottled, ServiceUnavailable
from batchline.layout import RunLayout, S3Location

from batchline_local.emulators.google_cloud import ACCESS_TOKEN, GoogleCloudFake

FEDERATION = {
    "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/aws",
    "serviceAccountEmail": "runner@proj-12345.iam.gserviceaccount.com",
}


RUN_CONTEXT = RunContext(
    run_id="v-00112233445566778899aabbccddeeff",
    pipeline=None,  # type: ignore[arg-type]
    layout=RunLayout("v", "v-00112233445566778899aabbccddeeff", "work", "results"),
    staging={"keyHeader": "id"},
    chunk=Chunk(0, S3Location("work", "v/r/input/"), S3Location("work", "v/r/output/job-00000/"), 2),
)


@pytest.fixture
def fake() -> Iterator[GoogleCloudFake]:
    with GoogleCloudFake() as running:
        yield running


def settings(fake: GoogleCloudFake, **federation: str) -> Any:
    service = {
        "provider": "vertex",
        "project": "proj-12345",
        "location": "us-central1",
        "model": "m",
        "gcsPrefix": "gs://bucket/base",
        "federation": {**FEDERATION, **federation},
        "endpoints": fake.endpoints,
    }
    return parse_pipelines({"v": {"keyColumn": "id", "service": service}}).get("v").service


def session() -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region_name="eu-west-1",
    )


def test_aws_credentials_are_exchanged_for_an_impersonated_token(fake: GoogleCloudFake) -> None:
    http = google_session(settings(fake), session())
    storage = CloudStorage(http, fake.url)
    assert list(storage.list("bucket", "nothing/")) == []
    assert fake.token_exchanges == 1
    assert http.credentials.token == ACCESS_TOKEN


def test_a_refused_exchange_is_a_clear_service_unavailable(fake: GoogleCloudFake) -> None:
    bad = settings(fake, audience=FEDERATION["audience"].replace("providers/aws", "providers/reject"))
    storage = CloudStorage(google_session(bad, session()), fake.url)
    with pytest.raises(ServiceUnavailable, match="token exchange failed"):
        list(storage.list("bucket", ""))


def test_uploads_stream_in_chunks_and_listing_follows_pages(fake: GoogleCloudFake, monkeypatch: Any) -> None:
    monkeypatch.setattr(google_apis, "UPLOAD_CHUNK", 256 * 1024)
    storage = CloudStorage(google_session(settings(fake), session()), fake.url)
    data = os.urandom(700 * 1024)  # three chunks
    for n in range(5):
        storage.upload("bucket", f"in/part-{n}", io.BytesIO(data if n == 0 else b"x\n"), "application/jsonl")
    assert fake.objects[("bucket", "in/part-0")] == data
    assert list(storage.list("bucket", "in/")) == [f"in/part-{n}" for n in range(5)]  # pages of two
    assert storage.size("bucket", "in/part-0") == len(data)
    assert list(storage.lines("bucket", "in/part-1")) == ["x"]


def test_jobs_are_found_by_label_not_duplicated(fake: GoogleCloudFake) -> None:
    config = settings(fake)
    jobs = VertexJobs(google_session(config, session()), config)
    assert jobs.find("batchline-job", "bl-x-0") is None
    body = {
        "displayName": "bl-x-0",
        "labels": {"batchline-job": "bl-x-0"},
        "model": "m",
        "inputConfig": {"instancesFormat": "jsonl", "gcsSource": {"uris": ["gs://bucket/in/*"]}},
        "outputConfig": {"predictionsFormat": "jsonl", "gcsDestination": {"outputUriPrefix": "gs://bucket/out/"}},
        "dedicatedResources": {"machineSpec": {"machineType": "n1-standard-4"}},
    }
    created = jobs.create(body)
    assert jobs.find("batchline-job", "bl-x-0")["name"] == created["name"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("JOB_STATE_QUEUED", JobStatus.PENDING),
        ("JOB_STATE_PENDING", JobStatus.PENDING),
        ("JOB_STATE_RUNNING", JobStatus.RUNNING),
        ("JOB_STATE_UPDATING", JobStatus.RUNNING),
        ("JOB_STATE_PAUSED", JobStatus.RUNNING),
        ("JOB_STATE_CANCELLING", JobStatus.RUNNING),
        ("JOB_STATE_SUCCEEDED", JobStatus.SUCCEEDED),
        ("JOB_STATE_PARTIALLY_SUCCEEDED", JobStatus.PARTIAL),
        ("JOB_STATE_FAILED", JobStatus.FAILED),
        ("JOB_STATE_EXPIRED", JobStatus.FAILED),
        ("JOB_STATE_CANCELLED", JobStatus.STOPPED),
    ],
)
def test_every_vertex_state_is_normalised(raw: str, status: JobStatus) -> None:
    assert normalise_state(raw) is status


def test_error_partial_failures_and_completion_stats_are_surfaced() -> None:
    state = _state(
        {
            "name": "projects/p/locations/l/batchPredictionJobs/1",
            "state": "JOB_STATE_PARTIALLY_SUCCEEDED",
            "error": {"code": 3, "message": "some input was invalid"},
            "partialFailures": [{"code": 3, "message": "12 instances failed"}],
            "completionStats": {"successfulCount": "88", "failedCount": "12", "incompleteCount": "0"},
        }
    )
    assert state.status is JobStatus.PARTIAL
    assert state.message == "some input was invalid; partial failure: 12 instances failed"
    assert state.counts == {"succeeded": 88, "failed": 12, "incomplete": 0}


# --- numeric features are JSON numbers -------------------------------------------------------------


def encoder() -> VertexJsonEncoder:
    service = {
        "provider": "vertex",
        "project": "proj-12345",
        "location": "us-central1",
        "model": "m",
        "gcsPrefix": "gs://bucket/base",
        "federation": FEDERATION,
        "numericColumns": ["x"],
    }
    encoding = VertexJsonEncoder(parse_pipelines({"v": {"keyColumn": "id", "service": service}}).get("v").service, "id")
    encoding.start(["id", "x", "t"], 0)
    return encoding


@pytest.mark.parametrize(
    "text", ["NaN", "nan", "inf", "-Infinity", "infinity", "1_0", " 1 ", "+1", "1.", ".5", "0x10", "1e400", "--1", "١"]
)
def test_a_numeric_feature_that_is_not_a_finite_json_number_is_refused_naming_its_column(text: str) -> None:
    with pytest.raises(RecordRejected, match="column 'x'"):
        encoder().encode(["k", text, "t"], 0)


@pytest.mark.parametrize(("text", "value"), [("1", 1.0), ("-0.5", -0.5), ("1e5", 1e5), ("0", 0.0), ("", None)])
def test_json_numbers_are_staged_as_numbers(text: str, value: float | None) -> None:
    line = encoder().encode(["k", text, "t"], 0).text
    assert json.loads(line, parse_constant=pytest.fail) == {"id": "k", "x": value, "t": "t"}
    assert "NaN" not in line and "Infinity" not in line


# --- results are JSON lines split at LF only ---------------------------------------------------------


def test_result_lines_end_at_line_feeds_only() -> None:
    chunks = [b'{"key": "a",\r "p": "\xe2\x80', b'\xa8"}\n\n{"key"', b': "b\xc2\x85"}\r\n', b'{"key": "c"}']
    assert [json.loads(line) for line in lf_lines(chunks)] == [
        {"key": "a", "p": "\u2028"},
        {"key": "b\u0085"},
        {"key": "c"},
    ]


def test_cloud_storage_lines_keep_a_cr_inside_one_json_line(fake: GoogleCloudFake) -> None:
    storage = CloudStorage(google_session(settings(fake), session()), fake.url)
    fake.objects[("bucket", "out/predictions_00001.jsonl")] = b'{"key": "a",\r"prediction": 1}\n{"key": "b"}\n'
    assert [json.loads(line) for line in storage.lines("bucket", "out/predictions_00001.jsonl")] == [
        {"key": "a", "prediction": 1},
        {"key": "b"},
    ]


def test_keys_and_failures_of_a_unit_are_written_in_the_one_csv_dialect(tmp_path: Any) -> None:
    # A lone CR in a key must be quoted, or the reconcile reads two records.
    lines = [{"key": "cr\ronly", "prediction": 1}, {"key": "e\rr", "error": {"code": 3, "message": "m\rm"}}]

    class Results:
        def lines(self, bucket: str, name: str) -> Iterator[str]:
            return iter(json.dumps(line) for line in lines)

    adapter = VertexAdapter(encoder()._settings, "id", jobs=None, gcs=Results(), s3=None)  # type: ignore[arg-type]
    adapter.result_files = lambda job: ["gs://b/predictions_00001.jsonl"]  # type: ignore[method-assign]
    files = UnitFiles(*(str(tmp_path / name) for name in ("rows.csv", "keys.csv", "failed.csv")), None, True)
    counts = adapter.collect_keyed(RUN_CONTEXT, JobState("j", JobStatus.SUCCEEDED, "JOB_STATE_SUCCEEDED"), files)
    assert counts == {"predicted": 1, "failed": 1, "rows": 1}
    assert (tmp_path / "keys.csv").read_bytes() == b'"cr\ronly"\n"e\rr"\n'
    assert (tmp_path / "failed.csv").read_bytes() == b'"e\rr","Vertex AI error: m\rm"\n'


def adapter_on(fake: GoogleCloudFake, **federation: str) -> VertexAdapter:
    config = settings(fake, **federation)
    http = google_session(config, session())
    return VertexAdapter(config, "id", VertexJobs(http, config), CloudStorage(http, fake.url), s3=None)


def test_a_job_no_listing_finds_was_never_created(fake: GoogleCloudFake) -> None:
    with pytest.raises(JobNotFound, match="bl-x-0"):
        adapter_on(fake).describe(RUN_CONTEXT, "bl-x-0")


def test_a_job_name_vertex_answers_404_for_was_never_created(fake: GoogleCloudFake) -> None:
    name = "projects/proj-12345/locations/us-central1/batchPredictionJobs/999"
    with pytest.raises(JobNotFound, match=name):
        adapter_on(fake).describe(RUN_CONTEXT, name)


@pytest.mark.parametrize(
    ("status", "error", "words"),
    [(403, ServiceUnavailable, "refused"), (500, ServiceThrottled, "500"), (503, ServiceThrottled, "503")],
)
def test_a_google_error_while_looking_never_means_never_created(
    fake: GoogleCloudFake, status: int, error: type[Exception], words: str
) -> None:
    """Stopping a run reads 'never created' as 'nothing to stop': only Vertex's own 404 may say so."""
    adapter = adapter_on(fake)
    fake.api_status = status
    with pytest.raises(error, match=words) as raised:
        adapter.describe(RUN_CONTEXT, "bl-x-0")
    assert not isinstance(raised.value, JobNotFound)


def test_a_refused_token_exchange_while_stopping_is_not_never_created(fake: GoogleCloudFake) -> None:
    fake.bound_callers = frozenset()
    fake.caller = lambda: "ExecutionEnded"
    adapter = adapter_on(fake)
    with pytest.raises(ServiceUnavailable, match="token exchange failed") as raised:
        adapter.stop(RUN_CONTEXT, "bl-x-0")
    assert not isinstance(raised.value, JobNotFound)


# --- service depth: resources, batch size, labels, CMEK, logging ----------------------------------------------


def deep_settings(fake: GoogleCloudFake, **service: Any) -> Any:
    body = {
        "provider": "vertex",
        "project": "proj-12345",
        "location": "europe-west12",
        "model": "m",
        "gcsPrefix": "gs://bucket/base",
        "federation": FEDERATION,
        "endpoints": fake.endpoints,
        **service,
    }
    return parse_pipelines({"v": {"keyColumn": "id", "service": body}}).get("v").service


DEEP = {
    "machineType": "g2-standard-8",
    "acceleratorType": "NVIDIA_L4",
    "acceleratorCount": 1,
    "startingReplicaCount": 2,
    "maxReplicaCount": 5,
    "batchSize": 16,
    "labels": {"team": "risk", "cost-centre": "42"},
    "kmsKeyName": "projects/proj-12345/locations/europe-west12/keyRings/r/cryptoKeys/k",
    "disableContainerLogging": True,
}


def test_the_create_body_carries_resources_batch_size_labels_cmek_and_logging(fake: GoogleCloudFake) -> None:
    config = deep_settings(fake, **DEEP)
    adapter = VertexAdapter(config, "id", None, None, s3=None)  # type: ignore[arg-type]
    run = RunContext(
        **{
            **RUN_CONTEXT.__dict__,
            "pipeline": parse_pipelines(
                {"v": {"keyColumn": "id", "service": {**config.model_dump(by_alias=True, exclude_none=True)}}}
            ).get("v"),
        }
    )
    body = adapter.create_body(run, "gs://bucket/base/v/r/job-00000/")
    assert body["dedicatedResources"] == {
        "machineSpec": {"machineType": "g2-standard-8", "acceleratorType": "NVIDIA_L4", "acceleratorCount": 1},
        "startingReplicaCount": 2,
        "maxReplicaCount": 5,
    }
    assert body["manualBatchTuningParameters"] == {"batchSize": 16}
    assert body["labels"] == {
        "team": "risk",
        "cost-centre": "42",
        "batchline-job": adapter.job_id(run),
        "batchline-pipeline": "v",
    }
    assert body["encryptionSpec"] == {"kmsKeyName": DEEP["kmsKeyName"]}
    assert body["disableContainerLogging"] is True
    # AND Vertex (the fake, as strict as the REST reference) takes it in europe-west12
    jobs = VertexJobs(google_session(config, session()), config)
    assert jobs.create(body)["dedicatedResources"]["machineSpec"]["acceleratorType"] == "NVIDIA_L4"


def test_the_default_body_sends_neither_batch_size_nor_cmek_nor_logging_flag(fake: GoogleCloudFake) -> None:
    config = deep_settings(fake)
    run = RunContext(
        **{
            **RUN_CONTEXT.__dict__,
            "pipeline": parse_pipelines(
                {"v": {"keyColumn": "id", "service": config.model_dump(by_alias=True, exclude_none=True)}}
            ).get("v"),
        }
    )
    body = VertexAdapter(config, "id", None, None, s3=None).create_body(run, "gs://b/p/")  # type: ignore[arg-type]
    assert not {"manualBatchTuningParameters", "encryptionSpec", "disableContainerLogging"} & set(body)
    assert body["dedicatedResources"]["machineSpec"] == {"machineType": "n1-standard-4"}
