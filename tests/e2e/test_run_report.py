"""The run report end to end on the local runtime: report.html beside predictions.csv, the summary in
manifest.json matching the run's own files, the event's outputs.report, and `results --summary`."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batchline.summary import reason_pattern

from batchline_local import commands
from batchline_local.cli import main
from batchline_local.runtime import LocalRuntime
from batchline_local.target import local_target
from tests.e2e.conftest import check_every_event, read_s3_csv, read_s3_json, write_csv

pytestmark = pytest.mark.timeout(180)
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def runtime(validate_event: Any) -> Iterator[LocalRuntime]:
    with LocalRuntime() as local:
        yield local
        check_every_event(local, validate_event)


def read_s3_text(runtime: LocalRuntime, uri: str) -> str:
    bucket, key = uri[5:].split("/", 1)
    return str(runtime.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode())


@pytest.fixture(scope="module")
def partial_run(runtime: LocalRuntime, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A run with good rows, a repeated key holding HTML, and a blank key: predictions.csv and errors.csv."""
    folder = tmp_path_factory.mktemp("report")
    rows: list[list[Any]] = [[f"c{n}", n % 37, (n * 7) % 101] for n in range(60)]
    rows += [[SCRIPT, 1, 2], [SCRIPT, 3, 4], ["", 5, 6], ["c1", 7, 8]]
    result = runtime.run_file(write_csv(folder / "report.csv", ["id", "tenure", "charges"], rows), "demo-sagemaker")
    assert result.event is not None
    return result.event


def test_a_run_writes_report_html_beside_predictions_and_the_event_links_it(
    runtime: LocalRuntime, partial_run: dict[str, Any], validate_event: Any
) -> None:
    validate_event(partial_run)
    outputs = partial_run["detail"]["outputs"]

    assert outputs["report"] == outputs["predictions"].rsplit("/", 1)[0] + "/report.html"
    page = read_s3_text(runtime, outputs["report"])
    assert page.startswith("<!DOCTYPE html>")
    bucket, key = outputs["report"][5:].split("/", 1)
    head = runtime.client("s3").head_object(Bucket=bucket, Key=key)
    assert head["ContentType"].startswith("text/html")


def test_manifest_summary_matches_predictions_and_errors_csv(
    runtime: LocalRuntime, partial_run: dict[str, Any]
) -> None:
    outputs = partial_run["detail"]["outputs"]
    manifest = read_s3_json(runtime, outputs["manifest"])
    predictions = read_s3_csv(runtime, outputs["predictions"])
    errors = read_s3_csv(runtime, outputs["errors"])
    summary = manifest["summary"]

    assert summary["predictions"]["rows"] == len(predictions) == partial_run["detail"]["counts"]["predicted"]
    (column,) = summary["predictions"]["columns"]
    scores = [float(row["churn_probability"]) for row in predictions]
    assert column["kind"] == "numeric" and column["count"] == len(scores)
    assert sum(b["count"] for b in column["histogram"]) == len(scores)
    assert (column["min"], column["max"]) == (min(scores), max(scores))
    assert column["mean"] == pytest.approx(sum(scores) / len(scores))
    for histogram_bin in column["histogram"]:
        start, end = histogram_bin["start"], histogram_bin["end"]
        inside = [s for s in scores if start <= s < end or s == column["max"] == end]
        assert histogram_bin["count"] == len(inside)
    groups = Counter((row["stage"], reason_pattern(row["reason"])) for row in errors)
    assert summary["errors"]["rows"] == len(errors) == partial_run["detail"]["counts"]["rejected"]
    assert {(g["stage"], g["reason"]): g["count"] for g in summary["errors"]["groups"]} == dict(groups)


def test_report_escapes_the_html_key_and_needs_no_network(runtime: LocalRuntime, partial_run: dict[str, Any]) -> None:
    page = read_s3_text(runtime, partial_run["detail"]["outputs"]["report"])

    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the repeated key, in the errors' example
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.IGNORECASE)


def test_a_failed_run_has_a_report_of_its_error(runtime: LocalRuntime, tmp_path: Path, validate_event: Any) -> None:
    result = runtime.run_file(write_csv(tmp_path / "nokey.csv", ["customer", "tenure"], [["a", 1]]), "demo-sagemaker")

    assert result.event is not None and result.event["detail"]["status"] == "FAILED"
    validate_event(result.event)
    page = read_s3_text(runtime, result.event["detail"]["outputs"]["report"])
    assert "InputRejected" in page and "key column" in page


def test_results_summary_prints_the_manifest_summary_aligned(
    runtime: LocalRuntime, partial_run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = partial_run["detail"]["runId"]
    target = local_target(runtime)

    assert commands.summary(target, run_id, as_json=False) == 0
    text = capsys.readouterr().out
    counts = partial_run["detail"]["counts"]
    assert f"input {counts['input']}, sent {counts['sent']}, predicted {counts['predicted']}" in text
    assert "churn_probability (numeric)" in text
    assert "duplicate key '…' (first seen on line N)" in text and "blank key" in text
    range_lines = [line for line in text.splitlines() if re.match(r"\s+\d\S* to \d", line)]
    assert sum(int(line.split()[3]) for line in range_lines) == counts["predicted"]

    assert commands.summary(target, run_id, as_json=True) == 0
    document = json.loads(capsys.readouterr().out)
    manifest = read_s3_json(runtime, partial_run["detail"]["outputs"]["manifest"])
    assert document["summary"] == manifest["summary"]


def test_results_summary_refuses_an_output_file(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["results", "some-run-0123", "--summary", "-o", "x.csv", "--local"])

    assert code == 2
    assert "--summary" in capsys.readouterr().err
