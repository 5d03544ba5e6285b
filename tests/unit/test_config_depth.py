"""Service-depth settings are refused at synth with a message naming what is wrong (issue 16)."""

from __future__ import annotations

from typing import Any

import pytest
from batchline.config import parse_pipelines
from batchline.errors import ConfigError

SOLUTION = "arn:aws:personalize:us-east-1:123456789012:solution/s/abc"


def personalize(**service: Any) -> Any:
    body = {"provider": "personalize", "solutionVersionArn": SOLUTION, **service}
    return parse_pipelines({"p": {"keyColumn": "k", "service": body}}).get("p").service


def refused(match: str, **service: Any) -> None:
    with pytest.raises(ConfigError, match=match):
        personalize(**service)


# --- Personalize -------------------------------------------------------------------------------------------


def test_segment_jobs_take_up_to_five_million_users_and_a_filter() -> None:
    settings = personalize(
        recipe="ITEM_ATTRIBUTE_AFFINITY",
        numResults=5_000_000,
        filterArn="arn:aws:personalize:us-east-1:123456789012:filter/f",
    )
    assert settings.num_results == 5_000_000 and settings.filter_arn


def test_segment_users_past_five_million_are_refused() -> None:
    refused("less than or equal to 5000000", recipe="ITEM_AFFINITY", numResults=5_000_001)


def test_batch_inference_recommendations_past_500_are_refused_naming_the_limit() -> None:
    refused("at most 500 recommendations per record", recipe="USER_PERSONALIZATION", numResults=501)


def test_segment_jobs_refuse_filter_values_they_cannot_carry() -> None:
    refused("carry no filterValues", recipe="ITEM_AFFINITY", filterValueColumns={"X": "x"})


def test_a_numeric_exploration_weight_passes_synth_as_the_string_the_api_takes() -> None:
    settings = personalize(
        recipe="USER_PERSONALIZATION", batchInferenceJobConfig={"itemExplorationConfig": {"explorationWeight": 0.3}}
    )
    assert settings.batch_inference_job_config.item_exploration_config.exploration_weight == "0.3"


@pytest.mark.parametrize(
    ("exploration", "match"),
    [
        ({"explorationWeight": 1.5}, "explorationWeight must be from 0.0 to 1.0"),
        ({"explorationWeight": "lots"}, "explorationWeight must be a number"),
        ({"explorationWeight": True}, "explorationWeight must be a number"),
        ({"explorationItemAgeCutOff": 0.5}, "explorationItemAgeCutOff is a number of days, at least 1"),
        ({"explorationWieght": 0.3}, "explorationWieght"),
    ],
)
def test_exploration_values_out_of_the_documented_ranges_are_refused(exploration: dict[str, Any], match: str) -> None:
    refused(match, recipe="USER_PERSONALIZATION", batchInferenceJobConfig={"itemExplorationConfig": exploration})


def test_exploration_is_refused_for_recipes_that_do_not_explore() -> None:
    config = {"itemExplorationConfig": {"explorationWeight": "0.3"}}
    refused("only taken by USER_PERSONALIZATION", recipe="RELATED_ITEMS", batchInferenceJobConfig=config)


def test_ranking_influence_takes_popularity_and_freshness_from_0_to_1() -> None:
    refused("FRESHNESS", recipe="USER_PERSONALIZATION", batchInferenceJobConfig={"rankingInfluence": {"NEW": 0.1}})
    refused(
        "less than or equal to 1",
        recipe="USER_PERSONALIZATION",
        batchInferenceJobConfig={"rankingInfluence": {"POPULARITY": 2}},
    )


THEME = {"fieldsForThemeGeneration": {"itemName": "TITLE"}}


def test_theme_generation_needs_a_related_items_solution() -> None:
    refused(
        "needs recipe RELATED_ITEMS",
        recipe="USER_PERSONALIZATION",
        batchInferenceJobMode="THEME_GENERATION",
        themeGenerationConfig=THEME,
    )


def test_theme_generation_needs_the_item_name_column() -> None:
    refused("needs themeGenerationConfig", recipe="RELATED_ITEMS", batchInferenceJobMode="THEME_GENERATION")


def test_theme_config_without_theme_mode_is_refused() -> None:
    refused(
        "only used with batchInferenceJobMode THEME_GENERATION", recipe="RELATED_ITEMS", themeGenerationConfig=THEME
    )


def test_theme_item_name_must_be_a_column_name() -> None:
    refused(
        "itemName",
        recipe="RELATED_ITEMS",
        batchInferenceJobMode="THEME_GENERATION",
        themeGenerationConfig={"fieldsForThemeGeneration": {"itemName": "item name"}},
    )


def test_theme_files_of_more_than_100_items_are_refused() -> None:
    refused(
        "at most 100 records per input file",
        recipe="RELATED_ITEMS",
        batchInferenceJobMode="THEME_GENERATION",
        themeGenerationConfig=THEME,
        recordsPerFile=101,
    )


