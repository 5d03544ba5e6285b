"""Vertex AI from the AWS pipeline, end to end: real google-auth federation and REST calls against a local fake."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batchline.csvsafe import neutralise

from batchline_local.runtime import LocalRuntime, load_pipeline_context
from tests.e2e.conftest import SAMPLES, check_every_event, read_s3_csv, step_inputs, write_csv

pytestmark = pytest.mark.timeout(120)
BASE = load_pipeline_context()["demo-vertex"]


def variant(**service: Any) -> dict[str, Any]:
    return {**BASE, "service": {**BASE["service"], **service}}


PIPELINES = {
    **load_pipeline_context(),
    "v-reject": variant(
        federation={
            **BASE["service"]["federation"],
            "audience": BASE["service"]["federation"]["audience"].replace("providers/aws", "providers/reject-aws"),
        }
    ),
    "v-failing": variant(model="failing-model"),
    "v-partial": variant(model="partial-model", numericColumns=[]),
    "v-cleanup": variant(deleteStagedAfterSuccess=True),
    "v-slow": {**variant(), "maxPolls": 2, "minPollSeconds": 1},
    # Jobs over collectUnitRecords are collected one result file per Map child.
    "v-units": {**variant(), "collectUnitRecords": 10},
    "v-partial-units": {**variant(model="partial-model", numericColumns=[]), "collectUnitRecords": 2},
    "v-gpu": variant(
        location="europe-west12",
        machineType="g2-standard-8",
        acceleratorType="NVIDIA_L4",
        acceleratorCount=1,
        startingReplicaCount=1,
        maxReplicaCount=4,
        batchSize=16,
        labels={"team": "risk"},
        kmsKeyName="projects/batchline-demo/locations/europe-west12/keyRings/ring/cryptoKeys/key",
        disableContainerLogging=True,
    ),
    # Records loaded into BigQuery instead of GCS, GPUs, predictions written to BigQuery and read back.
    "v-bq": variant(
        machineType="g2-standard-8",
        acceleratorType="NVIDIA_L4",
        acceleratorCount=2,
        maxReplicaCount=3,
        bigquerySource="bq://batchline-demo.batchline_in",
        predictionsFormat="bigquery",
        bigqueryDestination="bq://batchline-demo.batchline_out",
    ),
    "v-bq-partial": variant(
        model="partial-model",
        numericColumns=[],
        predictionFields=None,
        predictionsFormat="bigquery",
        bigqueryDestination="bq://batchline-demo.batchline_out",
    ),
    "v-csv": variant(instancesFormat="csv", numericColumns=["x"], predictionFields=None),
    "v-publisher": variant(
        model="publishers/google/models/text-bison",
        numericColumns=[],
        predictionFields=None,
        modelParameters={"temperature": 0.2, "maxOutputTokens": 64},
    ),
    "v-publisher-csv": variant(
        model="publishers/google/models/text-bison", instancesFormat="csv", numericColumns=[], predictionFields=None
    ),
    "v-publisher-bq": variant(
        model="publishers/google/models/text-bison",
        numericColumns=[],
        predictionFields=None,
        bigquerySource="bq://batchline-demo.batchline_in",
        predictionsFormat="bigquery",
        bigqueryDestination="bq://batchline-demo.batchline_out",
    ),
    "v-bq-cleanup": variant(bigquerySource="bq://batchline-demo.batchline_in", deleteStagedAfterSuccess=True),
    "v-files": variant(instancesFormat="file-list", fileColumn="uri", numericColumns=[], predictionFields=None),
    "v-explain": variant(
        generateExplanation=True,
        explanationSpec={"parameters": {"sampledShapleyAttribution": {"pathCount": 10}}},
    ),
}
HEADER = ["id", "sepal_length", "sepal_width", "petal_length", "petal_width"]
# Keys a spreadsheet, a CSV writer or a JSON encoder could mangle: each must come back as itself.
HOSTILE_KEYS = ['say "hi"', "a,b", "=1+1", "  padded  ", "ünï-©ødé", '"', "'", "\\back", "tab\tin", "x" * 300]


@pytest.fixture(scope="module")
def runtime(validate_event: Any) -> Iterator[LocalRuntime]:
    with LocalRuntime(PIPELINES) as local:
        yield local
        check_every_event(local, validate_event)


def test_sample_runs_through_vertex_with_federated_credentials(runtime: LocalRuntime, validate_event: Any) -> None:
    exchanges = runtime.google.token_exchanges
    result = runtime.run_file(SAMPLES / "demo-vertex.csv", "demo-vertex")

    assert result.status == "SUCCEEDED"
    assert result.event is not None
    validate_event(result.event)
    detail = result.event["detail"]
    assert detail["counts"] == {"input": 60, "sent": 60, "rejected": 0, "predicted": 60, "failed": 0}
    rows = read_s3_csv(runtime, detail["outputs"]["predictions"])
    assert list(rows[0]) == ["id", "label", "score"]
    assert sorted(row["id"] for row in rows) == [f"flower-{n:03d}" for n in range(1, 61)]
    assert detail["jobs"][0]["jobId"].startswith("projects/batchline-demo/locations/us-central1/batchPredictionJobs/")
    assert detail["jobs"][0]["counts"] == {"succeeded": 60, "failed": 0, "incomplete": 0}
    assert runtime.google.token_exchanges > exchanges  # the AWS role really was exchanged for a Google token
    staged = [name for (bucket, name) in runtime.google.objects if "/input/" in name and result.run_id in name]
    assert staged, "the input was staged to GCS"


def test_rejected_token_exchange_fails_the_run_and_says_so(runtime: LocalRuntime, tmp_path: Path) -> None:
    result = runtime.run_file(write_csv(tmp_path / "t.csv", HEADER, [["a", 1, 2, 3, 4]]), "v-reject")

    assert result.status == "FAILED"
    assert result.event is not None
    error = result.event["detail"]["error"]
    assert error["error"] == "ServiceUnavailable"
    assert "Google token exchange failed" in error["cause"] and "not allowed by the provider" in error["cause"]


def test_failed_job_surfaces_the_vertex_error(runtime: LocalRuntime, tmp_path: Path) -> None:
    result = runtime.run_file(write_csv(tmp_path / "f.csv", HEADER, [["a", 1, 2, 3, 4]]), "v-failing")

    assert result.status == "FAILED"
    assert result.event is not None
    assert result.event["detail"]["error"]["error"] == "JobFailed"
    assert "JOB_STATE_FAILED" in result.event["detail"]["error"]["cause"]
    assert "cannot serve batch predictions" in result.event["detail"]["error"]["cause"]


def test_non_numeric_feature_is_refused_before_sending(runtime: LocalRuntime, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", HEADER, [["a", 1, 2, 3, 4], ["b", 5, 6, 7, 8], ["c", "bad", 1, 1, 1]])
    result = runtime.run_file(path, "demo-vertex")

    assert result.event is not None
    detail = result.event["detail"]
    assert detail["status"] == "PARTIALLY_SUCCEEDED"
    # "bad" is not numeric: refused at Prepare (line 4), never sent to Vertex.
    (rejected,) = read_s3_csv(runtime, detail["outputs"]["errors"])
    assert (rejected["line"], rejected["stage"]) == ("4", "prepare")
    assert detail["counts"] == {"input": 3, "sent": 2, "rejected": 1, "predicted": 2, "failed": 0}


def test_service_side_instance_errors_go_to_errors_csv(runtime: LocalRuntime, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "e.csv", ["id", "text"], [["a", "fine"], ["b", "bad input"], ["c", "ok"]])
    result = runtime.run_file(path, "v-partial")

    assert result.event is not None
    detail = result.event["detail"]
    assert detail["jobs"][0]["rawStatus"] == "JOB_STATE_PARTIALLY_SUCCEEDED"
    assert "partial failure" in detail["jobs"][0]["message"]
    (error,) = read_s3_csv(runtime, detail["outputs"]["errors"])
    assert (error["key"], error["line"], error["stage"]) == ("b", "3", "service")
    assert "emulated: invalid instance" in error["reason"]


def test_results_streamed_then_checked_on_disk_fail_the_instances_vertex_left_out(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    rows = [["a", "fine"], ["b", "bad input"], ["c", "lost at sea"], ["d", "ok"]]
    result = runtime.run_file(write_csv(tmp_path / "lost.csv", ["id", "text"], rows), "v-partial")

    assert result.event is not None
    detail = result.event["detail"]
    assert detail["counts"] == {"input": 4, "sent": 4, "rejected": 0, "predicted": 2, "failed": 2}
    errors = read_s3_csv(runtime, detail["outputs"]["errors"])
    assert [(e["line"], e["key"]) for e in errors] == [("3", "b"), ("4", "c")]
    assert errors[1]["reason"] == "Vertex AI returned no result for it (JOB_STATE_PARTIALLY_SUCCEEDED)"
    predicted = read_s3_csv(runtime, detail["outputs"]["predictions"])
    assert sorted(r["id"] for r in predicted) == ["a", "d"]


def test_duplicate_submit_finds_the_job_by_its_label(runtime: LocalRuntime, tmp_path: Path) -> None:
    result = runtime.run_file(write_csv(tmp_path / "d.csv", HEADER, [["a", 1, 2, 3, 4]]), "demo-vertex")
    (submit_input,) = step_inputs(runtime, "SubmitJob", result.run_id)
    creates = runtime.google.create_calls

    again = runtime.invoke("SubmitJob", submit_input)

    assert result.event is not None
    assert again["jobId"] == result.event["detail"]["jobs"][0]["jobId"]
    assert runtime.google.create_calls == creates


def test_staged_gcs_objects_are_deleted_after_success_when_configured(runtime: LocalRuntime, tmp_path: Path) -> None:
    result = runtime.run_file(write_csv(tmp_path / "c.csv", HEADER, [["a", 1, 2, 3, 4]]), "v-cleanup")

    assert result.status == "SUCCEEDED"
    assert not [name for (_, name) in runtime.google.objects if result.run_id in name and "/input/" in name]
    assert [name for (_, name) in runtime.google.objects if result.run_id in name and "predictions_" in name]


def test_a_job_past_its_poll_bound_is_cancelled(runtime: LocalRuntime, tmp_path: Path) -> None:
    runtime.google.polls_until_done = 50
    try:
        result = runtime.run_file(write_csv(tmp_path / "s.csv", HEADER, [["a", 1, 2, 3, 4]]), "v-slow")
    finally:
        runtime.google.polls_until_done = 2
    assert result.status == "FAILED"
    assert result.event is not None
    job_id = result.event["detail"]["error"]["jobStopped"]
    assert runtime.google.jobs[job_id]["state"] in ("JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED")


def collect_units(runtime: LocalRuntime, run_id: str) -> list[dict[str, Any]]:
    invoked = runtime.invocations
    return [e["unit"] for name, e in invoked if name.endswith("CollectUnit") and e["run"]["runId"] == run_id]


def test_a_large_job_is_collected_one_result_file_per_unit_into_the_same_rows(runtime: LocalRuntime) -> None:
    whole = runtime.run_file(SAMPLES / "demo-vertex.csv", "demo-vertex")
    split = runtime.run_file(SAMPLES / "demo-vertex.csv", "v-units")

    assert whole.event and split.event and split.status == "SUCCEEDED"
    units = collect_units(runtime, split.run_id)
    assert len(units) >= 2 and all(u["outputKey"].startswith("gs://") for u in units)
    assert len({u["outputKey"] for u in units}) == len(units)
    assert [u["outputKey"] for u in collect_units(runtime, whole.run_id)] == [None]
    assert split.event["detail"]["counts"] == whole.event["detail"]["counts"]
    rows = read_s3_csv(runtime, split.event["detail"]["outputs"]["predictions"])
    expected = read_s3_csv(runtime, whole.event["detail"]["outputs"]["predictions"])
    assert sorted(map(str, rows)) == sorted(map(str, expected)) and len(rows) == 60


def test_instances_left_out_are_found_across_units_by_the_key_check(runtime: LocalRuntime, tmp_path: Path) -> None:
    rows = [["a", "fine"], ["b", "bad input"], ["c", "lost at sea"], ["d", "ok"], ["e", "fine"]]
    result = runtime.run_file(write_csv(tmp_path / "lost.csv", ["id", "text"], rows), "v-partial-units")

    assert result.event is not None and len(collect_units(runtime, result.run_id)) >= 2
    detail = result.event["detail"]
    assert detail["counts"] == {"input": 5, "sent": 5, "rejected": 0, "predicted": 3, "failed": 2}
    errors = read_s3_csv(runtime, detail["outputs"]["errors"])
    assert sorted((e["key"], e["line"]) for e in errors) == [("b", "3"), ("c", "4")]


def test_numeric_features_that_are_not_json_numbers_are_refused_naming_the_column(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    bad = ["NaN", "inf", "1e400", "1_0", " 1 "]
    rows = [["ok", 1, 2, 3, 4], *([f"k{n}", 1, value, 3, 4] for n, value in enumerate(bad))]
    result = runtime.run_file(write_csv(tmp_path / "nan.csv", HEADER, rows), "demo-vertex")

    assert result.event is not None
    detail = result.event["detail"]
    assert detail["counts"] == {"input": 6, "sent": 1, "rejected": 5, "predicted": 1, "failed": 0}
    errors = read_s3_csv(runtime, detail["outputs"]["errors"])
    assert [(e["key"], e["stage"]) for e in errors] == [(f"k{n}", "prepare") for n in range(5)]
    assert all("column 'sepal_width'" in e["reason"] for e in errors)


def test_formula_keys_come_out_distinct_and_neutralised_in_predictions_and_errors(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    # GIVEN formula-shaped keys that Vertex answers (fine), refuses ("bad") or leaves out ("lost")
    answered = ["=x", "'=x", "\tlead", "@SUM(1)"]
    refused = ['=HYPERLINK("x")', "=z"]
    left_out = ["'=z", "@lost"]
    rows = [[key, "fine"] for key in answered] + [[key, "bad"] for key in refused] + [[k, "lost"] for k in left_out]
    result = runtime.run_file(write_csv(tmp_path / "formulas.csv", ["id", "text"], rows), "v-partial")

    assert result.event is not None
    detail = result.event["detail"]
    assert detail["counts"] == {"input": 8, "sent": 8, "rejected": 0, "predicted": 4, "failed": 4}
    # THEN every key is written with the reversible rule (one more leading apostrophe), all distinct
    predicted = [row["id"] for row in read_s3_csv(runtime, detail["outputs"]["predictions"])]
    assert sorted(predicted) == sorted(neutralise(key) for key in answered)
    errors = read_s3_csv(runtime, detail["outputs"]["errors"])
    assert sorted(e["key"] for e in errors) == sorted(neutralise(key) for key in refused + left_out)
    assert len({*predicted, *(e["key"] for e in errors)}) == 8
    assert all(e["stage"] == "service" for e in errors)


def test_a_gpu_job_in_europe_west12_submits_the_documented_request(runtime: LocalRuntime, tmp_path: Path) -> None:
    result = runtime.run_file(write_csv(tmp_path / "gpu.csv", HEADER, [["a", 1, 2, 3, 4], ["b", 5, 6, 7, 8]]), "v-gpu")

    assert result.status == "SUCCEEDED" and result.event is not None
    job_id = result.event["detail"]["jobs"][0]["jobId"]
    assert job_id.startswith("projects/batchline-demo/locations/europe-west12/batchPredictionJobs/")
    job = runtime.google.jobs[job_id]
    assert job["dedicatedResources"] == {
        "machineSpec": {"machineType": "g2-standard-8", "acceleratorType": "NVIDIA_L4", "acceleratorCount": 1},
        "startingReplicaCount": 1,
        "maxReplicaCount": 4,
    }
    assert job["manualBatchTuningParameters"] == {"batchSize": 16}
    assert job["labels"]["team"] == "risk" and job["labels"]["batchline-pipeline"] == "v-gpu"
    assert job["encryptionSpec"]["kmsKeyName"].endswith("/locations/europe-west12/keyRings/ring/cryptoKeys/key")
    assert job["disableContainerLogging"] is True
    assert len(read_s3_csv(runtime, result.event["detail"]["outputs"]["predictions"])) == 2


def test_a_bigquery_pipeline_with_accelerators_submits_the_documented_request_and_yields_the_keyed_csv(
    runtime: LocalRuntime, tmp_path: Path, validate_event: Any
) -> None:
    # GIVEN the datasets the user named, in the job's Region
    for dataset in ("batchline_in", "batchline_out"):
        runtime.google.bigquery.create_dataset("batchline-demo", dataset, "us-central1")
    rows = [[f"r{n}", n, 2, 3.5, 4] for n in range(5)]
    uploads = runtime.google.create_calls

    result = runtime.run_file(write_csv(tmp_path / "bq.csv", HEADER, rows), "v-bq")

    assert result.status == "SUCCEEDED" and result.event is not None
    validate_event(result.event)
    detail = result.event["detail"]
    job = runtime.google.jobs[detail["jobs"][0]["jobId"]]
    # THEN the job reads the table Batchline loaded, with the key as keyField, on two L4s per replica
    table = tuple(job["inputConfig"]["bigquerySource"]["inputUri"].removeprefix("bq://").split("."))
    assert table[:2] == ("batchline-demo", "batchline_in") and table[2].startswith("batchline_")
    assert job["inputConfig"] == {
        "instancesFormat": "bigquery",
        "bigquerySource": {"inputUri": "bq://" + ".".join(table)},
    }
    assert job["instanceConfig"] == {"instanceType": "object", "keyField": "id"}
    assert job["outputConfig"] == {
        "predictionsFormat": "bigquery",
        "bigqueryDestination": {"outputUri": "bq://batchline-demo.batchline_out"},
    }
    assert job["dedicatedResources"] == {
        "machineSpec": {"machineType": "g2-standard-8", "acceleratorType": "NVIDIA_L4", "acceleratorCount": 2},
        "startingReplicaCount": 1,
        "maxReplicaCount": 3,
    }
    loaded = runtime.google.bigquery.tables[table]
    assert [field["name"] for field in loaded["fields"]] == HEADER
    assert sorted(row["id"] for row in loaded["rows"]) == [f"r{n}" for n in range(5)]
    assert loaded["rows"][0]["sepal_length"] == 0.0  # numeric columns are FLOAT, not text
    # AND no record went through Cloud Storage
    assert not [name for (_, name) in runtime.google.objects if result.run_id in name]
    assert runtime.google.create_calls == uploads + 1
    # AND the predictions, read back from BigQuery page by page, are keyed like any other run's
    predicted = read_s3_csv(runtime, detail["outputs"]["predictions"])
    assert sorted(row["id"] for row in predicted) == [f"r{n}" for n in range(5)]
    assert {row["label"] for row in predicted} <= {"yes", "no"} and all(float(row["score"]) >= 0 for row in predicted)
    assert detail["counts"] == {"input": 5, "sent": 5, "rejected": 0, "predicted": 5, "failed": 0}
    # AND Vertex's own figures reach the event
    figures = detail["jobs"][0]["figures"]
    assert set(figures) == {"createdAt", "startedAt", "endedAt", "replicaHours"}
    assert figures["createdAt"] <= figures["startedAt"] <= figures["endedAt"]
    assert figures["replicaHours"] == job["resourcesConsumed"]["replicaHours"] > 0


def test_bigquery_errors_and_left_out_instances_become_error_rows(runtime: LocalRuntime, tmp_path: Path) -> None:
    runtime.google.bigquery.create_dataset("batchline-demo", "batchline_out", "us-central1")
    rows = [["a", "fine"], ["b", "bad input"], ["c", "lost at sea"], ["d", "ok"]]
    result = runtime.run_file(write_csv(tmp_path / "bqe.csv", ["id", "text"], rows), "v-bq-partial")

    assert result.event is not None
    detail = result.event["detail"]
    assert detail["counts"] == {"input": 4, "sent": 4, "rejected": 0, "predicted": 2, "failed": 2}
    errors = read_s3_csv(runtime, detail["outputs"]["errors"])
    assert [(e["key"], e["line"]) for e in errors] == [("b", "3"), ("c", "4")]
    assert "emulated: invalid instance" in errors[0]["reason"]  # from the errors table's errors column
    assert errors[1]["reason"] == "Vertex AI returned no result for it (JOB_STATE_PARTIALLY_SUCCEEDED)"


def test_a_csv_run_stages_quoted_csv_and_keeps_hostile_keys(runtime: LocalRuntime, tmp_path: Path) -> None:
    rows = [[key, n, f"text {n}"] for n, key in enumerate(HOSTILE_KEYS)]
    rows.append(["line\nbreak", 1, "t"])  # Vertex reads no line break in a CSV cell: refused before sending
    result = runtime.run_file(write_csv(tmp_path / "c.csv", ["id", "x", "t"], rows), "v-csv")

    assert result.event is not None
    detail = result.event["detail"]
    job = runtime.google.jobs[detail["jobs"][0]["jobId"]]
    assert job["inputConfig"]["instancesFormat"] == "csv"
    assert job["instanceConfig"] == {"keyField": "id"}  # instanceType does not apply to csv
    staged = [data for (_, name), data in runtime.google.objects.items() if result.run_id in name and "/input/" in name]
    assert staged and all(data.startswith(b'"id","x","t"\n') for data in staged)
    predicted = read_s3_csv(runtime, detail["outputs"]["predictions"])
    assert sorted(neutralise_back(row["id"]) for row in predicted) == sorted(HOSTILE_KEYS)
    (refused,) = read_s3_csv(runtime, detail["outputs"]["errors"])
    assert refused["stage"] == "prepare" and "line break" in refused["reason"]
    assert detail["counts"]["predicted"] == len(HOSTILE_KEYS)


def neutralise_back(cell: str) -> str:
    """The key as the user wrote it: predictions.csv prefixes one apostrophe to formula-like cells."""
    return cell[1:] if cell.startswith("'") and neutralise(cell[1:]) == cell else cell


def test_a_publisher_model_run_sends_neither_dedicated_resources_nor_key_field(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    rows = [[key, f"prompt {n}"] for n, key in enumerate(HOSTILE_KEYS)]
    result = runtime.run_file(write_csv(tmp_path / "p.csv", ["id", "prompt"], rows), "v-publisher")

    assert result.status == "SUCCEEDED" and result.event is not None
    detail = result.event["detail"]
    job = runtime.google.jobs[detail["jobs"][0]["jobId"]]
    assert job["model"] == "publishers/google/models/text-bison"
    assert not {"dedicatedResources", "instanceConfig", "manualBatchTuningParameters"} & set(job)
    assert job["modelParameters"] == {"temperature": 0.2, "maxOutputTokens": 64}
    # THEN the key travelled in the instance and is read back from the instance each result echoes
    predicted = read_s3_csv(runtime, detail["outputs"]["predictions"])
    assert sorted(neutralise_back(row["id"]) for row in predicted) == sorted(HOSTILE_KEYS)
    assert all(json.loads(row["prediction"])["label"] in ("yes", "no") for row in predicted)


def test_explanations_become_a_column(runtime: LocalRuntime, tmp_path: Path) -> None:
    result = runtime.run_file(
        write_csv(tmp_path / "x.csv", HEADER, [["a", 1, 2, 3, 4], ["b", 5, 6, 7, 8]]), "v-explain"
    )

    assert result.status == "SUCCEEDED" and result.event is not None
    job = runtime.google.jobs[result.event["detail"]["jobs"][0]["jobId"]]
    assert job["generateExplanation"] is True
    assert job["explanationSpec"] == {"parameters": {"sampledShapleyAttribution": {"pathCount": 10}}}
    rows = read_s3_csv(runtime, result.event["detail"]["outputs"]["predictions"])
    assert list(rows[0]) == ["id", "label", "score", "explanation"]
    for row in rows:
        (attribution,) = json.loads(row["explanation"])["attributions"]
        assert set(attribution["featureAttributions"]) == set(HEADER[1:])
        assert attribution["instanceOutputValue"] == float(row["score"])


def test_a_publisher_model_on_csv_keys_results_by_the_echoed_instance_array(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    # GIVEN no keyField (a publisher model takes none) and csv input, which Vertex echoes as an array
    rows = [[key, f"prompt {n}"] for n, key in enumerate(HOSTILE_KEYS)]
    result = runtime.run_file(write_csv(tmp_path / "pc.csv", ["id", "prompt"], rows), "v-publisher-csv")

    assert result.status == "SUCCEEDED" and result.event is not None
    detail = result.event["detail"]
    assert "instanceConfig" not in runtime.google.jobs[detail["jobs"][0]["jobId"]]
    # THEN each key is the first value of the instance its result echoes (Batchline stages the key first)
    predicted = read_s3_csv(runtime, detail["outputs"]["predictions"])
    assert sorted(neutralise_back(row["id"]) for row in predicted) == sorted(HOSTILE_KEYS)


def test_a_publisher_model_reading_bigquery_keys_results_by_the_echoed_row(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    # GIVEN no keyField: Vertex echoes each BigQuery row as an array in column order, the key column first
    for dataset in ("batchline_in", "batchline_out"):
        runtime.google.bigquery.create_dataset("batchline-demo", dataset, "us-central1")
    rows = [[key, f"prompt {n}"] for n, key in enumerate(HOSTILE_KEYS)]
    result = runtime.run_file(write_csv(tmp_path / "pbq.csv", ["id", "prompt"], rows), "v-publisher-bq")

    assert result.status == "SUCCEEDED" and result.event is not None
    detail = result.event["detail"]
    job = runtime.google.jobs[detail["jobs"][0]["jobId"]]
    assert job["inputConfig"]["instancesFormat"] == "bigquery" and "instanceConfig" not in job
    predicted = read_s3_csv(runtime, detail["outputs"]["predictions"])
    assert sorted(neutralise_back(row["id"]) for row in predicted) == sorted(HOSTILE_KEYS)


def test_the_loaded_table_is_deleted_after_success_when_configured(runtime: LocalRuntime, tmp_path: Path) -> None:
    runtime.google.bigquery.create_dataset("batchline-demo", "batchline_in", "us-central1")
    before = set(runtime.google.bigquery.tables)
    result = runtime.run_file(write_csv(tmp_path / "bqc.csv", HEADER, [["a", 1, 2, 3, 4]]), "v-bq-cleanup")

    assert result.status == "SUCCEEDED" and result.event is not None
    job = runtime.google.jobs[result.event["detail"]["jobs"][0]["jobId"]]
    table = job["inputConfig"]["bigquerySource"]["inputUri"].rsplit(".", 1)[-1]
    assert [key for key in runtime.google.bigquery.jobs if key[1].startswith(table)]  # it was loaded
    assert set(runtime.google.bigquery.tables) == before  # and dropped once the results were read
    assert len(read_s3_csv(runtime, result.event["detail"]["outputs"]["predictions"])) == 1


def test_a_file_list_run_ties_each_result_to_its_record_by_the_files_content(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    # GIVEN the user's files in Cloud Storage, two of them with the same content
    contents = {f"images/{n}.png": f"picture {n}".encode() for n in range(len(HOSTILE_KEYS))}
    contents["images/copy.png"] = contents["images/0.png"]
    for name, data in contents.items():
        runtime.google.objects[("batchline-demo-files", name)] = data
    rows = [[key, f"gs://batchline-demo-files/images/{n}.png"] for n, key in enumerate(HOSTILE_KEYS)]
    rows += [["twin", "gs://batchline-demo-files/images/copy.png"], ["no-uri", "s3://elsewhere/x.png"]]

    result = runtime.run_file(write_csv(tmp_path / "files.csv", ["id", "uri"], rows), "v-files")

    assert result.event is not None
    detail = result.event["detail"]
    job = runtime.google.jobs[detail["jobs"][0]["jobId"]]
    assert job["inputConfig"]["instancesFormat"] == "file-list" and "instanceConfig" not in job  # no keyField
    staged = [data for (_, name), data in runtime.google.objects.items() if result.run_id in name and "/input/" in name]
    assert b"".join(staged).decode().splitlines() == [row[1] for row in rows[:-1]]
    # THEN every file whose content is its own comes back under its key
    predicted = read_s3_csv(runtime, detail["outputs"]["predictions"])
    assert sorted(neutralise_back(row["id"]) for row in predicted) == sorted(HOSTILE_KEYS[1:])
    # AND the two records sharing content cannot be told apart: they fail with that reason; a bad URI is refused
    errors = {neutralise_back(e["key"]): e for e in read_s3_csv(runtime, detail["outputs"]["errors"])}
    assert set(errors) == {HOSTILE_KEYS[0], "twin", "no-uri"}
    assert "same content as another record's file" in errors["twin"]["reason"]
    assert errors["no-uri"]["stage"] == "prepare" and "gs://bucket/object" in errors["no-uri"]["reason"]
    assert detail["counts"] == {
        "input": len(rows),
        "sent": len(rows) - 1,
        "rejected": 1,
        "predicted": len(HOSTILE_KEYS) - 1,
        "failed": 2,
    }
