"""Every change the local runtime makes to moto's Step Functions interpreter (moto 5.2.5, private API), in one place.

Each patch is entered on the runtime's ExitStack and undone when the runtime ends. They make the interpreter
behave as AWS does where moto differs, and keep the figures of ``orchestration.json``:

1. Time: Wait states and Retry back-offs sleep ``time_scale`` of their real time (``WaitFunction._wait_interval``,
   the retrier module's ``time``), and so does a ``.waitForTaskToken`` task's wait for its callback before its
   TimeoutSeconds(Path) ends it with States.Timeout (``StateTaskServiceCallback._wait_for_task_token_timeout``;
   moto already fails the task with States.Timeout and a TaskTimedOut event, as AWS does, and a SendTaskSuccess
   before then resumes it with the output given, which ResultPath places). Once the task's wait is over, its
   token is spent: SendTaskSuccess answers TaskTimedOut, as AWS does for a task that no longer waits (moto
   accepted the token again; ``CallbackEndpoint.interrupt_all`` runs when the wait ends).
   https://docs.aws.amazon.com/step-functions/latest/dg/connect-to-resource.html#connect-wait-token
2. Distributed Map failures: a failed child fails the Map with States.ExceedToleratedFailureThreshold when failures
   pass the tolerated count and percentage (moto lets the Map succeed). ``DistributedItemProcessorWorker._eval_job``
   and ``DistributedIterationComponent._map_run``.
   https://docs.aws.amazon.com/step-functions/latest/dg/maprun-fail-threshold.html
3. Distributed Map children are executions: each child gets its own history (moto shares one across the Map Run),
   opening with ExecutionStarted and closing with its end event, as a child execution's history does on AWS.
4. Payload size (256 KiB, 262,144 bytes of UTF-8 JSON): every state's input (``_eval_state_input``), a Task's input
   after Parameters (``_eval_parameters``), every state's result (Lambda and service results in their
   ``_verify_size_quota``; Map and Parallel results after ``_eval_execution``), every state's output
   (``CommonStateField._verify_size_quota``) and every Map child's input (the item workers' ``_eval_input``).
   Past it the state fails with States.DataLimitExceeded. moto checked outputs and results only, at < 256 KiB.
5. Terminal errors: a Retrier's or Catcher's ``States.ALL`` does not match States.DataLimitExceeded or
   States.Runtime (``ErrorEqualsDecl._eval_body``), so such an error fails the execution; moto caught them.
   https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html
6. History length (25,000 events): when an execution reaches the limit and the last event would not be
   ExecutionSucceeded, that event is ExecutionFailed with States.Runtime and "The execution reached the maximum
   number of history events (25000).", and the execution fails at its next state, or instead of ending
   (``EventManager.add_event``, ``CommonStateField._eval_state_input``, ``Program.eval``). https://docs.aws.amazon.com/step-functions/latest/dg/bp-history-limit.html
7. Accounting for orchestration.json: history events per execution, state transitions as AWS bills them (each
   state entered, and each retry: https://aws.amazon.com/step-functions/pricing/), the largest state in bytes.
8. Service integration errors: a ``events:putEvents`` or ``sqs:sendMessage`` task whose call fails with a service
   error fails with ``<Service>.<ErrorCode>`` (``EventBridge.InternalException``), which Retry and Catch match as
   on AWS; moto reported every such error as States.Runtime, which (5.) nothing may catch.
   https://docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html (error names)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack, suppress
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from unittest import mock

# Step Functions quotas: https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html
STATE_BYTES_LIMIT = 256 * 1024
HISTORY_EVENTS_LIMIT = 25_000
TERMINAL_ERRORS = frozenset({"States.DataLimitExceeded", "States.Runtime"})


@dataclass(frozen=True)
class Limits:
    """What the local runtime refuses; tests lower them to reach them cheaply."""

    state_bytes: int = STATE_BYTES_LIMIT
    history_events: int = HISTORY_EVENTS_LIMIT


def payload_bytes(value: Any) -> int:
    """A payload's size as Step Functions counts it: its JSON text (compact, as in the history), in UTF-8."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
    return len(text.encode("utf-8"))


