"""The synthesized template's policies, made concrete for one local run.

A CloudFormation template names its resources by logical ID and builds ARNs with intrinsics (Ref, Fn::GetAtt,
Fn::Join, Fn::Sub, ...). ``name_table`` gives every resource the physical names and ARNs the local runtime uses;
``stack_policies`` resolves the template with it into concrete policies: each role's identity policies (by the
function, pipeline or state machine it serves), its trust policy, and the resource policies (bucket, key, queue,
bus, function) by resource ARN. What cannot be resolved raises: a policy read half-way would check nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# CDK's logical IDs: the construct path without separators, then an 8-hex-digit hash of the full path.
_HASH = re.compile(r"^(?P<path>.+?)(?P<hash>[0-9A-F]{8})$")
PSEUDO_PARAMETERS = ("AWS::Partition", "AWS::Region", "AWS::AccountId", "AWS::URLSuffix", "AWS::StackName")

NameTable = dict[str, dict[str, str]]


class UnresolvedIntrinsic(ValueError):
    """An intrinsic function or reference the name table cannot resolve."""


@dataclass(frozen=True)
class NamedPolicy:
    """One identity policy: its name (the decision names it) and its document."""

    name: str
    document: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "policy": self.document}


@dataclass(frozen=True)
class Role:
    logical_id: str
    name: str
    arn: str
    trust_policy: dict[str, Any]
    policies: tuple[NamedPolicy, ...] = ()


@dataclass
class StackPolicies:
    """Everything the permission checks read from one synthesized template, resolved to physical names."""

    account: str
    region: str
    partition: str
    roles: dict[str, Role]  # logical ID -> role
    functions: dict[str, str]  # function name ("PrepareInput") -> role logical ID
    service_roles: dict[str, str]  # pipeline name -> role logical ID (roles the stack creates for services)
    state_machine_role: str | None
    resource_policies: dict[str, dict[str, Any]]  # resource ARN -> policy (bucket, key, queue, bus, function)
    bucket_keys: dict[str, str] = field(default_factory=dict)  # bucket name -> KMS key ARN (SSE-KMS default)
    bucket_key_enabled: dict[str, bool] = field(default_factory=dict)

    def role(self, principal: str) -> Role:
        """The role of a function name ("PrepareInput"), "StateMachine", or a pipeline's service role."""
        if principal in self.functions:
            return self.roles[self.functions[principal]]
        if principal == "StateMachine" and self.state_machine_role:
            return self.roles[self.state_machine_role]
        if principal in self.service_roles:
            return self.roles[self.service_roles[principal]]
        raise KeyError(f"no role in the template for {principal!r}")

    def role_by_arn(self, arn: str) -> Role | None:
        return next((role for role in self.roles.values() if role.arn == arn), None)

    def resource_policy(self, resource_arn: str) -> dict[str, Any] | None:
        """The policy that governs ``resource_arn``: an object's is its bucket's."""
        if resource_arn in self.resource_policies:
            return self.resource_policies[resource_arn]
        if resource_arn.startswith(f"arn:{self.partition}:s3:::"):
            bucket = resource_arn.split(":::", 1)[1].split("/", 1)[0]
            return self.resource_policies.get(f"arn:{self.partition}:s3:::{bucket}")
        return None


def path_of(logical_id: str) -> str:
    """The logical ID without CDK's hash: ``StorageInbox618003E1`` -> ``StorageInbox``."""
    match = _HASH.match(logical_id)
    return match.group("path") if match else logical_id


