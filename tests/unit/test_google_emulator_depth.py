"""The Google fake refuses the batch prediction jobs Vertex AI refuses (REST reference, BatchPredictionJob)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from batchline_local.emulators.google_cloud import invalid_job

JOB: dict[str, Any] = {
    "displayName": "bl-x-0",
    "model": "projects/p/locations/europe-west12/models/m",
    "inputConfig": {"instancesFormat": "jsonl", "gcsSource": {"uris": ["gs://b/in/*"]}},
    "outputConfig": {"predictionsFormat": "jsonl", "gcsDestination": {"outputUriPrefix": "gs://b/out/"}},
    "dedicatedResources": {
        "machineSpec": {"machineType": "g2-standard-8", "acceleratorType": "NVIDIA_L4", "acceleratorCount": 2},
        "startingReplicaCount": 1,
        "maxReplicaCount": 3,
    },
    "manualBatchTuningParameters": {"batchSize": 32},
    "labels": {"batchline-job": "bl-x-0", "team": "risk"},
    "encryptionSpec": {"kmsKeyName": "projects/p/locations/europe-west12/keyRings/r/cryptoKeys/k"},
    "disableContainerLogging": True,
}


def changed(path: str, value: Any) -> dict[str, Any]:
    job = copy.deepcopy(JOB)
    *parents, last = path.split(".")
    target = job
    for part in parents:
        target = target[part]
    if value is None:
        del target[last]
    else:
        target[last] = value
    return job


def test_a_documented_job_with_accelerators_labels_and_cmek_is_taken() -> None:
    assert invalid_job(JOB, location="europe-west12") is None


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("dedicatedResources.machineSpec.machineType", None, "machineType is required"),
        ("dedicatedResources.machineSpec.acceleratorType", "NVIDIA_GTX_1080", "is not an AcceleratorType"),
        ("dedicatedResources.machineSpec.acceleratorCount", 0, "acceleratorCount must be at least 1"),
        ("dedicatedResources.machineSpec.acceleratorType", None, "acceleratorCount needs an acceleratorType"),
        ("dedicatedResources.startingReplicaCount", 4, "startingReplicaCount 4 is greater than maxReplicaCount 3"),
        ("dedicatedResources.maxReplicaCount", 0, "maxReplicaCount must be a positive integer"),
        ("manualBatchTuningParameters.batchSize", 0, "batchSize must be a positive integer"),
        ("labels", {"Team": "risk"}, "lowercase"),
        ("labels", {"team": "Risk"}, "lowercase"),
        ("encryptionSpec.kmsKeyName", "my-key", "is not projects/"),
        ("encryptionSpec.kmsKeyName", "projects/p/locations/us-east1/keyRings/r/cryptoKeys/k", "not the job's"),
        ("displayName", None, "displayName is required"),
    ],
)
def test_a_job_vertex_would_refuse_is_refused(path: str, value: Any, reason: str) -> None:
    assert reason in (invalid_job(changed(path, value), location="europe-west12") or "")


def test_an_accelerator_without_a_machine_type_is_refused() -> None:
    job = changed("dedicatedResources.machineSpec", {"acceleratorType": "NVIDIA_L4", "acceleratorCount": 1})
    assert "machineType is required" in (invalid_job(job, location="europe-west12") or "")
