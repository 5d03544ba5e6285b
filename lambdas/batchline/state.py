"""The execution's state: one typed model for everything a step reads from it or writes to it.

Step Functions passes JSON between the steps; these models say what that JSON is, under the same camelCase
names the ASL file's paths use (``$.prepared.jobsFile.key``). A step builds what it returns with them and
parses what it is given with them, so a field cannot be renamed in one place and read under its old name in
another: ``tests/unit/test_state_paths.py`` checks that every path the ASL file reads resolves to a field here.

Nothing here grows with the input: what does (the jobs, the Collect units, the shards) lives in S3 under the
run's prefix, and the state carries where it is and how many there are.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from batchline.layout import RunLayout
from batchline.s3io import open_object


class _State(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are kept (an older or newer step may add one)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    def dump(self) -> dict[str, Any]:
        """The JSON the state machine passes on: the fields that were given (a field left out stays out)."""
        return self.model_dump(by_alias=True, mode="json", exclude_unset=True)


class S3Pointer(_State):
    """An object a Distributed Map reads its items from."""

    bucket: str
    key: str


class UploadedObject(_State):
    """The upload that started the run (one object version)."""

    bucket: str
    key: str
    version_id: str | None = None
    size: int | None = None
    etag: str | None = None


class Counts(_State):
    """What Prepare found: every input record is sent or rejected."""

    input: int
    sent: int
    rejected: int


class FanOut(_State):
    """A Prepare that cut the upload: the plan its PrepareShards Map reads, and which round this is."""

    plan: S3Pointer
    shards: int
    round: int
    max_concurrency: int
    redo: int | None = None  # shards read again because they hold a repeated key


class RunStart(_State):
    """What StartRun gives the execution, and what every later fact of the run starts from."""

    run_id: str
    pipeline: str
    input: UploadedObject
    started_at: str | None = None
    provider: str | None = None


class PreparingRun(RunStart):
    """``$.prepared`` while a cut upload is being prepared by shards."""

    fan_out: FanOut


class RunFacts(RunStart):
    """``$.prepared`` once the input is staged: what every later step of the run reads."""

    started_at: str
    provider: str
    deadline: str
    max_polls: int
    max_concurrent_jobs: int
    counts: Counts
    staging: dict[str, Any]  # the adapter's facts about the input (key header, feature columns...)
    jobs_file: S3Pointer  # the run's jobs (one chunk of the input each): what RunJobs reads
    job_count: int
    rejected_uri: str | None = None
    # The service announces its jobs' ends (SageMaker, Bedrock) and the pipeline listens: each job's wait ends at
    # its next poll or at its end event, whichever comes first (AwaitJobEnd). Otherwise a plain Wait.
    job_events: bool | None = None


class ChunkItem(_State):
    """One item of the jobs file: the share of the input one service job handles."""

    index: int
    input_prefix: str
    output_prefix: str
    records: int


class JobLook(_State):
    """One look at a service job (``$.job`` in its child execution, and ``state/job-NNNNN.json`` in S3)."""

    chunk: int
    job_id: str | None
    status: Literal["PENDING", "RUNNING", "SUCCEEDED", "PARTIAL", "FAILED", "STOPPED"]
    raw_status: str | None = None
    message: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    # The service's own timing and consumption figures (adapters.base.JOB_FIGURES).
    figures: dict[str, Any] = Field(default_factory=dict)
    poll_count: int | None = None
    checked_at: str | None = None
    wait_seconds: int | None = None
    # Set when the job's execution stopped waiting: the error PlanCollect fails the run with, and why.
    ended: str | None = None
    cause: str | None = None


def read_job_looks(s3: Any, layout: RunLayout, jobs: int) -> dict[int, JobLook]:
    """Each job's last look, by chunk, as its child execution recorded it (``state/job-NNNNN.json``); a job that
    recorded none yet (not submitted, or its execution never started) is left out."""
    looks: dict[int, JobLook] = {}
    for index in range(jobs):
        try:
            with open_object(s3, layout.job_state(index)) as body:
                looks[index] = JobLook.model_validate(json.load(body))
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("NoSuchKey", "404"):
                raise
    return looks


class StepError(_State):
    """What a Catch puts at its ResultPath: Step Functions' own two fields."""

    model_config = ConfigDict(alias_generator=None, populate_by_name=True, extra="allow")

    Error: str
    Cause: str | None = None


class CollectPlan(_State):
    """``$.collectPlan``: where CollectUnits reads its units, and how many run at once."""

    units: int
    bucket: str
    key: str
    max_concurrency: int


class Outcome(_State):
    """``$.outcome``: the event the run publishes (the PutEvents task's entry)."""

    source: str
    detail_type: str
    detail: dict[str, Any]  # the event schema (schemas/batch-prediction-event.v1.json) says what it holds


class ExecutionState(_State):
    """The run's own execution, as its steps add to it (each ``ResultPath`` is a field)."""

    run_id: str
    pipeline: str
    input: UploadedObject
    prepared: RunFacts | PreparingRun | None = None
    collect_plan: CollectPlan | None = None
    collected: dict[str, Any] | None = None  # AssembleOutput's counts and predictions.csv facts
    outcome: Outcome | None = None
    published: dict[str, Any] | None = None  # the PutEvents task's response
    error: StepError | None = None
    report_error: StepError | None = None
    publish_error: StepError | None = None
    dead_lettered: dict[str, Any] | None = None  # the SendMessage task's response
    dead_letter_error: StepError | None = None


class JobExecutionState(_State):
    """A RunJobs child execution: one service job."""

    run: RunFacts
    chunk: ChunkItem
    job: JobLook | None = None
    error: StepError | None = None
    wake: dict[str, Any] | None = None  # how AwaitJobEnd ended: SendTaskSuccess's output, or States.Timeout
