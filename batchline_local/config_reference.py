"""docs/configuration.md, generated from the config models so the reference cannot miss or misstate a field.

``python -m batchline_local.config_reference`` rewrites the file; a unit test fails when it is stale or when
a field has no description.
"""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path
from typing import Any

from annotated_types import Ge, Gt, Le, MaxLen, MinLen
from batchline import config
from pydantic import BaseModel
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from stacks.settings import DeploymentSettings

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"

# (heading, model, where it sits in cdk.json)
SECTIONS: list[tuple[str, type[BaseModel], str]] = [
    # The stack's options: StackSettings plus the deployment-only ones (teardown, reserved concurrency).
    ("Stack options", DeploymentSettings, "`context.batchline`"),
    ("Subscriptions", config.SubscriptionSettings, "`context.batchline.subscriptions`"),
    ("Pipeline", config.PipelineConfig, "`context.batchline.pipelines.<name>`"),
    ("SageMaker Batch Transform", config.SageMakerSettings, '`service` with `"provider": "sagemaker"`'),
    ("SageMaker data capture", config.SageMakerDataCapture, "`service.dataCapture` (SageMaker)"),
    ("Amazon Personalize", config.PersonalizeSettings, '`service` with `"provider": "personalize"`'),
    ("Amazon Bedrock batch inference", config.BedrockSettings, '`service` with `"provider": "bedrock"`'),
    ("Amazon Machine Learning (legacy)", config.AmazonMLSettings, '`service` with `"provider": "amazonml"`'),
    ("Google Vertex AI", config.VertexSettings, '`service` with `"provider": "vertex"`'),
    ("Vertex federation", config.GoogleFederation, "`service.federation` (Vertex)"),
    ("Vertex endpoints", config.GoogleEndpoints, "`service.endpoints` (Vertex)"),
    ("Vertex explanation spec", config.VertexExplanationSpec, "`service.explanationSpec` (Vertex)"),
]
# Set by the stack or the model, never written in cdk.json.
NOT_WRITTEN = {(config.PipelineConfig, "name")}


def missing_descriptions() -> list[str]:
    """Fields of the documented models that have no description (the test keeps this empty)."""
    return [
        f"{model.__name__}.{name}"
        for _, model, _ in SECTIONS
        for name, field in model.model_fields.items()
        if not (field.description or "").strip()
    ]


def render() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from `lambdas/batchline/config.py` and `stacks/settings.py` by "
        "`python -m batchline_local.config_reference` "
        "(a test fails when this file is stale). Everything lives in `cdk.json` under `context.batchline`; "
        "`cdk synth` validates it with these models and names the pipeline and field of any mistake, "
        "and every function validates the same JSON again when it starts. Unknown fields are errors.",
        "",
    ]
    for heading, model, place in SECTIONS:
        lines += [f"## {heading}", "", f"{place}: {_first_line(model.__doc__)}", ""]
        lines += ["| field | type | default | meaning |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            if (model, name) in NOT_WRITTEN:
                continue
            cells = [f"`{to_camel(name)}`", _type(field), _cell(_default(field)), _cell(_text(field.description or ""))]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _first_line(text: str | None) -> str:
    first = (text or "").strip().splitlines()[0] if text else ""
    return first.replace("``", "`")  # docstrings use reST literals


def _text(text: str) -> str:
    """Plain text in Markdown: <placeholder> would be read as an HTML tag and vanish."""
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
    if value is None or value is PydanticUndefined:
        return "unset"
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, list | dict) and not value:
        return "empty"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value}`".replace("'", '"')


def _type(field: FieldInfo) -> str:
    kind = _annotation(field.annotation)
    bounds = []
    for item in field.metadata:
        if isinstance(item, Ge):
            bounds.append(f">= {_number(item.ge)}")
        elif isinstance(item, Gt):
            bounds.append(f"> {_number(item.gt)}")
        elif isinstance(item, Le):
            bounds.append(f"<= {_number(item.le)}")
        elif isinstance(item, MinLen) and item.min_length > 1:
            bounds.append(f"length >= {item.min_length}")
        elif isinstance(item, MaxLen):
            bounds.append(f"length <= {item.max_length}")
    return _cell(kind + (f" ({', '.join(bounds)})" if bounds else ""))


def _number(value: Any) -> str:
    if isinstance(value, int) and value >= 1024**2 and value % 1024**2 == 0:
        return f"{value // 1024**3} GiB" if value % 1024**3 == 0 else f"{value // 1024**2} MiB"
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def _annotation(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin is typing.Literal:
        return " or ".join(f"`{value}`" for value in arguments)
    if origin is typing.Annotated:
        return _annotation(arguments[0])
    if origin in (typing.Union, types.UnionType):
        kinds = [_annotation(argument) for argument in arguments if argument is not type(None)]
        if len(kinds) > 1 and set(kinds) == {"object"}:
            return "object (one of the service sections below)"
        return " or ".join(kinds)
    if origin is list:
        return f"list of {_annotation(arguments[0])}"
    if origin is dict:
        return "object"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(annotation, str(annotation))


def main() -> int:
    DOC_PATH.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {DOC_PATH.name}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
