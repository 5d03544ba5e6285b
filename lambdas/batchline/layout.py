"""Where a run's objects live. One place decides every key, so retries write to the same keys.

work bucket:    <pipeline>/<run-id>/input/part-00000.<ext>   staged provider input (the job's input when
                                                             the run needs a single job)
                <pipeline>/<run-id>/jobs/job-00000/...       copies of the parts one job reads, when the
                                                             input is split over several jobs
                <pipeline>/<run-id>/index/part-00000.<ext>.index.csv   line, key, record ID per record
                <pipeline>/<run-id>/output/job-00000/...     raw service output (kept)
                <pipeline>/<run-id>/collect/units.json       Collect's plan: one item per unit of work
                <pipeline>/<run-id>/collect/unit-00000.*     each unit's rows (.csv), failures, keys, summary
                <pipeline>/<run-id>/state/jobs.json          the run's jobs, one item each (RunJobs reads it)
                <pipeline>/<run-id>/state/job-00000.json     each job's last look (its own execution writes it)
                <pipeline>/<run-id>/rejected.csv             rows Prepare refused
                <pipeline>/<run-id>/failed.csv               records the service did not predict
                wake/<job-name>.json                         a waiting job's task token (WakeJob), by job name
                wake/<job-name>.event.json                   its end event, once one came (WakeJob)
results bucket: <pipeline>/<run-id>/predictions.csv, errors.csv, manifest.json, report.html

The wake objects are keyed by the job's name alone: that is all a service's job event gives (the name is a digest
of the run ID, which cannot be read back from it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        if not uri.startswith("s3://") or "/" not in uri[5:]:
            raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
        bucket, key = uri[5:].split("/", 1)
        return cls(bucket, key)


@dataclass(frozen=True)
class RunLayout:
    pipeline: str
    run_id: str
    work_bucket: str
    results_bucket: str

    @property
    def _prefix(self) -> str:
        return f"{self.pipeline}/{self.run_id}/"

    @property
    def input_prefix(self) -> S3Location:
        return S3Location(self.work_bucket, self._prefix + "input/")

    def input_part(self, part_name: str) -> S3Location:
        return S3Location(self.work_bucket, f"{self._prefix}input/{part_name}")

    def index_for(self, part_name: str) -> S3Location:
        """Line, key and record ID of each record of a part (kept out of the service's input)."""
        return S3Location(self.work_bucket, f"{self._prefix}index/{part_name}.index.csv")

    def job_input_prefix(self, job_index: int, jobs: int) -> S3Location:
        if jobs == 1:
            return self.input_prefix
        return S3Location(self.work_bucket, f"{self._prefix}jobs/job-{job_index:05d}/")

    def job_output_prefix(self, job_index: int) -> S3Location:
        return S3Location(self.work_bucket, f"{self._prefix}output/job-{job_index:05d}/")

    @property
    def prepare_prefix(self) -> S3Location:
        """Prepare's fan-out: the plan of pieces, each piece's summary, rejected rows, keys and repeats."""
        return S3Location(self.work_bucket, self._prefix + "prepare/")

    def prepare_file(self, name: str) -> S3Location:
        return S3Location(self.work_bucket, f"{self._prefix}prepare/{name}")

    @property
    def jobs_file(self) -> S3Location:
        """The run's jobs: what RunJobs' Distributed Map reads, one child execution per item."""
        return S3Location(self.work_bucket, self._prefix + "state/jobs.json")

    def job_state(self, job_index: int) -> S3Location:
        """A job's last look (status, polls, how it ended), written by its child execution's every step."""
        return S3Location(self.work_bucket, f"{self._prefix}state/job-{job_index:05d}.json")

    @property
    def ended_report(self) -> S3Location:
        """Written once ExecutionEnded has published the run's failure: a second delivery of the same status
        change (EventBridge delivers at least once) publishes nothing more."""
        return S3Location(self.work_bucket, self._prefix + "state/ended.json")

    @property
    def refused_counts(self) -> S3Location:
        """The counts of a file Prepare read whole but refused (too few records for a job...), for its failure event."""
        return S3Location(self.work_bucket, self._prefix + "prepare/refused-counts.json")

    @property
    def collect_plan(self) -> S3Location:
        return S3Location(self.work_bucket, self._prefix + "collect/units.json")

    @property
    def collect_prefix(self) -> S3Location:
        return S3Location(self.work_bucket, self._prefix + "collect/")

    @property
    def collect_parts(self) -> S3Location:
        """Rows, bytes and SHA-256 of each part of predictions.csv (the manifest lists them)."""
        return S3Location(self.work_bucket, self._prefix + "collect/parts.json")

    def collect_unit(self, unit: int, suffix: str) -> S3Location:
        """A unit's output: ``.csv`` prediction rows, ``.failed.csv``, ``.keys.csv``, ``.json`` summary."""
        return S3Location(self.work_bucket, f"{self._prefix}collect/unit-{unit:05d}{suffix}")

    @property
    def rejected(self) -> S3Location:
        return S3Location(self.work_bucket, self._prefix + "rejected.csv")

    @property
    def failed(self) -> S3Location:
        return S3Location(self.work_bucket, self._prefix + "failed.csv")

    @property
    def predictions(self) -> S3Location:
        return S3Location(self.results_bucket, self._prefix + "predictions.csv")

    @property
    def errors(self) -> S3Location:
        return S3Location(self.results_bucket, self._prefix + "errors.csv")

    @property
    def manifest(self) -> S3Location:
        return S3Location(self.results_bucket, self._prefix + "manifest.json")

    @property
    def report(self) -> S3Location:
        """The run's report page (batchline.report), beside predictions.csv."""
        return S3Location(self.results_bucket, self._prefix + "report.html")


WAKE_PREFIX = "wake/"


def wake_token(work_bucket: str, job_name: str) -> S3Location:
    """The task token of the job's current wait (the last one written wins), and whose job it is."""
    return S3Location(work_bucket, f"{WAKE_PREFIX}{job_name}.json")


def wake_event(work_bucket: str, job_name: str) -> S3Location:
    """The job's end event as WakeJob received it: a job about to wait reads it, so an event that came between two
    waits still ends the next one at once."""
    return S3Location(work_bucket, f"{WAKE_PREFIX}{job_name}.event.json")
