"""``submit``, ``runs``, ``status`` and ``results``: the same code for a deployed stack and the local runtime.

Each takes a resolved ``Target`` and returns the exit code: 0 done (the run succeeded), 1 the run failed or
partially succeeded or has no such output, 3 ``--wait`` gave up while the run still runs. Problems the user
fixes (unknown pipeline or run, unreadable file) raise ``TargetError``.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from batchline.naming import run_id_for

from batchline_local.progress import RunProgress, describe_counts, describe_job
from batchline_local.runs import RunView, describe_run, list_runs
from batchline_local.target import Target, TargetError, run_id_of

EXIT_OK, EXIT_RUN_FAILED, EXIT_STILL_RUNNING = 0, 1, 3
# One PUT up to this size; above it a multipart upload (S3 takes at most 5 GB in one PUT).
SINGLE_PUT_BYTES = 64 * 1024 * 1024
PART_BYTES = 64 * 1024 * 1024
# A run's outputs in the results bucket (the event's ``outputs``), under the names they are saved as.
OUTPUT_FILES = (
    ("predictions", "predictions.csv"),
    ("errors", "errors.csv"),
    ("manifest", "manifest.json"),
    ("report", "report.html"),
)
# Deployed, the run starts when EventBridge has delivered the upload's event to StartRun (seconds, usually).
START_TIMEOUT_SECONDS = 120.0


def submit(
    target: Target,
    path: Path,
    pipeline: str,
    *,
    wait: bool,
    timeout: float,
    as_json: bool,
    download_to: Path | None = None,
) -> tuple[int, RunView]:
    """Upload under the pipeline's prefix, find the run it starts (its name derives from the object version).

    ``download_to``: also copy the run's outputs into this folder (a local runtime's buckets end with it).
    """
    view, uploaded = start_run(target, path, pipeline)
    run_id, key, version_id = view.run_id, uploaded["key"], uploaded["versionId"]
    if not wait:
        if as_json:
            _print_json({"runId": run_id, "pipeline": pipeline, "uploaded": uploaded, "status": view.status})
        else:
            print(f"uploaded s3://{target.inbox_bucket}/{key} (version {version_id})")
            print(f"run {run_id} started; follow it with `batchline status {run_id}`")
        return EXIT_OK, view
    view, finished = follow(target, view, timeout=timeout, show=not as_json)
    files = download_outputs(target, view, download_to) if download_to is not None and finished else None
    if as_json:
        _print_json(view.to_json() | ({"files": files} if files is not None else {}))
    else:
        print_run(view)
        for name, local_path in (files or {}).items():
            print(f"{'saved ' + name + ':':<20} {local_path or 'none'}")
    if not finished:
        print(
            f"batchline: run {run_id} still runs after {timeout:.0f} s; follow it with `batchline status`",
            file=sys.stderr,
        )
        return EXIT_STILL_RUNNING, view
    return (EXIT_OK if view.status == "SUCCEEDED" else EXIT_RUN_FAILED), view


def start_run(target: Target, path: Path, pipeline: str) -> tuple[RunView, dict[str, Any]]:
    """Upload under the pipeline's prefix and return the run it started, and what was uploaded."""
    target.check_pipeline(pipeline)
    if not path.is_file():
        raise TargetError(f"cannot read {path}: no such file")
    key = f"{pipeline}/{path.name}"
    version_id = _upload(target.client("s3"), path, target.inbox_bucket, key)
    uploaded = {"bucket": target.inbox_bucket, "key": key, "versionId": version_id, "size": path.stat().st_size}
    if target.on_upload is not None:
        target.on_upload(uploaded)
    run_id = run_id_for(pipeline, target.inbox_bucket, key, version_id)
    return _wait_for_start(target, run_id, uploaded), uploaded


def download_outputs(target: Target, view: RunView, folder: Path) -> dict[str, str | None]:
    """The outputs (OUTPUT_FILES) of an ended run into ``folder`` (made if missing), streamed to disk; a file the
    run did not write is None, and an older run's file of that name is removed."""
    folder.mkdir(parents=True, exist_ok=True)
    s3 = target.client("s3")
    files: dict[str, str | None] = {}
    for name, filename in OUTPUT_FILES:
        local_path = folder / filename
        local_path.unlink(missing_ok=True)  # never leave an older run's file beside this run's
        uri = view.outputs.get(name)
        if uri:
            bucket, key = uri[5:].split("/", 1)
            s3.download_file(bucket, key, str(local_path))
        files[name] = str(local_path) if uri else None
    return files


def _upload(s3: Any, path: Path, bucket: str, key: str) -> str | None:
    """Stream the file up and return the new object version (multipart above SINGLE_PUT_BYTES)."""
    with path.open("rb") as body:
        if path.stat().st_size <= SINGLE_PUT_BYTES:
            return s3.put_object(Bucket=bucket, Key=key, Body=body).get("VersionId")
        upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        try:
            parts = []
            for number, block in enumerate(iter(lambda: body.read(PART_BYTES), b""), start=1):
                etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=block)["ETag"]
                parts.append({"PartNumber": number, "ETag": etag})
            done = s3.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise
        return done.get("VersionId")


