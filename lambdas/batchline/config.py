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
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from batchline.errors import ConfigError, UnknownPipeline

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


class SageMakerSettings(_Model):
    """SageMaker Batch Transform on a model that reads headerless CSV (``text/csv``)."""

    provider: Literal["sagemaker"]
    model_name: str = Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
    instance_type: str = Field(default="ml.m5.large", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
    instance_count: int = Field(default=1, ge=1, le=100)
    # Names of the values the model returns per record, in order. One value -> one column.
    prediction_columns: list[str] = Field(default_factory=lambda: ["prediction"], min_length=1)
    # Input is split into files of this many records: a bad record fails only its file.
    records_per_file: int = Field(default=100_000, ge=1, le=10_000_000)
    max_payload_in_mb: int = Field(default=6, ge=1, le=100)
    max_concurrent_transforms: int | None = Field(default=None, ge=1, le=100)
    invocation_timeout_seconds: int = Field(default=600, ge=1, le=3600)
    invocation_max_retries: int = Field(default=3, ge=0, le=3)
    # The model's execution role: the stack lets it read staged input and write output in the work bucket.
    model_execution_role_arn: str | None = Field(default=None, pattern=ROLE_ARN_PATTERN)

    @field_validator("prediction_columns")
    @classmethod
    def _unique_names(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value) or any(not name.strip() for name in value):
            raise ValueError("prediction column names must be non-blank and unique")
        return value


PERSONALIZE_RECIPES = {
    # recipe -> (field of the input line the key fills, batch segment job?)
    "USER_PERSONALIZATION": ("userId", False),
    "PERSONALIZED_RANKING": ("userId", False),
    "RELATED_ITEMS": ("itemId", False),
    "ITEM_AFFINITY": ("itemId", True),
    "ITEM_ATTRIBUTE_AFFINITY": ("itemAttributes", True),
}


class PersonalizeSettings(_Model):
    """Amazon Personalize batch inference (recommendations, rankings, related items) or batch segments."""

    provider: Literal["personalize"]
    recipe: Literal[
        "USER_PERSONALIZATION",
        "PERSONALIZED_RANKING",
        "RELATED_ITEMS",
        "ITEM_AFFINITY",
        "ITEM_ATTRIBUTE_AFFINITY",
    ]
    solution_version_arn: str = Field(pattern=r"^arn:aws[a-z-]*:personalize:[a-z0-9-]+:\d{12}:solution/.+$")
    # The role Personalize assumes to read the staged input and write output (iam:PassRole is scoped to it).
    # Omitted: the stack creates one for the pipeline and fills this in for the functions.
    role_arn: str | None = Field(default=None, pattern=ROLE_ARN_PATTERN)
    num_results: int | None = Field(default=None, ge=1, le=500)
    filter_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:personalize:.+:filter/.+$")
    # Filter placeholder -> input column holding its value for each record (sent as filterValues).
    filter_value_columns: dict[str, str] = Field(default_factory=dict)
    # PERSONALIZED_RANKING: the column listing the items to rank, separated by item_list_separator.
    item_list_column: str | None = None
    item_list_separator: str = Field(default="|", min_length=1, max_length=3)
    batch_inference_job_config: dict[str, Any] | None = None
    output_format: Literal["long", "wide"] = "long"
    kms_key_arn: str | None = None
    records_per_file: int = Field(default=1_000_000, ge=1, le=50_000_000)

    @model_validator(mode="after")
    def _recipe_needs(self) -> PersonalizeSettings:
        if self.recipe == "PERSONALIZED_RANKING" and not self.item_list_column:
            raise ValueError("recipe PERSONALIZED_RANKING needs itemListColumn")
        if self.recipe != "PERSONALIZED_RANKING" and self.item_list_column:
            raise ValueError("itemListColumn is only used by PERSONALIZED_RANKING")
        if self.is_segment_job and (self.filter_arn or self.batch_inference_job_config):
            raise ValueError("batch segment jobs take neither filterArn nor batchInferenceJobConfig here")
        return self

    @property
    def query_field(self) -> str:
        return PERSONALIZE_RECIPES[self.recipe][0]

    @property
    def is_segment_job(self) -> bool:
        return PERSONALIZE_RECIPES[self.recipe][1]


class BedrockSettings(_Model):
    """Amazon Bedrock batch inference over a prompt per record (InvokeModel or Converse bodies)."""

    provider: Literal["bedrock"]
    model_id: str = Field(min_length=1, max_length=2048)
    # Service role Bedrock assumes to read input and write output (trusts bedrock.amazonaws.com).
    # Omitted: the stack creates one for the pipeline and fills this in for the functions.
    role_arn: str | None = Field(default=None, pattern=ROLE_ARN_PATTERN)
    invocation_type: Literal["InvokeModel", "Converse"] = "InvokeModel"
    # Exactly one of: a column holding the whole prompt, or a template filled from columns by {name}.
    prompt_column: str | None = None
    prompt_template: str | None = None
    # Body family for InvokeModel; "auto" picks it from the model ID. "custom" uses body_template,
    # a JSON body where the string "{prompt}" is replaced by each record's prompt.
    model_family: Literal["auto", "anthropic", "titan", "nova", "custom"] = "auto"
    body_template: dict[str, Any] | None = None
    max_tokens: int = Field(default=512, ge=1, le=100_000)
    temperature: float | None = Field(default=None, ge=0, le=1)
    timeout_hours: int = Field(default=72, ge=24, le=168)
    # Quotas differ per model and Region (see the Service Quotas console); these are the common values.
    min_records_per_job: int = Field(default=100, ge=1)
    max_records_per_job: int = Field(default=50_000, ge=1)
    records_per_file: int = Field(default=50_000, ge=1)
    max_bytes_per_file: int = Field(default=1024**3, ge=1024)
    max_bytes_per_job: int = Field(default=5 * 1024**3, ge=1024)
    kms_key_arn: str | None = None

    @model_validator(mode="after")
    def _prompt_source(self) -> BedrockSettings:
        if (self.prompt_column is None) == (self.prompt_template is None):
            raise ValueError("set exactly one of promptColumn and promptTemplate")
        if self.resolved_family == "custom" and self.body_template is None:
            raise ValueError("modelFamily 'custom' (or a model ID of unknown family) needs bodyTemplate")
        if self.min_records_per_job > self.max_records_per_job:
            raise ValueError("minRecordsPerJob must not exceed maxRecordsPerJob")
        return self

    @property
    def resolved_family(self) -> str:
        """Converse jobs share one body shape; otherwise the family decides the InvokeModel body."""
        if self.invocation_type == "Converse":
            return "converse"
        if self.model_family != "auto":
            return self.model_family
        model = self.model_id.lower()
        for marker, family in (
            ("anthropic.", "anthropic"),
            ("amazon.titan-text", "titan"),
            ("amazon.nova", "nova"),
        ):
            if marker in model:
                return family
        return "custom"


class AmazonMLSettings(_Model):
    """Legacy Amazon Machine Learning batch predictions (existing accounts, us-east-1 and eu-west-1)."""

    provider: Literal["amazonml"]
    ml_model_id: str = Field(pattern=r"^[a-zA-Z0-9_.-]{1,64}$")
    model_type: Literal["BINARY", "MULTICLASS", "REGRESSION"]
    # The model's training DataSchema (JSON object). Omitted: read from GetMLModel at run time.
    data_schema: dict[str, Any] | None = None
    # MULTICLASS: the class names, in the order their score columns should appear.
    class_names: list[str] | None = None
    records_per_file: int = Field(default=1_000_000, ge=1)

    @model_validator(mode="after")
    def _classes(self) -> AmazonMLSettings:
        if self.model_type == "MULTICLASS" and not self.class_names:
            raise ValueError("MULTICLASS models need classNames (the score columns of the output)")
        return self


class GoogleFederation(_Model):
    """Workload identity federation: the Lambda's AWS role obtains Google tokens; no key is stored."""

    # //iam.googleapis.com/projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>
    audience: str = Field(pattern=r"^//iam\.googleapis\.com/projects/\d+/locations/global/workloadIdentityPools/.+$")
    service_account_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.iam\.gserviceaccount\.com$")


class GoogleEndpoints(_Model):
    """Google API endpoints; override for Private Service Connect or local fakes."""

    vertex: str | None = None  # default https://<location>-aiplatform.googleapis.com
    storage: str = "https://storage.googleapis.com"
    sts: str = "https://sts.googleapis.com"
    iam_credentials: str = "https://iamcredentials.googleapis.com"


class VertexSettings(_Model):
    """Google Vertex AI batch prediction, driven from AWS; input staged to and results read from GCS."""

    provider: Literal["vertex"]
    project: str = Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
    location: str = Field(pattern=r"^[a-z]+-[a-z]+\d$")
    # A model ID, or a full resource name (projects/<p>/locations/<l>/models/<id>, publishers/...).
    model: str = Field(min_length=1)
    # gs://bucket/prefix where inputs are staged and outputs written (same region as the model).
    gcs_prefix: str = Field(pattern=r"^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/.*)?$")
    federation: GoogleFederation
    # Columns sent as features (default: all but the key); numeric_columns are sent as JSON numbers.
    feature_columns: list[str] | None = None
    numeric_columns: list[str] = Field(default_factory=list)
    # When predictions are objects, these fields become columns; otherwise one "prediction" column (JSON).
    prediction_fields: list[str] | None = None
    machine_type: str = "n1-standard-4"
    starting_replica_count: int = Field(default=1, ge=1)
    max_replica_count: int = Field(default=1, ge=1)
    job_service_account: str | None = None
    delete_staged_after_success: bool = False
    records_per_file: int = Field(default=1_000_000, ge=1)
    endpoints: GoogleEndpoints = Field(default_factory=GoogleEndpoints)

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

    name: str
    key_column: str = Field(min_length=1)
    service: ServiceSettings
    # A run that has not finished after this long is stopped and reported as failed.
    max_run_hours: float = Field(default=72.0, gt=0, le=24 * 30)
    # Upper bound on status polls per job: keeps every execution far below the 25,000-event history limit.
    max_polls: int = Field(default=1500, ge=1, le=2000)
    min_poll_seconds: int = Field(default=30, ge=1, le=3600)
    # A tenth of the elapsed time, capped: a week-long job costs ~230 polls (under 2,500 history events).
    max_poll_seconds: int = Field(default=3600, ge=1, le=86400)
    # Jobs of one run that may run at once (the Map's MaxConcurrency); mind the service's account quota.
    max_concurrent_jobs: int = Field(default=2, ge=1, le=40)
    # Cells a spreadsheet would run as formulas (=, +, -, @ not followed by a number) are prefixed with '.
    spreadsheet_safe: bool = True
    # Inputs larger than this are refused before anything is read whole or billed.
    max_input_bytes: int = Field(default=10 * 1024**3, ge=1)
    # Collect splits output objects whose lines carry their key (Personalize) into byte ranges of this size,
    # each collected by its own Distributed Map child: ~256 MiB is ~350k users of 25 items, ~5 s of work.
    collect_shard_bytes: int = Field(default=256 * 1024**2, ge=1024, le=4 * 1024**3)
    # Collect children that may run at once (the Distributed Map's MaxConcurrency).
    max_concurrent_collectors: int = Field(default=40, ge=1, le=1000)

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

    # Failure events, as readable text, to this address through an SNS topic (the address confirms first).
    failure_email: str | None = None
    # Success and partial-success events into an SQS queue for downstream jobs (output SuccessQueueUrl).
    success_queue: bool = False

    @field_validator("failure_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not EMAIL_PATTERN.match(value):
            raise ValueError(f"must be one email address such as ops@example.com, got {value!r}")
        return value


class StackSettings(_Model):
    """Context ``batchline`` in cdk.json: the stack's own options; ``pipelines`` are checked by parse_pipelines."""

    stack_name: str = "Batchline"
    pipelines: dict[str, Any] = Field(default_factory=dict)
    # One rotating KMS key for buckets, queues, bus, logs, state machine data and function environments.
    customer_managed_key: bool = False
    # Where the alarms notify (an existing standard SNS topic); without it they only show on the dashboard.
    alarm_topic_arn: str | None = None
    # A run still going after this many hours raises the stale-run alarm (its pipeline's maxRunHours stops it).
    run_age_alarm_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    subscriptions: SubscriptionSettings = Field(default_factory=SubscriptionSettings)

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


def parse_stack_settings(raw: Mapping[str, Any]) -> StackSettings:
    """Validate context ``batchline`` apart from its pipelines; errors name the field (``subscriptions.x``)."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"context 'batchline' must be an object, got {type(raw).__name__}")
    try:
        return StackSettings.model_validate(raw)
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
