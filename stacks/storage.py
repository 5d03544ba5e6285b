"""Buckets: inbox (uploads), work (staged input, raw service output), results (keyed CSVs), access logs.

Attributes: ``inbox``, ``work``, ``results``, ``access_logs`` (all ``s3.Bucket``). ``grant_data_access`` gives
a function the object access its catalogue entry declares (batchline.functions.DataAccess), with the cdk-nag
acknowledgments its resources need; ``grant_discard_staged_parts`` is the one delete any function gets.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from batchline.config import AmazonMLSettings, PersonalizeSettings, Pipelines, SageMakerSettings
from batchline.functions import CATALOGUE, DataAccess
from batchline.layout import WAKE_PREFIX
from constructs import Construct

from stacks.nag import acknowledge

# Days a waiting job's wake objects are kept: the longest run maxRunHours allows (30 days), and one more.
WAKE_DAYS = 31


class Storage(Construct):
    """Four private, versioned, TLS-only buckets kept on stack deletion (unless a sandbox's): a run never loses
    its input or output."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        pipelines: Pipelines,
        key: kms.IKey | None = None,
        remove_on_destroy: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        self._key = key
        # Kept on stack deletion unless the stack is a sandbox (removeOnDestroy): then CDK's auto-delete custom
        # resource empties each bucket (every version) so CloudFormation can delete it.
        self._removal = RemovalPolicy.DESTROY if remove_on_destroy else RemovalPolicy.RETAIN
        self._auto_delete = remove_on_destroy
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            # No ACLs: log delivery is allowed by a bucket policy (feature flag serverAccessLogsUseBucketPolicy).
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(expiration=Duration.days(365), noncurrent_version_expiration=Duration.days(30))
            ],
            removal_policy=self._removal,
            auto_delete_objects=self._auto_delete,
        )
        acknowledge(
            self.access_logs,
            "AwsSolutions::AwsSolutions-S1",
            "This is the access-log bucket itself; logging it to itself would loop.",
        )
        self.inbox = self._bucket("Inbox", "inbox/")
        self.work = self._bucket("Work", "work/", noncurrent_days=30)
        # A waiting job's task token and end event (WakeJob) matter only while its run lasts: at most maxRunHours'
        # bound (30 days), then a day's margin.
        self.work.add_lifecycle_rule(id="ExpireJobWakes", prefix=WAKE_PREFIX, expiration=Duration.days(WAKE_DAYS))
        self.results = self._bucket("Results", "results/")
        # S3 -> EventBridge through the bucket's own property: event_bridge_enabled=True would add a
        # custom-resource Lambda (BucketNotificationsHandler) to set the same thing at deploy time.
        inbox_cfn: s3.CfnBucket = self.inbox.node.default_child  # type: ignore[assignment]
        inbox_cfn.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
            event_bridge_configuration=s3.CfnBucket.EventBridgeConfigurationProperty(event_bridge_enabled=True)
        )
        self._allow_model_roles(pipelines)
        self._allow_personalize(pipelines)
        self._allow_amazon_ml(pipelines)

    def grant_declared_access(self, functions: Mapping[str, lambda_.Function]) -> None:
        """Each function the object access its catalogue entry declares (``data``), and nothing else."""
        for spec in CATALOGUE:
            self.grant_data_access(functions[spec.name], spec.data)

    def grant_data_access(self, function: lambda_.Function, access: DataAccess) -> None:
        """What ``access`` declares: reads, writes, the job looks, the discard of staged parts."""
        for name, bucket in (("inbox", self.inbox), ("work", self.work), ("results", self.results)):
            if name in access.read or name in access.write:
                grant_objects(function, bucket, read=name in access.read, write=name in access.write)
        if access.job_looks:
            grant_job_state(function, self.work)  # each job's execution records its looks in S3
        if access.discard_staged_parts:
            grant_discard_staged_parts(function, self.work)  # a discarded read's parts
        if access.job_wake:
            grant_job_wake(function, self.work)  # waiting jobs' tokens and end events
        if access.job_outputs:
            grant_job_outputs(function, self.work)  # on-demand answers, where a batch job writes

    def _bucket(self, construct_id: str, log_prefix: str, noncurrent_days: int | None = None) -> s3.Bucket:
        # Assemble's multipart uploads are aborted when it fails in Python; one killed mid-way (timeout) would
        # leave its parts billed, so S3 drops uploads unfinished after a week. Uploads from users, likewise.
        week = Duration.days(7)
        rules = [s3.LifecycleRule(id="AbortUnfinishedUploads", abort_incomplete_multipart_upload_after=week)]
        if noncurrent_days:
            rules.append(s3.LifecycleRule(noncurrent_version_expiration=Duration.days(noncurrent_days)))
        return s3.Bucket(
            self,
            construct_id,
            encryption=s3.BucketEncryption.KMS if self._key else s3.BucketEncryption.S3_MANAGED,
            encryption_key=self._key,
            bucket_key_enabled=bool(self._key),
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix=log_prefix,
            lifecycle_rules=rules,
            removal_policy=self._removal,
            auto_delete_objects=self._auto_delete,
        )

    def _allow_model_roles(self, pipelines: Pipelines) -> None:
        """SageMaker runs transform jobs as the model's role: let it read input and write output, per prefix."""
        for name, pipeline in pipelines.pipelines.items():
            settings = pipeline.service
            if isinstance(settings, SageMakerSettings) and settings.model_execution_role_arn:
                role = iam.ArnPrincipal(settings.model_execution_role_arn)
                self.work.add_to_resource_policy(
                    iam.PolicyStatement(
                        principals=[role],
                        actions=["s3:GetObject", "s3:PutObject"],
                        resources=[self.work.arn_for_objects(f"{name}/*")],
                    )
                )
                self.work.add_to_resource_policy(
                    iam.PolicyStatement(
                        principals=[role],
                        actions=["s3:ListBucket"],
                        resources=[self.work.bucket_arn],
                        conditions={"StringLike": {"s3:prefix": [f"{name}/*"]}},
                    )
                )

    def _allow_personalize(self, pipelines: Pipelines) -> None:
        """Personalize reads a batch job's input and writes its output as the role passed to it, and its guide
        also asks for a bucket policy letting its service principal in ("Attaching an Amazon Personalize access
        policy to your Amazon S3 bucket", https://docs.aws.amazon.com/personalize/latest/dg/granting-personalize-s3-access.html),
        scoped against the confused deputy to this account's Personalize resources. Only made when a pipeline
        uses Personalize, on those pipelines' prefixes only."""
        names = [n for n, p in pipelines.pipelines.items() if isinstance(p.service, PersonalizeSettings)]
        if not names:
            return
        stack = self.work.stack
        principal = iam.ServicePrincipal("personalize.amazonaws.com")
        confused_deputy = {
            "StringEquals": {"aws:SourceAccount": stack.account},
            "ArnLike": {"aws:SourceArn": f"arn:{stack.partition}:personalize:{stack.region}:{stack.account}:*"},
        }
        self.work.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[principal],
                actions=["s3:GetObject", "s3:PutObject"],
                resources=[self.work.arn_for_objects(f"{name}/*") for name in names],
                conditions=confused_deputy,
            )
        )
        self.work.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[principal],
                actions=["s3:ListBucket"],
                resources=[self.work.bucket_arn],
                conditions={**confused_deputy, "StringLike": {"s3:prefix": [f"{name}/*" for name in names]}},
            )
        )

    def _allow_amazon_ml(self, pipelines: Pipelines) -> None:
        """Amazon ML reads and writes as its service principal; only made when a pipeline uses it.

        The policy of its guide ("Granting Amazon ML Permissions to Read Your Data from Amazon S3" and "... to
        Output Predictions to Amazon S3", https://docs.aws.amazon.com/machine-learning/latest/dg/), on the Amazon
        ML pipelines' prefixes, less s3:PutObjectAcl: it lets Amazon ML hand the objects it writes to the bucket
        owner, which a bucket with ACLs disabled (BucketOwnerEnforced) already is, and refuses ACL calls.
        The guide's aws:SourceAccount / aws:SourceArn conditions were added to a service closed since 2019 that
        may not send them, so they apply when present (...IfExists): a request that carries another account's
        source is refused, and one that carries none is not locked out.
        """
        names = [n for n, p in pipelines.pipelines.items() if isinstance(p.service, AmazonMLSettings)]
        if not names:
            return
        stack = self.work.stack
        principal = iam.ServicePrincipal("machinelearning.amazonaws.com")
        source = {
            "StringEqualsIfExists": {"aws:SourceAccount": stack.account},
            "ArnLikeIfExists": {
                "aws:SourceArn": f"arn:{stack.partition}:machinelearning:{stack.region}:{stack.account}:*"
            },
        }
        self.work.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[principal],
                actions=["s3:GetObject", "s3:PutObject"],
                resources=[self.work.arn_for_objects(f"{name}/*") for name in names],
                conditions=source,
            )
        )
        self.work.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[principal],
                actions=["s3:ListBucket"],
                resources=[self.work.bucket_arn],
                conditions={**source, "StringLike": {"s3:prefix": [f"{name}/*" for name in names]}},
            )
        )


