from batchline.clients import _CONFIG


def test_every_aws_call_retries_throttling_with_jittered_backoff() -> None:
    # botocore's "standard" mode retries throttling and transient errors with exponential, jittered back-off.
    # (botocore rewrites max_attempts as total_max_attempts once a client has used the config.)
    retries = _CONFIG.retries
    assert retries["mode"] == "standard"
    assert retries.get("max_attempts", retries.get("total_max_attempts", 0) - 1) >= 5
