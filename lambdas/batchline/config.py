"""The one typed configuration model, shared by CDK (at synth) and the Lambdas (at run time).

Pipelines are declared once, in cdk.json context under ``batchline.pipelines``. The stack validates them
with these models when it synthesises, and passes the same JSON to every function in the
file named by ``BATCHLINE_PIPELINES_FILE`` (a config layer), where it is validated again.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from batchline.errors import ConfigError, UnknownPipeline
from batchline.layout import RunLayout

# The pipelines' JSON is a file (Lambda environments cap at 4 KB): the stack ships it in a config layer.
PIPELINES_FILE_ENV = "BATCHLINE_PIPELINES_FILE"
# Roles the stack created for pipelines that name none: {"<pipeline>": "<role ARN>"}, resolved at deploy time.
SERVICE_ROLES_ENV = "BATCHLINE_SERVICE_ROLES"
ROLE_ARN_PATTERN = r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$"
PROVIDERS = ("sagemaker", "personalize", "bedrock", "amazonml", "vertex")
PIPELINE_NAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")


class _Model(BaseModel):
    """camelCase in JSON (cdk.json style), snake_case in Python; unknown fields are errors, not ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


# CreateTransformJob's limits (SageMaker API reference): Environment holds at most 16 variables, each name
# [a-zA-Z_][a-zA-Z0-9_]{0,1023} and value up to 10,240 characters; a KMS key is given by ID, ARN or alias.
SAGEMAKER_MAX_ENVIRONMENT = 16
SAGEMAKER_MAX_ENVIRONMENT_VALUE = 10_240
SAGEMAKER_ENVIRONMENT_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,1023}$")
SAGEMAKER_KMS_KEY_PATTERN = r"^[a-zA-Z0-9:/_-]+$"
# MaxPayloadInMB is 0 to 100, and MaxConcurrentTransforms x MaxPayloadInMB at most 100 (CreateTransformJob).
SAGEMAKER_MAX_PAYLOAD_MB = 100
# An S3 URI as Batchline writes it: a bucket name and an optional key prefix (the API takes up to 1,024 characters).
S3_URI_PATTERN = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$"


class SageMakerDataCapture(_Model):
    """CreateTransformJob DataCaptureConfig: SageMaker records which input and output objects each job used."""

    destination_s3_uri: str | None = Field(
        default=None,
        max_length=1024,
        pattern=S3_URI_PATTERN,
        description="Where SageMaker writes the capture manifests (under input/ and output/, by yyyy/mm/dd/hh of "
        "the job's start). Unset: the stack's work bucket under <pipeline>/data-capture/, where the stack lets the "
        "model's execution role (modelExecutionRoleArn) write. A bucket of your own: grant that role s3:PutObject "
        "on the prefix yourself.",
    )
    kms_key_id: str | None = Field(
        default=None,
        max_length=2048,
        pattern=SAGEMAKER_KMS_KEY_PATTERN,
        description="KMS key SageMaker encrypts the captured data with (key ID, key ARN, alias name or alias ARN); "
        "its key policy must let the model's execution role use it.",
    )
    generate_inference_id: bool = Field(
        default=False,
        description="SageMaker adds an inference ID and the job's start time to every output record (for Model "
        "Monitor's ground truth merge): predictions.csv gets them as the columns sagemaker_inference_id and "
        "sagemaker_inference_time.",
    )


