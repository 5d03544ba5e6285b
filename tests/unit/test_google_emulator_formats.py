"""The Google fake refuses the formats, sources, instance configs, model uses and explanation settings the
Vertex AI REST reference refuses, reads CSV input as Vertex documents it, and serves BigQuery as strictly as
its v2 API (names, locations, schemas, page tokens)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from batchline_local.emulators.google_cloud import BigQueryFake, InstancesInvalid, _csv_records, invalid_job

JOB: dict[str, Any] = {
    "displayName": "bl-x-0",
    "model": "projects/p/locations/us-central1/models/m",
    "inputConfig": {"instancesFormat": "jsonl", "gcsSource": {"uris": ["gs://b/in/*"]}},
    "instanceConfig": {"instanceType": "object", "keyField": "id"},
    "outputConfig": {"predictionsFormat": "jsonl", "gcsDestination": {"outputUriPrefix": "gs://b/out/"}},
    "dedicatedResources": {"machineSpec": {"machineType": "n1-standard-4"}},
}
PUBLISHER = {**JOB, "model": "publishers/google/models/gemini-2.0-flash-001"}
del PUBLISHER["dedicatedResources"], PUBLISHER["instanceConfig"]


def job(base: dict[str, Any] = JOB, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(base)
    for name, value in changes.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return body


def test_the_requests_batchline_sends_are_taken() -> None:
    assert invalid_job(JOB, location="us-central1") is None
    assert invalid_job(PUBLISHER, location="us-central1") is None
    csv = job(
        inputConfig={"instancesFormat": "csv", "gcsSource": {"uris": ["gs://b/in/*"]}},
        instanceConfig={"keyField": "id"},
    )
    assert invalid_job(csv, location="us-central1") is None
    bigquery = job(
        inputConfig={"instancesFormat": "bigquery", "bigquerySource": {"inputUri": "bq://proj-1.ds.batchline_t"}},
        outputConfig={"predictionsFormat": "bigquery", "bigqueryDestination": {"outputUri": "bq://proj-1.out"}},
    )
    assert invalid_job(bigquery, location="us-central1") is None


@pytest.mark.parametrize(
    ("body", "words"),
    [
        # the input's format and source
        (job(inputConfig={"gcsSource": {"uris": ["gs://b/in/*"]}}), "instancesFormat is required"),
        (job(inputConfig={"instancesFormat": "parquet", "gcsSource": {"uris": ["gs://b/x"]}}), "'parquet'"),
        (job(inputConfig={"instancesFormat": "bigquery", "gcsSource": {"uris": ["gs://b/x"]}}), "does not match"),
        (job(inputConfig={"instancesFormat": "jsonl", "bigquerySource": {"inputUri": "bq://p-123.d.t"}}), "match"),
        (
            job(inputConfig={"instancesFormat": "bigquery", "bigquerySource": {"inputUri": "bq://proj-1.dataset"}}),
            "not bq://project.dataset.table",
        ),
        # the output's format and destination
        (
            job(outputConfig={"predictionsFormat": "bigquery", "gcsDestination": {"outputUriPrefix": "gs://b/o/"}}),
            "does not match",
        ),
        (
            job(outputConfig={"predictionsFormat": "bigquery", "bigqueryDestination": {"outputUri": "gs://b/o"}}),
            "not bq://project[.dataset[.table]]",
        ),
        # instanceConfig as documented per format
        (
            job(
                inputConfig={"instancesFormat": "file-list", "gcsSource": {"uris": ["gs://b/list.txt"]}},
                instanceConfig={"keyField": "id"},
            ),
            "keyField is not supported with file-list",
        ),
        (
            job(
                inputConfig={"instancesFormat": "file-list", "gcsSource": {"uris": ["gs://b/list.txt"]}},
                instanceConfig={"includedFields": ["a"]},
            ),
            "not supported with file-list",
        ),
        (
            job(
                inputConfig={"instancesFormat": "csv", "gcsSource": {"uris": ["gs://b/in/*"]}},
                instanceConfig={"instanceType": "object", "keyField": "id"},
            ),
            "instanceType does not apply to csv",
        ),
        (job(instanceConfig={"includedFields": ["a"], "excludedFields": ["b"]}), "cannot both be set"),
        (job(instanceConfig={"instanceType": "row"}), "not object or array"),
        # publisher models run on Vertex's resources and take no keyField; a model of yours needs resources
        (job(PUBLISHER, dedicatedResources={"machineSpec": {"machineType": "n1-standard-4"}}), "dedicatedResources"),
        (job(PUBLISHER, instanceConfig={"keyField": "id"}), "does not support instanceConfig.keyField"),
        (job(PUBLISHER, manualBatchTuningParameters={"batchSize": 8}), "manualBatchTuningParameters"),
        (job(dedicatedResources=None), "AUTOMATIC_RESOURCES"),
        # explanations
        (job(explanationSpec={"parameters": {}}), "only if generateExplanation"),
        (job(generateExplanation=True), "explanation_spec"),
        (job(PUBLISHER, generateExplanation=True, explanationSpec={}), "does not support explanations"),
        (
            job(
                generateExplanation=True,
                explanationSpec={"parameters": {}},
                outputConfig={"predictionsFormat": "csv", "gcsDestination": {"outputUriPrefix": "gs://b/o/"}},
            ),
            "csv predictionsFormat is not supported",
        ),
        (job(generateExplanation="yes"), "must be a boolean"),
    ],
)
def test_a_request_vertex_refuses_is_refused(body: dict[str, Any], words: str) -> None:
    problem = invalid_job(body, location="us-central1")
    assert problem is not None and words in problem


def test_a_model_with_its_own_explanation_spec_needs_none_in_the_request() -> None:
    assert (
        invalid_job(job(model="projects/p/locations/l/models/explainable-1", generateExplanation=True), location="l")
        is None
    )


# --- CSV input as Vertex reads it -------------------------------------------------------------------------------


def test_csv_strings_are_quoted_numbers_bare_and_quotes_doubled() -> None:
    data = b'"id","x","t"\n"a ""q"", b",1.5,"=x"\n"\xc3\xbc",-2,""\n'
    assert _csv_records(data) == [{"id": 'a "q", b', "x": 1.5, "t": "=x"}, {"id": "\u00fc", "x": -2.0, "t": ""}]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b'"id","x"\n"a",word\n', "is not a number"),
        (b'"id","x"\n"a\n",1\n', "not closed"),
        (b'"id","x"\n"a\r",1\n', "carriage return"),
        (b'"id","x"\n"a",1,2\n', "has 3 values"),
        (b'"id","x"\n"a"b,1\n', "text after a quoted value"),
    ],
)
def test_csv_vertex_cannot_read_fails_the_job(data: bytes, words: str) -> None:
    with pytest.raises(InstancesInvalid, match=words):
        _csv_records(data)


# --- BigQuery ----------------------------------------------------------------------------------------------------


def load_request(table: str = "t", location: str = "us-central1", job_id: str = "load_t", **load: Any) -> bytes:
    config = {
        "destinationTable": {"projectId": "proj-1", "datasetId": "ds", "tableId": table},
        "sourceFormat": "NEWLINE_DELIMITED_JSON",
        "schema": {"fields": [{"name": "id", "type": "STRING", "mode": "REQUIRED"}, {"name": "x", "type": "FLOAT"}]},
        "createDisposition": "CREATE_IF_NEEDED",
        "writeDisposition": "WRITE_APPEND",
        **load,
    }
    job = {"jobReference": {"projectId": "proj-1", "jobId": job_id, "location": location}}
    return json.dumps({**job, "configuration": {"load": config}}).encode()


def loaded(bigquery: BigQueryFake, body: bytes, data: bytes) -> dict[str, Any]:
    status, _, headers = bigquery.start_load("proj-1", body, "http://fake")
    assert status == 200 and headers is not None
    session = headers["Location"].rsplit("/", 1)[-1]
    status, job, _ = bigquery.put_load(session, data, f"bytes 0-{len(data) - 1}/{len(data)}")
    assert status == 200
    return dict(job)


@pytest.fixture
def bigquery() -> BigQueryFake:
    fake = BigQueryFake(page_rows=2)
    fake.create_dataset("proj-1", "ds", "us-central1")
    return fake


def test_a_load_job_appends_typed_rows_and_tabledata_list_pages_them(bigquery: BigQueryFake) -> None:
    rows = b"".join(json.dumps({"id": f"k{n}", "x": n}).encode() + b"\n" for n in range(5))
    assert loaded(bigquery, load_request(), rows)["status"] == {"state": "DONE"}

    pages, token = [], None
    while True:
        status, page = bigquery.get(
            "/bigquery/v2/projects/proj-1/datasets/ds/tables/t/data", {} if token is None else {"pageToken": token}
        )
        assert status == 200 and page["totalRows"] == "5"
        pages.append([[cell["v"] for cell in row["f"]] for row in page["rows"]])
        token = page.get("pageToken")
        if token is None:
            break
    assert pages == [[["k0", "0.0"], ["k1", "1.0"]], [["k2", "2.0"], ["k3", "3.0"]], [["k4", "4.0"]]]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b'{"id": "a", "x": 1, "y": 2}\n', "no such field: y"),
        (b'{"x": 1}\n', "missing a REQUIRED value"),
        (b'{"id": "a", "x": "1"}\n', "is not a number"),
        (b'{"id": 7, "x": 1}\n', "is not a string"),
        (b'{"id": "a", "x": NaN}\n', "Error while reading data"),
    ],
)
def test_a_load_of_rows_the_schema_refuses_fails_and_writes_nothing(
    bigquery: BigQueryFake, data: bytes, words: str
) -> None:
    job = loaded(bigquery, load_request(), b'{"id": "ok", "x": 1}\n' + data)
    assert words in job["status"]["errorResult"]["message"]
    assert ("proj-1", "ds", "t") not in bigquery.tables


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (load_request(location="europe-west4"), 404, "not found in location europe-west4"),
        (load_request(table="bad.name"), 400, "Invalid table ID"),
        (load_request(sourceFormat="CSV"), 400, "NEWLINE_DELIMITED_JSON"),
        (load_request(schema={"fields": [{"name": "1st", "type": "STRING"}]}), 400, "Invalid field name"),
        (
            json.dumps(
                {"jobReference": {"projectId": "proj-1", "jobId": "a b"}, "configuration": {"load": {}}}
            ).encode(),
            400,
            "Invalid job ID",
        ),
    ],
)
def test_a_load_bigquery_refuses_is_refused(bigquery: BigQueryFake, body: bytes, status: int, words: str) -> None:
    answered, error, _ = bigquery.start_load("proj-1", body, "http://fake")
    assert answered == status and words in error["error"]["message"]


def test_a_load_into_a_missing_dataset_is_not_found_and_a_job_id_is_used_once(bigquery: BigQueryFake) -> None:
    missing = json.loads(load_request())
    missing["configuration"]["load"]["destinationTable"]["datasetId"] = "nope"
    status, error, _ = bigquery.start_load("proj-1", json.dumps(missing).encode(), "http://fake")
    assert status == 404 and error["error"]["errors"][0]["reason"] == "notFound"
    loaded(bigquery, load_request(), b'{"id": "a", "x": 1}\n')
    status, error, _ = bigquery.start_load("proj-1", load_request(), "http://fake")
    assert status == 409 and error["error"]["status"] == "ALREADY_EXISTS"


def test_jobs_and_page_tokens_are_checked(bigquery: BigQueryFake) -> None:
    loaded(bigquery, load_request(), b'{"id": "a", "x": 1}\n')
    assert bigquery.get("/bigquery/v2/projects/proj-1/jobs/load_t", {"location": "us-central1"})[0] == 200
    assert bigquery.get("/bigquery/v2/projects/proj-1/jobs/load_t", {"location": "EU"})[0] == 404
    assert bigquery.get("/bigquery/v2/projects/proj-1/jobs/other", {})[0] == 404
    status, error = bigquery.get("/bigquery/v2/projects/proj-1/datasets/ds/tables/t/data", {"pageToken": "42"})
    assert status == 400 and "Invalid page token" in error["error"]["message"]
    assert bigquery.get("/bigquery/v2/projects/proj-1/datasets/ds/tables/none", {})[0] == 404
