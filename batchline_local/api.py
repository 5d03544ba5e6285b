"""Batchline from Python (a notebook, a script): submit a file or a DataFrame, wait with progress, get the
predictions and the errors back as DataFrames.

The same calls the `batchline` command makes (commands.py, runs.py), against a deployed stack or the local
runtime::

    from batchline_local.api import Batchline

    with Batchline.local() as batchline:            # or Batchline.deployed("Batchline", profile="prod")
        run = batchline.submit(frame, pipeline="demo-sagemaker")
        predictions, errors = run.predictions(), run.errors()

pandas is needed only for DataFrames (``pip install pandas``); it is never a dependency of the Lambdas.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from batchline_local.commands import download_outputs, follow, start_run
from batchline_local.runs import RunView, describe_run
from batchline_local.target import Target, TargetError, aws_session, default_stack_name, local_target, stack_target

DAY_SECONDS = 24 * 3600.0


class RunFailed(RuntimeError):
    """``Run.predictions()`` of a run that produced none: the message is the run's error, as its event says."""


class Run:
    """One run: its status and counts as last looked at, and its outputs once it has ended."""

    def __init__(self, target: Target, view: RunView) -> None:
        self._target = target
        self.view = view

    @property
    def run_id(self) -> str:
        return self.view.run_id

    @property
    def pipeline(self) -> str:
        return self.view.pipeline

    @property
    def status(self) -> str:
        """RUNNING, or the outcome: SUCCEEDED, PARTIALLY_SUCCEEDED or FAILED."""
        return self.view.status

    @property
    def counts(self) -> dict[str, Any]:
        return self.view.counts

    @property
    def error(self) -> dict[str, Any] | None:
        return self.view.error

    def refresh(self) -> Run:
        self.view = describe_run(self._target, self.run_id, self.view)
        return self

    def wait(self, timeout: float = DAY_SECONDS, *, progress: bool = True) -> Run:
        """Until the run ends (progress on stderr, as ``batchline submit --wait`` shows it); TimeoutError when
        ``timeout`` seconds pass first (the run goes on)."""
        self.view, finished = follow(self._target, self.view, timeout=timeout, show=progress)
        if not finished:
            raise TimeoutError(f"run {self.run_id} still runs after {timeout:.0f} s; call wait() again to go on")
        return self

    def predictions(self) -> Any:
        """predictions.csv as a DataFrame: the key column as text, the prediction columns as pandas reads them.
        RunFailed when the run has no predictions (its error says why)."""
        text = self._output("predictions")
        if text is None:
            raise RunFailed(f"run {self.run_id} has no predictions ({self.status}): {self.error}")
        return _frame(text, text_columns=1)

    def errors(self) -> Any:
        """errors.csv as a DataFrame (every column text): one row per record refused or not predicted, with its
        line and reason; empty, with the same columns, when there is none."""
        text = self._output("errors")
        if text is None:
            from batchline.prepare import ERROR_HEADER

            text = ERROR_HEADER.decode()
        return _frame(text, text_columns=None)

    def manifest(self) -> dict[str, Any]:
        text = self._output("manifest")
        return dict(json.loads(text)) if text is not None else {}

    def download(self, folder: str | Path) -> dict[str, Path | None]:
        """predictions.csv, errors.csv and manifest.json into ``folder`` (made if missing), as `batchline submit
        --out` saves them; a file the run did not write is None."""
        if self.view.running:
            raise RuntimeError(f"run {self.run_id} is still running; call wait() first")
        files = download_outputs(self._target, self.view, Path(folder))
        return {name: Path(path) if path else None for name, path in files.items()}

    def _output(self, name: str) -> str | None:
        if self.view.running:
            raise RuntimeError(f"run {self.run_id} is still running; call wait() first")
        uri = self.view.outputs.get(name)
        if not uri:
            return None
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        body = self._target.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        return str(body.decode("utf-8"))

    def __repr__(self) -> str:
        return f"Run({self.run_id!r}, {self.status}, counts={self.counts})"


class Batchline:
    """A deployed stack or the local runtime; use as a context manager (the local runtime ends with it)."""

    def __init__(self, target: Target, runtime: Any = None) -> None:
        self._target = target
        self._runtime = runtime

    @classmethod
    def deployed(
        cls,
        stack: str | None = None,
        *,
        profile: str | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
    ) -> Batchline:
        """The stack ``cdk deploy`` made (default: ``stackName`` in cdk.json), with your AWS credentials."""
        session = aws_session(profile, region)
        return cls(stack_target(stack or default_stack_name(), session, endpoint_url))

    @classmethod
    def local(cls, pipelines: dict[str, Any] | None = None, **options: Any) -> Batchline:
        """The local runtime (no AWS account): cdk.json's pipelines, or ``pipelines``; ``options`` go to
        LocalRuntime. It lives until ``close()`` or the end of the ``with`` block."""
        from batchline_local.runtime import LocalRuntime

        runtime = LocalRuntime(pipelines, **options)
        runtime.__enter__()
        return cls(local_target(runtime), runtime)

    @property
    def pipelines(self) -> tuple[str, ...]:
        return tuple(self._target.pipelines or ())

    def submit(
        self,
        data: Any,
        pipeline: str,
        *,
        name: str | None = None,
        wait: bool = True,
        timeout: float = DAY_SECONDS,
        progress: bool = True,
    ) -> Run:
        """Upload ``data`` (a CSV or JSON-lines file's path, or a pandas DataFrame written as CSV without its
        index) under the pipeline's prefix as ``name`` (default: the file's name, or ``dataframe-<time>.csv``),
        and, with ``wait``, follow the run to its end."""
        with tempfile.TemporaryDirectory(prefix="batchline-api-") as folder:
            path = _as_file(data, Path(folder), name)
            view, _ = start_run(self._target, path, pipeline)
        run = Run(self._target, view)
        return run.wait(timeout, progress=progress) if wait else run

    def run(self, run_id: str) -> Run:
        """A run submitted earlier (from here, the CLI or an upload), by its run ID."""
        return Run(self._target, describe_run(self._target, run_id))

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.__exit__(None, None, None)
            self._runtime = None

    def __enter__(self) -> Batchline:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def _as_file(data: Any, folder: Path, name: str | None) -> Path:
    if isinstance(data, str | Path):
        source = Path(data)
        if not source.is_file():
            raise TargetError(f"cannot read {source}: no such file")
        if name is None or name == source.name:
            return source
        copy = folder / name
        copy.write_bytes(source.read_bytes())
        return copy
    if hasattr(data, "to_csv"):
        path = folder / (name or f"dataframe-{time.strftime('%Y%m%d-%H%M%S')}.csv")
        data.to_csv(path, index=False, lineterminator="\n")
        return path
    raise TypeError(f"submit takes a file path or a pandas DataFrame, not {type(data).__name__}")


def _frame(text: str, *, text_columns: int | None) -> Any:
    """``text`` (a CSV Batchline wrote) as a DataFrame; the first ``text_columns`` columns (None: all) as text, so
    keys such as 007 or 1e3 stay as written."""
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError("DataFrames need pandas: pip install pandas (or use Run.download)") from exc
    header = next(csv.reader(io.StringIO(text)), [])
    kept = header if text_columns is None else header[:text_columns]
    return pd.read_csv(io.StringIO(text), dtype={column: str for column in kept}, keep_default_na=False)
