"""Job state change events: what SageMaker and Bedrock publish to the account's default bus when a job changes.

A job's wait ends at its next poll or at its end event, whichever comes first (WakeJob, ``steps/wake.py``). Only
the job's name and status are read from an event, and only to wake the job's execution early: PollJob then reads
the status from the service, which stays the source of truth. So an event that is duplicated, late, out of order,
about another job or about a job of another deployment changes nothing, and a lost one costs at most one poll
interval.

The shapes are the services' documented ones:
- SageMaker "SageMaker Transform Job State Change" (source ``aws.sagemaker``): ``detail`` mirrors
  DescribeTransformJob (``TransformJobName``, ``TransformJobStatus``...).
  https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html#eventbridge-transform
- Bedrock "Batch Inference Job State Change" (source ``aws.bedrock``, best effort): ``detail`` has
  ``batchJobName``, ``batchJobArn``, ``batchModelId``, ``status`` (and ``failureMessage``, record counts).
  https://docs.aws.amazon.com/bedrock/latest/userguide/monitoring-eventbridge-how-it-works.html

The stack's rules (stacks/notifications.py) and the local runtime's delivery match the patterns built here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from batchline.clock import parse_time
from batchline.naming import JOB_NAME_PREFIX


@dataclass(frozen=True)
class JobEventSource:
    """How one service announces its jobs' state changes."""

    provider: str
    source: str
    detail_type: str
    name_field: str  # the job's name in ``detail``
    status_field: str  # its status in ``detail``
    ended: tuple[str, ...]  # the statuses after which the job never changes again

    def pattern(self) -> dict[str, Any]:
        """The rule's event pattern: this service's ends of Batchline's jobs (names start with the prefix)."""
        return {
            "source": [self.source],
            "detail-type": [self.detail_type],
            "detail": {
                self.name_field: [{"prefix": JOB_NAME_PREFIX}],
                self.status_field: list(self.ended),
            },
        }


SAGEMAKER = JobEventSource(
    provider="sagemaker",
    source="aws.sagemaker",
    detail_type="SageMaker Transform Job State Change",
    name_field="TransformJobName",
    status_field="TransformJobStatus",
    ended=("Completed", "Failed", "Stopped"),
)
BEDROCK = JobEventSource(
    provider="bedrock",
    source="aws.bedrock",
    detail_type="Batch Inference Job State Change",
    name_field="batchJobName",
    status_field="status",
    ended=("Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired"),
)
SOURCES: tuple[JobEventSource, ...] = (SAGEMAKER, BEDROCK)


def announces_job_ends(provider: str) -> bool:
    """Whether the service publishes its jobs' ends (Personalize, Amazon ML and Vertex AI do not: they are polled)."""
    return any(known.provider == provider for known in SOURCES)


@dataclass(frozen=True)
class JobEnd:
    """What an event says: this job ended with this status."""

    provider: str
    job_name: str
    status: str
    time: str | None


def job_end(event: dict[str, Any]) -> JobEnd | None:
    """The job end an event announces, or None: another service, another job (no Batchline prefix), a status that
    is not an end, or a shape this code does not know. Never raises on a foreign event."""
    for known in SOURCES:
        if event.get("source") != known.source or event.get("detail-type") != known.detail_type:
            continue
        detail = event.get("detail")
        if not isinstance(detail, dict):
            return None
        name, status = detail.get(known.name_field), detail.get(known.status_field)
        if not isinstance(name, str) or not name.startswith(JOB_NAME_PREFIX) or status not in known.ended:
            return None
        time = event.get("time")
        return JobEnd(known.provider, name, str(status), time if isinstance(time, str) else None)
    return None


def wake_on_park(event_received_at: str | None, last_look_at: str | None) -> bool:
    """Whether a job about to wait should not wait at all: its end event came in after its last look (the event
    arrived while the job's execution was between two waits, so no waiting task could take it). The last look's
    time is to the second: an event in the same second counts as later, which costs at most one more poll."""
    if not event_received_at:
        return False
    if not last_look_at:
        return True
    return parse_time(event_received_at) >= parse_time(last_look_at)
