"""The Vertex adapter's requests per format, source, destination and model kind, each pinned and taken by the
Google fake (as strict as the REST reference); CSV staging against hostile keys; BigQuery loads and reads."""

from __future__ import annotations

import io
import os
from typing import Any

import boto3
import pytest
from batchline.adapters.base import Chunk, JobState, JobStatus, RecordRejected, RunContext, UnitFiles
from batchline.adapters.google_apis import BigQuery, CloudStorage, VertexJobs
from batchline.adapters.vertex import VertexAdapter, VertexCsvEncoder, _state, bigquery_value
from batchline.clients import google_session
from batchline.config import parse_pipelines
from batchline.errors import InputRejected, OutputInvalid, ServiceRequestFailed, ServiceThrottled
from batchline.layout import RunLayout, S3Location
from moto import mock_aws

from batchline_local.emulators.google_cloud import GoogleCloudFake, _csv_records

FEDERATION = {
    "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/aws",
    "serviceAccountEmail": "runner@proj-12345.iam.gserviceaccount.com",
}
HOSTILE_KEYS = ['say "hi"', "a,b", "=1+1", "  padded  ", "ünï-©ødé", '"', '""', "'", "\\", "tab\tin", "", "x" * 500]


@pytest.fixture
def fake() -> Any:
    with GoogleCloudFake() as running:
        yield running


def pipeline(fake: GoogleCloudFake | None = None, **service: Any) -> Any:
    body = {
        "provider": "vertex",
        "project": "proj-12345",
        "location": "us-central1",
        "model": "m",
        "gcsPrefix": "gs://bucket/base",
        "federation": FEDERATION,
        **({"endpoints": fake.endpoints} if fake else {}),
        **service,
    }
    return parse_pipelines({"v": {"keyColumn": "id", "service": body}}).get("v")


def run_of(config: Any, staging: dict[str, Any] | None = None) -> RunContext:
    return RunContext(
        run_id="v-00112233445566778899aabbccddeeff",
        pipeline=config,
        layout=RunLayout("v", "v-00112233445566778899aabbccddeeff", "work", "results"),
        staging=staging or {"keyHeader": "id"},
        chunk=Chunk(0, S3Location("work", "v/r/input/"), S3Location("work", "v/r/output/job-00000/"), 2),
    )


def session() -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region_name="eu-west-1",
    )


def adapter_for(fake: GoogleCloudFake, config: Any, s3: Any = None) -> VertexAdapter:
    settings = config.service
    http = google_session(settings, session())
    return VertexAdapter(
        settings,
        "id",
        VertexJobs(http, settings),
        CloudStorage(http, fake.url),
        s3,
        BigQuery(http, fake.url, settings.location),
    )


def created(fake: GoogleCloudFake, adapter: VertexAdapter, body: dict[str, Any]) -> dict[str, Any]:
    """The body as the fake recorded it: Vertex's rules (the fake's) took it."""
    name = adapter._jobs.create(body)["name"]
    return {key: value for key, value in fake.jobs[name].items() if key in body}


# --- the request of each kind ---------------------------------------------------------------------------------


def test_a_csv_job_names_the_format_and_the_key_field_without_an_instance_type(fake: GoogleCloudFake) -> None:
    config = pipeline(fake, instancesFormat="csv")
    adapter = adapter_for(fake, config)
    body = adapter.create_body(run_of(config), "gs://bucket/base/v/r/job-00000/")
    assert body["inputConfig"] == {
        "instancesFormat": "csv",
        "gcsSource": {"uris": ["gs://bucket/base/v/r/job-00000/input/*"]},
    }
    assert body["instanceConfig"] == {"keyField": "id"}
    assert created(fake, adapter, body) == body


def test_a_bigquery_job_reads_its_table_and_writes_to_the_dataset(fake: GoogleCloudFake) -> None:
    config = pipeline(
        fake,
        bigquerySource="bq://proj-12345.inputs",
        predictionsFormat="bigquery",
        bigqueryDestination="bq://proj-12345.outputs",
    )
    adapter = adapter_for(fake, config)
    run = run_of(config)
    project, dataset, table = adapter.source_table(run)
    assert (project, dataset) == ("proj-12345", "inputs") and table == "batchline_" + adapter.job_id(run).replace(
        "-", "_"
    )
    body = adapter.create_body(run, "gs://unused/", f"bq://{project}.{dataset}.{table}")
    assert body["inputConfig"] == {
        "instancesFormat": "bigquery",
        "bigquerySource": {"inputUri": f"bq://{project}.{dataset}.{table}"},
    }
    assert body["instanceConfig"] == {"instanceType": "object", "keyField": "id"}
    assert body["outputConfig"] == {
        "predictionsFormat": "bigquery",
        "bigqueryDestination": {"outputUri": "bq://proj-12345.outputs"},
    }
    assert created(fake, adapter, body) == body


