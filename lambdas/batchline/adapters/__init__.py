"""Adapters by provider: the only place that maps a pipeline's service to code."""

from __future__ import annotations

from batchline.adapters.base import BatchAdapter
from batchline.clients import AwsClients
from batchline.config import (
    AmazonMLSettings,
    BedrockSettings,
    PersonalizeSettings,
    PipelineConfig,
    SageMakerSettings,
    VertexSettings,
)


def adapter_for(pipeline: PipelineConfig, clients: AwsClients) -> BatchAdapter:
    settings = pipeline.service
    if isinstance(settings, SageMakerSettings):
        from batchline.adapters.sagemaker import SageMakerAdapter

        return SageMakerAdapter(settings, clients.sagemaker, clients.s3)
    if isinstance(settings, PersonalizeSettings):
        from batchline.adapters.personalize import PersonalizeAdapter

        return PersonalizeAdapter(settings, clients.personalize, clients.s3)
    if isinstance(settings, BedrockSettings):
        from batchline.adapters.bedrock import BedrockAdapter

        return BedrockAdapter(settings, clients.bedrock, clients.s3, lambda: clients.bedrock_runtime)
    if isinstance(settings, AmazonMLSettings):
        from batchline.adapters.amazonml import AmazonMLAdapter

        return AmazonMLAdapter(settings, pipeline.key_column, clients.machinelearning, clients.s3)
    if isinstance(settings, VertexSettings):
        from batchline.adapters.google_apis import BigQuery, CloudStorage, VertexJobs
        from batchline.adapters.vertex import VertexAdapter

        http = clients.google(settings)
        jobs, storage = VertexJobs(http, settings), CloudStorage(http, settings.endpoints.storage)
        bigquery = BigQuery(http, settings.endpoints.bigquery, settings.bigquery_location or settings.location)
        return VertexAdapter(settings, pipeline.key_column, jobs, storage, clients.s3, bigquery)
    raise NotImplementedError(f"no adapter for provider {settings.provider!r}")