@dataclass
class ExecutionRecord:
    """One execution's figures: the run's own, or a Distributed Map child's."""

    arn: str
    root: str  # the run's execution ARN
    child: bool = False
    events: int = 0
    exhausted: dict[str, str] | None = None  # the ExecutionFailed details once the history limit was reached
    registered: bool = False


@dataclass
class RunFigures:
    transitions: int = 0
    largest_state_bytes: int = 0
    records: list[ExecutionRecord] = field(default_factory=list)


class Ledger:
    """Figures per run (keyed by the run's execution ARN), kept as the interpreter goes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, RunFigures] = {}

    def _run(self, root: str) -> RunFigures:
        return self._runs.setdefault(root, RunFigures())

    def register(self, record: ExecutionRecord) -> None:
        with self._lock:
            if not record.registered:
                record.registered = True
                self._run(record.root).records.append(record)

    def transition(self, root: str) -> None:
        with self._lock:
            self._run(root).transitions += 1

    def state_bytes(self, root: str, size: int) -> None:
        with self._lock:
            figures = self._run(root)
            figures.largest_state_bytes = max(figures.largest_state_bytes, size)

    def orchestration(self, run_arn: str, limits: Limits) -> dict[str, Any]:
        """What orchestration.json holds for one run."""
        with self._lock:
            figures = self._runs.get(run_arn, RunFigures())
            run = [r.events for r in figures.records if not r.child]
            children = [r.events for r in figures.records if r.child]
            return {
                "executionArn": run_arn,
                "executions": len(figures.records),
                "childExecutions": len(children),
                "stateTransitions": figures.transitions,
                "largestStateBytes": figures.largest_state_bytes,
                "historyEvents": {"run": sum(run), "largestChild": max(children, default=0)},
                "limits": {"stateBytes": limits.state_bytes, "historyEvents": limits.history_events},
            }


def _root_of(env: Any) -> str:
    return str(env.states.context_object.context_object_data["Execution"]["Id"])


def _failure(env: Any, error: str, cause: str) -> Exception:
    """The exception moto's interpreter raises for a state that fails with a States.* error."""
    from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, HistoryEventType
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    typ = {
        "States.DataLimitExceeded": StatesErrorNameType.StatesStatesDataLimitExceeded,
        "States.Runtime": StatesErrorNameType.StatesRuntime,
    }[error]

    class TerminalFailure(FailureEventException):
        def get_execution_failed_event_details(self) -> Any:
            # The execution fails with this error and cause as they are (moto prefixes a States.Runtime cause
            # with the state's name; AWS's history-limit cause has no prefix).
            return ExecutionFailedEventDetails(error=error, cause=cause)

    return TerminalFailure(
        failure_event=FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=typ),
            event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(  # type: ignore[typeddict-item]
                executionFailedEventDetails=ExecutionFailedEventDetails(error=error, cause=cause)
            ),
        )
    )


