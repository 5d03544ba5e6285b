"""Which metrics a step reports, and the EMF document Powertools writes for them (what CloudWatch reads)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aws_lambda_powertools import Metrics
from batchline.metrics import (
    NAMESPACE,
    SERVICE,
    Measure,
    outcome_measures,
    poll_measures,
    publish,
    run_age,
)


def detail(**overrides: Any) -> dict[str, Any]:
    base = {
        "status": "PARTIALLY_SUCCEEDED",
        "runId": "churn-abc",
        "pipeline": "churn",
        "provider": "sagemaker",
        "counts": {"input": 10, "sent": 8, "predicted": 7, "failed": 1, "rejected": 2},
        "timings": {
            "startedAt": "2026-11-25T10:00:00Z",
            "finishedAt": "2026-11-25T10:42:10Z",
            "durationSeconds": 2530.0,
        },
    }
    return {**base, **overrides}


@pytest.fixture
def metrics(monkeypatch: pytest.MonkeyPatch) -> Iterator[Metrics]:
    """The handlers' Metrics, configured as the stack configures the functions; its state is shared, so reset."""
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", SERVICE)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE)
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    instance = Metrics()
    instance.clear_metrics()
    yield instance
    instance.clear_metrics()


def emf_documents(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def test_an_outcome_reports_each_record_count_and_the_run_duration() -> None:
    assert outcome_measures(detail()) == [
        Measure("RecordsIn", 10, "Count"),
        Measure("RecordsPredicted", 7, "Count"),
        Measure("RecordsFailed", 1, "Count"),
        Measure("RecordsRejected", 2, "Count"),
        Measure("RunDuration", 2530.0, "Seconds"),
    ]


def test_a_failure_before_the_run_started_reports_counts_without_a_duration() -> None:
    failed = detail(
        status="FAILED",
        counts={"input": 0, "sent": 0, "predicted": 0, "failed": 0, "rejected": 0},
        timings={"startedAt": None, "finishedAt": "2026-11-25T10:00:01Z", "durationSeconds": None},
    )
    assert [m.name for m in outcome_measures(failed)] == [
        "RecordsIn",
        "RecordsPredicted",
        "RecordsFailed",
        "RecordsRejected",
    ]


def test_an_upload_under_an_unknown_prefix_reports_nothing_so_uploaders_cannot_mint_metrics() -> None:
    assert outcome_measures(detail(pipeline="anything-typed", provider=None)) == []


def test_run_age_and_a_poll_count_from_the_runs_start() -> None:
    started_at = "2026-11-25T10:00:00Z"
    now = datetime(2026, 11, 25, 13, 30, tzinfo=UTC)
    assert run_age(started_at, now) == [Measure("RunAge", 12600.0, "Seconds")]
    assert poll_measures(started_at, now) == [Measure("Polls", 1, "Count"), Measure("RunAge", 12600.0, "Seconds")]


def test_published_measures_become_one_emf_document_per_pipeline_and_for_all_pipelines(
    metrics: Metrics, capsys: pytest.CaptureFixture[str]
) -> None:
    publish(metrics, pipeline="churn", run_id="churn-abc", measures=outcome_measures(detail()))
    metrics.flush_metrics()

    [document] = emf_documents(capsys)
    [directive] = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Batchline"
    # Per pipeline, and the same numbers for all pipelines together (what the stale-run alarm reads).
    assert sorted(map(sorted, directive["Dimensions"])) == [["pipeline", "service"], ["service"]]
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {
        "RecordsIn": "Count",
        "RecordsPredicted": "Count",
        "RecordsFailed": "Count",
        "RecordsRejected": "Count",
        "RunDuration": "Seconds",
    }
    assert (document["pipeline"], document["service"], document["run_id"]) == ("churn", "batchline", "churn-abc")
    assert (document["RecordsIn"], document["RecordsPredicted"], document["RecordsRejected"]) == ([10.0], [7.0], [2.0])
    assert document["RunDuration"] == [2530.0]


def test_nothing_to_report_adds_no_dimension_that_would_leak_into_the_next_invocation(metrics: Metrics) -> None:
    publish(metrics, pipeline="anything-typed", run_id="x", measures=[])
    assert metrics.dimension_set == {} and metrics.metric_set == {}
