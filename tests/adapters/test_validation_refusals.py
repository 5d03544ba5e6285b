"""`batchline validate` runs each service's own encoder: whatever Prepare would refuse, it lists by line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from batchline.adapters.amazonml import AmazonMLCsvEncoder, batch_schema
from batchline.adapters.bedrock import BedrockJsonEncoder
from batchline.adapters.sagemaker import SageMakerCsvEncoder
from batchline.adapters.vertex import VertexJsonEncoder
from batchline.config import parse_pipelines
from batchline.csvsafe import format_row
from batchline.validation import validate_file

SCHEMA = {
    "version": "1.0",
    "targetAttributeName": "y",
    "attributes": [
        {"attributeName": "x", "attributeType": "NUMERIC"},
        {"attributeName": "y", "attributeType": "BINARY"},
    ],
}
SERVICES: dict[str, dict[str, Any]] = {
    "sagemaker": {"provider": "sagemaker", "modelName": "m"},
    "amazonml": {"provider": "amazonml", "mlModelId": "ml-1", "modelType": "BINARY", "dataSchema": SCHEMA},
    "vertex": {
        "provider": "vertex",
        "project": "proj-12345",
        "location": "us-central1",
        "model": "m",
        "gcsPrefix": "gs://bucket/base",
        "federation": {
            "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/aws",
            "serviceAccountEmail": "runner@proj-12345.iam.gserviceaccount.com",
        },
        "numericColumns": ["x"],
    },
    "bedrock": {
        "provider": "bedrock",
        "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
        "roleArn": "arn:aws:iam::123456789012:role/b",
        "promptColumn": "x",
        "minRecordsPerJob": 1,
    },
}


def encoder_for(provider: str, pipeline: Any) -> Any:
    service = pipeline.service
    if provider == "sagemaker":
        return SageMakerCsvEncoder(service)
    if provider == "amazonml":
        return AmazonMLCsvEncoder(service, batch_schema(SCHEMA, "id"))
    if provider == "vertex":
        return VertexJsonEncoder(service, "id")
    return BedrockJsonEncoder(service)


@pytest.mark.parametrize(
    ("provider", "bad", "reason"),
    [
        ("sagemaker", "1\n2", "line break"),
        ("amazonml", "1\r2", "column 'x' holds a line break"),
        ("vertex", "NaN", "column 'x' is not a JSON number"),
        ("vertex", "1e400", "column 'x' is too large"),
        ("bedrock", "   ", "prompt is empty"),
    ],
)
def test_validate_lists_what_the_encoder_refuses(provider: str, bad: str, reason: str, tmp_path: Path) -> None:
    pipeline = parse_pipelines({"p": {"keyColumn": "id", "service": SERVICES[provider]}}).get("p")
    path = tmp_path / "in.csv"
    rows = [["id", "x"], ["ok", "1"], ["=bad\r", bad], ["ok2", "2"]]
    path.write_text("".join(format_row(row) for row in rows), encoding="utf-8")

    report = validate_file(path, pipeline, encoder_for(provider, pipeline))

    assert (report["records"], report["sent"], report["rejected"], report["error"]) == (3, 2, 1, None)
    (rejection,) = report["rejections"]
    assert (rejection["line"], rejection["key"]) == (3, "=bad\r")
    assert reason in rejection["reason"]
