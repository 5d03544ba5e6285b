"""Invocations Lambda gave up on: StartRun or ExecutionEnded failed after its retries, or their event grew too old.

Lambda sends each such invocation to the on-failure destination (the FailedInvocations queue) as a record holding
``requestContext``, ``requestPayload`` (the original event) and ``responsePayload`` (the error):
https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html
From it this step publishes the one failure event the upload or run would otherwise never get: an upload whose
run was never started (``RunNotStarted``), or a run ended outside the flow whose report failed (the run's ending,
with ``reportError`` saying what failed). The record is told apart by its event's shape, never by function name.

Once published, the run's ``ended_report`` marker is written (as ExecutionEnded writes it), so a second delivery of
the same record, or a late redelivery of the status change to ExecutionEnded, publishes nothing more. A record
this step cannot handle raises, stays in the queue, and after a few receives moves to a dead-letter queue with an
alarm: nothing is dropped silently.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from batchline.clients import AwsClients
from batchline.clock import iso, utc_now
from batchline.config import Deployment, Pipelines
from batchline.errors import BatchlineError
from batchline.events import build_detail, outcome, put_outcome
from batchline.history import read_history
from batchline.layout import RunLayout
from batchline.naming import run_id_for
from batchline.s3io import object_exists, put_bytes
from batchline.steps.ended import ENDED
from batchline.steps.start import _locate, pipeline_of

# The error name of an upload whose StartRun failed after its retries: no execution, the file left in place.
RUN_NOT_STARTED = "RunNotStarted"
_NO_COUNTS = {"input": 0, "sent": 0, "predicted": 0, "failed": 0, "rejected": 0}
_NO_OUTPUTS: dict[str, str | None] = {"predictions": None, "errors": None, "manifest": None}


class UnknownFailedInvocation(BatchlineError):
    """A destination record whose event is neither an upload nor an execution's end: kept for an operator."""


def failed_invocation_error(record: dict[str, Any]) -> str:
    """What the function's last attempt answered (or why Lambda stopped trying), in one line."""
    context = record.get("requestContext") or {}
    condition = context.get("condition") or "unknown condition"
    attempts = context.get("approximateInvokeCount")
    response = record.get("responsePayload")
    if isinstance(response, dict) and (response.get("errorType") or response.get("errorMessage")):
        error = f"{response.get('errorType') or 'Error'}: {response.get('errorMessage') or 'no message'}"
    elif condition == "EventAgeExceeded":
        error = "the event grew older than its maximum age before an attempt succeeded"
    else:
        error = f"no error returned ({json.dumps(response)[:200]})"
    tries = f" after {attempts} attempts" if attempts else ""
    return f"{error} ({condition}{tries})"