def test_segment_jobs_have_no_mode() -> None:
    refused(
        "take no batchInferenceJobConfig or batchInferenceJobMode",
        recipe="ITEM_AFFINITY",
        batchInferenceJobMode="THEME_GENERATION",
        themeGenerationConfig=THEME,
    )


def test_kms_keys_must_be_key_arns_and_one_key_or_two() -> None:
    key = "arn:aws:kms:us-east-1:123456789012:key/k"
    refused("kmsKeyArn", recipe="USER_PERSONALIZATION", kmsKeyArn="alias/mine")
    refused("not both", recipe="USER_PERSONALIZATION", kmsKeyArn=key, outputKmsKeyArn=key)
    settings = personalize(recipe="USER_PERSONALIZATION", outputKmsKeyArn=key)
    assert (settings.input_kms_key, settings.output_kms_key) == (None, key)


@pytest.mark.parametrize(
    ("tags", "match"),
    [
        ({"batchline:pipeline": "other"}, "batchline: prefix is Batchline's own"),
        ({"aws:cloudformation:stack-name": "x"}, "aws: prefix is reserved"),
        ({"bad#key": "x"}, "must be 1-128 letters"),
        ({f"k{n}": "v" for n in range(50)}, "at most 49 tags"),
    ],
)
def test_user_tags_are_checked_and_cannot_replace_ours(tags: dict[str, str], match: str) -> None:
    refused(match, recipe="USER_PERSONALIZATION", tags=tags)


# --- Vertex AI ---------------------------------------------------------------------------------------------

FEDERATION = {
    "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/aws",
    "serviceAccountEmail": "runner@proj-12345.iam.gserviceaccount.com",
}


def vertex(**service: Any) -> Any:
    body = {
        "provider": "vertex",
        "project": "proj-12345",
        "location": "europe-west12",
        "model": "m",
        "gcsPrefix": "gs://bucket/base",
        "federation": FEDERATION,
        **service,
    }
    return parse_pipelines({"v": {"keyColumn": "k", "service": body}}).get("v").service


@pytest.mark.parametrize("location", ["europe-west12", "us-central1", "northamerica-northeast2", "me-central2"])
def test_every_vertex_region_is_accepted(location: str) -> None:
    assert vertex(location=location).location == location


@pytest.mark.parametrize("location", ["global", "EU", "europe-west", "us-central1-a"])
def test_what_is_not_a_region_is_refused(location: str) -> None:
    with pytest.raises(ConfigError, match="location"):
        vertex(location=location)


@pytest.mark.parametrize(
    ("service", "match"),
    [
        ({"startingReplicaCount": 3, "maxReplicaCount": 2}, r"startingReplicaCount \(3\) must not exceed"),
        ({"acceleratorCount": 2}, "acceleratorCount needs acceleratorType"),
        ({"acceleratorType": "NVIDIA_GTX_1080"}, "acceleratorType"),
        ({"machineType": "N1 standard"}, "machineType"),
        ({"batchSize": 0}, "batchSize"),
        ({"labels": {"Team": "x"}}, "must be 1-63 lowercase letters"),
        ({"labels": {"team": "Risk"}}, "the value must be at most 63 lowercase"),
        ({"labels": {"batchline-job": "x"}}, "batchline- prefix is Batchline's own"),
        ({"labels": {f"l{n}": "v" for n in range(63)}}, "at most 62 labels"),
        ({"kmsKeyName": "my-key"}, "kmsKeyName"),
        ({"kmsKeyName": "projects/p/locations/us-east1/keyRings/r/cryptoKeys/k"}, "in the job's location"),
    ],
)
def test_vertex_settings_vertex_would_refuse_are_refused_at_synth(service: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        vertex(**service)


def test_an_accelerator_alone_gets_one_per_replica() -> None:
    settings = vertex(acceleratorType="NVIDIA_TESLA_T4", machineType="n1-standard-8")
    assert (settings.accelerator_type, settings.accelerator_count) == ("NVIDIA_TESLA_T4", None)


# --- SageMaker ---------------------------------------------------------------------------------------------


def sagemaker(key: str = "id", **service: Any) -> Any:
    body = {"provider": "sagemaker", "modelName": "churn", **service}
    return parse_pipelines({"s": {"keyColumn": key, "service": body}}).get("s").service


def test_feature_columns_are_kept_in_the_models_order() -> None:
    assert sagemaker(featureColumns=["charges", "tenure"]).feature_columns == ["charges", "tenure"]


@pytest.mark.parametrize(
    ("features", "match"),
    [
        (["tenure", "id"], "names the key column 'id': the key never goes to the model"),
        (["tenure", "tenure"], "non-blank and unique"),
        ([" "], "non-blank and unique"),
        ([], "at least 1 item"),
    ],
)
def test_feature_columns_the_model_cannot_take_are_refused(features: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        sagemaker(featureColumns=features)
