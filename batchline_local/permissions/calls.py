"""One botocore call -> the IAM requests AWS authorizes for it: action, resource ARN, condition keys.

An API operation and an IAM action are not the same thing: S3's ListObjectsV2 is ``s3:ListBucket`` on the bucket
with ``s3:prefix``, HeadObject is ``s3:GetObject``, a multipart upload is ``s3:PutObject`` throughout, CopyObject
reads the source and writes the destination, DeleteObjects deletes each key; a create that passes a role is also
``iam:PassRole`` with ``iam:PassedToService``. Sources: the Service Authorization Reference
(https://docs.aws.amazon.com/service-authorization/latest/reference/) and each API reference's "Permissions".

Every operation the functions and the state machine call is mapped; any other raises UnmappedOperation, so a new
call is never let through unchecked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

ContextValue = str | list[str]
KmsUse = Literal["decrypt", "generate"]


class UnmappedOperation(LookupError):
    """A call the permission checks do not know how to authorize: map it in calls.py before using it."""


@dataclass(frozen=True)
class IamRequest:
    """One authorization AWS makes for a call."""

    action: str
    resource: str
    context: dict[str, ContextValue] = field(default_factory=dict)
    # S3 data calls on a bucket encrypted with a KMS key also need the key (see checker.kms_requests).
    kms_use: KmsUse | None = None
    bucket: str | None = None
    # False only where AWS authorizes an ARN the Service Authorization Reference does not list for the action.
    check_resource_type: bool = True


@dataclass(frozen=True)
class Where:
    account: str
    region: str
    partition: str = "aws"

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        return (
            f"arn:{self.partition}:{service}:{self.region if region else ''}:{self.account if account else ''}:"
            f"{resource}"
        )


Mapper = Callable[[Mapping[str, Any], Where], list[IamRequest]]


# --- S3 -------------------------------------------------------------------------------------------


def _object(where: Where, bucket: str, key: str) -> str:
    return f"arn:{where.partition}:s3:::{bucket}/{key}"


def _bucket(where: Where, bucket: str) -> str:
    return f"arn:{where.partition}:s3:::{bucket}"


def _read(params: Mapping[str, Any], where: Where, *, kms: bool = True) -> list[IamRequest]:
    bucket, key = params["Bucket"], params["Key"]
    versioned = bool(params.get("VersionId"))
    context: dict[str, ContextValue] = {"s3:versionid": params["VersionId"]} if versioned else {}
    return [
        IamRequest(
            "s3:GetObjectVersion" if versioned else "s3:GetObject",
            _object(where, bucket, key),
            context,
            kms_use="decrypt" if kms else None,
            bucket=bucket,
        )
    ]


def _write(params: Mapping[str, Any], where: Where, kms: KmsUse | None = "generate") -> list[IamRequest]:
    bucket, key = params["Bucket"], params["Key"]
    requests = [IamRequest("s3:PutObject", _object(where, bucket, key), kms_use=kms, bucket=bucket)]
    if params.get("Tagging"):
        requests.append(IamRequest("s3:PutObjectTagging", _object(where, bucket, key), bucket=bucket))
    return requests


def _copy_source(params: Mapping[str, Any], where: Where) -> list[IamRequest]:
    source = params["CopySource"]
    if isinstance(source, str):
        path, _, query = unquote(source).lstrip("/").partition("?versionId=")
        bucket, key = path.split("/", 1)
        source = {"Bucket": bucket, "Key": key, **({"VersionId": query} if query else {})}
    return _read(source, where)


def _copy_object(params: Mapping[str, Any], where: Where) -> list[IamRequest]:
    return [*_copy_source(params, where), *_write(params, where)]


def _upload_part_copy(params: Mapping[str, Any], where: Where) -> list[IamRequest]:
    # UploadPart(Copy) needs kms:Decrypt on the destination's key (S3 CreateMultipartUpload's "Permissions").
    return [*_copy_source(params, where), *_write(params, where, kms="decrypt")]


def _list_bucket(params: Mapping[str, Any], where: Where) -> list[IamRequest]:
    context: dict[str, ContextValue] = {}
    for name, key in (("Prefix", "s3:prefix"), ("Delimiter", "s3:delimiter"), ("MaxKeys", "s3:max-keys")):
        if params.get(name) is not None:
            context[key] = str(params[name])
    return [IamRequest("s3:ListBucket", _bucket(where, params["Bucket"]), context)]


def _delete(params: Mapping[str, Any], where: Where) -> list[IamRequest]:
    versioned = bool(params.get("VersionId"))
    return [
        IamRequest(
            "s3:DeleteObjectVersion" if versioned else "s3:DeleteObject",
            _object(where, params["Bucket"], params["Key"]),
            {"s3:versionid": params["VersionId"]} if versioned else {},
        )
    ]


def _delete_objects(params: Mapping[str, Any], where: Where) -> list[IamRequest]:
    return [
        request
        for item in params["Delete"]["Objects"]
        for request in _delete({"Bucket": params["Bucket"], **item}, where)
    ]


def _on_object(action: str, kms: KmsUse | None = None) -> Mapper:
    return lambda params, where: [
        IamRequest(action, _object(where, params["Bucket"], params["Key"]), kms_use=kms, bucket=params["Bucket"])
    ]


def _on_bucket(action: str) -> Mapper:
    return lambda params, where: [IamRequest(action, _bucket(where, params["Bucket"]))]


S3: dict[str, Mapper] = {
    "GetObject": _read,
    "HeadObject": lambda params, where: _read(params, where, kms=False),  # HEAD decrypts nothing
    "PutObject": _write,
    "CreateMultipartUpload": _write,
    "UploadPart": lambda params, where: _write(params, where, kms="decrypt"),
    "UploadPartCopy": _upload_part_copy,
    "CompleteMultipartUpload": lambda params, where: _write(params, where, kms="decrypt"),
    "CopyObject": _copy_object,
    "AbortMultipartUpload": _on_object("s3:AbortMultipartUpload"),
    "ListParts": _on_object("s3:ListMultipartUploadParts"),
    "ListObjectsV2": _list_bucket,
    "ListObjects": _list_bucket,
    "HeadBucket": _on_bucket("s3:ListBucket"),
    "ListObjectVersions": _on_bucket("s3:ListBucketVersions"),
    "ListMultipartUploads": _on_bucket("s3:ListBucketMultipartUploads"),
    "DeleteObject": _delete,
    "DeleteObjects": _delete_objects,
    "GetObjectTagging": _on_object("s3:GetObjectTagging"),
    "PutObjectTagging": _on_object("s3:PutObjectTagging"),
}


# --- Passing a role, tags -------------------------------------------------------------------------


def pass_role(role_arn: str, service: str) -> IamRequest:
    """What a create that hands ``role_arn`` to ``service`` also needs (the role is the resource)."""
    return IamRequest("iam:PassRole", role_arn, {"iam:PassedToService": service})


def _tag_context(tags: list[tuple[str, str]]) -> dict[str, ContextValue]:
    context: dict[str, ContextValue] = {f"aws:RequestTag/{key}": value for key, value in tags}
    if tags:
        context["aws:TagKeys"] = [key for key, _ in tags]
    return context


# --- SageMaker ------------------------------------------------------------------------------------


def _transform_job(where: Where, name: str) -> str:
    # SageMaker writes resource names in ARNs in lower case.
    return where.arn("sagemaker", f"transform-job/{name.lower()}")


def _create_transform_job(params: Mapping[str, Any], where: Where) -> list[IamRequest]:
    job = _transform_job(where, params["TransformJobName"])
    tags = [(tag["Key"], tag["Value"]) for tag in params.get("Tags", [])]
    context: dict[str, ContextValue] = {
        "sagemaker:ModelArn": where.arn("sagemaker", f"model/{params['ModelName'].lower()}"),
        "sagemaker:InstanceTypes": params["TransformResources"]["InstanceType"],
        **_tag_context(tags),
    }
    if params.get("TransformOutput", {}).get("KmsKeyId"):
        context["sagemaker:OutputKmsKeyArn"] = params["TransformOutput"]["KmsKeyId"]
    requests = [IamRequest("sagemaker:CreateTransformJob", job, context)]
    if tags:  # tags given at creation are authorized as AddTags too
        requests.append(IamRequest("sagemaker:AddTags", job, _tag_context(tags)))
    return requests


def _on_transform_job(action: str) -> Mapper:
    return lambda params, where: [IamRequest(action, _transform_job(where, params["TransformJobName"]))]


SAGEMAKER: dict[str, Mapper] = {
    "CreateTransformJob": _create_transform_job,
    "DescribeTransformJob": _on_transform_job("sagemaker:DescribeTransformJob"),
    "StopTransformJob": _on_transform_job("sagemaker:StopTransformJob"),
    "ListTransformJobs": lambda params, where: [IamRequest("sagemaker:ListTransformJobs", "*")],
}


# --- Personalize ----------------------------------------------------------------------------------


def _create_personalize_job(kind: str, action: str, *, on_solution: bool) -> Mapper:
    """``on_solution``: the Service Authorization Reference lists the solution among the action's resource types
    (CreateBatchInferenceJob: batchInferenceJob and solution; CreateBatchSegmentJob: batchSegmentJob only)."""

    def mapper(params: Mapping[str, Any], where: Where) -> list[IamRequest]:
        job = where.arn("personalize", f"{kind}/{params['jobName']}")
        tags = [(tag["tagKey"], tag["tagValue"]) for tag in params.get("tags", [])]
        requests = [IamRequest(action, job, _tag_context(tags))]
        if on_solution:
            requests.append(IamRequest(action, params["solutionVersionArn"], _tag_context(tags)))
        if tags:
            requests.append(IamRequest("personalize:TagResource", job, _tag_context(tags)))
        requests.append(pass_role(params["roleArn"], "personalize.amazonaws.com"))
        return requests

    return mapper


PERSONALIZE: dict[str, Mapper] = {
    "CreateBatchInferenceJob": _create_personalize_job(
        "batch-inference-job", "personalize:CreateBatchInferenceJob", on_solution=True
    ),
    "CreateBatchSegmentJob": _create_personalize_job(
        "batch-segment-job", "personalize:CreateBatchSegmentJob", on_solution=False
    ),
    "DescribeBatchInferenceJob": lambda params, where: [
        IamRequest("personalize:DescribeBatchInferenceJob", params["batchInferenceJobArn"])
    ],
    "DescribeBatchSegmentJob": lambda params, where: [
        IamRequest("personalize:DescribeBatchSegmentJob", params["batchSegmentJobArn"])
    ],
}


# --- Bedrock --------------------------------------------------------------------------------------


def bedrock_model_resource(model_id: str, where: Where) -> tuple[str, bool]:
    """The ARN a model ID stands for, and whether its type is one the Reference lists for batch jobs.

    A foundation model ID is ``foundation-model/<id>`` (no account); a cross-Region inference profile ID
    (``us.anthropic...``, ``eu.``, ``apac.``, ``global.``) is ``inference-profile/<id>`` in the account. The
    Service Authorization Reference lists only custom-model, foundation-model and model-invocation-job for
    CreateModelInvocationJob, yet Bedrock accepts a profile ID as modelId: that ARN is evaluated against the
    policies without the resource-type check (the simulator would otherwise refuse it as ``no.resource.types``).
    """
    if model_id.startswith("arn:"):
        return model_id, ":inference-profile/" not in model_id
    if model_id.split(".", 1)[0] in ("us", "eu", "apac", "global", "us-gov", "jp", "au", "ca"):
        return where.arn("bedrock", f"inference-profile/{model_id}"), False
    return where.arn("bedrock", f"foundation-model/{model_id}", account=False), True


def _invocation_job(where: Where, identifier: str) -> str:
    return identifier if identifier.startswith("arn:") else where.arn("bedrock", f"model-invocation-job/{identifier}")


def _create_model_invocation_job(params: Mapping[str, Any], where: Where) -> list[IamRequest]:
    # The job's ID is generated on creation; its name stands in for it (grants use model-invocation-job/*).
    job = _invocation_job(where, params["jobName"])
    tags = [(tag["key"], tag["value"]) for tag in params.get("tags", [])]
    model, listed = bedrock_model_resource(params["modelId"], where)
    requests = [
        IamRequest("bedrock:CreateModelInvocationJob", job, _tag_context(tags)),
        IamRequest("bedrock:CreateModelInvocationJob", model, check_resource_type=listed),
    ]
    if tags:
        requests.append(IamRequest("bedrock:TagResource", job, _tag_context(tags)))
    requests.append(pass_role(params["roleArn"], "bedrock.amazonaws.com"))
    return requests


BEDROCK: dict[str, Mapper] = {
    "CreateModelInvocationJob": _create_model_invocation_job,
    "GetModelInvocationJob": lambda params, where: [
        IamRequest("bedrock:GetModelInvocationJob", _invocation_job(where, params["jobIdentifier"]))
    ],
    "StopModelInvocationJob": lambda params, where: [
        IamRequest("bedrock:StopModelInvocationJob", _invocation_job(where, params["jobIdentifier"]))
    ],
    # No resource-level permissions: "*" is the only resource AWS evaluates.
    "ListModelInvocationJobs": lambda params, where: [IamRequest("bedrock:ListModelInvocationJobs", "*")],
}


def _invoke_model(params: Mapping[str, Any], where: Where) -> list[IamRequest]:
    """InvokeModel and Converse both need bedrock:InvokeModel. Through a system-defined inference profile, IAM
    checks the profile and the foundation model in the Region that serves the request (here, this one)."""
    model_id = str(params["modelId"])
    resource, _ = bedrock_model_resource(model_id, where)
    requests = [IamRequest("bedrock:InvokeModel", resource)]
    if ":inference-profile/" in resource:
        model = resource.rsplit("/", 1)[-1].split(".", 1)[1]
        requests.append(
            IamRequest("bedrock:InvokeModel", where.arn("bedrock", f"foundation-model/{model}", account=False))
        )
    return requests


BEDROCK_RUNTIME: dict[str, Mapper] = {"InvokeModel": _invoke_model, "Converse": _invoke_model}


# --- Amazon Machine Learning ----------------------------------------------------------------------


def _ml(where: Where, kind: str, identifier: str) -> str:
    return where.arn("machinelearning", f"{kind}/{identifier}")


MACHINELEARNING: dict[str, Mapper] = {
    "CreateDataSourceFromS3": lambda params, where: [
        IamRequest("machinelearning:CreateDataSourceFromS3", _ml(where, "datasource", params["DataSourceId"]))
    ],
    "GetDataSource": lambda params, where: [
        IamRequest("machinelearning:GetDataSource", _ml(where, "datasource", params["DataSourceId"]))
    ],
    "CreateBatchPrediction": lambda params, where: [
        IamRequest("machinelearning:CreateBatchPrediction", _ml(where, kind, params[key]))
        for kind, key in (
            ("batchprediction", "BatchPredictionId"),
            ("datasource", "BatchPredictionDataSourceId"),
            ("mlmodel", "MLModelId"),
        )
    ],
    "GetBatchPrediction": lambda params, where: [
        IamRequest("machinelearning:GetBatchPrediction", _ml(where, "batchprediction", params["BatchPredictionId"]))
    ],
    "GetMLModel": lambda params, where: [
        IamRequest("machinelearning:GetMLModel", _ml(where, "mlmodel", params["MLModelId"]))
    ],
    "DeleteBatchPrediction": lambda params, where: [
        IamRequest("machinelearning:DeleteBatchPrediction", _ml(where, "batchprediction", params["BatchPredictionId"]))
    ],
    "DeleteDataSource": lambda params, where: [
        IamRequest("machinelearning:DeleteDataSource", _ml(where, "datasource", params["DataSourceId"]))
    ],
    "AddTags": lambda params, where: [
        IamRequest("machinelearning:AddTags", _ml(where, params["ResourceType"].lower(), params["ResourceId"]))
    ],
}


# --- EventBridge, Step Functions, SQS, Lambda, KMS, STS, IAM --------------------------------------


def _put_events(params: Mapping[str, Any], where: Where) -> list[IamRequest]:
    requests = []
    for entry in params["Entries"]:
        bus = entry.get("EventBusName") or "default"
        arn = bus if bus.startswith("arn:") else where.arn("events", f"event-bus/{bus}")
        context: dict[str, ContextValue] = {"events:source": entry.get("Source", "")}
        if entry.get("DetailType"):
            context["events:detail-type"] = entry["DetailType"]
        request = IamRequest("events:PutEvents", arn, context)
        if request not in requests:
            requests.append(request)
    return requests


def _execution(params: Mapping[str, Any], where: Where) -> str:
    return str(params["executionArn"])


STEPFUNCTIONS: dict[str, Mapper] = {
    "StartExecution": lambda params, where: [IamRequest("states:StartExecution", params["stateMachineArn"])],
    "DescribeExecution": lambda params, where: [IamRequest("states:DescribeExecution", _execution(params, where))],
    "GetExecutionHistory": lambda params, where: [IamRequest("states:GetExecutionHistory", _execution(params, where))],
    "StopExecution": lambda params, where: [IamRequest("states:StopExecution", _execution(params, where))],
    "ListExecutions": lambda params, where: [IamRequest("states:ListExecutions", params["stateMachineArn"])],
    # No resource type (the Service Authorization Reference lists none): the task token names the task.
    "SendTaskSuccess": lambda params, where: [IamRequest("states:SendTaskSuccess", "*")],
}


def queue_arn(queue_url: str, where: Where) -> str:
    """``https://sqs.<region>.amazonaws.com/<account>/<name>`` (or moto's URL) -> the queue's ARN."""
    account, name = queue_url.rstrip("/").split("/")[-2:]
    return f"arn:{where.partition}:sqs:{where.region}:{account}:{name}"


