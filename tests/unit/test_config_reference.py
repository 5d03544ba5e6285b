"""docs/configuration.md is the reference users read: it must list every field the models accept, as they are."""

import re

from batchline import config

from batchline_local import config_reference


def test_every_config_field_has_a_description() -> None:
    assert config_reference.missing_descriptions() == []


def test_configuration_doc_is_generated_from_the_current_models() -> None:
    # WHEN this fails: run `python -m batchline_local.config_reference` and commit docs/configuration.md.
    assert config_reference.DOC_PATH.read_text(encoding="utf-8") == config_reference.render()


def test_every_service_model_is_documented() -> None:
    documented = {model for _, model, _ in config_reference.SECTIONS}
    services = {model for model in config._Model.__subclasses__() if "provider" in model.model_fields}
    assert len(services) == len(config.PROVIDERS)
    assert services <= documented


def test_doc_rows_show_defaults_and_bounds_as_the_model_applies_them() -> None:
    doc = config_reference.render()
    pipeline = config.parse_pipelines(
        {"p": {"keyColumn": "id", "service": {"provider": "sagemaker", "modelName": "m"}}}
    ).get("p")
    row = re.search(r"^\| `maxPolls` \| (.+?) \| (.+?) \|", doc, re.MULTILINE)
    assert row is not None
    assert row.group(1) == "integer (>= 1, <= 2,000)"
    assert row.group(2) == f"{pipeline.max_polls:,}"
    assert "| `collectShardBytes` | integer (>= 1,024, <= 4 GiB) | 256 MiB |" in doc
    assert "| `keyColumn` | string | required |" in doc
    # The pipeline's name is its key in cdk.json, not a field written inside it.
    assert "| `name` |" not in doc