def report_failed_invocation(
    record: dict[str, Any],
    *,
    pipelines: Pipelines,
    deployment: Deployment,
    clients: AwsClients,
    state_machine_arn: str,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """What was done (the handler's result) and the failure event's detail (None when nothing was published)."""
    event = record.get("requestPayload") or {}
    source, detail_type = event.get("source"), event.get("detail-type")
    if source == "aws.s3" and detail_type == "Object Created":
        return _upload_not_started(record, event, pipelines, deployment, clients, state_machine_arn)
    if source == "aws.states" and detail_type == "Step Functions Execution Status Change":
        return _end_not_reported(record, event, pipelines, deployment, clients)
    raise UnknownFailedInvocation(
        f"a failed invocation of {record.get('requestContext', {}).get('functionArn')} with an event of source "
        f"{source!r} and detail-type {detail_type!r}: neither an upload nor an execution's end"
    )


def _upload_not_started(
    record: dict[str, Any],
    event: dict[str, Any],
    pipelines: Pipelines,
    deployment: Deployment,
    clients: AwsClients,
    state_machine_arn: str,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    detail = event["detail"]
    bucket, key = detail["bucket"]["name"], detail["object"]["key"]
    version_id = detail["object"].get("version-id") or detail["object"].get("versionId")
    size, etag = detail["object"].get("size"), detail["object"].get("etag")
    try:  # the key as StartRun would have found it (S3 may send it URL-encoded), when the object is still there
        key, head = _locate(clients, bucket, key, version_id)
        size, etag = head.get("ContentLength", size), str(head.get("ETag", etag or "")).strip('"') or None
    except Exception:  # noqa: BLE001 - the event's own key still names the upload
        pass
    pipeline = pipeline_of(key)
    run_id = run_id_for(pipeline or "unrouted", bucket, key, version_id)
    execution_arn = state_machine_arn.replace(":stateMachine:", ":execution:") + f":{run_id}"
    try:
        clients.stepfunctions.describe_execution(executionArn=execution_arn)
        return {"published": False, "runId": run_id, "reason": "the run was started: it reports itself"}, None
    except clients.stepfunctions.exceptions.ExecutionDoesNotExist:
        pass
    layout = deployment.layout(pipeline or "unrouted", run_id)
    if object_exists(clients.s3, layout.ended_report):
        return {"published": False, "runId": run_id, "reason": "already reported (a repeated delivery)"}, None
    error = failed_invocation_error(record)
    uri = f"s3://{bucket}/{key}"
    failure = build_detail(
        status="FAILED",
        run_id=run_id,
        pipeline=pipeline,
        provider=_provider(pipelines, pipeline),
        runtime=deployment.runtime,
        input_object={"bucket": bucket, "key": key, "versionId": version_id, "size": size, "etag": etag},
        jobs=[],
        counts=dict(_NO_COUNTS),
        outputs=dict(_NO_OUTPUTS),
        timings={"startedAt": None, "finishedAt": iso(utc_now()), "durationSeconds": None},
        error={
            "error": RUN_NOT_STARTED,
            "cause": f"{uri} (version {version_id}): no run was started because StartRun failed: {error}; "
            "the file was left in place: upload it again to run it",
        },
    )
    return _publish(clients, deployment, layout, failure)


def _end_not_reported(
    record: dict[str, Any],
    event: dict[str, Any],
    pipelines: Pipelines,
    deployment: Deployment,
    clients: AwsClients,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    detail = event["detail"]
    status, name = detail["status"], detail["name"]
    execution_input = json.loads(detail.get("input") or "{}")
    pipeline, run_id = execution_input["pipeline"], execution_input["runId"]
    if status not in ENDED:
        return {"published": False, "runId": run_id, "reason": f"status {status} needs no report"}, None
    layout = deployment.layout(pipeline, run_id)
    if object_exists(clients.s3, layout.ended_report):
        return {"published": False, "runId": run_id, "reason": "already reported"}, None
    cause = f"execution {name} ended {status} outside the flow"
    if status == "FAILED":  # a FAILED run may have published its own outcome: only its history says
        history = read_history(clients.stepfunctions, detail["executionArn"])
        if history.reported:
            return {"published": False, "runId": run_id, "reason": "the state machine reported this run itself"}, None
        if history.ending is not None:
            cause += f" with {history.ending.error or 'an unknown error'}: {history.ending.cause or 'no cause given'}"
    started = detail.get("startDate")
    failure = build_detail(
        status="FAILED",
        run_id=run_id,
        pipeline=pipeline,
        provider=_provider(pipelines, pipeline),
        runtime=deployment.runtime,
        input_object=execution_input.get("input") or {"bucket": "", "key": ""},
        jobs=[],
        counts=dict(_NO_COUNTS),
        outputs=dict(_NO_OUTPUTS),
        timings={
            "startedAt": iso_from_millis(started) if isinstance(started, int) else None,
            "finishedAt": iso(utc_now()),
            "durationSeconds": None,
        },
        error={
            "error": ENDED[status],
            "cause": cause,
            "reportError": f"ExecutionEnded failed: {failed_invocation_error(record)}; the run's service jobs "
            "may still be running (stop them in the service's console) and errors.csv and manifest.json may be "
            "missing",
        },
    )
    return _publish(clients, deployment, layout, failure)


def _publish(
    clients: AwsClients, deployment: Deployment, layout: RunLayout, failure: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    put_outcome(clients.events, deployment.event_bus_name, outcome(failure))
    marker = {"status": "FAILED", "by": "ReportFailedInvocation", "error": failure["error"]["error"]}
    put_bytes(clients.s3, layout.ended_report, json.dumps(marker).encode(), "application/json")
    return {"published": True, "runId": failure["runId"], "error": failure["error"]}, failure


def _provider(pipelines: Pipelines, pipeline: str) -> str | None:
    config = pipelines.pipelines.get(pipeline)
    return config.provider if config is not None else None


def iso_from_millis(millis: int) -> str:
    """A status-change event's ``startDate`` (milliseconds since the epoch) in the events' form."""
    return iso(datetime.fromtimestamp(millis / 1000, tz=UTC))