def _grant_on_objects(
    function: lambda_.Function, bucket: s3.IBucket, actions: list[str], patterns: tuple[str, ...], reason: str
) -> None:
    """``actions`` on the bucket's objects matching ``patterns``, each wildcard acknowledged to cdk-nag by name."""
    function.add_to_role_policy(
        iam.PolicyStatement(actions=actions, resources=[bucket.arn_for_objects(p) for p in patterns])
    )
    stack = Stack.of(bucket)
    logical_id = stack.resolve(stack.get_logical_id(bucket.node.default_child))  # type: ignore[arg-type]
    for pattern in patterns:
        acknowledge(
            function.role,  # type: ignore[arg-type]
            f"AwsSolutions::AwsSolutions-IAM5[Resource::<{logical_id}.Arn>/{pattern}]",
            reason,
        )


def grant_objects(function: lambda_.Function, bucket: s3.IBucket, *, read: bool = False, write: bool = False) -> None:
    """Object-level access without deletes: reads (with ListBucket, so a missing key is a 404) and/or writes."""
    actions = []
    if read:
        actions += ["s3:GetObject", "s3:GetObjectVersion"]
        function.add_to_role_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn]))
    if write:
        actions += ["s3:PutObject", "s3:AbortMultipartUpload"]
    _grant_on_objects(
        function,
        bucket,
        actions,
        ("*",),
        "Objects of one of this stack's buckets, whose keys are known only at run time (<pipeline>/<run-id>/...).",
    )


