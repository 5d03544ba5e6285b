from batchline.clients import _CONFIG


def test_every_aws_call_retries_throttling_with_jittered_backoff() -> None:
    # botocore's "standard" mode retries throttling and transient errors with exponential, jittered back-off.
    assert _CONFIG.retries == {"mode": "standard", "max_attempts": 6}
