"""The run's outcome: FinalizeRun and ReportFailure write ``manifest.json``, ``errors.csv`` and ``report.html`` in
the results bucket and build the event the state machine publishes; ReportFailure (and ExecutionEnded, through it)
also stops the service jobs still running.

The summary statistics (batchline.summary) are computed here, reading predictions.csv and errors.csv once each as
streams: memory stays flat at any size, and a time budget under the function's timeout (``summary_seconds``) ends
the reading early, marked partial, rather than lose the run's event (benchmarks/report_summary.py measures it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from typing import Any

from batchline.adapters import adapter_for
from batchline.adapters.base import BatchAdapter, release_job
from batchline.clients import AwsClients
from batchline.clock import iso, parse_time, utc_now
from batchline.collect import job_end_reason
from batchline.config import Deployment, PipelineConfig, Pipelines
from batchline.errors import JobFailed, JobNotFound, OutputInvalid, UnknownPipeline
from batchline.events import EVENT_JOBS, build_detail, outcome, outcome_status
from batchline.functions import function
from batchline.layout import RunLayout, S3Location
from batchline.prepare import ERROR_HEADER
from batchline.s3io import concatenate_csv, csv_rows, object_exists, open_object, put_bytes
from batchline.state import JobLook, RunFacts, read_job_looks
from batchline.steps.jobs import state_summary
from batchline.steps.release import release_run_jobs
from batchline.steps.run import describe_error, run_chunks, run_context, run_jobs
from batchline.summary import RunSummary, summarize_errors, summarize_predictions

logger = logging.getLogger(__name__)

# What the summary leaves of a function's time for writing the manifest and the report, and publishing.
SUMMARY_RESERVE_SECONDS = 30.0
FINALIZE_SUMMARY_SECONDS = function("FinalizeRun").timeout_seconds - SUMMARY_RESERVE_SECONDS
# ExecutionEnded reports through report_failure too, after reading the execution's history: the shorter timeout,
# and twice the reserve.
FAILURE_SUMMARY_SECONDS = (
    min(function("ReportFailure").timeout_seconds, function("ExecutionEnded").timeout_seconds)
    - 2 * SUMMARY_RESERVE_SECONDS
)


def summary_seconds(remaining_ms: int) -> float:
    """The summary's time budget in an invocation with ``remaining_ms`` left (the Lambda context's figure)."""
    return max(0.0, remaining_ms / 1000 - SUMMARY_RESERVE_SECONDS)


def _merge_errors(clients: AwsClients, sources: list[S3Location], target: S3Location) -> bool:
    """Concatenate error CSVs (one header) into the results bucket; False when there is nothing to write."""
    existing = [location for location in sources if object_exists(clients.s3, location)]
    if not existing:
        return False
    concatenate_csv(clients.s3, existing, target, ERROR_HEADER)
    return True


def finalize_run(
    run: RunFacts,
    collected: dict[str, Any],
    *,
    pipelines: Pipelines,
    deployment: Deployment,
    clients: AwsClients,
    summary_seconds: float = FINALIZE_SUMMARY_SECONDS,
) -> dict[str, Any]:
    """Reconcile counts, write errors.csv, manifest.json and report.html, and return the event to publish."""
    deadline = time.monotonic() + summary_seconds
    layout = deployment.layout(run.pipeline, run.run_id)
    counts = {**run.counts.dump(), **collected["counts"]}
    if counts["input"] != counts["predicted"] + counts["failed"] + counts["rejected"]:
        raise OutputInvalid(
            "counts do not reconcile: input {input} != predicted {predicted} + failed {failed} + "
            "rejected {rejected}".format(**counts)
        )
    has_errors = _merge_errors(clients, [layout.rejected, layout.failed], layout.errors)
    outputs = {
        "predictions": collected["predictions"]["uri"] if collected["predictions"] else None,
        "errors": layout.errors.uri if has_errors else None,
        "manifest": layout.manifest.uri,
        "report": layout.report.uri,
    }
    status = outcome_status(counts)
    jobs = run_jobs(clients, deployment, run)
    error = _no_predictions(jobs, run.provider) if status == "FAILED" else None
    detail = build_detail(
        status=status,
        run_id=run.run_id,
        pipeline=run.pipeline,
        provider=run.provider,
        runtime=deployment.runtime,
        input_object=run.input.dump(),
        jobs=[_job_summary(job) for job in jobs],
        counts=counts,
        outputs=outputs,
        timings=_timings(run.started_at),
        error=error,
    )
    safe = pipelines.get(run.pipeline).spreadsheet_safe
    summary = _summary(
        clients,
        predictions=layout.predictions if outputs["predictions"] else None,
        errors=layout.errors if has_errors else None,
        spreadsheet_safe=safe,
        deadline=deadline,
    )
    _write_manifest(clients, layout, detail, parts=_parts(clients, collected["predictions"]), summary=summary)
    release_run_jobs(run, jobs, pipelines=pipelines, deployment=deployment, clients=clients)
    return outcome(detail)


def report_failure(
    state: dict[str, Any],
    *,
    pipelines: Pipelines,
    deployment: Deployment,
    clients: AwsClients,
    summary_seconds: float = FAILURE_SUMMARY_SECONDS,
) -> dict[str, Any]:
    """The failure path: stop jobs still running, keep rejected rows, write the manifest and the report (the
    error, the jobs and errors.csv's reasons: a failed run's page says why), build the event.

    ``state`` is the run's execution state wherever it failed, read as plain JSON: a model would refuse a
    half-built state, and the failure event must go out whatever the run got to."""
    deadline = time.monotonic() + summary_seconds
    run_id, pipeline_name = state["runId"], state["pipeline"]
    error = describe_error(state.get("error") or {})
    prepared = state.get("prepared")
    layout = deployment.layout(pipeline_name, run_id)
    provider: str | None = None
    jobs: list[dict[str, Any]] = []
    try:
        pipeline = pipelines.get(pipeline_name)
        provider = pipeline.provider
    except UnknownPipeline:
        pipeline = None
    if pipeline is not None and prepared and prepared.get("jobsFile"):
        jobs = _stop_jobs(pipeline, prepared, pipelines, deployment, clients, error)
    has_errors = _merge_errors(clients, [layout.rejected], layout.errors)
    # A Prepare that failed carries no counts in the state: read what it left.
    counts = dict(prepared["counts"]) if prepared and "counts" in prepared else _counts_left(clients, layout)
    counts.setdefault("sent", 0)
    counts["predicted"] = 0
    counts["failed"] = counts["sent"]
    detail = build_detail(
        status="FAILED",
        run_id=run_id,
        pipeline=pipeline_name,
        provider=provider,
        runtime=deployment.runtime,
        input_object=state["input"],
        jobs=jobs,
        counts=counts,
        outputs={
            "predictions": None,
            "errors": layout.errors.uri if has_errors else None,
            "manifest": layout.manifest.uri,
            "report": layout.report.uri,
        },
        timings=_timings(state.get("startedAt") or (prepared or {}).get("startedAt")),
        error=error,
    )
    safe = pipeline.spreadsheet_safe if pipeline is not None else True
    errors_csv = layout.errors if has_errors else None
    summary = _summary(clients, predictions=None, errors=errors_csv, spreadsheet_safe=safe, deadline=deadline)
    _write_manifest(clients, layout, detail, parts=[], summary=summary)
    return outcome(detail)


def _stop_jobs(
    pipeline: PipelineConfig,
    prepared: dict[str, Any],
    pipelines: Pipelines,
    deployment: Deployment,
    clients: AwsClients,
    error: dict[str, Any],
) -> list[dict[str, Any]]:
    """Stop every job of the run that still runs (names are deterministic, so none is missed)."""
    adapter: BatchAdapter = adapter_for(pipeline, clients)
    jobs, stopped, problems = [], [], []
    try:
        facts = RunFacts.model_validate(prepared)
        chunks = run_chunks(clients, facts)
    except Exception as exc:  # noqa: BLE001 - the failure event must still go out, saying why
        error["stopError"] = f"could not read the run's jobs to stop them: {exc}"
        return []
    polls = _poll_counts(clients, deployment, facts)
    for chunk in chunks:
        run = run_context(facts, chunk, pipelines, deployment)
        name = adapter.job_id(run)
        try:
            state = adapter.describe(run, name)
        except JobNotFound:
            continue  # the service says it has no such job: never created, nothing to stop
        except Exception as exc:  # noqa: BLE001 - the failure event must still go out, saying why
            problems.append(f"could not look up job {name}: {exc}")
            continue
        if not state.status.is_terminal:
            try:
                if adapter.stop(run, name):
                    stopped.append(state.job_id)
                    # The manifest and event show the job as it is after the stop request (Stopping, Stopped),
                    # not the running look taken before it.
                    with contextlib.suppress(Exception):
                        state = adapter.describe(run, name)
                else:
                    problems.append(f"{pipeline.provider} cannot stop job {name}; it runs to completion")
            except Exception as exc:  # noqa: BLE001
                # The failure event must still go out; it says the stop did not happen and why.
                problems.append(f"could not stop job {name}: {exc}")
        jobs.append({**state_summary(state), "pollCount": polls.get(chunk.index)})
        release_job(adapter, run, state)  # only once the job has ended (a job still running keeps them)
    if stopped:
        # Named in full up to the event's 25 jobs: the event stays small at any number of jobs.
        shown = ", ".join(stopped[:EVENT_JOBS])
        more = len(stopped) - EVENT_JOBS
        error["jobStopped"] = shown + (f" and {more} more (manifest.json lists every job)" if more > 0 else "")
    if problems:
        error["stopError"] = "; ".join(problems)
    return jobs


def _poll_counts(clients: AwsClients, deployment: Deployment, facts: RunFacts) -> dict[int, int | None]:
    """Each job's polls so far, from the looks its execution recorded (none when it recorded none)."""
    layout = deployment.layout(facts.pipeline, facts.run_id)
    try:
        looks = read_job_looks(clients.s3, layout, facts.job_count)
    except Exception:  # noqa: BLE001 - the failure event goes out without poll counts
        logger.exception("could not read the jobs' looks")
        return {}
    return {index: look.poll_count for index, look in looks.items()}


