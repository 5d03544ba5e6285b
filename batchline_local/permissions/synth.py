"""The template ``cdk deploy`` would deploy for the local runtime's pipelines, synthesized as the stack tests do.

The local runtime checks every call against this template's policies, so it must be the real synth (the same
app factory, cdk-nag on, asset bundling off), not a reading of our own. Synthesis starts CDK's Node kernel and
takes seconds, so it runs in a child process (the runtime's own process stays free of jsii and of whatever
the synth sets) and its result is kept under ``.build/templates/``, named by a digest of everything that
shapes it: the context and the source of the stack, the configuration model and the ASL file.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
CACHE_DIR = REPO_ROOT / ".build" / "templates"
# What the template is made from besides the context: a change to any of these makes a new template.
SOURCES = ("app.py", "stacks/*.py", "lambdas/batchline/config.py", "statemachine/*.asl.json", "package-lock.json")


class SynthFailed(RuntimeError):
    """The stack did not synthesize for these pipelines (a cdk-nag finding, a bad setting): the message says why."""


def synth_context(pipelines: dict[str, Any], settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The app's context for these pipelines: cdk.json's (feature flags, stack settings) with ``pipelines``
    and any ``settings`` (``customerManagedKey``...) replacing its own."""
    context = dict(json.loads((REPO_ROOT / "cdk.json").read_text())["context"])
    context["batchline"] = {**context.get("batchline", {}), **(settings or {}), "pipelines": pipelines}
    return context


def digest(context: dict[str, Any]) -> str:
    hashed = hashlib.sha256(json.dumps(context, sort_keys=True).encode())
    for pattern in SOURCES:
        for path in sorted(REPO_ROOT.glob(pattern)):
            hashed.update(path.name.encode())
            hashed.update(path.read_bytes())
    return hashed.hexdigest()[:20]


def stack_template(pipelines: dict[str, Any], settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The synthesized template for ``pipelines`` (and stack ``settings``), from the cache when it is current."""
    context = synth_context(pipelines, settings)
    cached = CACHE_DIR / f"{digest(context)}.json"
    if cached.exists():
        return dict(json.loads(cached.read_text()))
    # Synthesis needs no network and no AWS: none of the machine's AWS, CDK or proxy settings go to it.
    environment = {
        **{
            name: value
            for name, value in os.environ.items()
            if not name.upper().startswith(("AWS_", "CDK_")) and not name.lower().endswith("_proxy")
        },
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    done = subprocess.run(
        [sys.executable, "-m", "batchline_local.permissions.synth"],
        input=json.dumps(context),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=environment,
        check=False,
    )
    if done.returncode != 0:
        raise SynthFailed(f"the stack does not synthesize for these pipelines: {done.stderr.strip()[-2000:]}")
    template = json.loads(done.stdout)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(template))
    partial.replace(cached)  # atomic: a concurrent run reads a whole template or none
    return dict(template)


def _synth(context: dict[str, Any]) -> dict[str, Any]:
    sys.path.insert(0, str(REPO_ROOT))
    from aws_cdk.assertions import Template

    from stacks.app_factory import build_app

    _, stack = build_app(context, bundle=False)
    return dict(Template.from_stack(stack).to_json())


if __name__ == "__main__":
    json.dump(_synth(json.load(sys.stdin)), sys.stdout)