def _attributes(kind: str, name: str, *, account: str, region: str, partition: str) -> dict[str, str]:
    """Ref and Fn::GetAtt values of one resource named ``name``, as CloudFormation returns them."""
    prefix = f"arn:{partition}"
    if kind == "AWS::S3::Bucket":
        return {"Ref": name, "Arn": f"{prefix}:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}
    if kind == "AWS::IAM::Role":
        return {"Ref": name, "Arn": f"{prefix}:iam::{account}:role/{name}", "RoleId": f"AROA{name.upper()[:16]}"}
    if kind == "AWS::IAM::ManagedPolicy":
        return {"Ref": f"{prefix}:iam::{account}:policy/{name}", "PolicyArn": f"{prefix}:iam::{account}:policy/{name}"}
    if kind == "AWS::Lambda::Function":
        return {"Ref": name, "Arn": f"{prefix}:lambda:{region}:{account}:function:{name}"}
    if kind == "AWS::Events::EventBus":
        return {"Ref": name, "Name": name, "Arn": f"{prefix}:events:{region}:{account}:event-bus/{name}"}
    if kind == "AWS::Events::Rule":
        return {"Ref": name, "Arn": f"{prefix}:events:{region}:{account}:rule/{name}"}
    if kind == "AWS::SQS::Queue":
        return {
            "Ref": f"https://sqs.{region}.amazonaws.com/{account}/{name}",
            "QueueUrl": f"https://sqs.{region}.amazonaws.com/{account}/{name}",
            "QueueName": name,
            "Arn": f"{prefix}:sqs:{region}:{account}:{name}",
        }
    if kind == "AWS::StepFunctions::StateMachine":
        arn = f"{prefix}:states:{region}:{account}:stateMachine:{name}"
        return {"Ref": arn, "Arn": arn, "Name": name}
    if kind == "AWS::KMS::Key":
        return {"Ref": name, "KeyId": name, "Arn": f"{prefix}:kms:{region}:{account}:key/{name}"}
    if kind == "AWS::Logs::LogGroup":
        return {"Ref": name, "Arn": f"{prefix}:logs:{region}:{account}:log-group:{name}:*"}
    if kind == "AWS::SNS::Topic":
        arn = f"{prefix}:sns:{region}:{account}:{name}"
        return {"Ref": arn, "TopicArn": arn, "TopicName": name}
    return {"Ref": name}


# The property that fixes a resource's physical name, where the stack sets one.
_NAME_PROPERTIES = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::IAM::Role": "RoleName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Events::EventBus": "Name",
    "AWS::Events::Rule": "Name",
    "AWS::SQS::Queue": "QueueName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::SNS::Topic": "TopicName",
}


def name_table(
    template: Mapping[str, Any],
    names: Mapping[str, str] | None = None,
    *,
    account: str,
    region: str,
    partition: str = "aws",
    prefix: str = "batchline-local",
) -> NameTable:
    """Logical ID -> {"Ref": ..., "Arn": ..., other attributes} for every resource of the template.

    ``names`` maps a logical ID, or its path without CDK's hash (``StorageInbox``, ``FunctionsPrepareInput``), to
    the physical name the local runtime gave that resource (for a KMS key: its key ID). A resource not named
    there keeps the name the template fixes (``StateMachineName``...), or else gets ``<prefix>-<path>``, as
    CloudFormation would generate one.
    """
    names = dict(names or {})
    table: NameTable = {}
    for logical_id, resource in template.get("Resources", {}).items():
        kind = resource.get("Type", "")
        properties = resource.get("Properties", {})
        fixed = properties.get(_NAME_PROPERTIES.get(kind, ""), None)
        name = names.get(logical_id) or names.get(path_of(logical_id))
        if name is None:
            name = fixed if isinstance(fixed, str) else f"{prefix}-{path_of(logical_id)}"
        table[logical_id] = _attributes(kind, name, account=account, region=region, partition=partition)
    return table


def fixed_name_aliases(template: Mapping[str, Any], table: NameTable) -> dict[str, str]:
    """Names the template fixes (``Batchline-batch-prediction``) -> the runtime's, where they differ.

    CDK writes a fixed name into policies as a literal string (a grant on ``...:stateMachine:Batchline-...``),
    not as a reference, so such literals are renamed too when the runtime names the resource otherwise.
    """
    aliases = {}
    for logical_id, resource in template.get("Resources", {}).items():
        fixed = resource.get("Properties", {}).get(_NAME_PROPERTIES.get(resource.get("Type", ""), ""), None)
        attributes = table.get(logical_id, {})
        physical = attributes.get("Name") or attributes.get("QueueName") or attributes.get("TopicName")
        physical = physical or attributes.get("Ref")
        if isinstance(fixed, str) and physical and physical != fixed:
            aliases[fixed] = physical
    return aliases


