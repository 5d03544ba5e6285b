from batchline.backoff import next_wait_seconds


def test_wait_is_a_tenth_of_elapsed_within_bounds() -> None:
    assert next_wait_seconds(0, minimum=30, maximum=900) == 30
    assert next_wait_seconds(3600, minimum=30, maximum=900) == 360
    assert next_wait_seconds(7 * 86400, minimum=30, maximum=900) == 900


def test_polls_for_a_week_long_job_stay_far_below_the_history_limit() -> None:
    elapsed, polls = 0.0, 0
    while elapsed < 7 * 86400:
        elapsed += next_wait_seconds(elapsed, minimum=30, maximum=900)
        polls += 1
    # Each poll turn is about 5 history events (Wait entered/exited, Task scheduled/started/succeeded...).
    assert polls * 10 < 25_000
