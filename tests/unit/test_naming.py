import re

from batchline.naming import job_name_for, run_id_for

SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
EXECUTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


def test_same_object_version_gives_same_run_id() -> None:
    assert run_id_for("p", "b", "p/x.csv", "v1") == run_id_for("p", "b", "p/x.csv", "v1")


def test_new_object_version_gives_new_run_id() -> None:
    assert run_id_for("p", "b", "p/x.csv", "v1") != run_id_for("p", "b", "p/x.csv", "v2")


def test_run_id_is_a_valid_execution_name_for_long_pipelines_and_odd_keys() -> None:
    run_id = run_id_for("a" * 40, "bucket", "a/ünïcode key with spaces.csv", None)
    assert EXECUTION_NAME.match(run_id)
    assert run_id.startswith("a" * 40)


def test_job_name_is_valid_for_sagemaker_and_starts_with_the_iam_prefix() -> None:
    name = job_name_for(run_id_for("demo-sagemaker", "b", "k", "v"))
    assert SAGEMAKER_NAME.match(name)
    assert name.startswith("bl-")
    assert len(name) <= 63


def test_job_name_is_deterministic_and_distinct_per_run() -> None:
    first, second = run_id_for("p", "b", "k", "1"), run_id_for("p", "b", "k", "2")
    assert job_name_for(first) == job_name_for(first)
    assert job_name_for(first) != job_name_for(second)