class InterpreterPatches:
    """Installs the patches listed in the module's docstring on ``stack``."""

    def __init__(
        self,
        stack: ExitStack,
        *,
        limits: Limits,
        ledger: Ledger,
        working: Callable[[], AbstractContextManager[None]],
        on_event: Callable[[], None],
        time_scale: float,
    ) -> None:
        self.stack = stack
        self.limits = limits
        self.ledger = ledger
        self.working = working  # marks real work or a deliberate sleep (the runtime's stall detection)
        self.on_event = on_event  # called for each history event (progress, for the same)
        self.time_scale = time_scale

    def install(self) -> None:
        self._patch_time()
        self._patch_distributed_map()
        self._patch_history()
        self._patch_sizes()
        self._patch_terminal_errors()
        self._patch_service_errors()

    def _patch(self, owner: Any, name: str, replacement: Any) -> None:
        self.stack.enter_context(mock.patch.object(owner, name, replacement))

    # --- 1. time ---------------------------------------------------------------------------------

    def _patch_time(self) -> None:
        from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
        from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import (
            WaitFunction,
        )

        scale, working = self.time_scale, self.working

        def short_wait(_self: Any, env: Any, wait_seconds: float) -> None:
            if wait_seconds > 0 and scale > 0:
                with working():
                    env.program_state_event.wait(wait_seconds * scale)

        def short_sleep(seconds: float) -> None:
            import time

            with working():
                time.sleep(seconds * scale)

        self._patch(WaitFunction, "_wait_interval", short_wait)

        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (  # noqa: E501
            StateTaskServiceCallback,
        )

        def short_callback_wait(_self: Any, timeout_seconds: int, callback_endpoint: Any) -> Any:
            # The outer TimeoutSeconds clock (ExecutionState._evaluate_with_timeout) keeps real seconds: this one
            # ends first, as the task's own timeout would on AWS.
            with working():
                return callback_endpoint.wait(timeout=timeout_seconds * scale)

        self._patch(StateTaskServiceCallback, "_wait_for_task_token_timeout", short_callback_wait)

        from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackConsumerTimeout, CallbackEndpoint

        interrupt_all = CallbackEndpoint.interrupt_all

        def interrupt_and_spend(endpoint: Any) -> None:
            interrupt_all(endpoint)
            if endpoint.consumer_error is None:
                endpoint.report(CallbackConsumerTimeout())

        self._patch(CallbackEndpoint, "interrupt_all", interrupt_and_spend)

        # moto raises these without the message their class requires (a TypeError instead of the service's error).
        from moto.stepfunctions.parser import api
        from moto.stepfunctions.parser import models as parser_models

        for name, message in (
            ("TaskTimedOut", "Task Timed Out: 'Provided task does not exist anymore'"),
            ("TaskDoesNotExist", "Task does not exist anymore"),
            ("InvalidToken", "Invalid token"),
        ):
            error = getattr(api, name)
            self._patch(parser_models, name, type(name, (error,), {"__init__": _with_message(error, name, message)}))
        import time

        fake_time = SimpleNamespace(**{name: getattr(time, name) for name in ("time", "monotonic")})
        fake_time.sleep = short_sleep
        self._patch(retrier_decl, "time", fake_time)

    # --- 2, 3. Distributed Map ---------------------------------------------------------------------

    def _patch_distributed_map(self) -> None:
        from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (  # noqa: E501
            DistributedIterationComponent,
        )
        from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor.distributed_item_processor_worker import (  # noqa: E501
            DistributedItemProcessorWorker,
        )
        from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager
        from moto.stepfunctions.parser.asl.eval.program_state import ProgramError, ProgramTimedOut

        eval_job, map_run = DistributedItemProcessorWorker._eval_job, DistributedIterationComponent._map_run

        def eval_job_as_child_execution(worker: Any, env: Any, job: Any) -> None:
            record = ExecutionRecord(
                arn=f"{worker._map_run_record.map_run_arn}:{job.job_index}", root=_root_of(env), child=True
            )
            env.event_manager = EventManager()
            env.event_manager.batchline_record = record
            _child_started(env, job.job_input)
            try:
                eval_job(worker, env, job)
            finally:
                _child_ended(env)
            state = env.program_state()
            if isinstance(state, ProgramError):
                failure = dict(state.error or {})
            elif isinstance(state, ProgramTimedOut):
                failure = {"error": "States.Timeout", "cause": "the child execution timed out"}
            else:
                return
            # Workers run in threads; list.append is atomic.
            vars(worker._map_run_record).setdefault("local_failures", []).append((job.job_index, failure))

        def map_run_within_tolerance(component: Any, env: Any, eval_input: Any) -> None:
            items = len(env.stack[-1])  # the items map_run takes from the stack
            map_run(component, env, eval_input)
            record = vars(eval_input.map_run_record)
            if "local_terminal" in record:  # a child's input past the size limit fails the Map itself
                raise record["local_terminal"]
            failures = sorted(record.get("local_failures", []), key=lambda f: f[0])
            count, percentage = eval_input.tolerated_failure_count, eval_input.tolerated_failure_percentage
            # Not set, both are 0 and any failure fails the Map; one set, the other (0) is exceeded anyway.
            if failures and len(failures) > count and len(failures) * 100 > percentage * items:
                raise _tolerated_failure_exceeded(env, failures, items)

        self._patch(DistributedItemProcessorWorker, "_eval_job", eval_job_as_child_execution)
        self._patch(DistributedIterationComponent, "_map_run", map_run_within_tolerance)

    # --- 6, 7. history -----------------------------------------------------------------------------

    def _patch_history(self) -> None:
        from moto.stepfunctions.parser.api import HistoryEventType
        from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
        from moto.stepfunctions.parser.asl.component.state.state import CommonStateField
        from moto.stepfunctions.parser.asl.eval.environment import Environment
        from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
        from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager

        add_event, env_init = EventManager.add_event, Environment.__init__
        handle_retry, eval_state_input = ExecutionState._handle_retry, CommonStateField._eval_state_input
        ledger, limit, on_event = self.ledger, self.limits.history_events, self.on_event
        lock = threading.Lock()

        def env_init_recorded(env: Any, *args: Any, **kwargs: Any) -> None:
            env_init(env, *args, **kwargs)
            # A frame's own manager is replaced by its parent's right after; only a top-level one records events.
            with suppress(KeyError, TypeError):
                arn = _root_of(env)
                env.event_manager.batchline_record = ExecutionRecord(arn=arn, root=arn)

        def add_event_limited(manager: Any, context: Any, event_type: Any, *args: Any, **kwargs: Any) -> int:
            on_event()
            record: ExecutionRecord | None = getattr(manager, "batchline_record", None)
            if record is None:
                return add_event(manager, context, event_type, *args, **kwargs)
            with lock:
                if record.exhausted is not None:
                    return int(context.last_published_event_id)  # the history is closed: nothing more is recorded
                if record.events + 1 >= limit and event_type != HistoryEventType.ExecutionSucceeded:
                    record.exhausted = {
                        "error": "States.Runtime",
                        "cause": f"The execution reached the maximum number of history events ({limit}).",
                    }
                    record.events += 1
                    ledger.register(record)
                    return int(
                        add_event(
                            manager,
                            context,
                            HistoryEventType.ExecutionFailed,
                            EventDetails(executionFailedEventDetails=record.exhausted),  # type: ignore[typeddict-item]
                        )
                    )
                record.events += 1
            ledger.register(record)
            if str(event_type).endswith("StateEntered"):
                ledger.transition(record.root)
            return int(add_event(manager, context, event_type, *args, **kwargs))

        def retry_counted(state: Any, env: Any, failure_event: Any) -> Any:
            from moto.stepfunctions.parser.asl.component.common.retry.retry_outcome import RetryOutcome

            outcome = handle_retry(state, env, failure_event)
            if outcome == RetryOutcome.CanRetry:
                ledger.transition(_root_of(env))  # each retry is billed as a state transition
            return outcome

        def state_input_checked(state: Any, env: Any) -> None:
            record: ExecutionRecord | None = getattr(env.event_manager, "batchline_record", None)
            if record is not None and record.exhausted is not None:
                raise _failure(env, record.exhausted["error"], record.exhausted["cause"])
            eval_state_input(state, env)
            self._check(env, state.name, env.stack[-1], "has an input")

        from moto.stepfunctions.parser.asl.component.program.program import Program
        from moto.stepfunctions.parser.asl.eval.program_state import ProgramEnded

        program_eval = Program.eval

        def program_fails_when_exhausted(program: Any, env: Any) -> None:
            program_eval(program, env)
            # An execution whose history closed at the limit does not succeed, even with no state left to run
            # (its last state's exit was the limit's ExecutionFailed; moto would then report it SUCCEEDED).
            record: ExecutionRecord | None = getattr(env.event_manager, "batchline_record", None)
            if record is not None and record.exhausted is not None and isinstance(env.program_state(), ProgramEnded):
                from moto.stepfunctions.parser.api import ExecutionFailedEventDetails

                env.set_error(ExecutionFailedEventDetails(**record.exhausted))  # type: ignore[typeddict-item]

        self._patch(Program, "eval", program_fails_when_exhausted)
        self._patch(Environment, "__init__", env_init_recorded)
        self._patch(EventManager, "add_event", add_event_limited)
        self._patch(ExecutionState, "_handle_retry", retry_counted)
        self._patch(CommonStateField, "_eval_state_input", state_input_checked)

    # --- 4. sizes ----------------------------------------------------------------------------------

    def _check(self, env: Any, name: str, value: Any, what: str) -> None:
        size = payload_bytes(value)
        self.ledger.state_bytes(_root_of(env), size)
        if size > self.limits.state_bytes:
            raise _failure(
                env,
                "States.DataLimitExceeded",
                f"The state/task '{name}' {what} with a size exceeding the maximum number of bytes service limit.",
            )

    def _patch_sizes(self) -> None:
        from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor.inline_item_processor_worker import (  # noqa: E501
            InlineItemProcessorWorker,
        )
        from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.iterator.inline_iterator_worker import (  # noqa: E501
            InlineIteratorWorker,
        )
        from moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map import StateMap
        from moto.stepfunctions.parser.asl.component.state.exec.state_parallel.state_parallel import StateParallel
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
            StateTaskService,
        )
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task import StateTask
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_activitiy import (
            StateTaskActivity,
        )
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import StateTaskLambda
        from moto.stepfunctions.parser.asl.component.state.state import CommonStateField

        check = self._check

        def verify(what: str) -> Callable[[Any, Any, Any], None]:
            def verify_size(state: Any, env: Any, value: Any) -> None:
                check(env, state.name, value, what)

            return verify_size

        def lambda_result_checked(state: Any, env: Any, value: Any) -> None:
            # A Task on a function's ARN gets the invocation's response; its result is only the Payload.
            check(
                env,
                state.name,
                value.get("Payload") if isinstance(value, dict) else value,
                "returned a result",
            )

        self._patch(CommonStateField, "_verify_size_quota", verify("has an output"))
        self._patch(StateTaskService, "_verify_size_quota", verify("returned a result"))
        self._patch(StateTaskLambda, "_verify_size_quota", lambda_result_checked)

        for task in (StateTask, StateTaskLambda, StateTaskActivity):
            original_parameters = task.__dict__["_eval_parameters"]

            def parameters_checked(state: Any, env: Any, _original: Any = original_parameters) -> dict[str, Any]:
                parameters: dict[str, Any] = _original(state, env)
                check(env, state.name, parameters, "has an input after Parameters")
                return parameters

            self._patch(task, "_eval_parameters", parameters_checked)

        for aggregate in (StateMap, StateParallel):
            original_execution = aggregate.__dict__["_eval_execution"]

            def result_checked(state: Any, env: Any, _original: Any = original_execution) -> None:
                _original(state, env)
                check(env, state.name, env.stack[-1], "returned a result")

            self._patch(aggregate, "_eval_execution", result_checked)

        for worker_class in (InlineItemProcessorWorker, InlineIteratorWorker):
            original_input = worker_class.__dict__["_eval_input"]

            def child_input_checked(worker: Any, env_frame: Any, _original: Any = original_input) -> None:
                _original(worker, env_frame)
                try:
                    check(env_frame, worker._work_name, env_frame.states.get_input(), "gave a child an input")
                except Exception as exc:
                    map_run_record = getattr(worker, "_map_run_record", None)
                    if map_run_record is not None:  # a Distributed Map counts a failed child: fail the Map
                        vars(map_run_record).setdefault("local_terminal", exc)
                    raise

            self._patch(worker_class, "_eval_input", child_input_checked)

    # --- 5. terminal errors ------------------------------------------------------------------------

    def _patch_terminal_errors(self) -> None:
        from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl

        eval_body = ErrorEqualsDecl._eval_body

        def states_all_not_terminal(decl: Any, env: Any) -> None:
            error_name = env.stack[-1]
            name = getattr(error_name, "error_name", None)
            if name in TERMINAL_ERRORS and ErrorEqualsDecl._STATE_ALL_ERROR in decl.error_names:
                env.stack.pop()
                env.stack.append(False)  # States.ALL matches every error but these
                return
            eval_body(decl, env)

        self._patch(ErrorEqualsDecl, "_eval_body", states_all_not_terminal)

    # --- 8. service integration errors ------------------------------------------------------------

    def _patch_service_errors(self) -> None:
        from botocore.exceptions import ClientError
        from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
        from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
        from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
            state_task_service_events,
            state_task_service_sqs,
        )
        from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

        for owner, service in (
            (state_task_service_events.StateTaskServiceEvents, "EventBridge"),
            (state_task_service_sqs.StateTaskServiceSqs, "SQS"),
        ):
            original = owner._from_error

            def named(task: Any, env: Any, ex: Exception, original: Any = original, service: str = service) -> Any:
                if not isinstance(ex, ClientError):
                    return original(task, env, ex)
                error = f"{service}.{ex.response['Error'].get('Code') or 'Exception'}"
                return FailureEvent(
                    env=env,
                    error_name=CustomErrorName(error_name=error),
                    event_type=HistoryEventType.TaskFailed,
                    event_details=EventDetails(
                        taskFailedEventDetails=TaskFailedEventDetails(
                            error=error,
                            cause=str(ex),
                            resource=task._get_sfn_resource(),
                            resourceType=task._get_sfn_resource_type(),
                        )
                    ),
                )

            self._patch(owner, "_from_error", named)


