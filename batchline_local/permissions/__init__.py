"""Permission checks for the local runtime: every AWS call authorized against the synthesized stack's policies.

Read docs/permissions.md first: the evaluator, what is mapped, and how the runtime wires it in.
"""

from batchline_local.permissions.calls import IamRequest, UnmappedOperation, iam_requests, mapped_operations
from batchline_local.permissions.checker import Denial, PermissionChecker, access_denied, attach
from batchline_local.permissions.evaluator import Decision, Evaluator, EvaluatorUnavailable
from batchline_local.permissions.local import checker_for_template, runtime_names
from batchline_local.permissions.template import (
    NamedPolicy,
    NameTable,
    Role,
    StackPolicies,
    UnresolvedIntrinsic,
    name_table,
    stack_policies,
)

__all__ = [
    "Decision",
    "Denial",
    "Evaluator",
    "EvaluatorUnavailable",
    "IamRequest",
    "NameTable",
    "NamedPolicy",
    "PermissionChecker",
    "Role",
    "StackPolicies",
    "UnmappedOperation",
    "UnresolvedIntrinsic",
    "access_denied",
    "attach",
    "checker_for_template",
    "iam_requests",
    "mapped_operations",
    "name_table",
    "runtime_names",
    "stack_policies",
]