class SageMakerSettings(_Model):
    """SageMaker Batch Transform on a model that reads headerless CSV (``text/csv``) or JSON lines."""

    provider: Literal["sagemaker"] = Field(description="SageMaker Batch Transform.")
    model_name: str = Field(
        pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$", description="The SageMaker model (CreateModel name) to run."
    )
    instance_type: str = Field(
        default="ml.m5.large", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$", description="Instance type of the transform job."
    )
    instance_count: int = Field(default=1, ge=1, le=100, description="Instances of the transform job.")
    prediction_columns: list[str] = Field(
        default_factory=lambda: ["prediction"],
        min_length=1,
        description="Names of the values the model returns per record, in order: one value, one column.",
    )
    records_per_file: int = Field(
        default=100_000,
        ge=1,
        le=10_000_000,
        description="The input is split into files of this many records: a bad record fails only its file.",
    )
    max_payload_in_mb: int = Field(
        default=6,
        ge=0,
        le=SAGEMAKER_MAX_PAYLOAD_MB,
        description="MaxPayloadInMB: the largest request to the model, 0 to 100 (a larger record is refused at "
        "Prepare as one errors.csv row); with maxConcurrentTransforms, their product is at most 100. 0 sends each "
        "request with HTTP chunked encoding and no size limit: only for containers that support it (SageMaker's "
        "built-in algorithms do not).",
    )
    content_type: Literal["text/csv", "application/jsonlines"] = Field(
        default="text/csv",
        description="What the model reads and writes (ContentType and Accept), one record a line (SplitType and "
        "AssembleWith Line). text/csv: the feature values in order. application/jsonlines: an object of the feature "
        "columns by name (numbers with numericFeatures, else strings); each output line is the model's answer for "
        "its record: an object holding the predictionColumns by name, an array of their values in order, or one "
        "value for one column.",
    )
    batch_strategy: Literal["MultiRecord", "SingleRecord"] = Field(
        default="MultiRecord",
        description="BatchStrategy: MultiRecord sends as many records per request as fit in maxPayloadInMb; "
        "SingleRecord sends one record per request (for models that take one at a time).",
    )
    data_capture: SageMakerDataCapture | None = Field(
        default=None,
        description="DataCaptureConfig {destinationS3Uri, kmsKeyId, generateInferenceId}: SageMaker writes manifests "
        "of each job's input and output objects, for Model Monitor. Unset: no capture.",
    )
    feature_columns: list[str] | None = Field(
        default=None,
        min_length=1,
        description="The input columns the model takes, in the model's order (never the key column); other "
        "columns are not sent, and a file missing one is refused at Prepare naming it. Unset: every column but the "
        "key, in the file's order.",
    )
    numeric_features: bool = Field(
        default=False,
        description=(
            "The model takes finite decimal numbers only: a record with any other feature value (text, blank, NaN) "
            "is refused at Prepare as one errors.csv row, instead of failing its whole file in the job."
        ),
    )
    max_concurrent_transforms: int | None = Field(
        default=None, ge=1, le=100, description="MaxConcurrentTransforms; unset lets SageMaker choose."
    )
    invocation_timeout_seconds: int = Field(
        default=600, ge=1, le=3600, description="Time the model may take for one request (ModelClientConfig)."
    )
    invocation_max_retries: int = Field(
        default=3, ge=0, le=3, description="Retries of a failed request to the model (ModelClientConfig)."
    )
    model_execution_role_arn: str | None = Field(
        default=None,
        pattern=ROLE_ARN_PATTERN,
        description="The model's execution role: the stack lets it read staged input and write output.",
    )
    environment: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables for the model's containers in each transform job (CreateTransformJob "
        f"Environment: at most {SAGEMAKER_MAX_ENVIRONMENT}; names of letters, digits and _ not starting with a "
        "digit, values up to 10,240 characters).",
    )
    output_kms_key_id: str | None = Field(
        default=None,
        max_length=2048,
        pattern=SAGEMAKER_KMS_KEY_PATTERN,
        description="KMS key SageMaker encrypts the job's output with (key ID, key ARN, alias name or alias ARN); "
        "its key policy must let the model's execution role use it.",
    )
    volume_kms_key_id: str | None = Field(
        default=None,
        max_length=2048,
        pattern=SAGEMAKER_KMS_KEY_PATTERN,
        description="KMS key of the storage volumes of the job's instances (not for instance types with local "
        "instance storage, which the hardware encrypts).",
    )
    tags: dict[str, str] = Field(
        default_factory=dict,
        description="Your tags on every transform job, added to Batchline's batchline:run-id and batchline:pipeline "
        "(at most 48; keys starting aws: or batchline: are refused).",
    )

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > SAGEMAKER_MAX_ENVIRONMENT:
            raise ValueError(f"at most {SAGEMAKER_MAX_ENVIRONMENT} environment variables, got {len(value)}")
        for name, text in value.items():
            if not SAGEMAKER_ENVIRONMENT_NAME.match(name):
                raise ValueError(f"environment variable {name!r}: letters, digits and _, not starting with a digit")
            if len(text) > SAGEMAKER_MAX_ENVIRONMENT_VALUE:
                raise ValueError(f"environment variable {name}: at most {SAGEMAKER_MAX_ENVIRONMENT_VALUE} characters")
        return value

    @model_validator(mode="after")
    def _tags(self) -> SageMakerSettings:
        check_user_tags(self.tags, own=2)
        return self

    @model_validator(mode="after")
    def _payload(self) -> SageMakerSettings:
        transforms = self.max_concurrent_transforms
        if transforms and transforms * self.max_payload_in_mb > SAGEMAKER_MAX_PAYLOAD_MB:
            raise ValueError(
                f"maxConcurrentTransforms x maxPayloadInMb is at most {SAGEMAKER_MAX_PAYLOAD_MB} MB, got "
                f"{transforms} x {self.max_payload_in_mb}"
            )
        return self

    @field_validator("prediction_columns", "feature_columns")
    @classmethod
    def _unique_names(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (len(set(value)) != len(value) or any(not name.strip() for name in value)):
            raise ValueError("column names must be non-blank and unique")
        return value


PERSONALIZE_RECIPES = {
    # recipe -> (field of the input line the key fills, batch segment job?)
    "USER_PERSONALIZATION": ("userId", False),
    "PERSONALIZED_RANKING": ("userId", False),
    "RELATED_ITEMS": ("itemId", False),
    "ITEM_AFFINITY": ("itemId", True),
    "ITEM_ATTRIBUTE_AFFINITY": ("itemAttributes", True),
}
# numResults: a batch inference job returns at most 500 items per record (Personalize quotas); a batch segment
# job at most 5 million users per segment (CreateBatchSegmentJob, numResults).
PERSONALIZE_MAX_RECOMMENDATIONS = 500
PERSONALIZE_MAX_SEGMENT_USERS = 5_000_000
# "Your input file can have up to 100 items" (Batch recommendations with themes from Content Generator,
# https://docs.aws.amazon.com/personalize/latest/dg/themed-batch-recommendations.html).
PERSONALIZE_THEME_MAX_RECORDS_PER_FILE = 100
# S3DataConfig.kmsKeyArn's pattern in the Personalize API.
PERSONALIZE_KMS_KEY_PATTERN = r"^arn:aws[a-z-]*:kms:[a-z0-9-]*:\d{12}:key/.+$"
# Tags on AWS resources: at most 50 per resource, keys 1-128 and values 0-256 characters of letters, digits,
# spaces and _.:/=+-@; the aws: prefix is reserved. Batchline's own tags use the batchline: prefix.
AWS_MAX_TAGS = 50
_TAG_TEXT = re.compile(r"^[\w\s.:/=+\-@]*$")
# Bedrock's tag keys and values take ASCII only (TagKey/TagValue pattern in its API model), and up to 200 tags.
_ASCII_TAG_TEXT = re.compile(r"^[a-zA-Z0-9\s._:/=+@-]*$", re.ASCII)
BEDROCK_MAX_TAGS = 200
# Amazon ML takes "up to a limit of 10" tags per object (AddTags in its API reference).
AMAZONML_MAX_TAGS = 10
OWN_TAG_PREFIX = "batchline:"


def check_user_tags(
    tags: Mapping[str, str],
    *,
    own: int,
    word: str = "tag",
    limit: int = AWS_MAX_TAGS,
    text: re.Pattern[str] = _TAG_TEXT,
) -> None:
    """The user's tags (or labels) must be valid for the service and leave room for, and never replace, ours.

    ``limit`` and ``text`` are the service's own tag count and characters when they differ from the common ones."""
    letters = "ASCII letters" if text is _ASCII_TAG_TEXT else "letters"
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or not text.match(key):
            raise ValueError(f"{word} key {key!r} must be 1-128 {letters}, digits, spaces or _.:/=+-@")
        if len(value) > 256 or not text.match(value):
            raise ValueError(f"{word} {key!r}: the value must be at most 256 {letters}, digits, spaces or _.:/=+-@")
        if key.lower().startswith("aws:"):
            raise ValueError(f"{word} key {key!r}: the aws: prefix is reserved by AWS")
        if key.lower().startswith(OWN_TAG_PREFIX):
            raise ValueError(f"{word} key {key!r}: the batchline: prefix is Batchline's own and cannot be set")
    if len(tags) + own > limit:
        raise ValueError(f"at most {limit - own} {word}s: the resource takes {limit}, {own} are Batchline's")


def _decimal_text(value: Any, name: str) -> tuple[str, float]:
    """A number given as a JSON number or a string: the API takes strings, so it is sent as one."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{name} must be a number (or a string holding one), got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number (or a string holding one), got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return (value.strip() if isinstance(value, str) else repr(value)), number


class ItemExplorationConfig(_Model):
    """User-Personalization's exploration hyperparameters, which the API takes as strings.
    https://docs.aws.amazon.com/personalize/latest/dg/native-recipe-new-item-USER_PERSONALIZATION.html"""

    exploration_weight: str | None = Field(default=None, description="0.0 to 1.0; the service's default is 0.3.")
    exploration_item_age_cut_off: str | None = Field(
        default=None, description="Days, at least 1; the service's default is 30."
    )

    @field_validator("exploration_weight", mode="before")
    @classmethod
    def _weight(cls, value: Any) -> str | None:
        if value is None:
            return None
        text, number = _decimal_text(value, "explorationWeight")
        if not 0.0 <= number <= 1.0:
            raise ValueError(f"explorationWeight must be from 0.0 to 1.0, got {value!r}")
        return text

    @field_validator("exploration_item_age_cut_off", mode="before")
    @classmethod
    def _age(cls, value: Any) -> str | None:
        if value is None:
            return None
        text, number = _decimal_text(value, "explorationItemAgeCutOff")
        if number < 1.0:
            raise ValueError(f"explorationItemAgeCutOff is a number of days, at least 1, got {value!r}")
        return text


class PersonalizeJobConfig(_Model):
    """CreateBatchInferenceJob's batchInferenceJobConfig."""

    item_exploration_config: ItemExplorationConfig | None = Field(
        default=None, description="explorationWeight and explorationItemAgeCutOff (USER_PERSONALIZATION only)."
    )
    ranking_influence: dict[Literal["POPULARITY", "FRESHNESS"], Annotated[float, Field(ge=0, le=1)]] | None = Field(
        default=None, description="POPULARITY and FRESHNESS, each 0.0 to 1.0."
    )


class ThemeFields(_Model):
    item_name: str = Field(
        max_length=150,
        pattern=r"^[A-Za-z_][A-Za-z\d_]*$",
        description="The Items dataset column holding each item's name (for example TITLE).",
    )


class ThemeGenerationConfig(_Model):
    fields_for_theme_generation: ThemeFields = Field(description="itemName: the item name column.")


class PersonalizeSettings(_Model):
    """Amazon Personalize batch inference (recommendations, rankings, related items) or batch segments."""

    provider: Literal["personalize"] = Field(description="Amazon Personalize.")
    recipe: Literal[
        "USER_PERSONALIZATION",
        "PERSONALIZED_RANKING",
        "RELATED_ITEMS",
        "ITEM_AFFINITY",
        "ITEM_ATTRIBUTE_AFFINITY",
    ] = Field(
        description="The solution's recipe: decides the input line (userId, itemId, itemAttributes) and whether "
        "a batch inference or a batch segment job runs."
    )
    solution_version_arn: str = Field(
        pattern=r"^arn:aws[a-z-]*:personalize:[a-z0-9-]+:\d{12}:solution/.+$",
        description="The trained solution version the job uses.",
    )
    role_arn: str | None = Field(
        default=None,
        pattern=ROLE_ARN_PATTERN,
        description="The role Personalize assumes to read staged input and write output (iam:PassRole is scoped "
        "to it). Omitted: the stack creates one for the pipeline.",
    )
    num_results: int | None = Field(
        default=None,
        ge=1,
        le=PERSONALIZE_MAX_SEGMENT_USERS,
        description="Recommendations per record, at most 500; users per segment for the segment recipes "
        "(ITEM_AFFINITY, ITEM_ATTRIBUTE_AFFINITY), at most 5,000,000. Unset: the service's default.",
    )
    filter_arn: str | None = Field(
        default=None,
        pattern=r"^arn:aws[a-z-]*:personalize:.+:filter/.+$",
        description="A Personalize filter, for batch inference and batch segment jobs.",
    )
    filter_value_columns: dict[str, str] = Field(
        default_factory=dict,
        description="Filter placeholder -> the input column holding its value for each record (sent as "
        "filterValues); batch inference only.",
    )
    item_list_column: str | None = Field(
        default=None,
        description="PERSONALIZED_RANKING only, and required there: the column listing the items to rank.",
    )
    item_list_separator: str = Field(
        default="|", min_length=1, max_length=3, description="Separator of the items in itemListColumn."
    )
    batch_inference_job_config: PersonalizeJobConfig | None = Field(
        default=None,
        description="Batch inference only: itemExplorationConfig {explorationWeight 0.0-1.0, "
        "explorationItemAgeCutOff days >= 1} (USER_PERSONALIZATION only; numbers are sent as the strings the API "
        "takes) and rankingInfluence {POPULARITY, FRESHNESS: 0.0-1.0}.",
    )
    batch_inference_job_mode: Literal["BATCH_INFERENCE", "THEME_GENERATION"] = Field(
        default="BATCH_INFERENCE",
        description="THEME_GENERATION (RELATED_ITEMS with the Similar-Items recipe, extra cost) adds a theme per "
        "record, written as the theme column; its files hold at most 100 records (recordsPerFile defaults to 100).",
    )
    theme_generation_config: ThemeGenerationConfig | None = Field(
        default=None,
        description='THEME_GENERATION only, and required there: {"fieldsForThemeGeneration": {"itemName": '
        '"<Items dataset column of item names>"}}.',
    )
    output_format: Literal["long", "wide"] = Field(
        default="long",
        description="long: one row per recommendation (key,rank,item_id,score; segments key,user_id); "
        "wide: one row per record with |-joined lists. Theme jobs add a theme column.",
    )
    kms_key_arn: str | None = Field(
        default=None,
        pattern=PERSONALIZE_KMS_KEY_PATTERN,
        description="KMS key Personalize uses for the job's input and output (or set the two below).",
    )
    input_kms_key_arn: str | None = Field(
        default=None, pattern=PERSONALIZE_KMS_KEY_PATTERN, description="KMS key of the job's input only."
    )
    output_kms_key_arn: str | None = Field(
        default=None, pattern=PERSONALIZE_KMS_KEY_PATTERN, description="KMS key of the job's output only."
    )
    tags: dict[str, str] = Field(
        default_factory=dict,
        description="Your tags on every job, added to Batchline's batchline:pipeline (at most 49; keys "
        "starting aws: or batchline: are refused).",
    )
    records_per_file: int = Field(default=1_000_000, ge=1, le=50_000_000, description="Records per staged input file.")

    @model_validator(mode="before")
    @classmethod
    def _theme_file_size(cls, data: Any) -> Any:
        """Theme jobs read at most 100 records a file: that is their default, not the usual million."""
        if (
            isinstance(data, dict)
            and data.get("batchInferenceJobMode", data.get("batch_inference_job_mode")) == "THEME_GENERATION"
            and "recordsPerFile" not in data
            and "records_per_file" not in data
        ):
            return {**data, "recordsPerFile": PERSONALIZE_THEME_MAX_RECORDS_PER_FILE}
        return data

    @model_validator(mode="after")
    def _recipe_needs(self) -> PersonalizeSettings:
        if self.recipe == "PERSONALIZED_RANKING" and not self.item_list_column:
            raise ValueError("recipe PERSONALIZED_RANKING needs itemListColumn")
        if self.recipe != "PERSONALIZED_RANKING" and self.item_list_column:
            raise ValueError("itemListColumn is only used by PERSONALIZED_RANKING")
        if self.is_segment_job:
            self._segment_needs()
        elif self.num_results and self.num_results > PERSONALIZE_MAX_RECOMMENDATIONS:
            raise ValueError(
                f"numResults: a batch inference job returns at most {PERSONALIZE_MAX_RECOMMENDATIONS} "
                f"recommendations per record, got {self.num_results}"
            )
        exploration = self.batch_inference_job_config and self.batch_inference_job_config.item_exploration_config
        if exploration and self.recipe != "USER_PERSONALIZATION":
            raise ValueError("itemExplorationConfig is only taken by USER_PERSONALIZATION solutions")
        self._theme_needs()
        if self.kms_key_arn and (self.input_kms_key_arn or self.output_kms_key_arn):
            raise ValueError("set kmsKeyArn (input and output) or inputKmsKeyArn/outputKmsKeyArn, not both")
        check_user_tags(self.tags, own=1)
        return self

    def _segment_needs(self) -> None:
        if self.batch_inference_job_config or self.batch_inference_job_mode != "BATCH_INFERENCE":
            raise ValueError(
                "batch segment jobs (ITEM_AFFINITY, ITEM_ATTRIBUTE_AFFINITY) take no batchInferenceJobConfig "
                "or batchInferenceJobMode"
            )
        if self.filter_value_columns:
            raise ValueError(
                "batch segment input lines carry no filterValues: use a filter without placeholders "
                "(filterValueColumns is for batch inference)"
            )

    def _theme_needs(self) -> None:
        if self.batch_inference_job_mode != "THEME_GENERATION":
            if self.theme_generation_config:
                raise ValueError("themeGenerationConfig is only used with batchInferenceJobMode THEME_GENERATION")
            return
        if self.recipe != "RELATED_ITEMS":
            raise ValueError("THEME_GENERATION needs recipe RELATED_ITEMS (a Similar-Items solution)")
        if not self.theme_generation_config:
            raise ValueError(
                'THEME_GENERATION needs themeGenerationConfig {"fieldsForThemeGeneration": {"itemName": "<column>"}}'
            )
        if self.records_per_file > PERSONALIZE_THEME_MAX_RECORDS_PER_FILE:
            raise ValueError(
                f"THEME_GENERATION reads at most {PERSONALIZE_THEME_MAX_RECORDS_PER_FILE} records per input file: "
                f"set recordsPerFile to {PERSONALIZE_THEME_MAX_RECORDS_PER_FILE} or less"
            )

    @property
    def query_field(self) -> str:
        return PERSONALIZE_RECIPES[self.recipe][0]

    @property
    def is_segment_job(self) -> bool:
        return PERSONALIZE_RECIPES[self.recipe][1]

    @property
    def generates_themes(self) -> bool:
        return self.batch_inference_job_mode == "THEME_GENERATION"

    @property
    def input_kms_key(self) -> str | None:
        return self.input_kms_key_arn or self.kms_key_arn

    @property
    def output_kms_key(self) -> str | None:
        return self.output_kms_key_arn or self.kms_key_arn


# Seconds an on-demand Bedrock job may take inside one SubmitJob call: two thirds of its 900 s timeout, so the
# last calls, the checkpoint and the job's record fit after it (adapters/bedrock_on_demand.py stops there too).
ON_DEMAND_BUDGET_SECONDS = 600


class BedrockSettings(_Model):
    """Amazon Bedrock batch inference over a prompt per record (InvokeModel or Converse bodies)."""

    provider: Literal["bedrock"] = Field(description="Amazon Bedrock batch inference.")
    model_id: str = Field(
        min_length=1, max_length=2048, description="The model ID or inference profile the job invokes."
    )
    role_arn: str | None = Field(
        default=None,
        pattern=ROLE_ARN_PATTERN,
        description="Service role Bedrock assumes to read input and write output (trusts bedrock.amazonaws.com). "
        "Omitted: the stack creates one for the pipeline.",
    )
    invocation_type: Literal["InvokeModel", "Converse"] = Field(
        default="InvokeModel", description="The body shape of each record: the model's own, or Converse's."
    )
    # Exactly one of the two prompt sources.
    prompt_column: str | None = Field(
        default=None, description="The column holding each record's whole prompt (or set promptTemplate)."
    )
    prompt_template: str | None = Field(
        default=None,
        description='A prompt filled from columns by {name} ("Summarise {text}"); plain substitution.',
    )
    model_family: Literal["auto", "anthropic", "titan", "nova", "titan-embed", "cohere-embed", "custom"] = Field(
        default="auto",
        description="InvokeModel body family; auto detects it from modelId (embedding models too: "
        "amazon.titan-embed-text-*, cohere.embed-*), custom uses bodyTemplate.",
    )
    body_template: dict[str, Any] | None = Field(
        default=None, description='A JSON body where the string "{prompt}" is replaced by each record\'s prompt.'
    )
    max_tokens: int = Field(default=512, ge=1, le=100_000, description="Most tokens the model may generate.")
    temperature: float | None = Field(default=None, ge=0, le=1, description="Sampling temperature; unset: the model's.")
    timeout_hours: int = Field(
        default=72, ge=24, le=168, description="Bedrock stops a job that runs longer (timeoutDurationInHours)."
    )
    # Quotas differ per model and Region (see the Service Quotas console); these are the common values.
    min_records_per_job: int = Field(
        default=100,
        ge=1,
        description="Bedrock's batch minimum: a job of fewer records is answered on demand (onDemandBelowMinimum), "
        "or refused before anything is submitted when that is off.",
    )
    max_records_per_job: int = Field(default=50_000, ge=1, description="Records per job; more make more jobs.")
    records_per_file: int = Field(default=50_000, ge=1, description="Records per staged input file.")
    max_bytes_per_file: int = Field(default=1024**3, ge=1024, description="Bytes per staged input file.")
    max_bytes_per_job: int = Field(default=5 * 1024**3, ge=1024, description="Bytes of input per job.")
    kms_key_arn: str | None = Field(default=None, description="KMS key for the job's output (s3EncryptionKeyId).")
    tags: dict[str, str] = Field(
        default_factory=dict,
        description="Your tags on every batch inference job, added to Batchline's batchline:pipeline (at most 199; "
        "ASCII letters, digits, spaces and _.:/=+-@; keys starting aws: or batchline: are refused).",
    )
    embedding_output: Literal["json", "columns"] = Field(
        default="json",
        description="Embedding models: the vector as one column `embedding` holding a JSON array, or one column "
        "per dimension (`embedding_0`, `embedding_1`, ...; needs embeddingDimensions).",
    )
    embedding_dimensions: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="Embedding models: the vector's length. Sent to Titan Text Embeddings V2 (256, 512 or 1024); "
        "for other models it must be the model's own length. An answer of another length is a failed record.",
    )
    embedding_input_type: Literal["search_document", "search_query", "classification", "clustering"] = Field(
        default="search_document", description="Cohere Embed models: the input_type of each request."
    )
    extract_fields: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Text models: read these top-level fields of the answer, parsed as a JSON object (a Markdown "
        "code fence around it is allowed), into columns of their own after output_text. A field missing, or an answer "
        "that is not a JSON object, leaves the fields blank and says why in the `extract_error` column; the "
        "record still counts as predicted (the model answered).",
    )
    on_demand_below_minimum: bool = Field(
        default=True,
        description="A job under minRecordsPerJob is answered by SubmitJob calling the model itself (InvokeModel or "
        "Converse), with the same output, errors and event as a batch job; false: such an input is refused.",
    )
    on_demand_concurrency: int = Field(
        default=4, ge=1, le=32, description="Model calls in flight at once while answering on demand."
    )
    on_demand_seconds_per_call: int = Field(
        default=20,
        ge=1,
        le=300,
        description="The longest one on-demand model call is expected to take, retries included: with "
        "onDemandConcurrency it bounds how many records one SubmitJob call can answer (checked at synth).",
    )

    @model_validator(mode="after")
    def _tags(self) -> BedrockSettings:
        check_user_tags(self.tags, own=1, limit=BEDROCK_MAX_TAGS, text=_ASCII_TAG_TEXT)
        return self

    @model_validator(mode="after")
    def _prompt_source(self) -> BedrockSettings:
        if (self.prompt_column is None) == (self.prompt_template is None):
            raise ValueError("set exactly one of promptColumn and promptTemplate")
        if self.resolved_family == "custom" and self.body_template is None:
            raise ValueError("modelFamily 'custom' (or a model ID of unknown family) needs bodyTemplate")
        if self.min_records_per_job > self.max_records_per_job:
            raise ValueError("minRecordsPerJob must not exceed maxRecordsPerJob")
        self._check_embedding_settings()
        self._check_extract_fields()
        if self.on_demand_below_minimum and self.on_demand_worst_seconds > ON_DEMAND_BUDGET_SECONDS:
            raise ValueError(
                f"on demand, one SubmitJob call answers up to {self.min_records_per_job - 1} records (under "
                f"minRecordsPerJob); at {self.on_demand_seconds_per_call} s a call (onDemandSecondsPerCall), "
                f"{self.on_demand_concurrency} at a time (onDemandConcurrency), that takes up to "
                f"{self.on_demand_worst_seconds} s, over the {ON_DEMAND_BUDGET_SECONDS} s budget (two thirds of "
                "SubmitJob's timeout): raise onDemandConcurrency, lower minRecordsPerJob, or set "
                "onDemandBelowMinimum false"
            )
        return self

    @property
    def is_embedding(self) -> bool:
        return self.resolved_family in ("titan-embed", "cohere-embed")

    def _check_embedding_settings(self) -> None:
        if self.invocation_type == "Converse" and self._model_family in ("titan-embed", "cohere-embed"):
            raise ValueError("embedding models take InvokeModel bodies: invocationType Converse does not apply")
        if not self.is_embedding:
            if self.embedding_dimensions is not None or self.embedding_output != "json":
                raise ValueError("embeddingDimensions and embeddingOutput apply to embedding models only")
            return
        if self.extract_fields:
            raise ValueError("extractFields reads fields of a text answer: an embedding model answers a vector")
        if self.embedding_output == "columns" and self.embedding_dimensions is None:
            raise ValueError("embeddingOutput 'columns' needs embeddingDimensions (the number of columns)")
        if self.titan_embed_v2 and self.embedding_dimensions not in (None, 256, 512, 1024):
            raise ValueError("embeddingDimensions: Titan Text Embeddings V2 makes vectors of 256, 512 or 1024")

    @property
    def titan_embed_v2(self) -> bool:
        return self.resolved_family == "titan-embed" and "titan-embed-text-v2" in self.model_id.lower()

    def _check_extract_fields(self) -> None:
        fields = self.extract_fields or []
        reserved = {"output_text", "model_output", "extract_error"}
        for name in fields:
            if not name.strip():
                raise ValueError("extractFields: a field name must not be blank")
            if name in reserved:
                raise ValueError(f"extractFields: {name!r} is a column Batchline writes itself")
        duplicates = sorted({name for name in fields if fields.count(name) > 1})
        if duplicates:
            raise ValueError(f"extractFields: {', '.join(duplicates)} named more than once")

    @property
    def on_demand_worst_seconds(self) -> int:
        """The longest an on-demand job of the most records it can hold takes, at the assumed seconds per call."""
        waves = -(-(self.min_records_per_job - 1) // self.on_demand_concurrency)
        return waves * self.on_demand_seconds_per_call

    @property
    def resolved_family(self) -> str:
        """Converse jobs share one body shape; otherwise the family decides the InvokeModel body."""
        if self.invocation_type == "Converse":
            return "converse"
        return self._model_family

    @property
    def _model_family(self) -> str:
        if self.model_family != "auto":
            return self.model_family
        model = self.model_id.lower()
        for marker, family in (
            ("anthropic.", "anthropic"),
            ("amazon.titan-text", "titan"),
            ("amazon.nova", "nova"),
            ("amazon.titan-embed-text", "titan-embed"),
            ("cohere.embed", "cohere-embed"),
        ):
            if marker in model:
                return family
        return "custom"


class AmazonMLSettings(_Model):
    """Legacy Amazon Machine Learning batch predictions (existing accounts, us-east-1 and eu-west-1)."""

    provider: Literal["amazonml"] = Field(description="Amazon Machine Learning.")
    ml_model_id: str = Field(pattern=r"^[a-zA-Z0-9_.-]{1,64}$", description="The Amazon ML model's ID.")
    model_type: Literal["BINARY", "MULTICLASS", "REGRESSION"] = Field(
        description="Decides the result columns: bestAnswer,score / one per class / score."
    )
    data_schema: dict[str, Any] | None = Field(
        default=None,
        description="The model's training DataSchema (JSON object). Omitted: read with GetMLModel at run time.",
    )
    class_names: list[str] | None = Field(
        default=None,
        description=(
            "MULTICLASS only: the model's class labels, in the order you want their score columns. Optional: "
            "unset, the columns are the labels of the result file's header, in its order. Set, a result whose "
            "header holds other labels fails the run, naming the file and both lists."
        ),
    )
    records_per_file: int = Field(default=1_000_000, ge=1, description="Records per staged input file.")
    tags: dict[str, str] = Field(
        default_factory=dict,
        description="Your tags on the DataSource and BatchPrediction of every job (AddTags; at most 10, Amazon ML's "
        "limit per object; keys starting aws: or batchline: are refused).",
    )
    delete_service_objects: bool = Field(
        default=True,
        description=(
            "Delete the DataSource and BatchPrediction Batchline created once the run has ended (they are "
            "Amazon ML's records, not the data: the staged input and the raw results in S3 are kept). A job "
            "that still runs when a run fails is left in place. false keeps them."
        ),
    )

    @model_validator(mode="after")
    def _tags(self) -> AmazonMLSettings:
        check_user_tags(self.tags, own=0, limit=AMAZONML_MAX_TAGS)
        return self

    @model_validator(mode="after")
    def _classes(self) -> AmazonMLSettings:
        if self.class_names is None:
            return self
        if self.model_type != "MULTICLASS":
            raise ValueError(f"classNames is for MULTICLASS models only; a {self.model_type} model has fixed columns")
        if not self.class_names:
            raise ValueError("classNames is empty: list the model's class labels, or leave it out")
        if any(not name.strip() for name in self.class_names):
            raise ValueError("classNames holds a blank name: each entry is one of the model's class labels")
        padded = [name for name in self.class_names if name != name.strip()]
        if padded:
            raise ValueError(
                f"classNames entry {padded[0]!r} starts or ends with a space; the result header's labels are read "
                "without surrounding spaces"
            )
        repeated = sorted({name for name in self.class_names if self.class_names.count(name) > 1})
        if repeated:
            raise ValueError(f"classNames repeats {', '.join(map(repr, repeated))}: each class is one column")
        return self


# Every Vertex AI Region is <area>-<direction><n>: us-central1, europe-west12, northamerica-northeast2.
VERTEX_REGION_PATTERN = r"^[a-z]+-[a-z]+[0-9]{1,2}$"
# MachineSpec.acceleratorType (https://cloud.google.com/vertex-ai/docs/reference/rest/v1/MachineSpec).
VertexAccelerator = Literal[
    "NVIDIA_TESLA_K80",
    "NVIDIA_TESLA_P100",
    "NVIDIA_TESLA_V100",
    "NVIDIA_TESLA_P4",
    "NVIDIA_TESLA_T4",
    "NVIDIA_TESLA_A100",
    "NVIDIA_A100_80GB",
    "NVIDIA_L4",
    "NVIDIA_H100_80GB",
    "NVIDIA_H100_MEGA_80GB",
    "NVIDIA_H200_141GB",
    "NVIDIA_B200",
    "NVIDIA_GB200",
    "NVIDIA_RTX_PRO_6000",
    "TPU_V2",
    "TPU_V3",
    "TPU_V4_POD",
    "TPU_V5_LITEPOD",
]
# Google Cloud labels: at most 64 per resource; keys 1-63 characters starting with a lowercase letter, values
# 0-63, both of lowercase letters (international ones too), digits, _ and -. Batchline's keys start batchline-.
GOOGLE_MAX_LABELS = 64
_LABEL_KEY = re.compile(r"^[^\W\dA-Z_][\w-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[\w-]{0,63}$")


def check_labels(labels: Mapping[str, str], *, own: int) -> None:
    for key, value in labels.items():
        if not _LABEL_KEY.match(key) or key != key.lower():
            raise ValueError(
                f"label key {key!r} must be 1-63 lowercase letters, digits, _ or -, starting with a letter"
            )
        if not _LABEL_VALUE.match(value) or value != value.lower():
            raise ValueError(f"label {key!r}: the value must be at most 63 lowercase letters, digits, _ or -")
        if key.startswith("batchline-"):
            raise ValueError(f"label key {key!r}: the batchline- prefix is Batchline's own and cannot be set")
    if len(labels) + own > GOOGLE_MAX_LABELS:
        raise ValueError(f"at most {GOOGLE_MAX_LABELS - own} labels: a job takes {GOOGLE_MAX_LABELS}, {own} are ours")


class GoogleFederation(_Model):
    """Workload identity federation: the Lambda's AWS role obtains Google tokens; no key is stored."""

    audience: str = Field(
        pattern=r"^//iam\.googleapis\.com/projects/\d+/locations/global/workloadIdentityPools/.+$",
        description="The pool's provider: //iam.googleapis.com/projects/<number>/locations/global/"
        "workloadIdentityPools/<pool>/providers/<provider>",
    )
    service_account_email: str = Field(
        pattern=r"^[^@\s]+@[^@\s]+\.iam\.gserviceaccount\.com$",
        description="The Google service account the functions impersonate.",
    )


class GoogleEndpoints(_Model):
    """Google API endpoints; override for Private Service Connect or local fakes."""

    vertex: str | None = Field(
        default=None, description="Vertex AI API; unset: https://<location>-aiplatform.googleapis.com."
    )
    storage: str = Field(default="https://storage.googleapis.com", description="Cloud Storage JSON API.")
    bigquery: str = Field(default="https://bigquery.googleapis.com", description="BigQuery API (v2).")
    sts: str = Field(default="https://sts.googleapis.com", description="Security Token Service (the token exchange).")
    iam_credentials: str = Field(
        default="https://iamcredentials.googleapis.com", description="IAM Credentials API (impersonation)."
    )


# BigQuery names (https://cloud.google.com/bigquery/docs/datasets#dataset-naming): a dataset is up to 1,024
# letters, digits and underscores; a column starts with a letter or underscore, up to 300 of them.
BIGQUERY_DATASET_URI = r"^bq://[a-z][a-z0-9-]{4,28}[a-z0-9]\.[A-Za-z0-9_]{1,1024}$"
BIGQUERY_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,299}$")
# A publisher model (Model Garden, Gemini): Vertex runs it on its own resources and takes no keyField.
PUBLISHER_MODEL = re.compile(r"^(projects/[^/]+/locations/[^/]+/)?publishers/[^/]+/models/[^/]+$")