def _with_message(error: type, name: str, message: str) -> Callable[..., None]:
    from moto.core.exceptions import AWSError

    def init(self: Any, text: str = message) -> None:
        # AWSError(message, exception_type): the error code clients see. Called on AWSError itself: moto gives some
        # of these classes an __init__ of their own that takes no message (InvalidToken), which would raise TypeError.
        AWSError.__init__(self, text, name)

    return init


def _child_started(env: Any, child_input: Any) -> None:
    from moto.stepfunctions.parser.api import HistoryEventType
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    env.event_manager.add_event(
        context=env.event_history_context,
        event_type=HistoryEventType.ExecutionStarted,
        event_details=EventDetails(
            executionStartedEventDetails={  # type: ignore[typeddict-item]
                "input": json.dumps(child_input, separators=(",", ":"), default=str),
                "inputDetails": {"truncated": False},
            }
        ),
    )


def _child_ended(env: Any) -> None:
    from moto.stepfunctions.parser.api import HistoryEventType
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramError, ProgramStopped, ProgramTimedOut

    state = env.program_state()
    if isinstance(state, ProgramError):
        event_type, details = HistoryEventType.ExecutionFailed, {"executionFailedEventDetails": dict(state.error or {})}
    elif isinstance(state, ProgramStopped):
        event_type, details = HistoryEventType.ExecutionAborted, {"executionAbortedEventDetails": {}}
    elif isinstance(state, ProgramTimedOut):
        event_type, details = HistoryEventType.ExecutionTimedOut, {"executionTimedOutEventDetails": {}}
    else:
        event_type, details = HistoryEventType.ExecutionSucceeded, {"executionSucceededEventDetails": {}}
    with suppress(Exception):  # a closed history (past its limit) records nothing more
        env.event_manager.add_event(
            context=env.event_history_context,
            event_type=event_type,
            event_details=EventDetails(**details),  # type: ignore[typeddict-item]
        )


def _tolerated_failure_exceeded(env: Any, failures: list[tuple[int, dict[str, Any]]], items: int) -> Exception:
    """The failure moto raises for a Map state, carrying AWS's error name for an exceeded failure threshold."""
    from moto.stepfunctions.parser.api import HistoryEventType, MapRunFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    index, first = failures[0]
    error, cause = first.get("error") or "States.Runtime", first.get("cause") or ""
    with suppress(ValueError, TypeError, AttributeError):  # a Lambda's cause is its error payload, as JSON
        cause = json.loads(cause).get("errorMessage", cause)
    name = StatesErrorName(typ=StatesErrorNameType.StatesExceedToleratedFailureThreshold)
    details = MapRunFailedEventDetails(
        error=name.error_name,
        cause=(
            f"The specified tolerated failure threshold was exceeded: {len(failures)} of {items} child "
            f"executions failed; the first, item {index}, with {error}: {cause}"
        )[:32768],
    )
    return FailureEventException(
        FailureEvent(
            env=env,
            error_name=name,
            event_type=HistoryEventType.MapRunFailed,
            event_details=EventDetails(mapRunFailedEventDetails=details),  # type: ignore[typeddict-item]
        )
    )
