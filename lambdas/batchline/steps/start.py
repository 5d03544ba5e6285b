"""Turn an S3 "Object Created" event into exactly one execution per object version."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

from batchline.clients import AwsClients
from batchline.clock import iso, utc_now
from batchline.config import Deployment, Pipelines
from batchline.errors import InputRejected, UnknownPipeline
from batchline.events import build_detail, outcome, put_outcome
from batchline.naming import run_id_for


def execution_input(pipeline: str, run_id: str, input_object: dict[str, Any]) -> dict[str, Any]:
    """The execution's input: a pure function of the object version, so a repeated start is idempotent."""
    return {"runId": run_id, "pipeline": pipeline, "input": input_object}


def pipeline_of(key: str) -> str:
    """The pipeline an inbox key belongs to: its first path segment ("" for a key at the top level)."""
    return key.split("/", 1)[0] if "/" in key else ""


def _locate(clients: AwsClients, bucket: str, key: str, version_id: str | None) -> tuple[str, dict[str, Any]]:
    """HEAD the object; S3 notifications may carry the key URL-encoded, so try the decoded form too."""
    candidates = [key] + ([unquote_plus(key)] if unquote_plus(key) != key else [])
    for candidate in candidates:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": candidate}
        if version_id:
            kwargs["VersionId"] = version_id
        try:
            return candidate, clients.s3.head_object(**kwargs)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("404", "NoSuchKey", "NotFound", "NoSuchVersion"):
                raise
    raise InputRejected(f"s3://{bucket}/{key} (version {version_id}) no longer exists; nothing to run")


def start_run(
    event: dict[str, Any],
    *,
    pipelines: Pipelines,
    deployment: Deployment,
    state_machine_arn: str,
    clients: AwsClients,
) -> dict[str, Any]:
    detail = event["detail"]
    bucket = detail["bucket"]["name"]
    version_id = detail["object"].get("version-id") or detail["object"].get("versionId")
    key, head = _locate(clients, bucket, detail["object"]["key"], version_id)
    pipeline_name = pipeline_of(key)
    run_id = run_id_for(pipeline_name or "unrouted", bucket, key, version_id)
    input_object = {
        "bucket": bucket,
        "key": key,
        "versionId": version_id,
        "size": head.get("ContentLength"),
        "etag": str(head.get("ETag", "")).strip('"'),
    }
    try:
        pipelines.get(pipeline_name)
    except UnknownPipeline as exc:
        _publish_unrouted(clients, deployment, run_id, pipeline_name, input_object, str(exc))
        return {"started": False, "runId": run_id, "reason": str(exc)}
    try:
        response = clients.stepfunctions.start_execution(
            stateMachineArn=state_machine_arn,
            name=run_id,
            input=json.dumps(execution_input(pipeline_name, run_id, input_object), sort_keys=True),
        )
    except clients.stepfunctions.exceptions.ExecutionAlreadyExists:
        # The run for this object version already happened: a duplicate event, nothing new to do.
        return {
            "started": False,
            "runId": run_id,
            "reason": "duplicate: this object version already has a run",
        }
    return {"started": True, "runId": run_id, "executionArn": response["executionArn"]}


def _publish_unrouted(
    clients: AwsClients,
    deployment: Deployment,
    run_id: str,
    pipeline: str,
    input_object: dict[str, Any],
    why: str,
) -> None:
    """An upload outside every pipeline's prefix still gets its one clear failure event."""
    detail = build_detail(
        status="FAILED",
        run_id=run_id,
        pipeline=pipeline,
        provider=None,
        runtime=deployment.runtime,
        input_object=input_object,
        jobs=[],
        counts={"input": 0, "sent": 0, "predicted": 0, "failed": 0, "rejected": 0},
        outputs={"predictions": None, "errors": None, "manifest": None},
        timings={"startedAt": None, "finishedAt": iso(utc_now()), "durationSeconds": None},
        error={
            "error": "UnknownPipeline",
            "cause": f"s3://{input_object['bucket']}/{input_object['key']}: {why}; the file was left in place",
        },
    )
    put_outcome(clients.events, deployment.event_bus_name, outcome(detail))
