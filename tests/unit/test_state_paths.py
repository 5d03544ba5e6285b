"""Every JSONPath the ASL file reads from the execution's state names a field of the state's typed model."""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batchline.state import ExecutionState, JobExecutionState, JobLook, RunFacts
from pydantic import BaseModel

ASL = Path(__file__).resolve().parents[2] / "statemachine" / "batch_prediction.asl.json"
_PATH = re.compile(r"\$(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def paths_in(value: Any) -> Iterator[str]:
    """The ``$.a.b`` paths a state reads (context paths ``$$.`` and the ``${Placeholders}`` aside)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from paths_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from paths_in(item)
    elif isinstance(value, str) and not value.startswith(("$$", "${")):
        yield from _PATH.findall(value)


def states_with_scope() -> Iterator[tuple[str, dict[str, Any], type[BaseModel]]]:
    definition = json.loads(ASL.read_text())
    for name, state in definition["States"].items():
        own = {key: value for key, value in state.items() if key not in ("ItemProcessor", "ResultSelector")}
        yield name, own, ExecutionState
        if name == "RunJobs":
            for child, child_state in state["ItemProcessor"]["States"].items():
                yield f"RunJobs/{child}", child_state, JobExecutionState


def _models(annotation: Any) -> list[Any]:
    """The model classes (or dict) an annotation allows, unions and Optional unwrapped."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [model for arg in typing.get_args(annotation) for model in _models(arg)]
    if origin is dict or annotation is dict:
        return [dict]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [annotation]


def resolves(model: Any, names: list[str]) -> bool:
    if not names:
        return True
    if model is dict:
        return True  # a free-form part of the state (an adapter's staging facts, an event's detail)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return False
    for field_name, field in model.model_fields.items():
        if names[0] in (field.alias or field_name, field_name):
            return any(resolves(inner, names[1:]) for inner in _models(field.annotation))
    return False


def test_every_path_the_state_machine_reads_is_a_field_of_the_state() -> None:
    unresolved = []
    for name, state, scope in states_with_scope():
        for path in paths_in(state):
            if state.get("Type") == "Task" and path in (state.get("ResultPath"),):
                continue
            if not resolves(scope, path[2:].split(".")):
                unresolved.append(f"{name}: {path} (in {scope.__name__})")
    assert unresolved == []


def test_every_result_path_is_a_field_of_the_state() -> None:
    for name, state, scope in states_with_scope():
        path = state.get("ResultPath")
        if path:
            assert resolves(scope, path[2:].split(".")), f"{name}: ResultPath {path}"


@pytest.mark.parametrize("path", ["$.prepared.chunks", "$.jobs", "$.job.pollCounts"])
def test_a_path_no_model_has_is_found(path: str) -> None:
    assert not resolves(ExecutionState if not path.startswith("$.job.") else JobExecutionState, path[2:].split("."))


def test_what_the_steps_write_parses_as_their_models() -> None:
    facts = {
        "runId": "r",
        "pipeline": "p",
        "provider": "bedrock",
        "input": {"bucket": "b", "key": "p/k.csv", "versionId": "v", "size": 3},
        "startedAt": "2026-01-01T00:00:00Z",
        "deadline": "2026-01-02T00:00:00Z",
        "maxPolls": 10,
        "maxConcurrentJobs": 2,
        "counts": {"input": 3, "sent": 3, "rejected": 0},
        "staging": {"keyHeader": "id", "parts": 1},
        "jobsFile": {"bucket": "w", "key": "p/r/state/jobs.json"},
        "jobCount": 1,
        "rejectedUri": None,
    }
    assert RunFacts.model_validate(facts).dump() == facts
    look = {"chunk": 0, "jobId": "j", "status": "RUNNING", "rawStatus": "InProgress", "pollCount": 2}
    assert JobLook.model_validate(look).job_id == "j"