def _wait_for_start(target: Target, run_id: str, uploaded: dict[str, Any]) -> RunView:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        try:
            return describe_run(target, run_id)
        except TargetError:
            if time.monotonic() > deadline:
                raise TargetError(
                    f"s3://{uploaded['bucket']}/{uploaded['key']} did not start run {run_id} within "
                    f"{START_TIMEOUT_SECONDS:.0f} s; look for its event in the stack's StartDeadLetterQueueUrl "
                    "queue and for a Batch Prediction Failed event on the bus"
                ) from None
            time.sleep(min(target.poll_seconds, 1.0))


def follow(target: Target, view: RunView, *, timeout: float, show: bool = True) -> tuple[RunView, bool]:
    """Look at the run every ``target.poll_seconds`` until it ends or ``timeout`` passes (then False)."""
    deadline = time.monotonic() + timeout
    with RunProgress(show=show, target=target) as progress:
        while True:
            progress.update(view)
            if not view.running:
                return view, True
            if time.monotonic() > deadline:
                return view, False
            time.sleep(target.poll_seconds)
            view = describe_run(target, view.run_id, view)


def runs(target: Target, *, pipeline: str | None, limit: int, as_json: bool) -> int:
    if pipeline is not None:
        target.check_pipeline(pipeline)
    views = list_runs(target, pipeline=pipeline, limit=limit)
    if as_json:
        _print_json({"runs": [_run_row(view) for view in views]})
        return EXIT_OK
    if not views:
        print(f"no runs{f' of pipeline {pipeline}' if pipeline else ''} in {target.label}")
        return EXIT_OK
    print_table(RUNS_COLUMNS, [_table_row(view) for view in views])
    return EXIT_OK


# The runs table: heading and whether the column is a number (right-aligned). Widths come from the rows.
RUNS_COLUMNS = (
    ("RUN", False),
    ("PIPELINE", False),
    ("STATUS", False),
    ("STARTED", False),
    ("INPUT", True),
    ("PREDICTED", True),
    ("FAILED", True),
    ("REJECTED", True),
)


def _table_row(view: RunView) -> list[str]:
    row = _run_row(view)
    counts = row["counts"]
    started = (row["startedAt"] or "-")[:19].replace("T", " ")
    numbers = [_count(counts, name) for name in ("input", "predicted", "failed", "rejected")]
    return [view.run_id, view.pipeline, view.status, started, *numbers]


def print_table(columns: tuple[tuple[str, bool], ...], rows: list[list[str]]) -> None:
    """Columns as wide as their widest cell (run IDs grow with the pipeline's name), two spaces apart."""
    widths = [max(len(heading), *(len(row[index]) for row in rows)) for index, (heading, _) in enumerate(columns)]

    def line(cells: list[str]) -> str:
        aligned = [
            cell.rjust(width) if number else cell.ljust(width)
            for cell, width, (_, number) in zip(cells, widths, columns, strict=True)
        ]
        return "  ".join(aligned).rstrip()

    print(line([heading for heading, _ in columns]))
    for row in rows:
        print(line(row))


def _run_row(view: RunView) -> dict[str, Any]:
    full = view.to_json()
    return {key: full[key] for key in ("runId", "pipeline", "status", "executionStatus", "startedAt", "stoppedAt")} | {
        "counts": view.counts,
        "input": view.input,
    }


def _count(counts: dict[str, Any], name: str) -> str:
    return str(counts[name]) if name in counts else "-"


def status(target: Target, run: str, *, as_json: bool) -> int:
    view = describe_run(target, run_id_of(run))
    if as_json:
        _print_json(view.to_json())
    else:
        print_run(view)
    if view.running:
        return EXIT_OK
    return EXIT_OK if view.status == "SUCCEEDED" else EXIT_RUN_FAILED


def results(target: Target, run: str, out: str | None, *, errors: bool, as_json: bool) -> int:
    """Download the run's predictions.csv (or errors.csv) from the results bucket.

    ``out`` as typed: a trailing separator or an existing folder names a folder (made if missing), else a file.
    """
    run_id = run_id_of(run)
    which = "errors" if errors else "predictions"
    view = describe_run(target, run_id)
    if view.running:
        return _no_output(
            f"run {run_id} is still running ({view.history.state}); {which}.csv comes at its end", as_json
        )
    uri = view.outputs.get(which)
    if not uri:
        why = "no record failed or was rejected" if errors else "it predicted nothing"
        return _no_output(f"run {run_id} ({view.status}) has no {which}.csv: {why}", as_json)
    target_path = output_path(out, f"{which}.csv")
    try:
        target_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TargetError(f"cannot make the folder {target_path.parent} for -o: {exc.strerror or exc}") from None
    bucket, key = uri[5:].split("/", 1)
    target.client("s3").download_file(bucket, key, str(target_path))
    with target_path.open(newline="", encoding="utf-8") as handle:
        rows = sum(1 for _ in csv.reader(handle)) - 1  # less the header
    if as_json:
        _print_json(
            {
                "runId": run_id,
                "status": view.status,
                "file": f"{which}.csv",
                "source": uri,
                "path": str(target_path),
                "rows": rows,
                "bytes": target_path.stat().st_size,
            }
        )
    else:
        print(f"{which}.csv of run {run_id} ({view.status}): {rows} rows -> {target_path}")
    return EXIT_OK


