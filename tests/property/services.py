"""The test pipelines: one per service, read whole (``prop-<service>``) and cut into shards (``-cut``).

Small parts, jobs, shards and collect units, so a file of a dozen records crosses every boundary the flow
has: several staged parts, several collect units, and (``-cut``) a Prepare fan-out over 256-byte shards.
"""

from __future__ import annotations

from typing import Any

from tests.property.hostile import Shape

DEMO_FEDERATION = {
    "audience": "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/p/providers/aws",
    "serviceAccountEmail": "batchline-runner@batchline-demo.iam.gserviceaccount.com",
}
SERVICES: dict[str, dict[str, Any]] = {
    "sagemaker": {
        "provider": "sagemaker",
        "modelName": "batchline-demo-churn",
        "predictionColumns": ["score"],
        "numericFeatures": True,  # as the demo: a bad value is one errors.csv row, not a failed file
        "recordsPerFile": 3,
    },
    "personalize": {
        "provider": "personalize",
        "recipe": "USER_PERSONALIZATION",
        "solutionVersionArn": "arn:aws:personalize:us-east-1:123456789012:solution/batchline-prop/abcdef12",
        "roleArn": "arn:aws:iam::123456789012:role/batchline-prop-personalize",
        "numResults": 2,
        "recordsPerFile": 3,
    },
    "bedrock": {
        "provider": "bedrock",
        "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
        "roleArn": "arn:aws:iam::123456789012:role/batchline-prop-bedrock",
        "promptColumn": "prompt",
        "maxTokens": 16,
        "minRecordsPerJob": 1,
        "recordsPerFile": 3,
    },
    "amazonml": {
        "provider": "amazonml",
        "mlModelId": "ml-prop-binary",
        "modelType": "BINARY",
        "recordsPerFile": 3,
    },
    "vertex": {
        "provider": "vertex",
        "project": "batchline-demo",
        "location": "us-central1",
        "model": "1234567890",
        "gcsPrefix": "gs://batchline-prop-staging/batchline",
        "numericColumns": ["f1", "f2"],
        "predictionFields": ["label", "score"],
        "federation": DEMO_FEDERATION,
        "recordsPerFile": 3,
    },
}
SHAPES: dict[str, Shape] = {
    "sagemaker": Shape("id", numeric=("f1", "f2")),
    "personalize": Shape("userId", text=("segment",)),
    "bedrock": Shape("id", text=("prompt",)),
    "amazonml": Shape("id", text=("plan",), numeric=("age", "monthly_spend")),
    "vertex": Shape("id", text=("note",), numeric=("f1", "f2")),
}
PROVIDERS = tuple(SERVICES)
CUT_SHARD_BYTES = 256  # the smallest prepareShardBytes the config allows
CUT_MIN_BYTES = 700  # a cut upload is at least this long, so it is cut at least twice


def pipeline_name(provider: str, *, cut: bool) -> str:
    return f"prop-{provider}" + ("-cut" if cut else "")


def pipelines() -> dict[str, Any]:
    common = {"collectUnitRecords": 2, "maxConcurrentJobs": 2}
    raw: dict[str, Any] = {}
    for provider, service in SERVICES.items():
        key = SHAPES[provider].key
        # Whole reads draw 140 KB cells: 1 KiB collect shards would make hundreds of units of one output line.
        raw[pipeline_name(provider, cut=False)] = {
            "keyColumn": key,
            **common,
            "collectShardBytes": 64 * 1024,
            "service": service,
        }
        raw[pipeline_name(provider, cut=True)] = {
            "keyColumn": key,
            **common,
            "collectShardBytes": 1024,
            "prepareShardBytes": CUT_SHARD_BYTES,
            "service": service,
        }
    return raw
