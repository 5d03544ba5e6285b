"""The Node process that evaluates IAM requests (evaluate.mjs): started once, then one JSON line per request."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parent / "evaluate.mjs"


class EvaluatorUnavailable(RuntimeError):
    """Node or the evaluator's npm packages are missing (``make setup`` installs them)."""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    decision: str  # Allowed, ExplicitlyDenied, ImplicitlyDenied or Error
    reason: str  # "because no identity-based policy allows the s3:PutObject action", ...
    decided_by: tuple[dict[str, Any], ...] = ()
    error: str | None = None


class Evaluator:
    """One evaluator process; thread-safe (requests are serialised); ``close()`` ends it."""

    def __init__(self, node: str | None = None) -> None:
        node = node or shutil.which("node")
        if node is None:
            raise EvaluatorUnavailable("node is not on PATH: the permission checks need Node.js (make setup)")
        self._process = subprocess.Popen(
            [node, str(SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            cwd=SCRIPT.parent,
            # Nothing of the machine's settings: no proxies, no AWS variables. It reads requests on stdin and
            # answers on stdout; it has no reason to reach anything else.
            env={"PATH": os.environ.get("PATH", "")},
            # Its own session: a terminal's Ctrl-C goes to the foreground process group, and an evaluator dying of
            # it first would fail the run's next call (AccessDenied checks unavailable) before the command could
            # stop the run itself; close() ends it, and it exits at the end of stdin if the command dies.
            start_new_session=True,
        )
        self._lock = threading.Lock()
        self._next_id = 0
        self.evaluations = 0  # requests answered by the process (the checker caches repeats)
        pong = self._exchange([{"op": "ping"}])[0]
        self.pid: int = int(pong["pid"])

    def evaluate(self, requests: Sequence[Mapping[str, Any]]) -> list[Decision]:
        """Decisions for ``requests`` (see evaluate.mjs for their fields), in order."""
        answers = self._exchange(requests)
        self.evaluations += len(answers)
        return [
            Decision(
                allowed=bool(answer["allowed"]),
                decision=str(answer.get("decision", "Error")),
                reason=str(answer.get("reason", "")),
                decided_by=tuple(answer.get("decidedBy", [])),
                error=answer.get("error"),
            )
            for answer in answers
        ]

    def _exchange(self, requests: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        with self._lock:
            if self._process.poll() is not None:
                raise EvaluatorUnavailable(f"the evaluator process ended: {self._stderr()}")
            assert self._process.stdin is not None and self._process.stdout is not None
            ids = []
            for request in requests:  # all lines first, then all answers: one round trip per call
                self._next_id += 1
                ids.append(self._next_id)
                self._process.stdin.write(json.dumps({**request, "id": self._next_id}) + "\n")
            self._process.stdin.flush()
            answers = []
            for expected in ids:
                line = self._process.stdout.readline()
                if not line:
                    raise EvaluatorUnavailable(f"the evaluator process ended: {self._stderr()}")
                answer = json.loads(line)
                if answer.get("id") != expected:
                    raise EvaluatorUnavailable(f"the evaluator answered request {answer.get('id')}, not {expected}")
                answers.append(answer)
            return answers

    def _stderr(self) -> str:
        if self._process.stderr is None:
            return ""
        try:
            self._process.wait(timeout=2)
            return self._process.stderr.read()[-2000:]
        except subprocess.TimeoutExpired:
            return ""

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def close(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()  # the process ends at the end of its input
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for stream in (self._process.stdout, self._process.stderr):
            if stream is not None:
                stream.close()
