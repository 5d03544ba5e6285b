"""How long to wait before the next status poll."""

from __future__ import annotations


def next_wait_seconds(elapsed_seconds: float, *, minimum: int, maximum: int) -> int:
    """A tenth of the time the job has run, within [minimum, maximum].

    Waiting in proportion to the elapsed time means the run learns a job ended at most ~10% of
    its duration late, while a week-long job costs a few hundred polls rather than thousands.
    """
    return int(min(max(elapsed_seconds * 0.1, minimum), maximum))