def _on_queue(action: str, kms: KmsUse | None = None) -> Mapper:
    return lambda params, where: [IamRequest(action, queue_arn(params["QueueUrl"], where))]


SQS: dict[str, Mapper] = {
    "SendMessage": _on_queue("sqs:SendMessage"),
    "ReceiveMessage": _on_queue("sqs:ReceiveMessage"),
    "DeleteMessage": _on_queue("sqs:DeleteMessage"),
    "GetQueueAttributes": _on_queue("sqs:GetQueueAttributes"),
}


def _function(params: Mapping[str, Any], where: Where) -> str:
    name = params["FunctionName"]
    return name if name.startswith("arn:") else where.arn("lambda", f"function:{name}")


LAMBDA: dict[str, Mapper] = {
    "Invoke": lambda params, where: [IamRequest("lambda:InvokeFunction", _function(params, where))],
}


def _key(params: Mapping[str, Any], where: Where) -> str:
    key = params["KeyId"]
    if key.startswith("arn:"):
        return str(key)
    if key.startswith("alias/"):
        raise UnmappedOperation(f"KMS calls by alias ({key}) are not mapped: name the key by ID or ARN")
    return where.arn("kms", f"key/{key}")


KMS: dict[str, Mapper] = {
    operation: (lambda action: lambda params, where: [IamRequest(action, _key(params, where))])(f"kms:{operation}")
    for operation in ("Decrypt", "Encrypt", "GenerateDataKey", "DescribeKey")
}

