"""report.html and manifest.json's summary, written as FinalizeRun writes them, checked against the run's files."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import boto3
import pytest
from batchline.clients import AwsClients
from batchline.csvsafe import CsvWriter
from batchline.layout import RunLayout
from batchline.report import render_report
from batchline.steps import finalize
from batchline.summary import reason_pattern
from moto import mock_aws

SCRIPT = "<script>alert('x')</script>"
# A prediction file with every kind of hostile cell: blank, NaN, inf, huge, tiny, and HTML in a text column.
PREDICTIONS = [
    ["id", "score", "label"],
    ["k1", "0.25", "cat"],
    ["k2", "", "dog"],
    ["k3", "nan", "cat"],
    ["k4", "inf", SCRIPT],
    ["k5", "-inf", '"quoted" & <b>bold</b>'],
    ["k6", "1e308", "cat"],
    ["k7", "5e-324", ""],
    ["k8", "0.75", "dog"],
]
ERRORS = [
    ["source_file", "line", "key", "stage", "reason", "record"],
    ["in.csv", "4", SCRIPT, "prepare", f"duplicate key {SCRIPT!r} (first seen on line 2)", "x"],
    ["in.csv", "5", "b", "prepare", "duplicate key 'b' (first seen on line 3)", "b"],
    ["in.csv", "7", "c", "service", f"job j-1 ended with status Failed: {SCRIPT}", ""],
]


def csv_bytes(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    writer = CsvWriter(buffer, safe=True)
    for row in rows:
        writer.writerow(row)
    return buffer.getvalue().encode()


@pytest.fixture
def written_run() -> Iterator[tuple[Any, RunLayout]]:
    """A run's predictions.csv and errors.csv in a results bucket; FinalizeRun's summary and writes on them."""
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="results")
        layout = RunLayout("p", "p-run", "work", "results")
        s3.put_object(Bucket="results", Key=layout.predictions.key, Body=csv_bytes(PREDICTIONS))
        s3.put_object(Bucket="results", Key=layout.errors.key, Body=csv_bytes(ERRORS))
        clients = AwsClients(boto3.session.Session(region_name="us-east-1"))
        summary = finalize._summary(
            clients,
            predictions=layout.predictions,
            errors=layout.errors,
            spreadsheet_safe=True,
            deadline=float("inf"),
        )
        detail = {
            "runId": "p-run",
            "status": "PARTIALLY_SUCCEEDED",
            "pipeline": "p",
            "counts": {"input": 11, "sent": 9, "predicted": 8, "failed": 1, "rejected": 2},
            "outputs": {"predictions": layout.predictions.uri, "report": layout.report.uri},
            "jobs": [
                {
                    "jobId": "job-0",
                    "status": "SUCCEEDED",
                    "pollCount": 3,
                    "checkedAt": "2026-01-01T00:10:00Z",
                    "message": SCRIPT,
                    "figures": {
                        "createdAt": "2026-01-01T00:01:00Z",
                        "startedAt": "2026-01-01T00:02:00Z",
                        "endedAt": "2026-01-01T00:09:00Z",
                    },
                }
            ],
            "timings": {"startedAt": "2026-01-01T00:00:00Z"},
            "error": None,
        }
        finalize._write_manifest(clients, layout, detail, parts=[], summary=summary)
        yield s3, layout


def read(s3: Any, key: str) -> str:
    return str(s3.get_object(Bucket="results", Key=key)["Body"].read().decode())


def test_manifest_summary_matches_the_runs_own_files(written_run: tuple[Any, RunLayout]) -> None:
    s3, layout = written_run
    manifest = json.loads(read(s3, layout.manifest.key))
    predictions = list(csv.reader(io.StringIO(read(s3, layout.predictions.key))))
    errors = list(csv.reader(io.StringIO(read(s3, layout.errors.key))))
    summary = manifest["summary"]

    assert summary["predictions"]["rows"] == len(predictions) - 1
    score, label = summary["predictions"]["columns"]
    scores = [row[1].lstrip("'") for row in predictions[1:]]
    finite = [float(v) for v in scores if v and float(v) - float(v) == 0]
    assert score["kind"] == "numeric"
    assert score["blanks"] == scores.count("")
    assert score["nonFinite"] == 3
    assert sum(b["count"] for b in score["histogram"]) == len(finite) == 4
    assert (score["min"], score["max"]) == (min(finite), max(finite))
    labels = Counter(row[2][1:] if row[2].startswith("'") else row[2] for row in predictions[1:] if row[2])
    assert label["kind"] == "text"
    assert {t["value"]: t["count"] for t in label["topValues"]} == dict(labels)
    groups = Counter((row[3], reason_pattern(row[4])) for row in errors[1:])
    assert summary["errors"]["rows"] == len(errors) - 1
    assert {(g["stage"], g["reason"]): g["count"] for g in summary["errors"]["groups"]} == dict(groups)


def test_report_escapes_html_in_values_reasons_keys_and_messages(written_run: tuple[Any, RunLayout]) -> None:
    s3, layout = written_run
    page = read(s3, layout.report.key)

    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(" in page
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page


def test_report_needs_no_network(written_run: tuple[Any, RunLayout]) -> None:
    s3, layout = written_run
    page = read(s3, layout.report.key)

    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.IGNORECASE)
    assert not re.search(r"@import|url\(\s*['\"]?(?:https?:)?//", page, re.IGNORECASE)
    assert "<link" not in page.lower() and "<iframe" not in page.lower()


def test_report_shows_the_counts_the_jobs_and_each_chart(written_run: tuple[Any, RunLayout]) -> None:
    s3, layout = written_run
    page = read(s3, layout.report.key)
    manifest = json.loads(read(s3, layout.manifest.key))

    for name, value in manifest["counts"].items():
        assert re.search(rf'<th class="n">{name}</th>', page)
        assert f'<td class="n">{value}</td>' in page
    assert "job-0" in page and "2026-01-01T00:02:00Z" in page
    predictions = list(csv.reader(io.StringIO(read(s3, layout.predictions.key))))
    labels = Counter(row[2][1:] if row[2].startswith("'") else row[2] for row in predictions[1:] if row[2])
    for value, count in labels.items():  # the top values' table, counted from predictions.csv
        assert f'<tr><td><code>{html.escape(value)}</code></td><td class="n">{count}</td></tr>' in page
    errors = list(csv.reader(io.StringIO(read(s3, layout.errors.key))))
    for (stage, reason), count in Counter((row[3], reason_pattern(row[4])) for row in errors[1:]).items():
        assert f'<tr><td>{stage}</td><td>{html.escape(reason)}</td><td class="n">{count}</td>' in page
    svgs = re.findall(r"<svg.*?</svg>", page, re.DOTALL)
    assert len(svgs) == 3  # the jobs' timeline, the score histogram, the label values
    for svg in svgs:
        ElementTree.fromstring(svg)  # well-formed


def test_a_manifest_without_summary_still_renders() -> None:
    page = render_report({"runId": "r", "status": "FAILED", "error": {"error": "InputRejected", "cause": SCRIPT}})

    assert "InputRejected" in page and "<script" not in page.lower()


def test_the_chart_library_is_in_the_lambda_layer_pinned_as_in_pyproject() -> None:
    root = Path(__file__).resolve().parents[2]
    layer = (root / "lambdas" / "layer" / "requirements.txt").read_text(encoding="utf-8")
    project = (root / "pyproject.toml").read_text(encoding="utf-8")
    pins = re.findall(r"^pygal==([\d.]+)$", layer, re.MULTILINE)

    assert pins and f'"pygal=={pins[0]}"' in project


def test_a_run_of_thousands_of_jobs_shows_the_first_ones_and_says_so() -> None:
    jobs = [
        {
            "jobId": f"job-{n}",
            "status": "SUCCEEDED",
            "figures": {"createdAt": "2026-01-01T00:00:00Z", "endedAt": "2026-01-01T00:01:00Z"},
        }
        for n in range(3000)
    ]
    page = render_report(
        {"runId": "r", "status": "SUCCEEDED", "jobs": jobs, "timings": {"startedAt": "2026-01-01T00:00:00Z"}}
    )

    assert "The first 200 of 3000 jobs" in page
    assert "job-199<" in page and "job-200<" not in page
    assert len(page) < 500_000