def test_a_publisher_model_job_has_neither_dedicated_resources_nor_key_field(fake: GoogleCloudFake) -> None:
    config = pipeline(fake, model="publishers/google/models/gemini-2.0-flash-001", modelParameters={"temperature": 0})
    adapter = adapter_for(fake, config)
    body = adapter.create_body(run_of(config), "gs://bucket/base/v/r/job-00000/")
    assert body["model"] == "publishers/google/models/gemini-2.0-flash-001"
    assert not {"dedicatedResources", "instanceConfig", "manualBatchTuningParameters"} & set(body)
    assert body["modelParameters"] == {"temperature": 0}
    assert created(fake, adapter, body) == body
    # AND the fake refuses what Vertex refuses for such a model
    with pytest.raises(ServiceRequestFailed, match="does not support dedicatedResources"):
        adapter._jobs.create({**body, "dedicatedResources": {"machineSpec": {"machineType": "n1-standard-4"}}})


def test_an_explanation_job_passes_the_spec_through(fake: GoogleCloudFake) -> None:
    spec = {"parameters": {"xraiAttribution": {"stepCount": 50}}, "metadata": {"inputs": {"x": {}}}}
    config = pipeline(fake, generateExplanation=True, explanationSpec=spec)
    adapter = adapter_for(fake, config)
    body = adapter.create_body(run_of(config), "gs://b/p/")
    assert body["generateExplanation"] is True and body["explanationSpec"] == spec
    assert created(fake, adapter, body) == body
    assert adapter.result_columns(run_of(config)) == ["prediction", "explanation"]


def test_a_file_list_job_sends_no_key_field_and_the_fake_refuses_one(fake: GoogleCloudFake) -> None:
    config = pipeline(fake, instancesFormat="file-list", fileColumn="uri")
    adapter = adapter_for(fake, config)
    body = adapter.create_body(run_of(config), "gs://bucket/base/v/r/job-00000/")
    assert body["inputConfig"]["instancesFormat"] == "file-list" and "instanceConfig" not in body
    assert "dedicatedResources" in body
    assert created(fake, adapter, body) == body
    with pytest.raises(ServiceRequestFailed, match="keyField is not supported with file-list"):
        adapter._jobs.create({**body, "instanceConfig": {"keyField": "id"}})


@pytest.mark.parametrize("uri", ["s3://b/x.png", "gs://b", "gs://Bucket/x", "gs://bucket/", "gs://bucket/a\nb", "x"])
def test_a_file_list_record_without_a_gcs_uri_is_refused(uri: str) -> None:
    from batchline.adapters.vertex import VertexFileListEncoder

    encoder = VertexFileListEncoder(pipeline(instancesFormat="file-list", fileColumn="uri").service, "id")
    encoder.start(["id", "uri"], 0)
    assert encoder.encode(["k", "gs://bucket/images/a b.png"], 0).text == "gs://bucket/images/a b.png\n"
    with pytest.raises(RecordRejected, match="column 'uri' is not a gs://bucket/object URI"):
        encoder.encode(["k", uri], 0)


def test_file_list_results_are_keyed_by_the_md5_of_the_content_they_echo(fake: GoogleCloudFake) -> None:
    import base64
    import hashlib

    config = pipeline(fake, instancesFormat="file-list", fileColumn="uri")
    adapter = adapter_for(fake, config)
    digest = base64.b64encode(hashlib.md5(b"cat").digest()).decode()  # noqa: S324
    adapter._digests = {digest: ["k,1"], "dup": ["a", "b"]}
    echo = {"b64": base64.b64encode(b"cat").decode()}
    assert adapter._echoed_key({"instance": echo, "prediction": 1}, "f line 1") == "k,1"
    adapter._digests = {digest: ["a", "b"]}
    assert adapter._echoed_key({"instance": echo}, "f line 1") is None  # shared content: nobody's
    adapter._digests = {}
    with pytest.raises(OutputInvalid, match="no listed file.s"):
        adapter._echoed_key({"instance": echo}, "f line 1")


# --- CSV staging keeps every key ----------------------------------------------------------------------------------


def csv_encoder(**service: Any) -> VertexCsvEncoder:
    settings = pipeline(instancesFormat="csv", **service).service
    return VertexCsvEncoder(settings, "id")