def summary(target: Target, run: str, *, as_json: bool) -> int:
    """The run's summary statistics from its manifest.json, as aligned text (or the manifest's JSON)."""
    from batchline_local.summary_view import summary_lines

    run_id = run_id_of(run)
    view = describe_run(target, run_id)
    if view.running:
        state = view.history.state
        return _no_output(f"run {run_id} is still running ({state}); its summary comes at its end", as_json)
    if not view.manifest:
        return _no_output(f"run {run_id} ({view.status}) has no manifest.json, so no summary", as_json)
    if as_json:
        shown = ("runId", "status", "counts", "jobs", "outputs", "summary")
        _print_json({key: view.manifest.get(key) for key in shown})
        return EXIT_OK
    print("\n".join(summary_lines(view.manifest)))
    return EXIT_OK


def output_path(out: str | None, filename: str) -> Path:
    """Where ``-o`` puts ``filename``: a folder when it ends with a separator (Path() drops it) or is one."""
    if not out:
        return Path(filename)
    separators = (os.sep, os.altsep) if os.altsep else (os.sep,)
    if out.endswith(separators) or Path(out).is_dir():
        return Path(out) / filename
    return Path(out)


# What `cancel` stops a deployed run with; the failure event then says "stopped by hand" (ExecutionAborted).
CANCEL_ERROR, CANCEL_CAUSE = "Cancelled", "batchline cancel"


def cancel(target: Target, run: str, *, as_json: bool) -> int:
    """Stop a running run as a stop from the console does: StopExecution; ExecutionEnded does the rest.

    Exit 0 stopped, 1 the run had already ended (nothing done).
    """
    run_id = run_id_of(run)
    view = describe_run(target, run_id)
    if not view.running:
        return _no_output(f"run {run_id} has already ended ({view.status}); nothing to cancel", as_json)
    if target.stop_by_hand is not None:
        ended: dict[str, Any] | None = target.stop_by_hand(run_id)
    else:
        target.client("stepfunctions").stop_execution(
            executionArn=target.execution_arn(run_id), error=CANCEL_ERROR, cause=CANCEL_CAUSE
        )
        ended = None
    view = describe_run(target, run_id)
    if as_json:
        _print_json(
            {"runId": run_id, "executionStatus": view.execution_status, "status": view.status, "executionEnded": ended}
        )
        return EXIT_OK
    print(f"run {run_id}: execution stopped (StopExecution; now {view.execution_status})")
    if ended is None:
        print(
            "next: the stack's ExecutionEnded function (on the execution's status change) stops its service jobs "
            "still running and publishes one Batch Prediction Failed event (ExecutionAborted); "
            f"`batchline status {run_id}` shows the outcome"
        )
    elif ended.get("handled"):
        jobs = (ended.get("error") or {}).get("jobStopped") or "none were running"
        print(
            f"ExecutionEnded stopped its service jobs ({jobs}) and published one Batch Prediction Failed event "
            f"({(ended.get('error') or {}).get('error')})"
        )
    else:
        print(f"ExecutionEnded did nothing more: {ended.get('reason') or 'the run had reported itself'}")
    return EXIT_OK


def _no_output(message: str, as_json: bool) -> int:
    print(f"batchline: {message}", file=sys.stderr)
    if as_json:
        _print_json({"error": message})
    return EXIT_RUN_FAILED


def print_run(view: RunView) -> None:
    print(f"run:         {view.run_id}")
    print(f"pipeline:    {view.pipeline}")
    elapsed = view.elapsed_seconds()
    took = f" in {elapsed:.1f} s" if elapsed is not None and not view.running else ""
    print(f"status:      {view.status} (execution {view.execution_status}){took}")
    print(f"state:       {view.history.state or '-'}")
    if view.input:
        source = f"s3://{view.input.get('bucket')}/{view.input.get('key')}"
        print(f"input:       {source} (version {view.input.get('versionId')})")
    for index, job in enumerate(view.jobs):
        print(f"{'jobs:' if index == 0 else '':<12} {describe_job(index, job)} [{job.get('jobId')}]")
    if view.counts:
        print(f"records:     {describe_counts(view.counts)}")
    for name in ("predictions", "errors", "manifest", "report"):
        if not view.running:
            print(f"{name + ':':<12} {view.outputs.get(name) or 'none'}")
    if view.error:
        print(f"error:       {view.error.get('error')}: {view.error.get('cause')}")


def _print_json(document: dict[str, Any]) -> None:
    print(json.dumps(document, default=str))