class VertexExplanationSpec(_Model):
    """BatchPredictionJob.explanationSpec: passed through to Vertex as given; unset fields come from the model's."""

    parameters: dict[str, Any] | None = Field(
        default=None,
        description="ExplanationParameters (sampledShapleyAttribution, integratedGradientsAttribution, "
        "xraiAttribution, examples, topK, outputIndices), as a JSON object.",
    )
    metadata: dict[str, Any] | None = Field(
        default=None,
        description="ExplanationMetadata (inputs, outputs, featureAttributionsSchemaUri, ...), as a JSON object.",
    )


class VertexSettings(_Model):
    """Google Vertex AI batch prediction, driven from AWS; input staged to and results read from GCS."""

    provider: Literal["vertex"] = Field(description="Google Vertex AI.")
    project: str = Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$", description="The Google Cloud project ID.")
    location: str = Field(
        pattern=VERTEX_REGION_PATTERN,
        description="Region of the model, bucket and job: any Vertex AI Region (us-central1, europe-west12, "
        "northamerica-northeast2, ...).",
    )
    model: str = Field(
        min_length=1,
        description="A model ID, or a full resource name (projects/<p>/locations/<l>/models/<id>, publishers/...).",
    )
    gcs_prefix: str = Field(
        pattern=r"^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/.*)?$",
        description="gs://bucket/prefix where inputs are staged and outputs written (same region as the model).",
    )
    federation: GoogleFederation = Field(
        description="Workload identity federation: audience and serviceAccountEmail (below)."
    )
    feature_columns: list[str] | None = Field(
        default=None, description="Columns sent as features; unset: every column but the key."
    )
    numeric_columns: list[str] = Field(
        default_factory=list, description="Columns sent as JSON numbers (the others as strings)."
    )
    prediction_fields: list[str] | None = Field(
        default=None,
        description='Fields of object predictions that become columns; unset: one "prediction" column (JSON).',
    )
    machine_type: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]+(-[a-z0-9]+)+$",
        description="dedicatedResources machine type (Vertex requires one for a model of yours); unset: "
        "n1-standard-4. Publisher models take none.",
    )
    accelerator_type: VertexAccelerator | None = Field(
        default=None, description="GPU or TPU attached to each replica (machineSpec.acceleratorType)."
    )
    accelerator_count: int | None = Field(
        default=None, ge=1, description="Accelerators per replica; acceleratorType only, and 1 when unset there."
    )
    starting_replica_count: int | None = Field(
        default=None, ge=1, description="Replicas the job starts with; unset: 1."
    )
    max_replica_count: int | None = Field(
        default=None, ge=1, description="Most replicas the job may scale to (at least startingReplicaCount); unset: 1."
    )
    batch_size: int | None = Field(
        default=None,
        ge=1,
        description="manualBatchTuningParameters.batchSize: records per request to a replica; unset: Vertex's 64.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Your labels on every job, added to Batchline's batchline-job and batchline-pipeline (at most "
        "62; keys start with a lowercase letter; keys and values are at most 63 lowercase letters, digits, _ "
        "or -; keys starting batchline- are refused).",
    )
    kms_key_name: str | None = Field(
        default=None,
        pattern=r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$",
        description="encryptionSpec.kmsKeyName: the Cloud KMS key protecting the job (CMEK), "
        "projects/<p>/locations/<location>/keyRings/<ring>/cryptoKeys/<key>, in the job's location.",
    )
    disable_container_logging: bool = Field(
        default=False, description="Keep the model container's stdout and stderr out of Cloud Logging."
    )
    instances_format: Literal["jsonl", "csv", "file-list", "tf-record"] = Field(
        default="jsonl",
        description="inputConfig.instancesFormat of the staged input: jsonl (one JSON object a record), csv (a header, "
        "strings double-quoted, numericColumns bare; cells with a line break are refused per record). The key goes "
        "as instanceConfig.keyField in both; file-list (see fileColumn). tf-record is refused at synth.",
    )
    file_column: str | None = Field(
        default=None,
        min_length=1,
        description="instancesFormat file-list: the column holding each record's gs://bucket/object URI. Vertex "
        'sends the file\'s content to the model as {"b64": ...} and takes no keyField, so each result is tied '
        "to its record by the MD5 of the content it echoes (read from Cloud Storage at Submit); records of one job "
        "whose files have the same content cannot be told apart and fail with that reason. At most 1,000,000 "
        "records a job.",
    )
    predictions_format: Literal["jsonl", "bigquery"] = Field(
        default="jsonl",
        description="outputConfig.predictionsFormat: jsonl files in gcsPrefix, or bigquery (bigqueryDestination).",
    )
    bigquery_source: str | None = Field(
        default=None,
        pattern=BIGQUERY_DATASET_URI,
        description="bq://<project>.<dataset>: instead of Cloud Storage, each job's records are loaded into a new "
        "table batchline_<job> of this dataset (a BigQuery load job) and the job reads it (instancesFormat bigquery). "
        "One table a job: a job reads its whole table. The dataset must exist, in the job's location.",
    )
    bigquery_destination: str | None = Field(
        default=None,
        pattern=BIGQUERY_DATASET_URI,
        description="bq://<project>.<dataset>: predictions are written by the job into new tables of this dataset "
        "(outputConfig.bigqueryDestination) and read back by Collect with tabledata.list; needs predictionsFormat "
        "bigquery.",
    )
    bigquery_location: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z]+(-[a-z]+[0-9]{1,2})?$",
        description="Location of the bigquerySource and bigqueryDestination datasets when it is a multi-region "
        "(US, EU) holding the job's Region; unset: location.",
    )
    model_parameters: dict[str, Any] | None = Field(
        default=None, description="modelParameters: a JSON object passed to the model as is (its parameters schema)."
    )
    generate_explanation: bool = Field(
        default=False,
        description="generateExplanation: each result's explanation becomes an explanation column (JSON); needs the "
        "model's explanationSpec or explanationSpec here.",
    )
    explanation_spec: VertexExplanationSpec | None = Field(
        default=None, description="explanationSpec (below), only with generateExplanation."
    )
    job_service_account: str | None = Field(
        default=None, description="The service account the job itself runs as; unset: Vertex's default."
    )
    delete_staged_after_success: bool = Field(
        default=False, description="Delete the input staged in GCS once the run succeeded."
    )
    records_per_file: int = Field(default=1_000_000, ge=1, description="Records per staged input file.")
    endpoints: GoogleEndpoints = Field(
        default_factory=GoogleEndpoints, description="Google API endpoints (below), for Private Service Connect."
    )

    @model_validator(mode="after")
    def _resources(self) -> VertexSettings:
        if (self.starting_replica_count or 1) > (self.max_replica_count or 1):
            raise ValueError(
                f"startingReplicaCount ({self.starting_replica_count or 1}) must not exceed maxReplicaCount "
                f"({self.max_replica_count or 1})"
            )
        if self.accelerator_count is not None and self.accelerator_type is None:
            raise ValueError("acceleratorCount needs acceleratorType")
        if self.kms_key_name and self.kms_key_name.split("/")[3] != self.location:
            raise ValueError(f"kmsKeyName must be a key in the job's location {self.location}")
        check_labels(self.labels, own=2)
        self._check_formats()
        self._check_publisher_model()
        if self.explanation_spec is not None and not self.generate_explanation:
            raise ValueError("explanationSpec is taken only with generateExplanation: true")
        return self

    def _check_formats(self) -> None:
        if self.instances_format == "tf-record":
            raise ValueError(
                "instancesFormat tf-record is refused: Batchline stages the rows of a CSV upload, and a TFRecord "
                'record reaches the model as opaque bytes ({"b64": ...}) only your model can decode, so Batchline '
                "could not write records your model reads; use jsonl (objects) or csv"
            )
        if (self.instances_format == "file-list") != (self.file_column is not None):
            raise ValueError("instancesFormat file-list and fileColumn go together")
        if self.file_column and (self.feature_columns or self.numeric_columns):
            raise ValueError(
                "with file-list the model gets each file's content only: featureColumns and numericColumns do not apply"
            )
        if self.bigquery_source and self.instances_format != "jsonl":
            raise ValueError(
                f"bigquerySource loads the records itself: instancesFormat {self.instances_format} "
                "does not apply (leave it unset)"
            )
        if (self.predictions_format == "bigquery") != (self.bigquery_destination is not None):
            raise ValueError("predictionsFormat bigquery and bigqueryDestination go together")
        for name in [*(self.feature_columns or []), *self.numeric_columns]:
            if self.bigquery_source and not BIGQUERY_COLUMN.match(name):
                raise ValueError(f"column {name!r} cannot be a BigQuery column (letters, digits, _; not a digit first)")

    def _check_publisher_model(self) -> None:
        if not self.is_publisher_model:
            return
        # Only fields left unset (None) are absent after the round trip through the functions' config file.
        dedicated = {
            name
            for name in (
                "machine_type",
                "accelerator_type",
                "accelerator_count",
                "starting_replica_count",
                "max_replica_count",
                "batch_size",
            )
            if getattr(self, name) is not None
        }
        if dedicated:
            names = ", ".join(sorted(self.model_fields[f].alias or f for f in dedicated))
            raise ValueError(
                f"{self.model} is a publisher model: Vertex runs it on its own resources and refuses "
                f"dedicatedResources and manualBatchTuningParameters ({names})"
            )
        if self.generate_explanation:
            raise ValueError(f"{self.model} is a publisher model: it takes no generateExplanation")

    @property
    def is_publisher_model(self) -> bool:
        return PUBLISHER_MODEL.match(self.model) is not None

    @property
    def model_resource(self) -> str:
        if "/" in self.model:
            return self.model
        return f"projects/{self.project}/locations/{self.location}/models/{self.model}"

    @property
    def vertex_endpoint(self) -> str:
        return self.endpoints.vertex or f"https://{self.location}-aiplatform.googleapis.com"


