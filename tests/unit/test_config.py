import json

import pytest
from batchline.config import PIPELINES_ENV, parse_pipelines, pipelines_from_env
from batchline.errors import ConfigError, UnknownPipeline

GOOD = {
    "churn": {
        "keyColumn": "id",
        "service": {"provider": "sagemaker", "modelName": "churn-model", "predictionColumns": ["p"]},
    }
}


def test_valid_pipeline_is_parsed_with_defaults() -> None:
    pipeline = parse_pipelines(GOOD).get("churn")
    assert pipeline.key_column == "id"
    assert pipeline.provider == "sagemaker"
    assert pipeline.service.instance_type == "ml.m5.large"
    assert pipeline.max_polls <= 2000


def test_missing_field_names_pipeline_and_field() -> None:
    bad = {"churn": {"keyColumn": "id", "service": {"provider": "sagemaker"}}}
    with pytest.raises(ConfigError) as error:
        parse_pipelines(bad)
    assert "pipeline 'churn'" in str(error.value)
    assert "service.modelName" in str(error.value)


def test_unknown_field_is_an_error_not_silently_ignored() -> None:
    bad = {"churn": {**GOOD["churn"], "keyColum": "typo"}}
    with pytest.raises(ConfigError, match="keyColum"):
        parse_pipelines(bad)


def test_unknown_provider_is_refused() -> None:
    bad = {"x": {"keyColumn": "id", "service": {"provider": "watson"}}}
    with pytest.raises(ConfigError, match="pipeline 'x'"):
        parse_pipelines(bad)


@pytest.mark.parametrize("name", ["Upper", "has_underscore", "-lead", "x" * 41])
def test_pipeline_names_must_be_safe_for_keys_and_job_names(name: str) -> None:
    with pytest.raises(ConfigError, match="field 'name'"):
        parse_pipelines({name: GOOD["churn"]})


def test_unknown_pipeline_lists_the_configured_ones() -> None:
    with pytest.raises(UnknownPipeline, match="configured: churn"):
        parse_pipelines(GOOD).get("other")


def test_environment_round_trip_keeps_the_same_model(monkeypatch: pytest.MonkeyPatch) -> None:
    pipelines = parse_pipelines(GOOD)
    monkeypatch.setenv(PIPELINES_ENV, pipelines.to_env_json())
    assert pipelines_from_env() == pipelines
    assert json.loads(pipelines.to_env_json())["churn"]["service"]["modelName"] == "churn-model"


def test_missing_environment_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PIPELINES_ENV, raising=False)
    with pytest.raises(ConfigError, match=PIPELINES_ENV):
        pipelines_from_env()