class Resolver:
    """Resolves intrinsic functions against a name table and the pseudo parameters."""

    def __init__(
        self,
        table: NameTable,
        *,
        account: str,
        region: str,
        partition: str = "aws",
        stack_name: str = "Batchline",
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self.table = table
        self.pseudo = {
            "AWS::Partition": partition,
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": stack_name,
        }
        self._aliases = [
            (re.compile(rf"(?<![A-Za-z0-9-]){re.escape(fixed)}(?![A-Za-z0-9-])"), physical)
            for fixed, physical in sorted((aliases or {}).items(), key=lambda item: -len(item[0]))
        ]

    def literal(self, text: str) -> str:
        for pattern, physical in self._aliases:
            text = pattern.sub(physical, text)
        return text

    def ref(self, name: str) -> str:
        if name in self.pseudo:
            return self.pseudo[name]
        if name not in self.table:
            raise UnresolvedIntrinsic(f"Ref to {name}, which is neither a resource nor a pseudo parameter")
        return self.table[name]["Ref"]

    def get_att(self, logical_id: str, attribute: str) -> str:
        attributes = self.table.get(logical_id)
        if attributes is None or attribute not in attributes:
            raise UnresolvedIntrinsic(f"Fn::GetAtt {logical_id}.{attribute} is not in the name table")
        return attributes[attribute]

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic replaced by its string; lists and objects are resolved throughout."""
        if isinstance(value, str):
            return self.literal(value)
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self.ref(argument)
            if key.startswith("Fn::") or key == "Condition":
                return self._function(key, argument)
        return {key: self.resolve(item) for key, item in value.items()}

    def _function(self, name: str, argument: Any) -> Any:
        if name == "Fn::GetAtt":
            logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return self.get_att(logical_id, attribute)
        if name == "Fn::Join":
            separator, items = argument
            return separator.join(str(item) for item in self.resolve(items))
        if name == "Fn::Sub":
            return self._sub(argument)
        if name == "Fn::Select":
            index, items = self.resolve(argument)
            return items[int(index)]
        if name == "Fn::Split":
            separator, text = self.resolve(argument)
            return text.split(separator)
        raise UnresolvedIntrinsic(f"{name} is not supported by the permission checks' resolver")

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        values = {key: self.resolve(item) for key, item in variables.items()}

        def replace(match: re.Match[str]) -> str:
            key = match.group(1)
            if key.startswith("!"):
                return "${" + key[1:] + "}"  # ${!Literal} stays as written, without the "!"
            if key in values:
                return str(values[key])
            if "." in key and key.split(".", 1)[0] in self.table:
                logical_id, attribute = key.split(".", 1)
                return self.get_att(logical_id, attribute)
            return self.ref(key)

        return self.literal(re.sub(r"\$\{([^}]+)\}", replace, text))


def _logical_ids(value: Any) -> list[str]:
    """Logical IDs referenced by a list of ``{"Ref": id}`` / ``{"Fn::GetAtt": [id, ...]}`` (Roles, Queues...)."""
    found = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, dict) and "Ref" in item:
            found.append(item["Ref"])
        elif isinstance(item, dict) and "Fn::GetAtt" in item:
            found.append(item["Fn::GetAtt"][0])
        else:
            raise UnresolvedIntrinsic(f"expected a reference to a resource, found {item!r}")
    return found


def _function_names(resources: Mapping[str, Any]) -> dict[str, str]:
    """Function name -> role logical ID: the stack's functions are ``Functions/<Name>`` (stacks/functions.py)."""
    functions = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Lambda::Function":
            continue
        cdk_path = resource.get("Metadata", {}).get("aws:cdk:path", "")
        parts = cdk_path.split("/")
        if len(parts) >= 3 and parts[-3] == "Functions":
            name = parts[-2]
        elif path_of(logical_id).startswith("Functions"):
            name = path_of(logical_id).removeprefix("Functions")
        else:
            continue
        role = resource["Properties"].get("Role")
        if isinstance(role, dict) and "Fn::GetAtt" in role:
            functions[name] = role["Fn::GetAtt"][0]
    return functions


def _service_roles(resources: Mapping[str, Any], pipelines: list[str] | None) -> dict[str, str]:
    """Pipeline name -> logical ID of the role the stack creates for its service (stacks/service_roles.py)."""
    found = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::IAM::Role" or not path_of(logical_id).startswith("ServiceRoles"):
            continue
        if pipelines is not None:
            for name in pipelines:
                if path_of(logical_id) == "ServiceRoles" + re.sub(r"[^A-Za-z0-9]", "", f"{name}-role"):
                    found[name] = logical_id
            continue
        described = re.search(r"pipeline (\S+)$", resource["Properties"].get("Description", ""))
        if described:
            found[described.group(1)] = logical_id
    return found


def _policy_sources(resources: Mapping[str, Any]) -> dict[str, list[NamedPolicy]]:
    """Role logical ID -> its identity policies: AWS::IAM::Policy and customer managed policies attached to it."""
    attached: dict[str, list[NamedPolicy]] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            continue
        properties = resource["Properties"]
        name = properties.get("PolicyName") or properties.get("ManagedPolicyName") or logical_id
        for role in _logical_ids(properties.get("Roles", [])):
            attached.setdefault(role, []).append(NamedPolicy(str(name), properties["PolicyDocument"]))
    return attached


def stack_policies(
    template: Mapping[str, Any],
    table: NameTable,
    *,
    account: str,
    region: str,
    partition: str = "aws",
    stack_name: str = "Batchline",
    pipelines: list[str] | None = None,
) -> StackPolicies:
    """The template's roles and resource policies with every name resolved through ``table`` (see name_table).

    ``pipelines`` names the pipelines whose service roles to find (default: read from each role's description).
    """
    resolver = Resolver(
        table,
        account=account,
        region=region,
        partition=partition,
        stack_name=stack_name,
        aliases=fixed_name_aliases(template, table),
    )
    resources = template.get("Resources", {})
    attached = _policy_sources(resources)
    roles = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::IAM::Role":
            continue
        properties = resource["Properties"]
        managed = [arn for arn in properties.get("ManagedPolicyArns", []) if not _is_template_policy(arn, resources)]
        if managed:
            # An AWS managed policy's text is not in the template: a check that ignored it would deny what AWS
            # allows, one that guessed would allow what AWS denies.
            raise UnresolvedIntrinsic(f"role {logical_id} has AWS managed policies, which are not modelled: {managed}")
        inline = [NamedPolicy(p["PolicyName"], p["PolicyDocument"]) for p in properties.get("Policies", [])]
        policies = tuple(
            NamedPolicy(policy.name, resolver.resolve(policy.document))
            for policy in [*inline, *attached.get(logical_id, [])]
        )
        roles[logical_id] = Role(
            logical_id=logical_id,
            name=table[logical_id]["Ref"],
            arn=table[logical_id]["Arn"],
            trust_policy=resolver.resolve(properties.get("AssumeRolePolicyDocument", {})),
            policies=policies,
        )
    state_machine_role = None
    for resource in resources.values():
        if resource.get("Type") == "AWS::StepFunctions::StateMachine":
            state_machine_role = resource["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    resource_policies, bucket_keys, bucket_key_enabled = _resource_policies(resources, resolver)
    return StackPolicies(
        account=account,
        region=region,
        partition=partition,
        roles=roles,
        functions=_function_names(resources),
        service_roles=_service_roles(resources, pipelines),
        state_machine_role=state_machine_role,
        resource_policies=resource_policies,
        bucket_keys=bucket_keys,
        bucket_key_enabled=bucket_key_enabled,
    )


def _is_template_policy(arn: Any, resources: Mapping[str, Any]) -> bool:
    return (
        isinstance(arn, dict)
        and "Ref" in arn
        and resources.get(arn["Ref"], {}).get("Type") == "AWS::IAM::ManagedPolicy"
    )


def _resource_policies(
    resources: Mapping[str, Any], resolver: Resolver
) -> tuple[dict[str, dict[str, Any]], dict[str, str], dict[str, bool]]:
    """Resource ARN -> policy; bucket name -> its default KMS key ARN and whether S3 Bucket Keys are on."""
    policies: dict[str, dict[str, Any]] = {}
    bucket_keys: dict[str, str] = {}
    bucket_key_enabled: dict[str, bool] = {}
    table = resolver.table

    def add(arn: str, document: dict[str, Any]) -> None:
        resolved = resolver.resolve(document)
        if arn in policies:  # several policy resources on one resource (queues): their statements add up
            policies[arn] = {**policies[arn], "Statement": _statements(policies[arn]) + _statements(resolved)}
        else:
            policies[arn] = resolved

    for logical_id, resource in resources.items():
        kind, properties = resource.get("Type"), resource.get("Properties", {})
        if kind == "AWS::S3::BucketPolicy":
            bucket = _logical_ids(properties["Bucket"])[0]
            add(table[bucket]["Arn"], properties["PolicyDocument"])
        elif kind == "AWS::KMS::Key":
            add(table[logical_id]["Arn"], properties["KeyPolicy"])
        elif kind in ("AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"):
            for target in _logical_ids(properties.get("Queues") or properties.get("Topics")):
                add(table[target]["Arn"], properties["PolicyDocument"])
        elif kind == "AWS::Events::EventBus" and properties.get("Policy"):
            add(table[logical_id]["Arn"], properties["Policy"])
        elif kind == "AWS::Lambda::Permission":
            function_arn = _function_arn(resolver.resolve(properties["FunctionName"]), resolver)
            add(function_arn, {"Version": "2012-10-17", "Statement": [_lambda_permission(properties, resolver)]})
        elif kind == "AWS::S3::Bucket":
            for rule in properties.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", []):
                default = rule.get("ServerSideEncryptionByDefault", {})
                if default.get("SSEAlgorithm") in ("aws:kms", "aws:kms:dsse") and "KMSMasterKeyID" in default:
                    name = table[logical_id]["Ref"]
                    bucket_keys[name] = resolver.resolve(default["KMSMasterKeyID"])
                    bucket_key_enabled[name] = bool(rule.get("BucketKeyEnabled"))
    return policies, bucket_keys, bucket_key_enabled


def _statements(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement", [])
    return list(statements) if isinstance(statements, list) else [statements]


def _lambda_permission(properties: Mapping[str, Any], resolver: Resolver) -> dict[str, Any]:
    """An AWS::Lambda::Permission as the statement Lambda adds to the function's policy."""
    principal = resolver.resolve(properties["Principal"])
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Action": properties["Action"],
        "Principal": {"Service": principal} if principal.endswith(".amazonaws.com") else {"AWS": principal},
        "Resource": _function_arn(resolver.resolve(properties["FunctionName"]), resolver),
    }
    conditions: dict[str, dict[str, str]] = {}
    if "SourceArn" in properties:
        conditions["ArnLike"] = {"aws:SourceArn": resolver.resolve(properties["SourceArn"])}
    if "SourceAccount" in properties:
        conditions["StringEquals"] = {"aws:SourceAccount": resolver.resolve(properties["SourceAccount"])}
    if conditions:
        statement["Condition"] = conditions
    return statement


def _function_arn(name_or_arn: str, resolver: Resolver) -> str:
    if name_or_arn.startswith("arn:"):
        return name_or_arn
    partition, region, account = (resolver.pseudo[p] for p in ("AWS::Partition", "AWS::Region", "AWS::AccountId"))
    return f"arn:{partition}:lambda:{region}:{account}:function:{name_or_arn}"