ServiceSettings = Annotated[
    SageMakerSettings | PersonalizeSettings | BedrockSettings | AmazonMLSettings | VertexSettings,
    Field(discriminator="provider"),
]


class PipelineConfig(_Model):
    """One pipeline: uploads under ``<inbox>/<name>/`` run through one service with these settings."""

    name: str = Field(description="The key under pipelines: uploads go to <inbox>/<name>/.")
    key_column: str = Field(
        min_length=1,
        description="Header of the column that identifies each record: present, non-blank and unique.",
    )
    service: ServiceSettings = Field(
        description="The service and its settings; provider is one of " + ", ".join(PROVIDERS) + "."
    )
    max_run_hours: float = Field(
        default=72.0,
        gt=0,
        le=24 * 30,
        description="A run not finished after this long is stopped (where the service allows) and fails.",
    )
    max_polls: int = Field(
        default=1500,
        ge=1,
        le=2000,
        description="Status polls per job at most: keeps executions far below the 25,000-event history limit.",
    )
    min_poll_seconds: int = Field(default=30, ge=1, le=3600, description="Shortest wait between polls.")
    # A tenth of the elapsed time, capped: a week-long job costs ~230 polls (under 2,500 history events).
    max_poll_seconds: int = Field(
        default=3600,
        ge=1,
        le=86400,
        description="Longest wait between polls; the wait is a tenth of the job's elapsed time within the bounds.",
    )
    job_events: bool = Field(
        default=True,
        description="SageMaker and Bedrock: a job's wait ends at its end event on the default bus or at its next "
        "poll, whichever comes first, and polls are four times sparser. false: poll only. Other services always poll.",
    )
    max_concurrent_jobs: int = Field(
        default=2,
        ge=1,
        le=40,
        description="Jobs of one run that may run at once when the input makes several; mind the service quota.",
    )
    spreadsheet_safe: bool = Field(
        default=True,
        description=(
            "Prefix with ' the cells a spreadsheet would run as formulas (=, +, -, @, tab, CR not before a number) "
            "and those starting with ' (so the rule can be undone)."
        ),
    )
    max_input_bytes: int = Field(
        default=10 * 1024**3, ge=1, description="Larger uploads are refused before they are read or billed."
    )
    # Half a GiB is 5-30 million records: one to three minutes of one function at the rates make bench measures.
    prepare_shard_bytes: int = Field(
        default=512 * 1024**2,
        ge=256,
        le=10 * 1024**3,
        description="Prepare reads an upload larger than this (not gzipped) in record-aligned byte ranges of this "
        "size, one Distributed Map child each, then merges them (duplicate keys are found across the whole file).",
    )
    max_concurrent_preparers: int = Field(
        default=20, ge=1, le=1000, description="Prepare children that may run at once (the Map's MaxConcurrency)."
    )
    # ~256 MiB is ~350k users of 25 items, ~3 s of one core's work.
    collect_shard_bytes: int = Field(
        default=256 * 1024**2,
        ge=1024,
        le=4 * 1024**3,
        description="Collect splits output files whose lines carry their key (Personalize) into line-aligned "
        "byte ranges of this size, one Distributed Map child each.",
    )
    # 5 million records is under a minute of one core at the rates make bench measures for these formats.
    collect_unit_records: int = Field(
        default=5_000_000,
        ge=1,
        le=100_000_000,
        description="Collect splits a job whose output is one ordered file per staged part (SageMaker, Amazon ML) "
        "into runs of consecutive parts holding about this many records, one Distributed Map child each; a Vertex "
        "AI job of more records is collected one result file per child.",
    )
    max_concurrent_collectors: int = Field(
        default=40, ge=1, le=1000, description="Collect children that may run at once (the Map's MaxConcurrency)."
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not PIPELINE_NAME_PATTERN.match(value):
            raise ValueError("must be 1-40 characters of a-z, 0-9 and '-', starting and ending alphanumeric")
        return value

    @model_validator(mode="after")
    def _poll_bounds(self) -> PipelineConfig:
        if self.min_poll_seconds > self.max_poll_seconds:
            raise ValueError("minPollSeconds must not exceed maxPollSeconds")
        features = getattr(self.service, "feature_columns", None) if self.provider == "sagemaker" else None
        if features and self.key_column in features:
            raise ValueError(
                f"featureColumns names the key column {self.key_column!r}: the key never goes to the model"
            )
        return self

    @property
    def provider(self) -> str:
        return self.service.provider


class Pipelines(_Model):
    """All configured pipelines, by name."""

    pipelines: dict[str, PipelineConfig]

    def get(self, name: str) -> PipelineConfig:
        try:
            return self.pipelines[name]
        except KeyError:
            known = ", ".join(sorted(self.pipelines)) or "none"
            raise UnknownPipeline(f"no pipeline named {name!r} is configured (configured: {known})") from None

    def to_env(self) -> dict[str, Any]:
        """The pipelines as cdk.json spells them (camelCase); unset optional fields are left out."""
        return {
            name: p.model_dump(by_alias=True, exclude={"name"}, exclude_none=True) for name, p in self.pipelines.items()
        }

    def to_env_json(self) -> str:
        """Compact JSON for the Lambda environment."""
        return json.dumps(self.to_env(), separators=(",", ":"), sort_keys=True)


def parse_pipelines(raw: Mapping[str, Any]) -> Pipelines:
    """Validate ``{name: {keyColumn, service, ...}}``; errors name the pipeline and field."""
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError("no pipelines configured: set context 'batchline' -> 'pipelines' in cdk.json")
    parsed: dict[str, PipelineConfig] = {}
    problems: list[str] = []
    for name, body in raw.items():
        if not isinstance(body, Mapping):
            problems.append(f"pipeline {name!r}: must be an object, got {type(body).__name__}")
            continue
        try:
            parsed[name] = PipelineConfig.model_validate({**body, "name": name})
        except ValidationError as exc:
            problems.extend(_describe(name, exc))
    if problems:
        raise ConfigError("invalid pipeline configuration:\n  " + "\n  ".join(problems))
    return Pipelines(pipelines=parsed)


def _describe(pipeline: str, exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors():
        # Drop the discriminator tag pydantic puts in the path ("service.sagemaker.modelName").
        parts = [str(p) for p in error["loc"] if p not in PROVIDERS]
        field = ".".join(parts) or "(pipeline)"
        lines.append(f"pipeline {pipeline!r}: field {field!r}: {error['msg']}")
    return lines


# Alarm actions: a standard topic (CloudWatch cannot notify FIFO topics) in the stack's account and Region.
SNS_TOPIC_ARN_PATTERN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")
EMAIL_PATTERN = re.compile(r"^[^@\s\"<>]+@[^@\s\"<>]+\.[A-Za-z]{2,}$")
STACK_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")


class SubscriptionSettings(_Model):
    """Example subscribers the stack adds to the bus (the rules docs/events.md shows); all off by default."""

    failure_email: str | None = Field(
        default=None,
        description="Failure events, as readable text, to this address through an SNS topic (it confirms first).",
    )
    success_queue: bool = Field(
        default=False,
        description="Success and partial-success events into an SQS queue for downstream jobs (SuccessQueueUrl).",
    )

    @field_validator("failure_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not EMAIL_PATTERN.match(value):
            raise ValueError(f"must be one email address such as ops@example.com, got {value!r}")
        return value


class StackSettings(_Model):
    """The stack's own options and its pipelines (each validated by parse_pipelines)."""

    stack_name: str = Field(default="Batchline", description="The CloudFormation stack (and the CLI's --stack).")
    pipelines: dict[str, Any] = Field(default_factory=dict, description="The pipelines, by name (fields below).")
    customer_managed_key: bool = Field(
        default=False,
        description="One rotating KMS key for buckets, queues, bus, logs, state machine data and environments.",
    )
    alarm_topic_arn: str | None = Field(
        default=None,
        description="A standard SNS topic in the stack's Region the alarms notify; unset: dashboard only.",
    )
    run_age_alarm_hours: float = Field(
        default=24.0,
        gt=0,
        le=24 * 30,
        description="A run still going after this many hours raises the stale-run alarm.",
    )
    subscriptions: SubscriptionSettings = Field(
        default_factory=SubscriptionSettings, description="Example subscribers the stack adds (below)."
    )

    @field_validator("stack_name")
    @classmethod
    def _stack_name(cls, value: str) -> str:
        if not STACK_NAME_PATTERN.match(value):
            raise ValueError(f"must be 1-128 letters, digits and '-', starting with a letter, got {value!r}")
        return value

    @field_validator("alarm_topic_arn")
    @classmethod
    def _topic_arn(cls, value: str | None) -> str | None:
        if value is not None and not SNS_TOPIC_ARN_PATTERN.match(value):
            raise ValueError(
                "must be the ARN of a standard SNS topic, arn:aws:sns:<region>:<account>:<name> "
                f"(CloudWatch alarms cannot notify FIFO topics), got {value!r}"
            )
        return value

    @property
    def alarm_topic_region(self) -> str | None:
        return self.alarm_topic_arn.split(":")[3] if self.alarm_topic_arn else None


SettingsT = TypeVar("SettingsT", bound=StackSettings)


def parse_stack_settings(raw: Mapping[str, Any], model: type[SettingsT] = StackSettings) -> SettingsT:  # type: ignore[assignment]  # the default model is a SettingsT
    """Validate context ``batchline`` apart from its pipelines, as ``model`` (StackSettings, or the stack's
    DeploymentSettings that extend it); errors name the field (``subscriptions.x``)."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"context 'batchline' must be an object, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"]) or "(batchline)"
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "not a Batchline setting (check its spelling and level)"
            problems.append(f"field {field!r}: {message}")
        raise ConfigError("invalid stack configuration:\n  " + "\n  ".join(problems)) from None


def pipelines_from_env() -> Pipelines:
    """The Lambdas' view: the same JSON the stack validated, from the config file, plus created roles."""
    path = require_env(PIPELINES_FILE_ENV)
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
        roles = json.loads(require_env(SERVICE_ROLES_ENV))
    except OSError as exc:
        raise ConfigError(f"cannot read the pipelines file {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"the pipelines configuration is not valid JSON: {exc}") from exc
    for name, role_arn in roles.items():
        if name in raw:
            raw[name]["service"]["roleArn"] = role_arn
    return parse_pipelines(raw)


def require_env(name: str) -> str:
    """A missing variable is a deployment bug: raise, never default."""
    value = os.environ.get(name)
    if not value:
        raise ConfigError(f"environment variable {name} is not set")
    return value


def require_role(role_arn: str | None, service: str) -> str:
    """The stack fills in the roles it creates; a run without one is a deployment bug, said plainly."""
    if not role_arn:
        raise ConfigError(f"no {service} role ARN in the pipeline config: set roleArn or deploy with the stack")
    return role_arn


@dataclass(frozen=True)
class Deployment:
    """Names the stack hands every function through its environment."""

    inbox_bucket: str
    work_bucket: str
    results_bucket: str
    event_bus_name: str
    runtime: str

    @classmethod
    def from_env(cls) -> Deployment:
        return cls(
            inbox_bucket=require_env("INBOX_BUCKET"),
            work_bucket=require_env("WORK_BUCKET"),
            results_bucket=require_env("RESULTS_BUCKET"),
            event_bus_name=require_env("EVENT_BUS_NAME"),
            runtime=require_env("BATCHLINE_RUNTIME"),
        )

    def layout(self, pipeline: str, run_id: str) -> RunLayout:
        return RunLayout(pipeline, run_id, self.work_bucket, self.results_bucket)
