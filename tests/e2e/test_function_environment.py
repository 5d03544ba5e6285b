"""Each local Lambda invocation sees its function's environment, and no other thread ever does (issue 14, point 5).

The runtime used to swap the process's os.environ around each handler call while moto's Map threads and boto
read it; under load runs failed with a KeyError on a random variable.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from batchline_local.runtime import REGION, LocalRuntime, load_pipeline_context
from tests.e2e.conftest import write_csv

pytestmark = pytest.mark.timeout(240)
JOBS = 40
PIPELINES = {
    **load_pipeline_context(),
    "b-many": {
        "keyColumn": "id",
        "maxConcurrentJobs": JOBS,
        "service": {
            "provider": "bedrock",
            "modelId": "amazon.nova-lite-v1:0",
            "roleArn": "arn:aws:iam::123456789012:role/bedrock-batch",
            "promptTemplate": "Summarise: {text}",
            "minRecordsPerJob": 2,
            "maxRecordsPerJob": 3,
            "recordsPerFile": 3,
        },
    },
}


class EnvironmentWatcher:
    """Threads that read the process's environment the ways boto, urllib and Powertools do, and note surprises."""

    def __init__(self, threads: int = 2) -> None:
        self.problems: set[str] = set()
        self.reads = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._watch, daemon=True) for _ in range(threads)]

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                if os.environ["AWS_REGION"] != REGION or os.getenv("AWS_DEFAULT_REGION") != REGION:
                    self.problems.add("region changed")
                for name in ("RESULTS_BUCKET", "BATCHLINE_PIPELINES_FILE", "PROBE"):
                    if name in os.environ:
                        self.problems.add(f"a function's {name} is visible outside it")
                dict(os.environ.items())  # urllib's getproxies_environment() iterates items()
                os.environ.copy()
            except Exception as exc:  # a KeyError or RuntimeError while the mapping changes under us
                self.problems.add(f"{type(exc).__name__}: {exc}")
            self.reads += 1
            time.sleep(0.0005)  # leave the run most of the interpreter

    def __enter__(self) -> EnvironmentWatcher:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(PIPELINES) as local:
        yield local


def test_many_concurrent_jobs_never_show_a_function_environment_to_other_threads(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    # GIVEN an upload that makes 40 Bedrock jobs, all running at once (the RunJobs Map's threads)
    upload = write_csv(tmp_path / "many.csv", ["id", "text"], [[f"r{n}", f"text {n}"] for n in range(3 * JOBS)])

    # WHEN it runs while other threads keep reading the process's environment
    with EnvironmentWatcher() as watcher:
        result = runtime.run_file(upload, "b-many")

    # THEN the run succeeded with every record, and no reader ever saw a function's variable or a missing one
    assert result.status == "SUCCEEDED", result.event
    assert result.event is not None and result.event["detail"]["counts"]["predicted"] == 3 * JOBS
    assert result.event["detail"]["jobCount"] == JOBS
    assert watcher.reads > 100
    assert watcher.problems == set(), sorted(watcher.problems)[:5]


def test_each_invocation_sees_its_own_function_environment(runtime: LocalRuntime) -> None:
    # GIVEN 20 functions, each with its own value of PROBE and of a setting botocore reads (AWS_MAX_ATTEMPTS)
    lam = runtime.client("lambda")
    role = "arn:aws:iam::123456789012:role/batchline-local"
    names = []
    for index in range(20):
        name = f"env-probe-{index}"
        lam.create_function(
            FunctionName=name,
            Runtime="python3.13",
            Role=role,
            Handler="tests.e2e.env_probe.handler",
            Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},  # an empty zip: the handler runs from the repository
            Environment={"Variables": {"PROBE": str(index), "AWS_MAX_ATTEMPTS": str(index + 1)}},
        )
        names.append(name)

    def invoke(name: str) -> dict[str, Any]:
        payload = lam.invoke(FunctionName=name, Payload=b"{}")
        return dict(json.loads(payload["Payload"].read()))

    # WHEN they are invoked from many threads at once, five times over, while other threads read the environment
    with EnvironmentWatcher() as watcher, ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(invoke, names * 5))

    # THEN each invocation saw its own function's values, through every way of reading them
    for name, seen in zip(names * 5, results, strict=True):
        index = name.rsplit("-", 1)[1]
        assert seen == {
            "item": index,
            "first": index,
            "getenv": index,
            "get": index,
            "inCopy": index,
            "botocoreMaxAttempts": int(index) + 1,
            "region": REGION,
        }, seen
    assert watcher.problems == set(), sorted(watcher.problems)[:5]
    # AND the process's environment never took a function's variable
    assert "PROBE" not in os.environ
