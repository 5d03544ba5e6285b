"""The local runtime's names for the stack's resources, and one call to build its checker from a template."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from batchline_local.permissions.checker import PermissionChecker
from batchline_local.permissions.evaluator import Evaluator
from batchline_local.permissions.template import NamedPolicy, NameTable, StackPolicies, name_table, stack_policies

# The resources' paths in the template (logical IDs without CDK's hash) -> the runtime's name for them.
BUCKET_PATHS = {"inbox": "StorageInbox", "work": "StorageWork", "results": "StorageResults"}


def runtime_names(
    *,
    buckets: Mapping[str, str],
    event_bus: str,
    state_machine: str,
    functions: Sequence[str],
    function_prefix: str = "batchline-local-",
    undelivered_queue: str | None = None,
    key_id: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The ``names`` for name_table from what the local runtime creates (batchline_local/runtime.py).

    ``buckets``: {"inbox": ..., "work": ..., "results": ...} (runtime.BUCKETS); each function is named
    ``<function_prefix><Name>`` and its role ``<function_prefix><Name>-role``; ``key_id`` is the KMS key's ID when
    ``customerManagedKey`` is on. ``extra`` adds or overrides entries (logical ID or path -> name).
    """
    names = {BUCKET_PATHS[kind]: name for kind, name in buckets.items() if kind in BUCKET_PATHS}
    names["EventsBus"] = event_bus
    names["OrchestrationBatchPrediction"] = state_machine
    names["OrchestrationBatchPredictionRole"] = f"{state_machine}-role"
    for function in functions:
        names[f"Functions{function}"] = f"{function_prefix}{function}"
        names[f"Functions{function}Role"] = f"{function_prefix}{function}-role"
        names[f"Functions{function}Logs"] = f"/aws/lambda/{function_prefix}{function}"
    if undelivered_queue:
        names["EventsUndeliveredEvents"] = undelivered_queue
    if key_id:
        names["EncryptionKey"] = key_id
    names.update(extra or {})
    return names


def checker_for_template(
    template: Mapping[str, Any],
    names: Mapping[str, str],
    *,
    account: str,
    region: str,
    partition: str = "aws",
    pipelines: list[str] | None = None,
    evaluator: Evaluator | None = None,
    external_roles: Mapping[str, Sequence[NamedPolicy]] | None = None,
) -> tuple[PermissionChecker, StackPolicies, NameTable]:
    """A checker for ``template`` (``Template.to_json()`` or ``cdk.out/<stack>.template.json``), with the
    policies and the name table it resolved them with (the runtime creates its roles from the table)."""
    table = name_table(template, names, account=account, region=region, partition=partition)
    policies = stack_policies(template, table, account=account, region=region, partition=partition, pipelines=pipelines)
    return PermissionChecker(policies, evaluator=evaluator, external_roles=external_roles), policies, table
