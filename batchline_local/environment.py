"""Each local Lambda invocation sees its function's environment; no other thread ever does.

On AWS every function runs in its own process with its own environment. In-process, the runtime used to swap
``os.environ`` around each handler call (``mock.patch.dict``), which clears and refills the one process-wide
mapping while moto's interpreter threads, boto and the emulators read it: under load a reader saw a half-restored
environment and failed with a KeyError on whichever variable was missing at that instant.

Instead, while the runtime lives, ``os.environ`` is a ``ThreadEnvironment``: reads and writes go to the process's
environment (the original ``os._Environ``, untouched) unless the calling thread runs a handler, in which case they
go to that invocation's own copy (process environment + function variables). ``os.getenv``, ``os.environ.get``,
``os.environ[...]``, ``in``, iteration and ``copy()`` all read through it, and so do botocore (its config
providers look up ``os.environ`` when a session is made) and Powertools (``os.getenv``). Threads a handler starts
(a ThreadPoolExecutor's workers) inherit its environment, as threads in a Lambda process would.

Not covered: ``os.environb`` and C code calling ``getenv(3)`` see the process's environment, as do modules that
bound ``os.environ`` to a name of their own before the runtime started (none of the handlers' libraries do).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

_local = threading.local()


def _overlay() -> dict[str, str] | None:
    return getattr(_local, "overlay", None)


class ThreadEnvironment(MutableMapping[str, str]):
    """``os.environ`` for the runtime's lifetime: the process's environment, or the calling thread's invocation's."""

    def __init__(self, process: MutableMapping[str, str]) -> None:
        self.process = process  # the real os._Environ: writes outside handlers still reach putenv
        self._lock = threading.RLock()  # iteration of the process environment never races a write to it

    def _current(self) -> MutableMapping[str, str]:
        overlay = _overlay()
        return self.process if overlay is None else overlay

    def __getitem__(self, key: str) -> str:
        return self._current()[key]

    def __setitem__(self, key: str, value: str) -> None:
        overlay = _overlay()
        if overlay is not None:
            overlay[key] = value
            return
        with self._lock:
            self.process[key] = value

    def __delitem__(self, key: str) -> None:
        overlay = _overlay()
        if overlay is not None:
            del overlay[key]
            return
        with self._lock:
            del self.process[key]

    def __contains__(self, key: object) -> bool:
        return key in self._current()

    def get(self, key: str, default: Any = None) -> Any:
        return self._current().get(key, default)

    def snapshot(self) -> dict[str, str]:
        overlay = _overlay()
        if overlay is not None:
            return dict(overlay)
        with self._lock:
            return dict(self.process)

    def copy(self) -> dict[str, str]:
        return self.snapshot()

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.snapshot()))

    def __len__(self) -> int:
        return len(self._current())

    def items(self) -> Any:  # a consistent view: keys and values from one snapshot
        return self.snapshot().items()

    def values(self) -> Any:
        return self.snapshot().values()

    def __repr__(self) -> str:
        return f"ThreadEnvironment({'invocation' if _overlay() is not None else 'process'})"


@contextmanager
def thread_environment(inherits: Callable[[threading.Thread], bool] | None = None) -> Iterator[ThreadEnvironment]:
    """Make ``os.environ`` a ThreadEnvironment until the block ends (then the original object is back).

    ``inherits`` says whether a thread a handler starts runs in the handler's environment (by default every
    one does); a thread that is not the handler's own, such as the execution a StartExecution call sets going
    in the emulated Step Functions, answers False and runs in the process's environment, as it would on AWS."""
    original = os.environ
    environment = ThreadEnvironment(original)
    start = threading.Thread.start

    def start_inheriting(thread: threading.Thread) -> None:
        # A thread started by a handler (a pool worker) runs in the handler's environment, as in a Lambda.
        inherited = _overlay() if inherits is None or inherits(thread) else None
        if inherited is not None:
            run = thread.run

            def run_with_overlay() -> None:
                _local.overlay = inherited
                run()

            thread.run = run_with_overlay  # type: ignore[method-assign]
        start(thread)

    os.environ = environment  # type: ignore[assignment]  # noqa: B003 (replacing the object is the point)
    threading.Thread.start = start_inheriting  # type: ignore[method-assign,assignment]
    try:
        yield environment
    finally:
        threading.Thread.start = start  # type: ignore[method-assign]
        os.environ = original  # noqa: B003


def invocation_variable(name: str) -> str | None:
    """``name`` in the environment of the invocation running in this thread; None outside any invocation."""
    overlay = _overlay()
    return overlay.get(name) if overlay is not None else None


@contextmanager
def function_environment(variables: Mapping[str, str]) -> Iterator[None]:
    """Run the block, in this thread only, with the process's environment plus ``variables``.

    The invocation's copy starts from the process's environment, as the runtime's isolation made it (static
    credentials, fixed region); writes inside the block stay in the copy, as they would in a Lambda process.
    """
    environment = os.environ
    base = environment.snapshot() if isinstance(environment, ThreadEnvironment) else dict(environment)
    previous = _overlay()
    _local.overlay = {**base, **variables}
    try:
        yield
    finally:
        _local.overlay = previous