def grant_job_state(function: lambda_.Function, bucket: s3.IBucket) -> None:
    """PutObject on the job looks only (``<pipeline>/<run-id>/state/job-*``): each job's child execution records
    its last look there for the run's later steps (SubmitJob, PollJob)."""
    _grant_on_objects(
        function,
        bucket,
        ["s3:PutObject"],
        ("*/state/job-*",),
        "Each job's last look, one object per job under <pipeline>/<run-id>/state/.",
    )


def grant_job_outputs(function: lambda_.Function, bucket: s3.IBucket) -> None:
    """PutObject on the jobs' output prefixes only (``<pipeline>/<run-id>/output/job-*``): a Bedrock chunk under
    the batch minimum is answered by its submit, which writes the output there as a batch job would."""
    _grant_on_objects(
        function,
        bucket,
        ["s3:PutObject"],
        ("*/output/job-*",),
        "Each job's output, under <pipeline>/<run-id>/output/ (run IDs known only at run time).",
    )


def grant_job_wake(function: lambda_.Function, bucket: s3.IBucket) -> None:
    """GetObject and PutObject on ``wake/*`` only: a waiting job's task token and its end event, by job name
    (WakeJob; see batchline.steps.wake)."""
    _grant_on_objects(
        function,
        bucket,
        ["s3:GetObject", "s3:PutObject"],
        ("wake/*",),
        "One token and one end event per waiting job, named by the service job's name (known only at run time).",
    )


def grant_discard_staged_parts(function: lambda_.Function, bucket: s3.Bucket) -> None:
    """DeleteObject on staged parts and their indexes only (``<pipeline>/<run-id>/{input,index}/part-*``).

    Prepare deletes the parts of a read it discards (a repeated key, or a file that fails part-way): the service
    reads every object under the input prefix. The bucket is versioned, so a delete only adds a delete marker and
    the bytes stay until the noncurrent-version rule; s3:DeleteObjectVersion is granted to no one.
    """
    _grant_on_objects(
        function,
        bucket,
        ["s3:DeleteObject"],
        ("*/input/part-*", "*/index/part-*"),
        "Staged parts of any run (keys known only at run time); deletes on a versioned bucket keep the data.",
    )