def _counts_left(clients: AwsClients, layout: RunLayout) -> dict[str, int]:
    """Prepare failed before returning counts: those of a file it read whole and refused, or else the rows it
    rejected before reading stopped (the rest of the file was never read, so it has no count)."""
    refused = layout.refused_counts
    try:
        if object_exists(clients.s3, refused):
            with open_object(clients.s3, refused) as body:
                counts = json.load(body)
            return {name: int(counts[name]) for name in ("input", "sent", "rejected")}
        return _counts_from_rejected(clients, layout)
    except Exception:  # noqa: BLE001 - the failure event goes out whatever is wrong with the counts
        logger.exception("could not count the failed run's records")
        return {"input": 0, "sent": 0, "rejected": 0}


def _counts_from_rejected(clients: AwsClients, layout: RunLayout) -> dict[str, int]:
    if not object_exists(clients.s3, layout.rejected):
        return {"input": 0, "sent": 0, "rejected": 0}
    rejected = sum(1 for _ in csv_rows(clients.s3, layout.rejected)) - 1  # less the header
    return {"input": rejected, "sent": 0, "rejected": rejected}


def _no_predictions(jobs: list[JobLook], provider: str) -> dict[str, str]:
    """Why a run that reached its end has no prediction: every job ended without output (JobFailed, with each
    job's reason, as the event has always named it), or the jobs ran and every record failed."""
    if jobs and all(job.status in ("FAILED", "STOPPED") for job in jobs):
        reasons = (job_end_reason(job.job_id or "-", job.raw_status or "", job.message) for job in jobs)
        return {"error": JobFailed.__name__, "cause": "; ".join(f"{provider} {reason}" for reason in reasons)}
    return {"error": "NoPredictions", "cause": "the job returned no prediction for any record (see errors.csv)"}


