import json
from pathlib import Path

import pytest
from batchline.config import (
    PIPELINES_FILE_ENV,
    SERVICE_ROLES_ENV,
    parse_pipelines,
    parse_stack_settings,
    pipelines_from_env,
)
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


def test_config_file_round_trip_keeps_the_same_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pipelines = parse_pipelines(GOOD)
    (tmp_path / "pipelines.json").write_text(pipelines.to_env_json())
    monkeypatch.setenv(PIPELINES_FILE_ENV, str(tmp_path / "pipelines.json"))
    monkeypatch.setenv(SERVICE_ROLES_ENV, "{}")
    assert pipelines_from_env() == pipelines
    assert json.loads(pipelines.to_env_json())["churn"]["service"]["modelName"] == "churn-model"


def test_roles_the_stack_created_are_filled_in(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    raw = {
        "gen": {
            "keyColumn": "id",
            "service": {"provider": "bedrock", "modelId": "amazon.nova-lite-v1:0", "promptColumn": "q"},
        }
    }
    (tmp_path / "pipelines.json").write_text(json.dumps(raw))
    monkeypatch.setenv(PIPELINES_FILE_ENV, str(tmp_path / "pipelines.json"))
    monkeypatch.setenv(SERVICE_ROLES_ENV, json.dumps({"gen": "arn:aws:iam::111122223333:role/made"}))
    assert pipelines_from_env().get("gen").service.role_arn == "arn:aws:iam::111122223333:role/made"  # type: ignore[union-attr]


def test_missing_environment_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PIPELINES_FILE_ENV, raising=False)
    with pytest.raises(ConfigError, match=PIPELINES_FILE_ENV):
        pipelines_from_env()


def test_stack_settings_default_to_no_alarm_topic_and_no_subscribers() -> None:
    settings = parse_stack_settings({"pipelines": GOOD})
    assert (settings.stack_name, settings.customer_managed_key, settings.alarm_topic_arn) == ("Batchline", False, None)
    assert settings.run_age_alarm_hours == 24
    assert (settings.subscriptions.failure_email, settings.subscriptions.success_queue) == (None, False)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"alarmTopicArn": "ops-alarms"}, "field 'alarmTopicArn': must be the ARN of a standard SNS topic"),
        ({"alarmTopicArn": "arn:aws:sns:us-east-1:123456789012:ops.fifo"}, "cannot notify FIFO topics"),
        (
            {"subscriptions": {"failureEmail": "ops at example"}},
            "field 'subscriptions.failureEmail': must be one email",
        ),
        ({"subscriptions": {"successQueue": "sometimes"}}, "field 'subscriptions.successQueue'"),
        ({"runAgeAlarmHours": 0}, "field 'runAgeAlarmHours'"),
        ({"alarmTopicARN": "arn:aws:sns:us-east-1:123456789012:ops"}, "field 'alarmTopicARN': not a Batchline setting"),
    ],
)
def test_a_bad_stack_setting_is_refused_naming_the_field(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match="invalid stack configuration") as error:
        parse_stack_settings(raw)
    assert message in str(error.value)


def test_alarm_topic_region_comes_from_its_arn() -> None:
    settings = parse_stack_settings({"alarmTopicArn": "arn:aws:sns:eu-west-1:123456789012:ops"})
    assert settings.alarm_topic_region == "eu-west-1"
