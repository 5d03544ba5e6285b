"""`npx cdk deploy -c batchline.<setting>=VALUE`: the cdk CLI passes a top-level context key literally named
``batchline.stackName`` (a string value; it does not split dotted keys), beside cdk.json's ``batchline`` object.
The app honours it as that setting. These tests give build_app the context the CLI would: cdk.json's, plus the
assignments as top-level keys. (CDK_CONTEXT_JSON cannot be set from here: the jsii node process reads its
environment once, when it starts; `npx cdk ls -c batchline.stackName=MyBatchline` prints MyBatchline.)"""

from __future__ import annotations

from typing import Any

import pytest

from stacks import app_factory
from stacks.app_factory import ConfigError, build_app, cdk_json_context


def as_the_cdk_cli(**assignments: str) -> dict[str, str]:
    """``-c key=value`` as the cdk CLI passes them: each a top-level key, its value a string."""
    return assignments


def stack_arguments(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What build_app gives the stack (settings, pipelines), filled in when it builds it."""
    given: dict[str, Any] = {}
    real = app_factory.BatchlineStack

    def spy(*args: Any, **kwargs: Any) -> Any:
        given.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(app_factory, "BatchlineStack", spy)
    return given


def test_c_batchline_stack_name_names_the_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    _, stack = build_app(as_the_cdk_cli(**{"batchline.stackName": "MyBatchline"}), bundle=False)

    assert stack.stack_name == "MyBatchline"


def test_other_settings_given_with_c_are_read_as_json_values(monkeypatch: pytest.MonkeyPatch) -> None:
    assignments = as_the_cdk_cli(
        **{
            "batchline.runAgeAlarmHours": "6",
            "batchline.subscriptions.successQueue": "true",
            "batchline.pipelines.demo-sagemaker.maxRunHours": "2",
        }
    )
    given = stack_arguments(monkeypatch)

    build_app(assignments, bundle=False)
    settings, pipelines = given["settings"], given["pipelines"]

    assert settings.run_age_alarm_hours == 6
    assert settings.subscriptions.success_queue is True
    assert pipelines.get("demo-sagemaker").max_run_hours == 2
    assert pipelines.get("demo-bedrock").key_column == "id"  # the rest of cdk.json stays


def test_a_misspelt_c_setting_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="stackNmae"):
        build_app(as_the_cdk_cli(**{"batchline.stackNmae": "MyBatchline"}), bundle=False)


def test_a_c_setting_that_does_not_fit_is_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match="batchline.pipelines.demo-sagemaker.maxRunHours.x"):
        build_app(as_the_cdk_cli(**{"batchline.pipelines.demo-sagemaker.maxRunHours.x": "2"}), bundle=False)


def test_without_c_the_stack_keeps_the_cdk_json_name() -> None:
    _, stack = build_app(as_the_cdk_cli(), bundle=False)

    assert stack.stack_name == cdk_json_context()["batchline"]["stackName"]