def _job_summary(job: JobLook) -> dict[str, Any]:
    look = job.model_dump(by_alias=True, mode="json")
    fields = ("jobId", "status", "rawStatus", "message", "pollCount", "checkedAt", "counts", "figures")
    return {k: look.get(k) for k in fields}


def _timings(started_at: str | None) -> dict[str, Any]:
    finished = utc_now()
    timings: dict[str, Any] = {"startedAt": started_at, "finishedAt": iso(finished), "durationSeconds": None}
    if started_at:
        timings["durationSeconds"] = round((finished - parse_time(started_at)).total_seconds(), 3)
    return timings


def _parts(clients: AwsClients, predictions: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Rows, bytes and SHA-256 of each part of predictions.csv, as Assemble recorded them."""
    if not predictions:
        return []
    with open_object(clients.s3, S3Location.parse(predictions["partsUri"])) as body:
        return list(json.load(body))


def _summary(
    clients: AwsClients,
    *,
    predictions: S3Location | None,
    errors: S3Location | None,
    spreadsheet_safe: bool,
    deadline: float,
) -> RunSummary | None:
    """predictions.csv's columns and errors.csv's reasons, each read once as a stream; None when reading failed.

    The statistics describe the run; they are not the run: a problem here is logged and the manifest says
    ``summary: null``, rather than fail a run whose predictions.csv is written (or lose a failure's event)."""
    try:
        return RunSummary(
            predictions=(
                summarize_predictions(
                    csv_rows(clients.s3, predictions), spreadsheet_safe=spreadsheet_safe, deadline=deadline
                )
                if predictions
                else None
            ),
            errors=(
                summarize_errors(csv_rows(clients.s3, errors), spreadsheet_safe=spreadsheet_safe, deadline=deadline)
                if errors
                else None
            ),
        )
    except Exception:  # noqa: BLE001 - see the docstring
        logger.exception("could not summarise the run's files")
        return None


def _write_manifest(
    clients: AwsClients,
    layout: RunLayout,
    detail: dict[str, Any],
    parts: list[dict[str, Any]],
    summary: RunSummary | None,
) -> None:
    """manifest.json and report.html, the page drawn from the manifest (it shows what the manifest says).

    A page that cannot be drawn is logged and left out (``outputs.report`` null), as a summary that cannot be
    read is: the event goes out either way."""
    from batchline.report import render_report

    manifest = {**detail, "parts": parts, "summary": summary.dump() if summary is not None else None}
    try:
        page: bytes | None = render_report(manifest).encode()
    except Exception:  # noqa: BLE001 - see the docstring
        logger.exception("could not draw the run's report")
        page = None
        detail["outputs"]["report"] = None
        manifest["outputs"] = detail["outputs"]
    put_bytes(clients.s3, layout.manifest, json.dumps(manifest, indent=2).encode(), "application/json")
    if page is not None:
        put_bytes(clients.s3, layout.report, page, "text/html; charset=utf-8")
