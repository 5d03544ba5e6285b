"""How long to wait before the next status poll."""

from __future__ import annotations


def next_wait_seconds(elapsed_seconds: float, *, minimum: int, maximum: int) -> int:
    """A tenth of the time the job has run, within [minimum, maximum].

    Waiting in proportion to the elapsed time means the run learns a job ended at most ~10% of
    its duration late, while a week-long job costs a few hundred polls rather than thousands.
    """
    return int(min(max(elapsed_seconds * 0.1, minimum), maximum))


# With the service's job end events, a poll is only the fallback for a lost event: the wait is this many times
# longer (a third of the polls or fewer), and the event ends it early.
EVENT_WAIT_FACTOR = 4


def next_wait_seconds_with_events(elapsed_seconds: float, *, minimum: int, maximum: int) -> int:
    """The wait before the next poll when the job's end event can end it first: EVENT_WAIT_FACTOR times the plain
    back-off, so a lost event costs at most that long."""
    return EVENT_WAIT_FACTOR * next_wait_seconds(elapsed_seconds, minimum=minimum, maximum=maximum)