def test_hostile_keys_come_back_as_themselves_from_the_csv_vertex_reads() -> None:
    encoder = csv_encoder(numericColumns=["x"])
    facts = encoder.start(["x", "id", "t"], 1)
    lines = [encoder.encode(["1.5", key, f'v "{n}",'], n) for n, key in enumerate(HOSTILE_KEYS)]
    assert [line.record_id for line in lines] == HOSTILE_KEYS
    records = _csv_records((facts["csvHeader"] + "".join(line.text for line in lines)).encode("utf-8"))
    assert [record["id"] for record in records] == HOSTILE_KEYS  # quoted: "007" stays text, never a number
    assert all(record["x"] == 1.5 for record in records)
    assert records[0]["t"] == 'v "0",'


@pytest.mark.parametrize(
    ("row", "words"),
    [
        (["a\nb", "1", "t"], "line break"),
        (["a\rb", "1", "t"], "line break"),
        (["k", "1", "n\nl"], "'t' holds a line break"),
        (["k", "", "t"], "is blank"),
    ],
)
def test_records_vertex_cannot_read_in_csv_are_refused_one_by_one(row: list[str], words: str) -> None:
    encoder = csv_encoder(numericColumns=["x"])
    encoder.start(["id", "x", "t"], 0)
    with pytest.raises(RecordRejected, match=words):
        encoder.encode(row, 0)


def test_a_header_with_a_line_break_refuses_the_upload() -> None:
    with pytest.raises(InputRejected, match="line break"):
        csv_encoder().start(["id", "x\ny"], 0)


