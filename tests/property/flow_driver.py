"""The state machine's path through the step functions, called directly (no Step Functions interpreter).

It follows statemachine/batch_prediction.asl.json state by state: PrepareInput, the PrepareShards Map and
MergeShards while the result says ``fanOut``, one SubmitJob/PollJob loop per job of the jobs file (each job's
child execution of RunJobs), PlanCollect, one
CollectUnit per planned unit, AssembleOutput, FinalizeRun; any exception goes where the ASL's Catch sends it
(ReportFailure with ``$.error``). The batch services are the local runtime's emulators, so each step sees what
it sees in ``batchline local run``, at a fraction of the time a full execution takes. The state passes between
steps as the JSON Step Functions would pass, parsed by each step's model as its handler parses it.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from batchline.clock import iso, utc_now
from batchline.config import Deployment
from batchline.layout import RunLayout
from batchline.state import ChunkItem, CollectPlan, JobLook, PreparingRun, RunFacts, RunStart
from batchline.steps import collect, finalize, jobs, prepare
from batchline.steps.run import run_chunks

from batchline_local.runtime import BUCKETS, EVENT_BUS, RUNTIME_LABEL, EmulatedAwsClients, LocalRuntime

TERMINAL = ("SUCCEEDED", "PARTIAL", "FAILED", "STOPPED")
# Polls per job before the driver gives up (the emulators finish in a few).
MAX_POLLS = 25


@dataclass
class Outcome:
    """What a run left for its user: the event detail, and the bytes of each CSV Batchline wrote."""

    detail: dict[str, Any]
    failed_step: str | None = None
    error: dict[str, Any] | None = None
    report_error: str | None = None
    csvs: dict[str, bytes] = field(default_factory=dict)  # name -> bytes (predictions.csv, errors.csv)
    staged: dict[str, bytes] = field(default_factory=dict)  # staged part name -> bytes, as the service reads them

    @property
    def status(self) -> str:
        return str(self.detail.get("status"))


class FlowDriver:
    """Runs uploads through the flow functions inside one LocalRuntime (its moto, emulators and pipelines)."""

    def __init__(self, runtime: LocalRuntime) -> None:
        self.runtime = runtime
        self.clients = EmulatedAwsClients(runtime.emulators, runtime.session)
        self.deployment = Deployment(BUCKETS["inbox"], BUCKETS["work"], BUCKETS["results"], EVENT_BUS, RUNTIME_LABEL)
        self._runs = 0

    def _common(self) -> dict[str, Any]:
        return {"pipelines": self.runtime.pipelines, "deployment": self.deployment, "clients": self.clients}

    def run(self, pipeline: str, name: str, body: bytes) -> Outcome:
        s3 = self.clients.s3
        key = f"{pipeline}/{name}"
        version = s3.put_object(Bucket=BUCKETS["inbox"], Key=key, Body=body)["VersionId"]
        self._runs += 1
        run_id = f"prop-{self._runs:06d}-{time.time_ns() % 10**9:09d}"
        state: dict[str, Any] = {
            "runId": run_id,
            "pipeline": pipeline,
            "input": {"bucket": BUCKETS["inbox"], "key": key, "versionId": version, "size": len(body)},
            "startedAt": iso(utc_now()),
        }
        step = "PrepareInput"
        staged: dict[str, bytes] = {}
        try:
            facts = prepare.prepare_run(RunStart.model_validate(state), **self._common(), time_left=lambda: 900.0)
            state["prepared"] = facts.dump()
            while "fanOut" in state["prepared"]:
                step = "PrepareShards"
                plan = state["prepared"]["fanOut"]["plan"]
                items = json.loads(s3.get_object(Bucket=plan["bucket"], Key=plan["key"])["Body"].read())
                for item in items:
                    prepare.prepare_one_shard(
                        PreparingRun.model_validate(state["prepared"]), item, **self._common(), time_left=lambda: 900.0
                    )
                step = "MergeShards"
                merged = prepare.merge_prepared_shards(PreparingRun.model_validate(state["prepared"]), **self._common())
                state["prepared"] = merged.dump()
            staged = self.staged(pipeline, run_id)
            step = "RunJobs"
            for chunk in run_chunks(self.clients, RunFacts.model_validate(state["prepared"])):
                self._run_job(state["prepared"], chunk.dump())
            step = "PlanCollect"
            plan = collect.plan_collect(RunFacts.model_validate(state["prepared"]), **self._common()).dump()
            step = "CollectUnits"
            units = json.loads(s3.get_object(Bucket=plan["bucket"], Key=plan["key"])["Body"].read())
            for unit in units:
                collect.collect_one_unit(RunFacts.model_validate(state["prepared"]), unit, **self._common())
            step = "AssembleOutput"
            collected = collect.assemble_output(
                RunFacts.model_validate(state["prepared"]), CollectPlan.model_validate(plan), **self._common()
            )
            step = "FinalizeRun"
            outcome = finalize.finalize_run(RunFacts.model_validate(state["prepared"]), collected, **self._common())
            result = Outcome(outcome["detail"])
        except Exception as exc:  # the ASL catches States.ALL on every step and goes to ReportFailure
            cause = json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)})
            error = {"Error": type(exc).__name__, "Cause": cause}
            try:
                outcome = finalize.report_failure({**state, "error": error}, **self._common())
                result = Outcome(outcome["detail"], step, error)
            except Exception as report_exc:  # PublishBareFailure: an event without counts or outputs
                result = Outcome(
                    {"status": "FAILED", "runId": run_id}, step, error, f"{type(report_exc).__name__}: {report_exc}"
                )
        result.staged = staged
        layout = RunLayout(pipeline, run_id, BUCKETS["work"], BUCKETS["results"])
        for location in (layout.predictions, layout.errors):
            with contextlib.suppress(s3.exceptions.NoSuchKey):
                result.csvs[location.key.rsplit("/", 1)[-1]] = s3.get_object(Bucket=location.bucket, Key=location.key)[
                    "Body"
                ].read()
        return result

    def staged(self, pipeline: str, run_id: str) -> dict[str, bytes]:
        """The run's staged parts (input/), as the service read them."""
        s3 = self.clients.s3
        prefix = RunLayout(pipeline, run_id, BUCKETS["work"], BUCKETS["results"]).input_prefix
        listed = s3.list_objects_v2(Bucket=prefix.bucket, Prefix=prefix.key).get("Contents", [])
        return {
            item["Key"].rsplit("/", 1)[-1]: s3.get_object(Bucket=prefix.bucket, Key=item["Key"])["Body"].read()
            for item in listed
        }

    def _run_job(self, prepared: dict[str, Any], chunk: dict[str, Any]) -> dict[str, Any]:
        run, item = RunFacts.model_validate(prepared), ChunkItem.model_validate(chunk)
        job = jobs.submit_job(run, item, **self._common()).dump()
        for _ in range(MAX_POLLS):  # SubmitJob -> IsJobDone -> WaitBeforePoll -> PollJob -> IsJobDone
            if job["status"] in TERMINAL or job.get("ended"):
                return job
            job = jobs.poll_job(run, item, JobLook.model_validate(job), **self._common()).dump()
        raise AssertionError(f"job {job['jobId']} still {job['status']} after {MAX_POLLS} polls")
