"""Every AWS call of a local run, checked against the synthesized stack's policies as AWS would check it.

``PermissionChecker.check`` authorizes one call for a function (its role's identity policies, the resource's
policy, the KMS key policy for S3 data on an encrypted bucket) and raises the ClientError AWS answers on a
denial; ``check_service`` does the same for a service acting for the stack (SageMaker, Bedrock, Personalize,
Amazon ML reading staged input and writing output), as the role passed to it or as its service principal.
``attach`` registers the check on a boto3 client or session, so every call it makes goes through it.
The decisions are @cloud-copilot/iam-simulate's (evaluator.py), not a reading of the policies of our own.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from batchline_local.permissions.calls import IamRequest, iam_requests
from batchline_local.permissions.evaluator import Decision, Evaluator
from batchline_local.permissions.template import NamedPolicy, StackPolicies

# The error code and HTTP status AWS answers a denied call with: S3 and the query-protocol services say
# AccessDenied; the JSON services say AccessDeniedException.
_ERROR_CODES = {"s3": ("AccessDenied", 403), "sts": ("AccessDenied", 403), "iam": ("AccessDenied", 403)}
_DEFAULT_ERROR = ("AccessDeniedException", 400)
_PARAMS_KEY = "batchline_permissions_params"
# Decisions kept for repeated requests; past this many the cache starts again (each entry is a few hundred bytes).
CACHE_SIZE = 20_000


@dataclass(frozen=True)
class Denial:
    principal: str
    action: str
    resource: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"principal": self.principal, "action": self.action, "resource": self.resource, "reason": self.reason}


@dataclass
class _Caller:
    """Who a request is evaluated for: the ARN AWS names in a denial, and the policies that speak for it."""

    label: str  # what permissions.json calls it: "PrepareInput", "personalize.amazonaws.com for demo-personalize"
    arn: str  # assumed-role session ARN, or the service principal
    role_arn: str | None
    policies: Sequence[NamedPolicy]
    context: dict[str, Any] = field(default_factory=dict)


def access_denied(
    service: str, operation: str, caller_arn: str, action: str, resource: str, reason: str
) -> ClientError:
    """The ClientError AWS raises for a denied call, worded as AWS words it."""
    code, status = _ERROR_CODES.get(service, _DEFAULT_ERROR)
    if not reason.startswith(("because", "with")):
        reason = f"because {reason}"
    message = f"User: {caller_arn} is not authorized to perform: {action} on resource: {resource} {reason}"
    response: dict[str, Any] = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)  # type: ignore[arg-type]


class PermissionChecker:
    """Owns one evaluator process; records ``checked``, ``principals`` and ``denied`` for permissions.json.

    ``external_roles`` gives identity policies for roles the stack does not create (a pipeline's ``roleArn``):
    without them such a role is allowed only what resource policies grant it by name.
    """

    def __init__(
        self,
        policies: StackPolicies,
        *,
        evaluator: Evaluator | None = None,
        external_roles: Mapping[str, Sequence[NamedPolicy]] | None = None,
    ) -> None:
        self.policies = policies
        self.evaluator = evaluator or Evaluator()
        self._owns_evaluator = evaluator is None
        self.external_roles = dict(external_roles or {})
        self.checked = 0
        self.principals: dict[str, dict[str, Any]] = {}
        self.denied: list[Denial] = []
        self._cache: dict[tuple[Any, ...], Decision] = {}
        self._fingerprints: dict[int, tuple[Any, str]] = {}
        self._lock = threading.Lock()

    def use_policies(self, policies: StackPolicies, external_roles: Mapping[str, Sequence[NamedPolicy]]) -> None:
        """From now on, check against these policies (a redeployed stack); earlier decisions are forgotten."""
        with self._lock:
            self.policies = policies
            self.external_roles = dict(external_roles)
            self._cache.clear()
            self._fingerprints.clear()

    # --- the checks ---------------------------------------------------------------------------

    def check(self, principal: str, service: str, operation: str, params: Mapping[str, Any]) -> None:
        """Authorize one call by ``principal`` (a function name such as "PrepareInput", or "StateMachine")."""
        role = self.policies.role(principal)
        caller = _Caller(
            label=principal,
            arn=self._session_arn(role.name, principal),
            role_arn=role.arn,
            policies=role.policies,
        )
        self._authorize(caller, service, operation, params)

    def check_service(
        self,
        service_principal: str,
        service: str,
        operation: str,
        params: Mapping[str, Any],
        *,
        acting_for: str,
        role_arn: str | None = None,
        source_arn: str | None = None,
        source_account: bool = True,
    ) -> None:
        """Authorize a call a service makes for the stack (``acting_for``: the pipeline).

        With ``role_arn`` the service first assumes the role (checked against its trust policy when the stack
        created it) and the call is the role's; without, the service principal calls with ``aws:SourceAccount``
        (unless ``source_account`` is False: some services do not send it) and ``aws:SourceArn``.
        """
        service_context: dict[str, Any] = {
            "aws:PrincipalIsAWSService": "true",
            "aws:PrincipalServiceName": service_principal,
        }
        if source_account:
            service_context["aws:SourceAccount"] = self.policies.account
        if source_arn:
            service_context["aws:SourceArn"] = source_arn
        if role_arn is None:
            caller = _Caller(
                label=f"{service_principal} for {acting_for}",
                arn=service_principal,
                role_arn=None,
                policies=(),
                context=service_context,
            )
            self._authorize(caller, service, operation, params)
            return
        role = self.policies.role_by_arn(role_arn)
        label = f"{service_principal} for {acting_for} as {role_arn.rsplit('/', 1)[-1]}"
        if role is not None:
            trust = IamRequest("sts:AssumeRole", role.arn, dict(service_context))
            assumer = _Caller(label=label, arn=service_principal, role_arn=None, policies=(), context={})
            self._decide(assumer, service, "AssumeRole", [(trust, role.trust_policy)])
            policies: Sequence[NamedPolicy] = role.policies
        else:
            policies = self.external_roles.get(role_arn, ())
        session_name = service_principal.split(".", 1)[0]
        caller = _Caller(
            label=label,
            arn=self._session_arn(role_arn.rsplit("/", 1)[-1], session_name),
            role_arn=role_arn,
            policies=policies,
        )
        self._authorize(caller, service, operation, params)

    def _authorize(self, caller: _Caller, service: str, operation: str, params: Mapping[str, Any]) -> None:
        policies = self.policies
        requests = iam_requests(
            service, operation, params, account=policies.account, region=policies.region, partition=policies.partition
        )
        pairs: list[tuple[IamRequest, dict[str, Any] | None]] = []
        for request in requests:
            pairs.append((request, policies.resource_policy(request.resource)))
            pairs.extend(self._kms_requests(request))
        self._decide(caller, service, operation, pairs)

    def _kms_requests(self, request: IamRequest) -> list[tuple[IamRequest, dict[str, Any] | None]]:
        """What S3 asks KMS for on the caller's behalf when the bucket's default encryption is a KMS key.

        https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html: reads need kms:Decrypt,
        writes kms:GenerateDataKey, with kms:ViaService and the encryption context S3 sends (the bucket's ARN
        when S3 Bucket Keys are on, else the object's).
        """
        if request.kms_use is None or request.bucket not in self.policies.bucket_keys:
            return []
        key = self.policies.bucket_keys[request.bucket]
        partition = self.policies.partition
        context_arn = (
            f"arn:{partition}:s3:::{request.bucket}"
            if self.policies.bucket_key_enabled.get(request.bucket)
            else request.resource
        )
        action = "kms:Decrypt" if request.kms_use == "decrypt" else "kms:GenerateDataKey"
        kms = IamRequest(
            action,
            key,
            {
                "kms:ViaService": f"s3.{self.policies.region}.amazonaws.com",
                "kms:CallerAccount": self.policies.account,
                "kms:EncryptionContext:aws:s3:arn": context_arn,
                "kms:EncryptionContextKeys": ["aws:s3:arn"],
            },
        )
        return [(kms, self.policies.resource_policy(key))]

    def _decide(
        self,
        caller: _Caller,
        service: str,
        operation: str,
        pairs: Sequence[tuple[IamRequest, dict[str, Any] | None]],
    ) -> None:
        keys = [self._key(caller, request, resource_policy) for request, resource_policy in pairs]
        with self._lock:
            found = {key: self._cache[key] for key in keys if key in self._cache}
            missing = [key for key in dict.fromkeys(keys) if key not in found]
            if missing:
                pending = zip(keys, pairs, strict=True)
                bodies = {key: self._body(caller, request, policy) for key, (request, policy) in pending}
                decisions = self.evaluator.evaluate([bodies[key] for key in missing])
                found.update(zip(missing, decisions, strict=True))
                if len(self._cache) + len(missing) > CACHE_SIZE:
                    self._cache.clear()  # bounded: a long `local serve` must not keep every object's decision
                self._cache.update(zip(missing, decisions, strict=True))
            self.checked += 1
            seen = self.principals.setdefault(caller.label, {"role": caller.role_arn, "checked": 0, "actions": set()})
            seen["checked"] += 1
            seen["actions"].update(request.action for request, _ in pairs)
            for (request, _), key in zip(pairs, keys, strict=True):
                decision = found[key]
                if not decision.allowed:
                    self.denied.append(Denial(caller.label, request.action, request.resource, decision.reason))
                    raise access_denied(
                        service, operation, caller.arn, request.action, request.resource, decision.reason
                    )

    def _context(self, caller: _Caller, request: IamRequest) -> dict[str, Any]:
        context: dict[str, Any] = {
            "aws:SecureTransport": "true",  # boto3 calls AWS over HTTPS
            "aws:RequestedRegion": self.policies.region,
            **caller.context,
            **request.context,
        }
        if caller.role_arn:
            context.update({"aws:PrincipalArn": caller.role_arn, "aws:PrincipalAccount": self.policies.account})
        return context

    def _key(self, caller: _Caller, request: IamRequest, resource_policy: dict[str, Any] | None) -> tuple[Any, ...]:
        """Everything the evaluator's decision depends on, compactly: the same principal, action, resource,
        context and policies get the same decision. Policies enter by fingerprint (their JSON's digest), so a
        cached decision holds a few hundred bytes, not the policies' text."""
        return (
            caller.arn,
            self._fingerprint(caller.policies),
            request.action,
            request.resource,
            json.dumps(self._context(caller, request), sort_keys=True),
            self._fingerprint(resource_policy),
            request.check_resource_type,
        )

    def _fingerprint(self, document: Any) -> str:
        """A digest of a policy document (or a tuple of named policies), computed once per object: the checker
        keeps a reference to each object it fingerprinted, so an ``id`` is never reused for another one."""
        if document is None:
            return ""
        known = self._fingerprints.get(id(document))
        if known is None:
            value = document if isinstance(document, dict) else [policy.to_json() for policy in document]
            text = json.dumps(value, sort_keys=True)
            known = self._fingerprints[id(document)] = (document, hashlib.sha256(text.encode()).hexdigest())
        return known[1]

    def _body(self, caller: _Caller, request: IamRequest, resource_policy: dict[str, Any] | None) -> dict[str, Any]:
        """The evaluator's request (see evaluate.mjs)."""
        account = self.policies.account
        resource_account = request.resource.split(":")[4] if request.resource.count(":") >= 5 else ""
        body: dict[str, Any] = {
            "principal": caller.arn,
            "action": request.action,
            "resource": request.resource,
            # Resources without an account in their ARN (buckets, foundation models) count as the caller's.
            "resourceAccount": resource_account or account,
            "identityPolicies": [policy.to_json() for policy in caller.policies],
            "context": self._context(caller, request),
        }
        if resource_policy is not None:
            body["resourcePolicy"] = resource_policy
        if not request.check_resource_type:
            body["checkResourceType"] = False
        return body

    def _session_arn(self, role_name: str, session: str) -> str:
        return f"arn:{self.policies.partition}:sts::{self.policies.account}:assumed-role/{role_name}/{session}"

    # --- reporting and lifetime ---------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """permissions.json: ``checked`` calls, ``principals`` (functions and acting services) and ``denied``."""
        with self._lock:
            return {
                "checked": self.checked,
                "principals": {
                    name: {"role": seen["role"], "checked": seen["checked"], "actions": sorted(seen["actions"])}
                    for name, seen in sorted(self.principals.items())
                },
                "denied": [denial.to_json() for denial in self.denied],
            }

    def summary(self) -> str:
        """One line for ``batchline local run``."""
        denied = f"{len(self.denied)} denied" if self.denied else "none denied"
        return f"permissions: {self.checked} calls checked for {len(self.principals)} principals, {denied}"

    def close(self) -> None:
        if self._owns_evaluator:
            self.evaluator.close()

    def __enter__(self) -> PermissionChecker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- boto3 hooks ----------------------------------------------------------------------------------


def attach(target: Any, checker: PermissionChecker, principal: Callable[[], str | None]) -> None:
    """Check every call of a boto3 client, or of every client a boto3 session makes from now on.

    ``principal`` answers who is calling (a function name; None for calls that are not a function's): the
    local runtime knows which function runs in the current thread. A denied call raises the ClientError AWS
    would, before any request is made.
    """

    def check(service: str, operation: str, params: Mapping[str, Any]) -> None:
        who = principal()
        if who is not None:  # None: not a function's call (the runtime setting up its emulation)
            checker.check(who, service, operation, params)

    attach_check(target, check)


def attach_check(target: Any, check: Callable[[str, str, Mapping[str, Any]], None]) -> None:
    """Call ``check(service, operation, params)`` before every call of a boto3 client (or of every client a
    session makes from now on); what it raises is the call's error. ``attach`` checks a function's calls with it,
    the emulated services their own reads and writes."""
    events = target.meta.events if hasattr(target, "meta") else target.events

    def keep_params(params: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
        context[_PARAMS_KEY] = dict(params)  # the API parameters, before botocore serialises them

    def before_call(model: Any, context: dict[str, Any], **_: Any) -> None:
        check(model.service_model.service_name, model.name, context.get(_PARAMS_KEY, {}))

    # The API parameters are seen at before-parameter-build; before-call (after validation, before the request)
    # sees only the serialised request, so the first hands them to the second through the call's context.
    events.register_last("before-parameter-build", keep_params, unique_id=f"batchline-permissions-{id(check)}-p")
    # First among before-call's handlers: an emulator answers a call there (for services moto lacks), and a
    # call must be authorized before anything answers it.
    events.register_first("before-call", before_call, unique_id=f"batchline-permissions-{id(check)}-c")
