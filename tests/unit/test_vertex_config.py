"""Vertex AI settings are checked at synth, each refusal naming the field and the reason."""

from __future__ import annotations

from typing import Any

import pytest
from batchline.config import parse_pipelines
from batchline.errors import ConfigError

FEDERATION = {
    "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/aws",
    "serviceAccountEmail": "runner@proj-12345.iam.gserviceaccount.com",
}
PUBLISHER = "publishers/google/models/gemini-2.0-flash-001"


def parsed(**service: Any) -> Any:
    body = {
        "provider": "vertex",
        "project": "proj-12345",
        "location": "us-central1",
        "model": "m",
        "gcsPrefix": "gs://bucket/base",
        "federation": FEDERATION,
        **service,
    }
    return parse_pipelines({"v": {"keyColumn": "id", "service": body}})


@pytest.mark.parametrize(
    ("service", "words"),
    [
        ({"instancesFormat": "tf-record"}, "tf-record is refused"),
        ({"instancesFormat": "file-list"}, "file-list and fileColumn go together"),
        ({"fileColumn": "uri"}, "file-list and fileColumn go together"),
        ({"instancesFormat": "file-list", "fileColumn": "uri", "numericColumns": ["x"]}, "content only"),
        ({"instancesFormat": "parquet"}, "instancesFormat"),
        ({"predictionsFormat": "bigquery"}, "predictionsFormat bigquery and bigqueryDestination go together"),
        ({"bigqueryDestination": "bq://proj-12345.out"}, "go together"),
        ({"predictionsFormat": "csv"}, "predictionsFormat"),
        ({"bigquerySource": "bq://proj-12345.in.table"}, "bigquerySource"),
        ({"bigquerySource": "proj-12345.in"}, "bigquerySource"),
        ({"bigquerySource": "bq://proj-12345.in", "instancesFormat": "csv"}, "instancesFormat csv does not apply"),
        ({"bigquerySource": "bq://proj-12345.in", "featureColumns": ["petal width"]}, "cannot be a BigQuery column"),
        ({"model": PUBLISHER, "machineType": "n1-standard-8"}, "publisher model"),
        ({"model": PUBLISHER, "batchSize": 8}, "manualBatchTuningParameters (batchSize)"),
        ({"model": PUBLISHER, "generateExplanation": True}, "takes no generateExplanation"),
        ({"explanationSpec": {"parameters": {}}}, "explanationSpec is taken only with generateExplanation"),
        ({"generateExplanation": True, "explanationSpec": {"params": {}}}, "explanationSpec"),
        ({"modelParameters": [1, 2]}, "modelParameters"),
        ({"modelParameters": "hot"}, "modelParameters"),
        ({"startingReplicaCount": 3}, "must not exceed maxReplicaCount (1)"),
    ],
)
def test_a_setting_vertex_would_refuse_fails_synth_naming_it(service: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match="pipeline 'v'") as raised:
        parsed(**service)
    assert words in str(raised.value)


def test_the_settings_vertex_takes_survive_the_trip_to_the_functions() -> None:
    """Defaults left unset stay unset in the functions' config file, so a publisher model parses there too."""
    for service in (
        {"model": PUBLISHER, "modelParameters": {"temperature": 0.1}},
        {
            "bigquerySource": "bq://proj-12345.in",
            "predictionsFormat": "bigquery",
            "bigqueryDestination": "bq://proj-12345.out",
            "bigqueryLocation": "US",
            "generateExplanation": True,
            "explanationSpec": {"parameters": {"topK": 3}, "metadata": {"inputs": {}}},
        },
        {"instancesFormat": "csv", "numericColumns": ["x"]},
        {"instancesFormat": "file-list", "fileColumn": "uri", "model": PUBLISHER},
    ):
        pipelines = parsed(**service)
        again = parse_pipelines(pipelines.to_env())
        assert again.get("v").service == pipelines.get("v").service
    assert parsed(model=PUBLISHER).get("v").service.is_publisher_model
    assert parsed(model="projects/p/locations/l/publishers/google/models/x").get("v").service.is_publisher_model
    assert not parsed().get("v").service.is_publisher_model
