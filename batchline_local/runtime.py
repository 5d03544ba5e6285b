"""The local runtime: the real ASL file and the real handlers on an in-process AWS emulation (moto).

What is real: the state machine definition (statemachine/*.asl.json, executed by moto's Step Functions
interpreter), every Lambda handler and the batchline package, S3, EventBridge and Step Functions calls.
What is emulated: the batch services (see emulators/), Lambda's container (handlers run in-process, each
call with its function's environment in its own thread: environment.py), and time (Wait states and retry
back-offs are shortened). The metrics the handlers write as embedded metric format are kept in ``metrics``
(CloudWatch would read them from the log); verbose runs also print them.

As strict as AWS: Step Functions' 256 KiB state and 25,000-event history limits fail an execution as they do
on AWS, past Retry and Catch. Every change to moto's interpreter is in interpreter.py, which also keeps each
run's figures (``RunResult.orchestration``, written as orchestration.json by ``batchline local run``).
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import os
import queue
import sys
import tempfile
import threading
import time
import traceback
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar
from unittest import mock

from batchline.clients import AwsClients
from batchline.config import PIPELINES_FILE_ENV, SERVICE_ROLES_ENV, SageMakerSettings, parse_pipelines
from batchline.functions import CATALOGUE
from batchline.metrics import NAMESPACE, SERVICE

from batchline_local.emulators.base import ServiceEmulator
from batchline_local.environment import function_environment, invocation_variable, thread_environment
from batchline_local.interpreter import InterpreterPatches, Ledger, Limits

REPO_ROOT = Path(__file__).resolve().parent.parent
LAMBDAS_DIR = REPO_ROOT / "lambdas"
ASL_FILE = REPO_ROOT / "statemachine" / "batch_prediction.asl.json"
CDK_JSON = REPO_ROOT / "cdk.json"

REGION = "us-east-1"
ACCOUNT = "123456789012"
RUNTIME_LABEL = "local-emulation"

# Every local invocation counts down from Lambda's longest timeout (the one Prepare and Collect have).
LOCAL_FUNCTION_SECONDS = 900
# A local run has no wall-clock limit of its own (a big file takes as long as it takes; the run's deadline is
# the pipeline's maxRunHours, enforced by the handlers). Following it gives up only when the execution stops
# moving: RUNNING with no handler running, no Wait or back-off sleeping and no new history event for this long
# (moto's interpreter takes milliseconds between states).
STALL_SECONDS = 120.0
# Following a run asks moto for the execution's status: at first often (a small run ends in a second), then every
# quarter second, so a long run's handlers keep the interpreter (and the GIL) instead of the follower.
FOLLOW_FIRST_PAUSE = 0.02
FOLLOW_LONGEST_PAUSE = 0.25
# Function name -> handler, from the catalogue the stack builds its functions from.
FUNCTIONS = {spec.name: spec.handler for spec in CATALOGUE}
# Functions outside the state machine that get its ARN (stacks/notifications.py), so created after it.
STATE_MACHINE_USERS = ("StartRun", "ReportFailedInvocation")
FUNCTION_PREFIX = "batchline-local-"
STATE_MACHINE = "batchline-local"
UNDELIVERED_QUEUE = "batchline-local-undelivered-events"
BUCKETS = {
    "inbox": "batchline-local-inbox",
    "work": "batchline-local-work",
    "results": "batchline-local-results",
}
EVENT_BUS = "batchline-local-events"

# The environment of the emulation (see LocalRuntime._isolate): static fake credentials, a fixed region, and
# every other source of AWS settings switched off.
FAKE_CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "aws_session_token": "testing",
}
ISOLATED_ENVIRONMENT = {
    **{name.upper(): value for name, value in FAKE_CREDENTIALS.items()},
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
    "NO_PROXY": "*",
    "no_proxy": "*",
}
_PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
# moto keeps each S3 object's bytes in memory up to this size, and past it in a temporary file of its own (deleted
# with the object or the process): a big file's parts, outputs and predictions then stay out of the process's
# memory, in a `local run` as in a `local serve` that keeps every run's objects. moto's default is 5 MiB.
OBJECT_BYTES_IN_MEMORY = 256 * 1024


# Set on the threads moto's Step Functions interpreter starts: what they call, the state machine calls.
_INTERPRETER_THREAD = "batchline_interpreter"


def _not_the_interpreters(thread: threading.Thread) -> bool:
    """A thread a handler starts runs in its environment, unless it is the emulated Step Functions' (a
    StartExecution's execution, a Map's children): moto lists those in TMP_THREADS before starting them."""
    from moto.stepfunctions.parser.utils import TMP_THREADS

    if any(started is thread for started in reversed(TMP_THREADS)):
        setattr(thread, _INTERPRETER_THREAD, True)
        return False
    return True


def sagemaker_model_role(settings: SageMakerSettings) -> str:
    """The model's execution role: the one the pipeline names, or a stand-in for the role the user's model has."""
    return settings.model_execution_role_arn or f"arn:aws:iam::{ACCOUNT}:role/{settings.model_name}-execution"


def load_pipeline_context(path: Path | None = None, *, refused: dict[str, str] | None = None) -> dict[str, Any]:
    """The pipelines declared in cdk.json (default ``CDK_JSON``): the one place, read by the stack and this runtime.

    A file that cannot be read or is not JSON raises ConfigError in one line naming the file (and for a syntax
    error its line and column, as editors count them). With ``refused``, a pipeline whose own settings are
    invalid is left out and its problem recorded there by name (one line), so the CLI still runs the others
    locally; `cdk synth` refuses the whole configuration, so a stack never deploys with a broken pipeline.
    """
    from batchline.errors import ConfigError

    path = path or CDK_JSON
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    context = document.get("context") if isinstance(document, dict) else None
    settings = context.get("batchline") if isinstance(context, dict) else None
    pipelines = settings.get("pipelines") if isinstance(settings, dict) else None
    if not isinstance(pipelines, dict):
        raise ConfigError(f"{path} has no pipelines: set context 'batchline' -> 'pipelines' (an object by name)")
    if refused is None:
        return dict(pipelines)
    usable = {}
    for name, body in pipelines.items():
        try:
            parse_pipelines({name: body})
        except ConfigError as exc:  # "invalid pipeline configuration:" then one indented line per problem
            refused[name] = f"{path.name}: " + "; ".join(line.strip() for line in str(exc).splitlines()[1:])
            continue
        usable[name] = body
    return usable


class RunStillRunning(TimeoutError):
    """Following a run gave up while its execution was still RUNNING (a wall-clock limit, or a stall)."""

    def __init__(self, run_id: str, message: str) -> None:
        super().__init__(message)
        self.run_id = run_id


# Execution ends the stack's ExecutionEnded rule matches (stacks/notifications.py), besides ABORTED (stop_by_hand).
ENDED_BY_RULE = ("FAILED", "TIMED_OUT")


@dataclass
class RunResult:
    run_id: str
    execution_arn: str
    status: str
    event: dict[str, Any] | None
    history: list[dict[str, Any]]
    # executions, stateTransitions, largestStateBytes, historyEvents {run, largestChild}: see orchestration()
    orchestration: dict[str, Any] = field(default_factory=dict)
    # checked, principals, denied: every call checked since the runtime started (permissions.json)
    permissions: dict[str, Any] = field(default_factory=dict)


class LocalRuntime:
    """Start with ``with LocalRuntime() as runtime:``; everything lives only inside the block."""

    _active: ClassVar[LocalRuntime | None] = None

    def __init__(
        self,
        pipelines: dict[str, Any] | None = None,
        *,
        time_scale: float = 0.0,
        service_polls_until_done: int = 2,
        quiet: bool = True,
        limits: Limits | None = None,
        check_permissions: bool = True,
        stack_settings: dict[str, Any] | None = None,
        service_job_seconds: float | None = None,
    ) -> None:
        self._raw_pipelines = dict(pipelines if pipelines is not None else load_pipeline_context())
        self.pipelines = parse_pipelines(self._raw_pipelines)  # fail early on a bad config
        self.time_scale = time_scale
        self.service_polls_until_done = service_polls_until_done
        # When set, SageMaker and Bedrock jobs end this many (real) seconds after creation, whatever the polls.
        self.service_job_seconds = service_job_seconds
        # The job state change events the emulated services published (SageMaker, Bedrock), in order, with the
        # monotonic time each was published; and what delivering each to the stack's rule's target returned.
        self.service_events: list[tuple[float, dict[str, Any]]] = []
        self.wake_results: list[dict[str, Any]] = []
        # Fault injection: events published but never delivered (lost), or delivered this many times.
        self.lose_service_events = False
        self.service_event_deliveries = 1
        self._deliveries: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.quiet = quiet
        self.limits = limits or Limits()  # Step Functions' 256 KiB and 25,000 events; tests lower them
        # Every AWS call a function makes is checked against its role in the synthesized stack (permissions/).
        self.check_permissions = check_permissions
        self.stack_settings = dict(stack_settings or {})  # cdk.json's other batchline settings, for the synth
        self.permissions: Any = None  # the PermissionChecker, while the runtime lives
        self.stack_policies: Any = None
        self.ledger = Ledger()  # the figures of orchestration.json, per run
        self._stack = ExitStack()
        self._invoke_lock = threading.Lock()
        self._fresh_modules: set[str] = set()
        self.invocations: list[tuple[str, dict[str, Any]]] = []
        self.running_function: str | None = None  # the function whose handler runs now (one at a time)
        self._crashes: dict[str, tuple[str, int, str]] = {}
        self._captured: list[dict[str, Any]] = []
        self.metrics: list[dict[str, Any]] = []  # EMF documents, in the order the handlers flushed them
        # Signs of life for wait_for: handlers, Wait states and back-offs in progress, and a count of their
        # starts and ends.
        self._progress_lock = threading.Lock()
        self._busy = 0
        self._progress = 0

    # --- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> LocalRuntime:
        try:
            return self._start()
        except BaseException:
            self._stack.close()  # the environment, moto's mock and the patches: nothing stays half set up
            raise

    def _start(self) -> LocalRuntime:
        self._isolate()
        if self.check_permissions:
            self._check_calls()
        if str(LAMBDAS_DIR) not in sys.path:
            sys.path.insert(0, str(LAMBDAS_DIR))
        logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
        self._set_handler_log_level()
        InterpreterPatches(
            self._stack,
            limits=self.limits,
            ledger=self.ledger,
            working=self._working,
            on_event=self._note_progress,
            time_scale=self.time_scale,
        ).install()
        self._patch_lambda_invoke()
        self._capture_metrics()
        from batchline_local.emulators.sagemaker import SageMakerEmulator

        self.sagemaker = self._stack.enter_context(
            SageMakerEmulator(
                self.service_polls_until_done,
                on_event=self.publish_service_event,
                job_seconds=self.service_job_seconds,
            )
        )
        from batchline_local.emulators.bedrock import BedrockEmulator
        from batchline_local.emulators.personalize import PersonalizeEmulator

        self.personalize = PersonalizeEmulator(self.service_polls_until_done, services=self.pipeline_service)
        self.bedrock = BedrockEmulator(
            self.service_polls_until_done,
            REGION,
            ACCOUNT,
            services=self.pipeline_service,
            on_event=self.publish_service_event,
            job_seconds=self.service_job_seconds,
        )
        from batchline_local.emulators.amazonml import AmazonMLEmulator

        self.amazonml = AmazonMLEmulator(self.service_polls_until_done)
        self.emulators: list[ServiceEmulator] = [self.personalize, self.bedrock, self.amazonml]
        from batchline_local.emulators.google_cloud import GoogleCloudFake

        self.google = self._stack.enter_context(GoogleCloudFake(self.service_polls_until_done))
        self.pipelines = parse_pipelines(self._with_local_google_endpoints(self._raw_pipelines))
        self._provision()
        self._start_event_delivery()
        LocalRuntime._active = self
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._stop_unfinished()
        finally:
            if LocalRuntime._active is self:
                LocalRuntime._active = None
            self._stack.close()

    def _stop_unfinished(self, grace_seconds: float = 30.0) -> None:
        """Stop what still runs (a run given up on), and let its threads finish while the emulation stands:
        once moto's mock ends, a call from a leftover thread would go to the real AWS endpoints."""
        if not hasattr(self, "state_machine_arn"):
            return  # the runtime failed before it had a state machine
        from moto.stepfunctions.parser.utils import TMP_THREADS  # every interpreter thread moto starts

        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + grace_seconds
        pages = sfn.get_paginator("list_executions").paginate(
            stateMachineArn=self.state_machine_arn, statusFilter="RUNNING"
        )
        for arn in [execution["executionArn"] for page in pages for execution in page["executions"]]:
            while time.monotonic() < deadline:
                try:
                    sfn.stop_execution(executionArn=arn, error="LocalRuntimeEnded", cause="the local runtime ended")
                    break
                except Exception:  # moto 5.2.5 cannot stop an execution whose thread has not set up yet
                    time.sleep(0.02)
        # The interpreter goes on after a stop (into Catch states and their handlers) until its threads end.
        for thread in list(TMP_THREADS):
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def reload(self, pipelines: dict[str, Any]) -> None:
        """Take a new set of pipelines while the runtime lives (``local serve`` when cdk.json changes), as a
        redeploy would: the permission checks follow the stack synthesized for them, a new pipeline's roles and
        model are created, and the functions read the new configuration from their next invocation. Runs and
        their objects stay. ConfigError or SynthFailed leave the runtime exactly as it was."""
        parsed = parse_pipelines(self._with_local_google_endpoints(pipelines))  # ConfigError
        policies = None
        if self.permissions is not None:
            policies = self._policies_for(pipelines)  # SynthFailed, UnresolvedIntrinsic
        with self._invoke_lock:  # between two invocations, never during one
            self._raw_pipelines = dict(pipelines)
            self.pipelines = parsed
            if policies is not None:
                self.stack_policies = policies
                self.permissions.use_policies(policies, self._roles_you_bring(parsed))
                self._create_stack_roles()
            self._create_models()
            self._pipelines_file.write_text(self.pipelines.to_env_json(), encoding="utf-8")
            self._set_function_variable(SERVICE_ROLES_ENV, json.dumps(self._created_service_roles()))

    def _policies_for(self, pipelines: dict[str, Any]) -> Any:
        """The policies of the stack ``cdk deploy`` would deploy for ``pipelines``, under the runtime's names."""
        from batchline_local.permissions import name_table, stack_policies
        from batchline_local.permissions.synth import stack_template

        template = stack_template(pipelines, self.stack_settings)
        table = name_table(template, self._names, account=ACCOUNT, region=REGION)
        return stack_policies(template, table, account=ACCOUNT, region=REGION, pipelines=list(pipelines))

    def _set_function_variable(self, name: str, value: str) -> None:
        """One environment variable of every function, as a redeploy sets it."""
        lam = self.client("lambda")
        for function in FUNCTIONS:
            configuration = lam.get_function_configuration(FunctionName=f"{FUNCTION_PREFIX}{function}")
            variables = {**configuration["Environment"]["Variables"], name: value}
            lam.update_function_configuration(
                FunctionName=f"{FUNCTION_PREFIX}{function}", Environment={"Variables": variables}
            )

    @staticmethod
    def release_memory() -> None:
        """Hand back to the system the memory a finished run used (``local serve`` calls it after each run).

        What a run keeps (its objects, its execution's history) stays; what it only used (parsed files, the
        handlers' buffers) is garbage once it ends, but the C allocator keeps freed pages for reuse by default, so
        a long-lived process stays at its largest size. glibc's malloc_trim returns them; elsewhere it is skipped.
        """
        import ctypes
        import ctypes.util
        import gc

        gc.collect()
        with suppress(OSError, AttributeError, TypeError):
            ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)

    @classmethod
    def active(cls) -> LocalRuntime | None:
        """The runtime running in this process, if any: the CLI's ``--local`` commands act on it."""
        return cls._active

    def _isolate(self) -> None:
        """Nothing the emulation does may leave the process (promise 3), whatever the machine's AWS setup.

        While the runtime lives (restored on exit): no ``AWS_*`` variable of the user's applies (endpoints,
        profiles, config and credentials files, container and instance-metadata credentials, CA bundles,
        FIPS/dual-stack endpoints), no HTTP proxy applies, and every boto3 client (the runtime's, the handlers',
        the emulators' and moto's interpreter's, which calls ``boto3.client``) comes from one session with static
        fake credentials and a fixed region. Clients only then reach moto: a request moto does not recognise
        (a configured endpoint) would otherwise go out over the network.
        """
        import boto3

        self._stack.enter_context(mock.patch.dict(os.environ))
        for name in list(os.environ):
            if name.upper().startswith("AWS_") or name.lower() in _PROXY_VARIABLES:
                del os.environ[name]
        os.environ.update(ISOLATED_ENVIRONMENT)
        os.environ["MOTO_S3_DEFAULT_KEY_BUFFER_SIZE"] = str(OBJECT_BYTES_IN_MEMORY)
        # From here on the process's environment no longer changes while the runtime lives: each handler call
        # reads its function's variables from its own copy (see batchline_local/environment.py).
        self._stack.enter_context(thread_environment(inherits=_not_the_interpreters))
        from moto import mock_aws

        self._stack.enter_context(mock_aws(config={"stepfunctions": {"execute_state_machine": True}}))
        # After mock_aws: a botocore session takes moto's request interceptor when it is created.
        self.session = isolated_session()
        self._stack.enter_context(mock.patch.object(boto3, "DEFAULT_SESSION", self.session))
        # The emulated services' own clients: a session of their own, so the permission checks attached to the
        # functions' session never take a service's call for the function's it is answering.
        self.service_session = isolated_session()

    def client(self, service: str) -> Any:
        return self.session.client(service)

    def _check_calls(self) -> None:
        """Every call a function makes goes through the stack's policies first, as on AWS: the roles, bucket,
        key, queue and bus policies of the template ``cdk deploy`` would deploy for these pipelines, evaluated
        by a real IAM policy evaluator. Attached to the session before any client exists, so every client the
        handlers make is checked; calls made outside a function (this runtime setting up) are not."""
        from batchline_local.permissions import attach, checker_for_template, runtime_names
        from batchline_local.permissions.synth import stack_template

        names = runtime_names(
            buckets=BUCKETS,
            event_bus=EVENT_BUS,
            state_machine=STATE_MACHINE,
            functions=list(FUNCTIONS),
            function_prefix=FUNCTION_PREFIX,
            undelivered_queue=UNDELIVERED_QUEUE,
        )
        self._names = names
        checker, self.stack_policies, _ = checker_for_template(
            stack_template(self._raw_pipelines, self.stack_settings),
            names,
            account=ACCOUNT,
            region=REGION,
            pipelines=list(self._raw_pipelines),
            external_roles=self._roles_you_bring(self.pipelines),
        )
        self._stack.callback(checker.close)
        self.permissions = checker
        attach(self.session, checker, self._calling_function)

    def _roles_you_bring(self, pipelines: Any) -> dict[str, list[Any]]:
        """The roles a pipeline names that the stack does not create (Personalize's and Bedrock's ``roleArn``, a
        SageMaker model's execution role), with the one policy the README asks of them: the pipeline's objects
        in the work bucket, and the key's use. Their own policies live in the user's account; what the checks
        then test is the rest of the path (the bucket policy, the key policy) as the stack deploys it."""
        from batchline.config import BedrockSettings, PersonalizeSettings, SageMakerSettings

        from batchline_local.permissions.template import NamedPolicy

        work = f"arn:aws:s3:::{BUCKETS['work']}"
        roles: dict[str, list[Any]] = {}
        for name, pipeline in pipelines.pipelines.items():
            service = pipeline.service
            if isinstance(service, PersonalizeSettings | BedrockSettings):
                role = service.role_arn
            elif isinstance(service, SageMakerSettings):
                role = sagemaker_model_role(service)
            else:
                continue
            if not role:
                continue  # the stack creates it: its policies are in the template
            statements = [
                {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": f"{work}/{name}/*"},
                {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": work},
                {"Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*"},
            ]
            policy = NamedPolicy(f"what the README asks of a role you bring ({name})", {"Statement": statements})
            roles.setdefault(role, []).append(policy)
        return roles

    @staticmethod
    def _calling_function() -> str | None:
        """Who makes a call in this thread: the function whose invocation runs in it (or in the thread that
        started it), else the state machine when the thread is its interpreter's; None for this runtime."""
        name = invocation_variable("AWS_LAMBDA_FUNCTION_NAME")
        if name:
            return name.removeprefix(FUNCTION_PREFIX)
        return "StateMachine" if getattr(threading.current_thread(), _INTERPRETER_THREAD, False) else None

    @property
    def _handler_log_level(self) -> str:
        # Quiet: the handlers' JSON log lines (a failed run's ERROR included) are not the command's output; the
        # failure event says what went wrong. Verbose: everything from INFO.
        return "CRITICAL" if self.quiet else "INFO"

    def _set_handler_log_level(self) -> None:
        """Powertools sets the shared logger's level when the first handler module is imported (from
        POWERTOOLS_LOG_LEVEL, in the functions' environment); a logger an earlier runtime made is set here."""
        if SERVICE in logging.Logger.manager.loggerDict:
            handlers_logger = logging.getLogger(SERVICE)
            self._stack.callback(handlers_logger.setLevel, handlers_logger.level)
            handlers_logger.setLevel(self._handler_log_level)

    def _write_pipelines_file(self) -> str:
        """The same file the stack ships in its config layer, in a folder that lives as long as the runtime."""
        folder = self._stack.enter_context(tempfile.TemporaryDirectory(prefix="batchline-config-"))
        path = Path(folder) / "pipelines.json"
        path.write_text(self.pipelines.to_env_json(), encoding="utf-8")
        self._pipelines_file = path
        return str(path)

    def _with_local_google_endpoints(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Vertex pipelines talk to the local Google fake instead of googleapis.com."""
        rewritten = {}
        for name, body in raw.items():
            service = body.get("service", {})
            if service.get("provider") == "vertex":
                body = {**body, "service": {**service, "endpoints": self.google.endpoints}}
            rewritten[name] = body
        return rewritten

    @contextmanager
    def _running(self, function_name: str) -> Iterator[None]:
        self.running_function = function_name.removeprefix(FUNCTION_PREFIX)
        try:
            yield
        finally:
            self.running_function = None

    @contextmanager
    def _working(self) -> Iterator[None]:
        """Marks a stretch of real work or of a deliberate sleep: the execution is moving, not stalled."""
        with self._progress_lock:
            self._busy += 1
            self._progress += 1
        try:
            yield
        finally:
            with self._progress_lock:
                self._busy -= 1
                self._progress += 1

    def _note_progress(self) -> None:
        """Each event the interpreter adds to an execution's history (a state entered or left, a Map item
        done) is progress too, for the stretches where no handler runs."""
        with self._progress_lock:
            self._progress += 1

    def _signs_of_life(self) -> tuple[bool, int]:
        with self._progress_lock:
            return self._busy > 0, self._progress

    # --- patches ---------------------------------------------------------------------------------

    def _patch_lambda_invoke(self) -> None:
        """Run the real handler in-process instead of in a container."""
        from moto.awslambda.models import LambdaFunction

        runtime = self

        def invoke(function: Any, event: Any = None) -> tuple[str, bool, str]:
            return runtime._invoke_handler(
                function.function_name, function.handler, dict(function.environment_vars), event or {}
            )

        self._stack.enter_context(mock.patch.object(LambdaFunction, "_invoke_lambda", invoke))

    def _capture_metrics(self) -> None:
        """Keep what Powertools Metrics prints (one EMF JSON document per flush) instead of printing it."""
        from aws_lambda_powertools.metrics.provider.cloudwatch_emf import cloudwatch

        def keep(line: str, *args: Any, **kwargs: Any) -> None:
            self.metrics.append(json.loads(line))
            if not self.quiet:
                print(line, *args, **kwargs)

        # The provider's module calls print(); a module global of that name is found before the builtin.
        self._stack.enter_context(mock.patch.object(cloudwatch, "print", keep, create=True))

    def crash_once(self, function: str, *, target: str, on_call: int, error_type: str = "Sandbox.Timedout") -> None:
        """Fault injection: the next ``function`` invocation dies at its ``on_call``-th call of ``target``.

        What ran before that call has happened (objects written stay written), as when a real Lambda times
        out or runs out of memory; Step Functions sees ``error_type`` and retries per the ASL file.
        """
        self._crashes[function] = (target, on_call, error_type)

    def _invoke_handler(
        self, function_name: str, handler_path: str, environment: dict[str, str], event: Any
    ) -> tuple[str, bool, str]:
        # Each invocation reads its function's environment in its own thread (function_environment); handler
        # modules and their module-level state (Powertools Metrics, the patched clients) are process-wide, so
        # invocations still run one at a time.
        # Lambda names the function in its environment; the permission checks read it from there.
        variables = {**environment, "AWS_LAMBDA_FUNCTION_NAME": function_name}
        with self._working(), self._invoke_lock, function_environment(variables), self._running(function_name):
            self.invocations.append((function_name, event))
            module_name, function = handler_path.rsplit(".", 1)
            module = importlib.import_module(module_name)
            if module_name not in self._fresh_modules and hasattr(module, "clients"):
                module.clients = EmulatedAwsClients(self.emulators, self.session)  # type: ignore[attr-defined]
                self._fresh_modules.add(module_name)
            deadline = time.monotonic() + LOCAL_FUNCTION_SECONDS
            context = SimpleNamespace(
                function_name=function_name,
                memory_limit_in_mb=1024,
                aws_request_id=f"local-{time.time_ns()}",
                invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}",
                get_remaining_time_in_millis=lambda: max(0, int((deadline - time.monotonic()) * 1000)),
            )
            crash = self._crashes.pop(function_name.removeprefix("batchline-local-"), None)
            try:
                if crash is None:
                    result = getattr(module, function)(event, context)
                else:
                    return self._run_until_crash(crash, lambda: getattr(module, function)(event, context))
            except Exception as exc:  # the Lambda runtime reports any exception this way
                payload = {
                    "errorType": type(exc).__name__,
                    "errorMessage": str(exc),
                    "stackTrace": traceback.format_exception(exc)[-5:],
                }
                return json.dumps(payload), True, ""
            return json.dumps(result), False, ""

    @staticmethod
    def _run_until_crash(crash: tuple[str, int, str], run: Any) -> tuple[str, bool, str]:
        target, on_call, error_type = crash
        module_name, attribute = target.rsplit(".", 1)
        original = getattr(importlib.import_module(module_name), attribute)
        calls = 0

        class _Died(BaseException):
            pass

        def dying(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == on_call:
                raise _Died()
            return original(*args, **kwargs)

        with mock.patch(target, dying), suppress(_Died):
            run()
        message = f"emulated: the function died during call {on_call} of {attribute}"
        return json.dumps({"errorType": error_type, "errorMessage": message}), True, ""

    # --- resources -------------------------------------------------------------------------------

    def _provision(self) -> None:
        s3 = self.client("s3")
        for bucket in BUCKETS.values():
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        events = self.client("events")
        events.create_event_bus(Name=EVENT_BUS)
        # Capture what the pipeline publishes, as a subscriber would: a rule on the bus to a queue.
        sqs = self.client("sqs")
        self.capture_queue_url = sqs.create_queue(QueueName="batchline-local-captured-events")["QueueUrl"]
        self.undelivered_queue_url = sqs.create_queue(QueueName=UNDELIVERED_QUEUE)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.capture_queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events.put_rule(Name="capture-all", EventBusName=EVENT_BUS, EventPattern=json.dumps({"source": ["batchline"]}))
        events.put_targets(Rule="capture-all", EventBusName=EVENT_BUS, Targets=[{"Id": "queue", "Arn": queue_arn}])

        role_arn, roles = self._create_roles()
        sagemaker = self.client("sagemaker")
        sagemaker.create_model(
            ModelName="batchline-local-placeholder", ExecutionRoleArn=role_arn, PrimaryContainer={"Image": "emulated"}
        )
        self._create_models()
        lam = self.client("lambda")
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("README.txt", "handlers run in-process from the repository's lambdas/ folder")
        environment = {
            PIPELINES_FILE_ENV: self._write_pipelines_file(),
            SERVICE_ROLES_ENV: json.dumps(self._created_service_roles()),
            "INBOX_BUCKET": BUCKETS["inbox"],
            "WORK_BUCKET": BUCKETS["work"],
            "RESULTS_BUCKET": BUCKETS["results"],
            "EVENT_BUS_NAME": EVENT_BUS,
            "BATCHLINE_RUNTIME": RUNTIME_LABEL,
            "POWERTOOLS_SERVICE_NAME": SERVICE,
            "POWERTOOLS_METRICS_NAMESPACE": NAMESPACE,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": self._handler_log_level,
        }
        arns = {}
        for name, handler in FUNCTIONS.items():
            if name in STATE_MACHINE_USERS:
                continue
            arns[name] = lam.create_function(
                FunctionName=f"{FUNCTION_PREFIX}{name}",
                Runtime="python3.13",
                Role=roles.get(name, role_arn),
                Handler=handler,
                Code={"ZipFile": code.getvalue()},
                Environment={"Variables": environment},
            )["FunctionArn"]
        definition = render_definition(
            ASL_FILE.read_text(),
            {
                **{f"{name}FunctionArn": arn for name, arn in arns.items()},
                "EventBusName": EVENT_BUS,
                "EventDeadLetterQueueUrl": self.undelivered_queue_url,
                "WorkBucketName": BUCKETS["work"],
            },
        )
        self.state_machine_arn = self.client("stepfunctions").create_state_machine(
            name=STATE_MACHINE, definition=definition, roleArn=roles.get("StateMachine", role_arn), type="STANDARD"
        )["stateMachineArn"]
        for name in STATE_MACHINE_USERS:
            lam.create_function(
                FunctionName=f"{FUNCTION_PREFIX}{name}",
                Runtime="python3.13",
                Role=roles.get(name, role_arn),
                Handler=FUNCTIONS[name],
                Code={"ZipFile": code.getvalue()},
                Environment={"Variables": {**environment, "STATE_MACHINE_ARN": self.state_machine_arn}},
            )

    def _create_roles(self) -> tuple[str, dict[str, str]]:
        """The roles the stack creates, under the names the permission checks know them by (each function's,
        the state machine's, the service roles of pipelines without ``roleArn``); and one general role for
        what has none (the placeholder model, and every function when permissions are not checked)."""
        iam = self.client("iam")
        trust = json.dumps({"Version": "2012-10-17", "Statement": []})
        general = iam.create_role(RoleName=STATE_MACHINE, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
        roles: dict[str, str] = {}
        if self.stack_policies is not None:
            self._create_stack_roles()
            for name in [*FUNCTIONS, "StateMachine"]:
                with suppress(KeyError):
                    roles[name] = self.stack_policies.role(name).arn
        return general, roles

    def _create_stack_roles(self) -> None:
        """The stack's roles that do not exist yet (all of them at start; a new pipeline's service role later)."""
        iam = self.client("iam")
        existing = {role["RoleName"] for page in iam.get_paginator("list_roles").paginate() for role in page["Roles"]}
        for role in self.stack_policies.roles.values():
            if role.name not in existing:
                iam.create_role(RoleName=role.name, AssumeRolePolicyDocument=json.dumps(role.trust_policy))

    def _create_models(self) -> None:
        """Each SageMaker pipeline's model, as the user created it (transform jobs read and write as its role);
        a model that exists already is left as it is."""
        sagemaker = self.client("sagemaker")
        existing = {model["ModelName"] for model in sagemaker.list_models(MaxResults=100)["Models"]}
        models = {
            pipeline.service.model_name: sagemaker_model_role(pipeline.service)
            for pipeline in self.pipelines.pipelines.values()
            if isinstance(pipeline.service, SageMakerSettings)
        }
        for model, role in models.items():
            if model not in existing:
                sagemaker.create_model(ModelName=model, ExecutionRoleArn=role, PrimaryContainer={"Image": "emulated"})

    def _created_service_roles(self) -> dict[str, str]:
        """Pipeline name -> the service role the stack creates for it (those without ``roleArn``), as the stack
        hands them to every function."""
        if self.stack_policies is None:
            return {}
        return {name: self.stack_policies.role(name).arn for name in self.stack_policies.service_roles}

    # --- driving a run ---------------------------------------------------------------------------

    def upload(self, path: Path, pipeline: str, name: str | None = None) -> dict[str, Any]:
        """Put a file in the inbox under ``<pipeline>/``, as a user would."""
        key = f"{pipeline}/{name or path.name}"
        response = self.client("s3").put_object(Bucket=BUCKETS["inbox"], Key=key, Body=path.read_bytes())
        return {
            "bucket": BUCKETS["inbox"],
            "key": key,
            "versionId": response.get("VersionId"),
            "size": path.stat().st_size,
        }

    @staticmethod
    def object_created_event(obj: dict[str, Any]) -> dict[str, Any]:
        """The EventBridge event S3 sends for a new object (moto's rules cannot target Step Functions)."""
        return {
            "version": "0",
            "id": f"local-{time.time_ns()}",
            "detail-type": "Object Created",
            "source": "aws.s3",
            "account": ACCOUNT,
            "region": REGION,
            "resources": [f"arn:aws:s3:::{obj['bucket']}"],
            "detail": {
                "version": "0",
                "bucket": {"name": obj["bucket"]},
                "object": {"key": obj["key"], "size": obj["size"], "version-id": obj["versionId"]},
                "reason": "PutObject",
            },
        }

    def deliver(self, event: dict[str, Any]) -> dict[str, Any]:
        """Invoke the real StartRun Lambda with an S3 event; returns what it decided."""
        response = self.client("lambda").invoke(FunctionName="batchline-local-StartRun", Payload=json.dumps(event))
        payload = json.loads(response["Payload"].read())
        if response.get("FunctionError"):
            raise RuntimeError(f"StartRun failed: {payload.get('errorType')}: {payload.get('errorMessage')}")
        return dict(payload)

    def invoke(self, function: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Invoke one of the pipeline's Lambdas directly (as a Step Functions retry would)."""
        response = self.client("lambda").invoke(FunctionName=f"batchline-local-{function}", Payload=json.dumps(payload))
        result = json.loads(response["Payload"].read())
        if response.get("FunctionError"):
            raise RuntimeError(f"{function} failed: {result.get('errorType')}: {result.get('errorMessage')}")
        return dict(result)

    @staticmethod
    def state_inputs(result: RunResult, state: str) -> list[dict[str, Any]]:
        """The input of each time the execution entered a state, from its history."""
        return [
            json.loads(event["stateEnteredEventDetails"]["input"])
            for event in result.history
            if event["type"].endswith("StateEntered") and event["stateEnteredEventDetails"]["name"] == state
        ]

    def pipeline_service(self, name: str | None) -> Any:
        """The service settings of one of this runtime's pipelines (what the emulators enforce), or None."""
        pipeline = self.pipelines.pipelines.get(name) if name else None
        return pipeline.service if pipeline is not None else None

    def execution_arn(self, run_id: str) -> str:
        return self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{run_id}"

    def stop_by_hand(self, run_id: str) -> dict[str, Any]:
        """Stop the execution as a user would in the console, then deliver the status-change event
        EventBridge would send (moto sends none) to the real ExecutionEnded Lambda."""
        sfn = self.client("stepfunctions")
        arn = self.execution_arn(run_id)
        sfn.stop_execution(executionArn=arn, error="Manual", cause="stopped from the console")
        deadline = time.monotonic() + 30
        while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.02)
        # AWS reports a stopped execution as ABORTED; moto 5.2.5's interpreter ends it FAILED (States.Runtime
        # inside its stop path), so the event says what AWS would send.
        return self.execution_ended(run_id, "ABORTED")

    # --- the services' job events on the default bus -------------------------------------------------

    def publish_service_event(self, event: dict[str, Any]) -> None:
        """What SageMaker and Bedrock do when a job changes: the event goes to the account's default bus, and
        EventBridge delivers it, asynchronously, to the target of each of the stack's rules it matches (the
        job-end rules of stacks/notifications.py, patterns from batchline.job_events). moto's rules send nothing
        to Lambda, so delivery is this runtime's: a thread invokes the real WakeJob function."""
        self.service_events.append((time.monotonic(), event))
        # The service's own publishing: whatever becomes of it never fails the service's API call it came from.
        with suppress(Exception):
            self.service_session.client("events").put_events(
                Entries=[
                    {
                        "Source": event["source"],
                        "DetailType": event["detail-type"],
                        "Detail": json.dumps(event["detail"]),
                        "Resources": event.get("resources", []),
                    }
                ]
            )
        if self.lose_service_events or not _matches_a_job_end_rule(event):
            return
        for _ in range(self.service_event_deliveries):
            self._deliveries.put(event)

    def deliver_service_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """Hand one event to the rule's target now, as EventBridge would (a foreign or forged event too)."""
        result = self.invoke("WakeJob", event)
        self.wake_results.append(result)
        return result

    def _start_event_delivery(self) -> None:
        def deliver() -> None:
            while (event := self._deliveries.get()) is not None:
                with suppress(Exception):  # a failed delivery is retried by EventBridge, then dead-lettered
                    self.deliver_service_event(event)

        thread = threading.Thread(target=deliver, name="batchline-event-delivery", daemon=True)
        thread.start()

        def stop() -> None:
            self._deliveries.put(None)
            thread.join(30)

        self._stack.callback(stop)

    def execution_ended(self, run_id: str, status: str) -> dict[str, Any]:
        """What the stack's rule on "Step Functions Execution Status Change" does (moto's rules send nothing to
        Lambda): the event for ``status`` goes to the real ExecutionEnded function."""
        described = self.client("stepfunctions").describe_execution(executionArn=self.execution_arn(run_id))
        event = {
            "version": "0",
            "id": f"local-{time.time_ns()}",
            "source": "aws.states",
            "account": ACCOUNT,
            "region": REGION,
            "detail-type": "Step Functions Execution Status Change",
            "resources": [described["executionArn"]],
            "detail": {
                "executionArn": described["executionArn"],
                "stateMachineArn": self.state_machine_arn,
                "name": run_id,
                "status": status,
                "input": described["input"],
            },
        }
        return self.invoke("ExecutionEnded", event)

    def wait_for(
        self, run_id: str, timeout_seconds: float | None = None, stall_seconds: float = STALL_SECONDS
    ) -> RunResult:
        """Follow the execution to its end, then return its status, history and published event.

        No wall-clock limit unless ``timeout_seconds`` is given; RunStillRunning when it passes, or when the
        execution has stopped moving for ``stall_seconds`` (see STALL_SECONDS).
        """
        sfn = self.client("stepfunctions")
        arn = self.execution_arn(run_id)
        started = quiet_since = time.monotonic()
        _, seen = self._signs_of_life()
        pause = FOLLOW_FIRST_PAUSE
        while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
            now = time.monotonic()
            if timeout_seconds is not None and now - started > timeout_seconds:
                raise RunStillRunning(run_id, f"run {run_id} still RUNNING after {timeout_seconds:g} s")
            busy, progress = self._signs_of_life()
            if busy or progress != seen:
                seen, quiet_since = progress, now
            elif now - quiet_since > stall_seconds:
                raise RunStillRunning(
                    run_id,
                    f"run {run_id} stopped moving: RUNNING with nothing happening for {stall_seconds:g} s "
                    "(the local Step Functions interpreter is stuck)",
                )
            time.sleep(pause)
            pause = min(pause * 1.5, FOLLOW_LONGEST_PAUSE)
        status = sfn.describe_execution(executionArn=arn)["status"]
        if status in ENDED_BY_RULE:
            self.execution_ended(run_id, status)  # it leaves alone a run that reported itself
        history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        events = [e for e in self.published_events() if e["detail"].get("runId") == run_id]
        permissions = self.permissions.to_json() if self.permissions is not None else {}
        return RunResult(
            run_id, arn, status, events[-1] if events else None, history, self.orchestration(run_id), permissions
        )

    def orchestration(self, run_id: str) -> dict[str, Any]:
        """What Step Functions did for a run: ``executions`` (the run's and each Distributed Map child's),
        ``stateTransitions`` (what Step Functions bills: every state entered, and every retry),
        ``largestStateBytes`` (the largest input, output, result or child input, as UTF-8 JSON) and
        ``historyEvents`` (``run``: the run's own execution; ``largestChild``: its longest child history)."""
        return self.ledger.orchestration(self.execution_arn(run_id), self.limits)

    def published_events(self) -> list[dict[str, Any]]:
        """Every event the pipeline has published so far, in order (drained from the capture queue)."""
        sqs = self.client("sqs")
        while True:
            messages = sqs.receive_message(QueueUrl=self.capture_queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                break
            for message in messages:
                self._captured.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.capture_queue_url, ReceiptHandle=message["ReceiptHandle"])
        return list(self._captured)

    def run_file(
        self, path: Path, pipeline: str, timeout_seconds: float | None = None, stall_seconds: float = STALL_SECONDS
    ) -> RunResult:
        """Upload, deliver the S3 event, follow the run to its end (see wait_for for the limits)."""
        obj = self.upload(path, pipeline)
        decision = self.deliver(self.object_created_event(obj))
        if not decision.get("started"):
            events = [e for e in self.published_events() if e["detail"].get("runId") == decision["runId"]]
            return RunResult(decision["runId"], "", "NOT_STARTED", events[-1] if events else None, [])
        return self.wait_for(decision["runId"], timeout_seconds, stall_seconds)

    def download(self, uri: str | None, target: Path) -> Path | None:
        if not uri:
            return None
        bucket, key = uri[5:].split("/", 1)
        target.parent.mkdir(parents=True, exist_ok=True)
        self.client("s3").download_file(bucket, key, str(target))
        return target


def _matches_a_job_end_rule(event: dict[str, Any]) -> bool:
    from batchline.job_events import SOURCES
    from moto.events.models import EventPattern

    return any(EventPattern.load(json.dumps(known.pattern())).matches_event(event) for known in SOURCES)


class EmulatedAwsClients(AwsClients):
    """The handlers' clients, with the botocore-level emulators attached for services moto lacks."""

    def __init__(self, emulators: list[ServiceEmulator], session: Any) -> None:
        super().__init__(session)
        self._emulators = emulators

    def _client(self, name: str) -> Any:
        client = super()._client(name)
        for emulator in self._emulators:
            if emulator.handles(client):
                emulator.attach(client)
        return client


def isolated_session() -> Any:
    """A boto3 session that reads nothing of the machine's: explicit credentials and region, no profile, no
    configured endpoints, and no service models from ``~/.aws/models`` (which can carry endpoint rules)."""
    import boto3
    import botocore.loaders
    import botocore.session

    core = botocore.session.Session()
    core.set_config_variable("ignore_configured_endpoint_urls", True)
    loader = core.get_component("data_loader")
    customer_models = botocore.loaders.Loader.CUSTOMER_DATA_PATH
    loader.search_paths[:] = [path for path in loader.search_paths if path != customer_models]
    return boto3.session.Session(**FAKE_CREDENTIALS, region_name=REGION, botocore_session=core)


def render_definition(asl_text: str, substitutions: dict[str, str]) -> str:
    """Fill ``${Name}`` placeholders as CDK's definition_substitutions does; every one must be known."""
    import re

    missing = sorted(set(re.findall(r"\$\{(\w+)\}", asl_text)) - set(substitutions))
    if missing:
        raise KeyError(f"no value for placeholders: {', '.join(missing)}")
    return re.sub(r"\$\{(\w+)\}", lambda m: substitutions[m.group(1)], asl_text)