def test_csv_parts_reach_gcs_with_the_header_first_and_are_not_sent_twice(fake: GoogleCloudFake) -> None:
    config = pipeline(fake, instancesFormat="csv")
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        s3.create_bucket(Bucket="work", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        s3.put_object(Bucket="work", Key="v/r/input/part-00000.csv", Body=b'"a",1\n')
        adapter = adapter_for(fake, config, s3)
        run = run_of(config, {"keyHeader": "id", "csvHeader": '"id","x"\n'})
        prefix = adapter.stage(run)
        uploads = len(fake.uploads)
        assert adapter.stage(run) == prefix and len(fake.uploads) == uploads  # a retried Submit sends nothing
    ((_, data),) = [(name, data) for (_, name), data in fake.objects.items() if name.endswith("part-00000.csv")]
    assert data == b'"id","x"\n"a",1\n'


# --- BigQuery source: loads, retried and failed ------------------------------------------------------------------


def test_staged_parts_are_loaded_once_each_and_a_failed_load_fails_submit(fake: GoogleCloudFake) -> None:
    fake.bigquery.create_dataset("proj-12345", "inputs", "us-central1")
    config = pipeline(fake, bigquerySource="bq://proj-12345.inputs", numericColumns=["x"])
    fields = [{"name": "id", "type": "STRING", "mode": "REQUIRED"}, {"name": "x", "type": "FLOAT", "mode": "NULLABLE"}]
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        s3.create_bucket(Bucket="work", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        s3.put_object(Bucket="work", Key="v/r/input/part-00000.jsonl", Body=b'{"id": "a", "x": 1}\n')
        s3.put_object(Bucket="work", Key="v/r/input/part-00001.jsonl", Body=b'{"id": "b", "x": null}\n')
        adapter = adapter_for(fake, config, s3)
        run = run_of(config, {"keyHeader": "id", "bigqueryFields": fields})
        table = adapter.load_source(run)
        assert adapter.load_source(run) == table  # the retry finds both load jobs by their IDs
        _, dataset, name = table.removeprefix("bq://").split(".")
        assert fake.bigquery.tables[("proj-12345", dataset, name)]["rows"] == [
            {"id": "a", "x": 1},
            {"id": "b", "x": None},
        ]
        assert len(fake.bigquery.jobs) == 2

        # a load still running sends Submit back to the state machine's retry
        fake.bigquery.jobs[("proj-12345", f"{name}_part00001")]["status"] = {"state": "RUNNING"}
        with pytest.raises(ServiceThrottled, match="still running"):
            adapter.load_source(run)
        # a load BigQuery refused fails with its reason
        fake.bigquery.jobs[("proj-12345", f"{name}_part00001")]["status"] = {
            "state": "DONE",
            "errorResult": {"reason": "invalid", "message": "no such field: y"},
        }
        with pytest.raises(ServiceRequestFailed, match="no such field: y"):
            adapter.load_source(run)


# --- BigQuery results, Vertex's figures --------------------------------------------------------------------------


def test_result_tables_are_read_page_by_page_with_errors_and_explanations(fake: GoogleCloudFake, tmp_path: Any) -> None:
    fake.bigquery.create_dataset("proj-12345", "outputs", "us-central1")
    config = pipeline(
        fake,
        predictionsFormat="bigquery",
        bigqueryDestination="bq://proj-12345.outputs",
        generateExplanation=True,
        explanationSpec={},
    )
    adapter = adapter_for(fake, config)
    key = {"name": "key", "type": "STRING"}
    prediction = {"name": "prediction", "type": "RECORD", "fields": [{"name": "score", "type": "FLOAT"}]}
    explanation = {"name": "explanation", "type": "JSON"}
    fake.bigquery.put_table(
        "proj-12345",
        "outputs",
        "predictions_2026",
        [key, prediction, explanation],
        [{"key": k, "prediction": {"score": 0.5}, "explanation": {"attributions": []}} for k in ("a", "b,c", '"q"')],
    )
    status = {
        "name": "errors",
        "type": "RECORD",
        "fields": [{"name": "code", "type": "INTEGER"}, {"name": "message", "type": "STRING"}],
    }
    fake.bigquery.put_table(
        "proj-12345", "outputs", "errors_2026", [key, status], [{"key": "e", "errors": {"code": 3, "message": "no"}}]
    )
    body = adapter.create_body(run_of(config), "gs://b/p/")
    name = adapter._jobs.create(body)["name"]
    fake.jobs[name].update(
        state="JOB_STATE_SUCCEEDED",
        outputInfo={"bigqueryOutputDataset": "bq://proj-12345.outputs", "bigqueryOutputTable": "predictions_2026"},
    )
    job = JobState(name, JobStatus.SUCCEEDED, "JOB_STATE_SUCCEEDED")
    assert adapter.result_files(job) == [
        "bq://proj-12345.outputs.predictions_2026",
        "bq://proj-12345.outputs.errors_2026",
    ]

    files = UnitFiles(
        *(str(tmp_path / n) for n in ("rows.csv", "keys.csv", "failed.csv")), ["id", "prediction", "explanation"], False
    )
    counts = adapter.collect_keyed(run_of(config), job, files)

    assert counts == {"predicted": 3, "failed": 1, "rows": 3}
    assert (tmp_path / "rows.csv").read_text().splitlines() == [
        "id,prediction,explanation",
        'a,"{""score"": 0.5}","{""attributions"": []}"',
        '"b,c","{""score"": 0.5}","{""attributions"": []}"',
        '"""q""","{""score"": 0.5}","{""attributions"": []}"',
    ]
    assert (tmp_path / "failed.csv").read_text() == "e,Vertex AI error: no\n"


def test_tabledata_cells_are_typed_by_the_schema() -> None:
    record = {
        "name": "p",
        "type": "RECORD",
        "fields": [{"name": "n", "type": "INTEGER"}, {"name": "ok", "type": "BOOLEAN"}],
    }
    assert bigquery_value(record, {"f": [{"v": "3"}, {"v": "true"}]}) == {"n": 3, "ok": True}
    assert bigquery_value({"type": "FLOAT", "mode": "REPEATED"}, [{"v": "0.5"}, {"v": "1"}]) == [0.5, 1.0]
    assert bigquery_value({"type": "JSON"}, '{"a":[1]}') == {"a": [1]}
    assert bigquery_value({"type": "STRING"}, "007") == "007"
    assert bigquery_value({"type": "FLOAT"}, None) is None


def test_vertex_times_and_replica_hours_become_the_jobs_figures() -> None:
    state = _state(
        {
            "name": "projects/p/locations/l/batchPredictionJobs/1",
            "state": "JOB_STATE_SUCCEEDED",
            "createTime": "2026-11-25T10:00:00.123456789Z",
            "startTime": "2026-11-25T10:01:30Z",
            "endTime": "2026-11-25T11:00:00.5Z",
            "updateTime": "2026-11-25T11:00:01Z",
            "resourcesConsumed": {"replicaHours": 2.25},
        }
    )
    assert state.figures == {
        "createdAt": "2026-11-25T10:00:00Z",
        "startedAt": "2026-11-25T10:01:30Z",
        "endedAt": "2026-11-25T11:00:00Z",
        "replicaHours": 2.25,
    }
    assert _state({"name": "n", "state": "JOB_STATE_QUEUED", "createTime": "2026-11-25T10:00:00Z"}).figures == {
        "createdAt": "2026-11-25T10:00:00Z"
    }


def test_an_upload_body_with_a_header_is_read_whole_in_any_chunk_size() -> None:
    from batchline.adapters.vertex import _HeaderThenBody

    for size in (1, 3, 5, 100):
        reader, out = _HeaderThenBody(b"HEAD\n", io.BytesIO(b"body-bytes")), b""
        while chunk := reader.read(size):
            assert len(chunk) <= size
            out += chunk
        assert out == b"HEAD\nbody-bytes"
    assert _HeaderThenBody(b"H", io.BytesIO(b"B")).read() == b"HB"