STS: dict[str, Mapper] = {
    # Needs no permission: AWS answers it even when every action is denied.
    "GetCallerIdentity": lambda params, where: [],
}

IAM: dict[str, Mapper] = {
    "GetRole": lambda params, where: [
        IamRequest("iam:GetRole", where.arn("iam", f"role/{params['RoleName']}", region=False))
    ],
}

# botocore service name -> operation -> mapper.
OPERATIONS: dict[str, dict[str, Mapper]] = {
    "s3": S3,
    "sagemaker": SAGEMAKER,
    "personalize": PERSONALIZE,
    "bedrock": BEDROCK,
    "bedrock-runtime": BEDROCK_RUNTIME,
    "machinelearning": MACHINELEARNING,
    "events": {"PutEvents": _put_events},
    "stepfunctions": STEPFUNCTIONS,
    "sqs": SQS,
    "lambda": LAMBDA,
    "kms": KMS,
    "sts": STS,
    "iam": IAM,
}


def iam_requests(
    service: str, operation: str, params: Mapping[str, Any], *, account: str, region: str, partition: str = "aws"
) -> list[IamRequest]:
    """The IAM requests one call makes (``service`` as botocore names it, ``operation`` as the API does)."""
    mapper = OPERATIONS.get(service, {}).get(operation)
    if mapper is None:
        raise UnmappedOperation(
            f"{service}:{operation} has no IAM mapping in batchline_local/permissions/calls.py: "
            "map it (action, resource ARN, condition keys) before the local runtime lets a function call it"
        )
    return mapper(params, Where(account, region, partition))


def mapped_operations() -> dict[str, list[str]]:
    """Service -> the operations mapped here (for the docs and the tests)."""
    return {service: sorted(operations) for service, operations in OPERATIONS.items()}
