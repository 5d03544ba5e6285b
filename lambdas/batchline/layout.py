"""Where a run's objects live. One place decides every key, so retries write to the same keys.

work bucket:    <pipeline>/<run-id>/input/part-00000.<ext>   staged provider input
                <pipeline>/<run-id>/index/part-00000.lines   source line number of each staged record
                <pipeline>/<run-id>/output/...               raw service output (kept)
                <pipeline>/<run-id>/rejected.csv             rows Prepare refused
                <pipeline>/<run-id>/failed.csv               records the service did not predict
results bucket: <pipeline>/<run-id>/predictions.csv, errors.csv, manifest.json
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

    def input_part(self, index: int, suffix: str) -> S3Location:
        return S3Location(self.work_bucket, f"{self._prefix}input/part-{index:05d}{suffix}")

    def index_for(self, part_name: str) -> S3Location:
        """Sidecar with the source line of each record of a staged part (kept out of the service's input)."""
        return S3Location(self.work_bucket, f"{self._prefix}index/{part_name}.lines")

    @property
    def output_prefix(self) -> S3Location:
        return S3Location(self.work_bucket, self._prefix + "output/")

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
