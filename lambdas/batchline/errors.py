"""Named exceptions: the contract between the Lambda code and the state machine.

Step Functions sees a Lambda error by its class name (``errorType``), so the ASL's Retry and Catch
rules name these classes exactly. Never classify errors by their message text.
"""

from __future__ import annotations


class BatchlineError(Exception):
    """Base class: every error the pipeline raises on purpose."""


class ConfigError(BatchlineError):
    """The pipeline configuration is missing or invalid (names the pipeline and field)."""


class UnknownPipeline(BatchlineError):
    """An upload or a command names a pipeline that is not configured."""


class InputRejected(BatchlineError):
    """The whole input file cannot be used (empty, no header, missing key column, unreadable)."""


class InputTooLarge(InputRejected):
    """Prepare could not read the whole file in its function's time: the file must be split (retrying cannot help)."""


class RunDeadlineExceeded(BatchlineError):
    """The run passed its deadline (maxRunHours) before its jobs could finish."""


class PollLimitReached(BatchlineError):
    """A job was polled maxPolls times and is still running."""


class JobStepFailed(BatchlineError):
    """Submitting or polling one job failed for a reason its own execution could not handle (message names it)."""


class ServiceThrottled(BatchlineError):
    """The ML service throttled us; the state machine retries with jittered back-off."""


class QuotaFull(BatchlineError):
    """The service's concurrent-job quota is full; the state machine waits for a slot and retries."""


class JobFailed(BatchlineError):
    """Every job of the run ended without results (the message carries each service's reason)."""


class JobConflict(BatchlineError):
    """A job with our deterministic name exists but was created with different parameters."""


class ServiceUnavailable(BatchlineError):
    """The account cannot use the service (for example a closed service) or lacks permission."""


class EventNotDelivered(BatchlineError):
    """EventBridge refused an outcome event (raised so the caller's retry, or its dead-letter queue, keeps it)."""


class OutputMissing(BatchlineError):
    """The job finished but the expected output is not where the service said it would be."""


class OutputInvalid(BatchlineError):
    """The service output cannot be matched back to the input (keys out of step, bad rows)."""


class ServiceRequestFailed(BatchlineError):
    """A service refused a request for a reason retrying will not fix (the message names call and status)."""


class JobNotFound(OutputInvalid):
    """describe(): the service answered that it has no job by this ID (a 404, or no job carries our label), so it
    was never created. Only this error means so: any other error while looking says nothing about the job."""
