"""``batchline``: the command line.

``submit``, ``runs``, ``status``, ``results`` and ``cancel`` act on a deployed stack (or, with ``--local``, the local
runtime) through one Target (target.py); ``validate`` checks a file offline; ``local run`` runs a file
through the local runtime from start to end.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, EXIT_STILL_RUNNING = 0, 1, 2, 3
# What a shell reports for a command ended by Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    """The command (``argv`` None: the process's own arguments). Ctrl-C at any point is one line and exit 130."""
    arguments = sys.argv[1:] if argv is None else argv
    try:
        return _command(arguments)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED, as_json="--json" in arguments)
    finally:
        if argv is None:
            _exit_without_interruption()


def _exit_without_interruption() -> None:
    """The command has its answer: a Ctrl-C while the interpreter shuts down (joining pool threads, atexit hooks)
    would only print a traceback over it and lose the exit code, so it is ignored from here on."""
    import signal

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _command(arguments: list[str]) -> int:
    _Parser.json_errors = "--json" in arguments
    args = _parser().parse_args(arguments)
    if getattr(args, "limit", 1) < 1:  # argparse would add its usage lines; this is the one line that matters
        return _fail_usage(f"--limit must be 1 or more, got {args.limit}", as_json=args.json)
    if args.command == "local" and not args.verbose:
        quiet_handlers()
    if args.command == "validate":
        return validate(args.file, args.pipeline, as_json=args.json, verbose=args.verbose)
    if args.command == "local" and args.local_command == "serve":
        from batchline.errors import ConfigError

        from batchline_local.serve import serve
        from batchline_local.target import default_stack_name

        try:
            return serve(args.host, args.port, args.stack or default_stack_name(), verbose=args.verbose)
        except ConfigError as exc:
            return _fail_usage(str(exc))
    if args.command == "local":
        return local_run(
            args.file,
            args.pipeline,
            args.out,
            rows=args.rows,
            verbose=args.verbose,
            as_json=args.json,
            timeout=args.timeout,
        )
    return _on_target(args)


def quiet_handlers() -> None:
    """Keep the handlers' Python warnings (Powertools' "No application metrics to publish", which goes to the
    function's log on AWS) out of a quiet command's output, as the runtime keeps their log lines out; for the
    process's life, which is the command's. --verbose shows them."""
    import warnings

    warnings.filterwarnings("ignore", module=r"aws_lambda_powertools(\.|$)")
    warnings.filterwarnings("ignore", module=r"(handlers|batchline)(\.|$)")


class _Parser(argparse.ArgumentParser):
    """argparse, except that with --json a usage error also prints the one JSON document on stdout."""

    json_errors = False

    def error(self, message: str) -> Any:
        if _Parser.json_errors:
            print(json.dumps({"error": message}))
        super().error(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="batchline", description="Batch predictions: upload a file, get a keyed CSV.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    output = _Parser(add_help=False)
    output.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    where = _Parser(add_help=False, parents=[output])
    found = where.add_argument_group("where the stack is (default: the deployed stack named in cdk.json)")
    found.add_argument("--stack", help="CloudFormation stack name (default: cdk.json batchline.stackName)")
    found.add_argument("--profile", help="AWS profile (default: the usual boto3 credential chain)")
    found.add_argument("--region", help="AWS region (default: the profile's or AWS_REGION)")
    found.add_argument("--endpoint-url", help="send AWS calls to this endpoint instead (an emulator)")
    found.add_argument(
        "--local",
        action="store_true",
        help="act on the local runtime of this process; `submit --local` starts one for the run when none is",
    )

    submit = commands.add_parser("submit", parents=[where], help="upload a file for a pipeline; --wait follows the run")
    submit.add_argument("file", type=Path, help="CSV or JSON lines file of records (optionally gzip-compressed)")
    submit.add_argument("--pipeline", required=True, help="pipeline name, as configured in cdk.json")
    submit.add_argument("--wait", action="store_true", help="follow the run to its end (exit 0 succeeded, 1 not)")
    submit.add_argument("--timeout", type=float, default=86400.0, help="seconds --wait follows (default a day)")
    submit.add_argument(
        "--out", type=Path, default=Path("batchline-out"), help="with --local and no runtime running: output folder"
    )
    listing = commands.add_parser("runs", parents=[where], help="recent runs, newest first")
    listing.add_argument("--pipeline", help="only this pipeline's runs")
    listing.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")
    status = commands.add_parser("status", parents=[where], help="one run: state, jobs, counts, outputs, error")
    status.add_argument("run", help="run ID (the execution name; `batchline runs` lists them)")
    results = commands.add_parser("results", parents=[where], help="download a run's predictions.csv (or errors.csv)")
    results.add_argument("run", help="run ID")
    results.add_argument(
        "-o",
        "--out",
        help="file or folder to write (default ./predictions.csv); a trailing / or an existing folder means a folder "
        "(made if missing)",
    )
    results.add_argument("--errors", action="store_true", help="download errors.csv instead")
    _add_summary_option(results)
    stop = commands.add_parser(
        "cancel",
        parents=[where],
        help="stop a running run as a stop from the console does: its service jobs are stopped, one failure event",
    )
    stop.add_argument("run", help="run ID")

    check = commands.add_parser(
        "validate", parents=[output], help="run Prepare's checks on a local file, before uploading anything"
    )
    check.add_argument("file", type=Path, help="CSV or JSON lines file of records")
    check.add_argument("--pipeline", required=True, help="pipeline name, as configured in cdk.json")
    check.add_argument("--verbose", action="store_true", help="show the traceback of an unexpected error")

    local = commands.add_parser("local", help="run against the local AWS emulation (no AWS account needed)")
    local_commands = local.add_subparsers(dest="local_command", required=True)
    run = local_commands.add_parser("run", parents=[output], help="run one file through the whole pipeline locally")
    run.add_argument("file", type=Path, help="CSV file of records (optionally gzip-compressed)")
    run.add_argument("--pipeline", required=True, help="pipeline name, as configured in cdk.json")
    run.add_argument("--out", type=Path, default=Path("batchline-out"), help="folder for the run's outputs")
    run.add_argument("--rows", type=int, default=5, help="how many predictions to print")
    run.add_argument("--verbose", action="store_true", help="show the handlers' structured logs")
    run.add_argument(
        "--timeout",
        type=float,
        help="give up after this many seconds (exit 3); default: no limit while the run keeps moving",
    )
    serve = local_commands.add_parser(
        "serve", help="keep the local runtime running behind an endpoint, for commands with --endpoint-url"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=5050, help="port to listen on (default 5050)")
    serve.add_argument("--stack", help="stack name the commands will ask for (default: cdk.json batchline.stackName)")
    serve.add_argument("--verbose", action="store_true", help="show the handlers' logs and each request")
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("batchline")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed; run `make setup`)"


def _on_target(args: argparse.Namespace) -> int:
    """submit, runs, status, results: resolve the target, run the command, turn known problems into one line."""
    from botocore.exceptions import BotoCoreError, ClientError

    from batchline_local import commands
    from batchline_local.target import TargetError, explain, run_id_of

    own_runtime = False
    try:
        if args.command == "results" and args.summary:
            _check_summary_arguments(args)
        if getattr(args, "run", None) is not None:
            run_id_of(args.run)  # a mistyped run ID is refused before any AWS call
        with ExitStack() as scope:
            target, own_runtime = _resolve_target(args, scope)
            if args.command == "submit":
                wait = args.wait or own_runtime  # a runtime started here ends with the command
                code, _ = commands.submit(
                    target,
                    args.file,
                    args.pipeline,
                    wait=wait,
                    timeout=args.timeout,
                    as_json=args.json,
                    download_to=args.out if own_runtime else None,
                )
                return code
            if args.command == "runs":
                return commands.runs(target, pipeline=args.pipeline, limit=args.limit, as_json=args.json)
            if args.command == "status":
                return commands.status(target, args.run, as_json=args.json)
            if args.command == "cancel":
                return commands.cancel(target, args.run, as_json=args.json)
            if args.summary:
                return _results_summary(target, args)
            return commands.results(target, args.run, args.out, errors=args.errors, as_json=args.json)
    except TargetError as exc:
        return _fail_usage(str(exc), as_json=args.json)
    except KeyboardInterrupt:
        return _fail(_interrupted(args.command, own_runtime), EXIT_INTERRUPTED, as_json=args.json)
    except (BotoCoreError, ClientError) as exc:
        explained = explain(exc)
        return _fail_usage(str(explained) if explained else f"AWS call failed: {exc}", as_json=args.json)


def _add_summary_option(results: argparse.ArgumentParser) -> None:
    results.add_argument(
        "--summary",
        action="store_true",
        help="print the run's summary instead (counts, jobs, error reasons, each prediction column's distribution: "
        "what report.html shows), from its manifest.json",
    )


def _check_summary_arguments(args: argparse.Namespace) -> None:
    """``results --summary`` prints and downloads nothing, so it takes no -o or --errors (before any AWS call)."""
    from batchline_local.target import TargetError

    if args.out or args.errors:
        raise TargetError("--summary prints the run's summary and downloads nothing: drop -o/--errors")


def _results_summary(target: Any, args: argparse.Namespace) -> int:
    from batchline_local import commands

    return commands.summary(target, args.run, as_json=args.json)


def _interrupted(command: str, own_runtime: bool) -> str:
    """What a Ctrl-C left behind: a run on a deployed stack goes on without the command; a local runtime's run
    ends with it."""
    if own_runtime:
        return "interrupted: the run was stopped, and its emulated AWS state ended with the local runtime"
    if command == "submit":
        return "interrupted: stopped following; the run goes on (`batchline runs` lists it, `batchline cancel` ends it)"
    return "interrupted"


def _resolve_target(args: argparse.Namespace, scope: ExitStack) -> tuple[Any, bool]:
    """The target and whether this command started its own local runtime."""
    from batchline_local.target import TargetError, aws_session, default_stack_name, local_target, stack_target

    if not args.local:
        session = aws_session(args.profile, args.region)
        return stack_target(args.stack or default_stack_name(), session, args.endpoint_url), False
    given = [
        flag
        for flag, value in (
            ("--stack", args.stack),
            ("--profile", args.profile),
            ("--region", args.region),
            ("--endpoint-url", args.endpoint_url),
        )
        if value
    ]
    if given:
        raise TargetError(f"--local takes no {', '.join(given)}: the local runtime has fixed names")
    from batchline_local.runtime import LocalRuntime

    runtime = LocalRuntime.active()
    if runtime is not None:
        return local_target(runtime), False
    if args.command != "submit":
        raise TargetError(
            "no local runtime is running in this process (it lives as long as the command that started it); "
            "use `batchline submit FILE --pipeline P --local`, or `batchline local run`; to use it from other "
            "shells, keep one running with `batchline local serve` and pass `--endpoint-url http://127.0.0.1:5050`"
        )
    from batchline.errors import ConfigError, UnknownPipeline

    try:
        pipelines, _ = configured_pipeline(args.pipeline)
    except (ConfigError, UnknownPipeline) as exc:
        raise TargetError(str(exc)) from None
    problem = output_folder_problem(args.out)  # before the run: the outputs are saved at its end
    if problem:
        raise TargetError(problem)
    quiet_handlers()
    print(
        "Batchline local runtime: moto emulation of AWS; service predictions are EMULATED, not from a real model",
        file=sys.stderr,
    )
    return local_target(scope.enter_context(LocalRuntime(pipelines))), True


def validate(path: Path, pipeline_name: str, *, as_json: bool = False, verbose: bool = False) -> int:
    """Exit 0 when every record would be sent, 1 when some are rejected or the file is refused, 2 for usage.

    Needs no AWS configuration (promise 4): clients are made only when a check calls AWS, which only an Amazon
    ML pipeline without ``dataSchema`` does. With ``--json`` stdout is one JSON document, whatever happens.
    """
    from batchline.adapters import adapter_for
    from batchline.errors import BatchlineError, ConfigError, UnknownPipeline
    from batchline.validation import validate_file
    from botocore.exceptions import BotoCoreError, ClientError

    if not path.is_file():
        return _fail_usage(f"cannot read {path}: {'not a file' if path.exists() else 'no such file'}", as_json=as_json)
    try:
        _, pipeline = configured_pipeline(pipeline_name)
    except (UnknownPipeline, ConfigError) as exc:
        return _fail_usage(str(exc), as_json=as_json)
    try:
        encoder = adapter_for(pipeline, _on_demand_clients()).input_encoder()
    except (BatchlineError, BotoCoreError, ClientError) as exc:  # Amazon ML reads a model's schema from AWS
        return _fail_usage(_offline_problem(pipeline, exc), as_json=as_json)
    try:
        report = validate_file(path, pipeline, encoder)
    except Exception as exc:  # Prepare refuses a bad file with InputRejected (in the report); anything else is here
        where = {"file": str(path), "pipeline": pipeline.name, "provider": pipeline.provider}
        return _fail(_unreadable(path, exc, verbose=verbose), EXIT_RUN_FAILED, as_json=as_json, **where)
    if as_json:
        print(json.dumps(report))
    else:
        print(f"{path}: pipeline {pipeline_name} ({pipeline.provider})")
        if report["error"]:
            print(f"  refused: {report['error']}")
        print(
            f"  records {report['records']}, would send {report['sent']}, rejected {report['rejected']}, "
            f"service jobs {report['jobs']}"
        )
        for rejection in report["rejections"]:
            print(f"  line {rejection['line']}: {rejection['reason']} (key {rejection['key']!r})")
    return 0 if not report["error"] and not report["rejected"] else 1


def configured_pipeline(name: str) -> tuple[dict[str, Any], Any]:
    """cdk.json's pipelines that are valid (raw, for a local runtime) and the named one, parsed.

    ConfigError (one line) when cdk.json cannot be read or parsed, or when ``name`` is a pipeline whose own
    settings are invalid; UnknownPipeline when no pipeline has that name. A broken pipeline blocks only itself.
    """
    from batchline.config import parse_pipelines
    from batchline.errors import ConfigError, UnknownPipeline

    from batchline_local.runtime import load_pipeline_context

    refused: dict[str, str] = {}
    usable = load_pipeline_context(refused=refused)
    if name in refused:
        raise ConfigError(f"{refused[name]} (fix it in cdk.json; the other pipelines work meanwhile)")
    if name not in usable:
        known = ", ".join(sorted(usable)) or "none"
        broken = f"; invalid: {', '.join(sorted(refused))}" if refused else ""
        raise UnknownPipeline(f"no pipeline named {name!r} is configured (configured: {known}{broken})")
    return usable, parse_pipelines({name: usable[name]}).get(name)


class _OnDemandClient:
    """A boto3 client made on its first use: building an adapter then needs no region or credentials."""

    def __init__(self, make: Any) -> None:
        self._make = make
        self._client: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            self._client = self._make()
        return getattr(self._client, name)


def _on_demand_clients() -> Any:
    """validate's clients: each made on its first call, so checks that never call AWS need no AWS setup (boto3 is
    imported here, not when the command starts, so a Ctrl-C at start is still the command's one line)."""
    from batchline.clients import AwsClients

    class OnDemandClients(AwsClients):
        def _client(self, name: str) -> Any:
            make = super()._client
            return _OnDemandClient(lambda: make(name))

    return OnDemandClients()


def _offline_problem(pipeline: Any, exc: Exception) -> str:
    """Why the pipeline cannot be checked here, and the fix: AWS settings, or the config that avoids the call."""
    from batchline_local.target import explain

    explained = explain(exc)
    if explained is None:  # AWS answered, or the adapter refused the configuration
        return f"cannot check {pipeline.name}: {exc}"
    reason = str(explained).split(";")[0]
    if pipeline.provider == "amazonml":
        return (
            f"cannot check {pipeline.name} offline: it reads Amazon ML model {pipeline.service.ml_model_id}'s schema "
            f"from AWS ({reason}); configure AWS (AWS_REGION and credentials), or give the pipeline a dataSchema "
            "in cdk.json"
        )
    return f"cannot check {pipeline.name} offline: {reason}; configure AWS (AWS_REGION and credentials)"


def _unreadable(path: Path, exc: Exception, *, verbose: bool) -> str:
    """One line naming the file and what is wrong with it, in words; a traceback only with --verbose."""
    import gzip
    import traceback
    import zlib

    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, EOFError):
        return f"cannot read {path}: its compressed data stops before the end (the file is cut off: {exc})"
    if isinstance(exc, gzip.BadGzipFile):
        return f"cannot read {path}: it is not a valid gzip file ({exc})"
    if isinstance(exc, zlib.error):
        return f"cannot read {path}: its compressed data is damaged ({exc})"
    if isinstance(exc, UnicodeDecodeError):
        return f"cannot read {path}: it is not UTF-8 text (byte {exc.start} of a decoded block)"
    if isinstance(exc, OSError):
        return f"cannot read {path}: {exc.strerror or exc}"
    details = "" if verbose else "; run with --verbose for details"
    return f"cannot check {path}: unexpected error ({type(exc).__name__}: {exc}){details}"


def _fail_usage(message: str, *, as_json: bool = False) -> int:
    """One line naming the problem and the fix; with --json also the one JSON document scripts read."""
    return _fail(message, EXIT_USAGE, as_json=as_json)


def _fail(message: str, code: int, *, as_json: bool, **document: Any) -> int:
    print(f"batchline: {message}", file=sys.stderr)
    if as_json:
        print(json.dumps({**document, "error": message}))
    return code


OUTPUT_FILES = (
    ("predictions", "predictions.csv"),
    ("errors", "errors.csv"),
    ("manifest", "manifest.json"),
    ("report", "report.html"),
)


def output_folder_problem(out: Path) -> str | None:
    """Why ``out`` cannot take a run's outputs, checked (and the folder made) before the run; None when it can."""
    if out.exists() and not out.is_dir():
        return f"--out {out} is a file, not a folder; name a folder for the run's outputs (it is made if missing)"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot make --out {out} the output folder: {exc.strerror or exc}"
    if not os.access(out, os.W_OK | os.X_OK):
        return f"cannot write in --out {out}: permission denied"
    written = (*(f for _, f in OUTPUT_FILES), "event.json", "orchestration.json", "permissions.json")
    taken = [name for name in written if (out / name).is_dir()]
    if taken:
        return f"--out {out} holds a folder named {taken[0]}, where the run writes that file; name another folder"
    return None


def local_run(
    path: Path,
    pipeline: str,
    out: Path,
    *,
    rows: int = 5,
    verbose: bool = False,
    as_json: bool = False,
    timeout: float | None = None,
) -> int:
    """Exit 0 succeeded, 1 failed or partial, 2 for usage, 3 gave up while the run was still running.

    Never a traceback without --verbose: a known problem is one line naming it, anything else one line too.
    """
    from batchline.errors import ConfigError, UnknownPipeline

    from batchline_local.runtime import RunStillRunning

    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        return _fail_usage(f"cannot read {path}: {exc.strerror or exc}", as_json=as_json)
    try:
        pipelines, _ = configured_pipeline(pipeline)
    except (UnknownPipeline, ConfigError) as exc:
        return _fail_usage(str(exc), as_json=as_json)
    problem = output_folder_problem(out)
    if problem:
        return _fail_usage(problem, as_json=as_json)

    print(
        "Batchline local run: moto emulation of AWS; service predictions are EMULATED, not from a real model",
        file=sys.stderr if as_json else sys.stdout,
        flush=True,  # shown when the run starts, also through a pipe (`| tee`), not with the summary at the end
    )
    try:
        return _run_locally(
            path, pipeline, out, pipelines=pipelines, rows=rows, verbose=verbose, as_json=as_json, timeout=timeout
        )
    except RunStillRunning as exc:
        message = f"{exc}; gave up, and the run ended with the local runtime (nothing was saved)"
        return _fail(message, EXIT_STILL_RUNNING, as_json=as_json, runId=exc.run_id, executionStatus="RUNNING")
    except KeyboardInterrupt:
        message = "interrupted: the run was stopped, and its emulated AWS state ended with the local runtime"
        return _fail(message, EXIT_INTERRUPTED, as_json=as_json)
    except Exception as exc:
        if verbose:
            raise
        message = f"local run failed: unexpected error ({type(exc).__name__}: {exc}); run with --verbose for details"
        return _fail(message, EXIT_RUN_FAILED, as_json=as_json)


def _run_locally(
    path: Path,
    pipeline: str,
    out: Path,
    *,
    pipelines: dict[str, Any],
    rows: int,
    verbose: bool,
    as_json: bool,
    timeout: float | None,
) -> int:
    from batchline_local.runtime import LocalRuntime

    started = time.monotonic()
    with LocalRuntime(pipelines, quiet=not verbose) as runtime, _shown_while_running(runtime, show=not as_json):
        result = runtime.run_file(path, pipeline, timeout_seconds=timeout)
        event = result.event
        downloaded: dict[str, Path | None] = {}
        if event is not None:
            outputs = event["detail"].get("outputs") or {}
            for name, filename in OUTPUT_FILES:
                target = out / filename
                target.unlink(missing_ok=True)  # never leave an older run's file beside this run's
                downloaded[name] = runtime.download(outputs.get(name), target)
            (out / "event.json").write_text(json.dumps(event, indent=2) + "\n")
        orchestration_file = out / "orchestration.json"
        orchestration_file.write_text(json.dumps(result.orchestration, indent=2) + "\n")
        permissions_file = out / "permissions.json"
        permissions_file.write_text(json.dumps(result.permissions, indent=2) + "\n")
    elapsed = time.monotonic() - started

    if event is None:
        message = f"run {result.run_id}: execution {result.status}, but no completion event was published"
        print(message, file=sys.stderr)
        if as_json:
            print(
                json.dumps(
                    {
                        "runId": result.run_id,
                        "executionStatus": result.status,
                        "error": message,
                        "orchestration": result.orchestration,
                        "permissions": result.permissions,
                    }
                )
            )
        else:
            print(describe_orchestration(result.orchestration, orchestration_file))
            print(describe_permissions(result.permissions, permissions_file))
        return EXIT_RUN_FAILED
    detail = event["detail"]
    code = EXIT_OK if detail["status"] == "SUCCEEDED" else EXIT_RUN_FAILED
    if as_json:
        files = {name: str(path) if path else None for name, path in downloaded.items()}
        files["event"] = str(out / "event.json")
        files["orchestration"] = str(orchestration_file)
        files["permissions"] = str(permissions_file)
        document = {"runId": result.run_id, "executionStatus": result.status, "files": files, "event": event}
        print(json.dumps(document | {"orchestration": result.orchestration, "permissions": result.permissions}))
        return code
    print(f"pipeline:    {pipeline} ({detail.get('provider')})")
    print(f"run:         {result.run_id}")
    print(f"status:      {detail['status']} (execution {result.status}) in {elapsed:.1f} s")
    counts = detail.get("counts") or {}
    if counts:
        print("records:     " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    _print_file("predictions", downloaded.get("predictions"), rows)
    _print_file("errors", downloaded.get("errors"), rows)
    if downloaded.get("manifest"):
        print(f"manifest:    {downloaded['manifest']}")
    _print_report_path(downloaded.get("report"))
    if detail.get("error"):
        print(f"error:       {detail['error'].get('error')}: {detail['error'].get('cause')}")
    print(describe_orchestration(result.orchestration, orchestration_file))
    print(describe_permissions(result.permissions, permissions_file))
    print(f"event:       {out / 'event.json'} ({event['detail-type']})")
    print(json.dumps(event, separators=(",", ":")))
    return code


@contextlib.contextmanager
def _shown_while_running(runtime: Any, *, show: bool) -> Iterator[None]:
    """While a local run goes, what `submit --wait` shows (step, records read and collected, jobs, elapsed): the
    live panel on a terminal, a line per change otherwise (a log or CI shows the run moving), ending with the
    run's last look. Nothing with ``show`` off (``--json``)."""
    from batchline_local.progress import RunProgress
    from batchline_local.runs import describe_run
    from batchline_local.target import TargetError, local_target

    if not show:
        yield
        return
    target = local_target(runtime)
    progress = RunProgress(show=show, target=target)
    done = threading.Event()
    every = 0.25 if progress.live else 1.0  # lines need not come as often as a panel's refresh
    view: Any = None

    def look() -> None:
        nonlocal view
        # The run's ID is known once its execution calls PrepareInput (StartRun names it from the upload).
        run_ids = [event.get("runId") for name, event in runtime.invocations if name.endswith("PrepareInput")]
        if not run_ids or not run_ids[0]:
            return
        try:
            view = describe_run(target, str(run_ids[0]), view)
        except TargetError:
            return
        progress.update(view)

    def watch() -> None:
        while not done.wait(every):
            look()

    with progress:
        thread = threading.Thread(target=watch, name="batchline-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(5)
        if not thread.is_alive():  # the run returned (not interrupted): show where it ended
            with contextlib.suppress(Exception):  # a courtesy: the summary follows anyway
                look()


def describe_orchestration(figures: dict[str, Any], path: Path) -> str:
    """One line: what Step Functions did for the run (orchestration.json has the same figures)."""
    if not figures:
        return f"orchestration: none recorded -> {path}"
    history, children = figures["historyEvents"], figures["childExecutions"]
    return (
        f"orchestration: {figures['executions']} executions ({children} child{'' if children == 1 else 'ren'}), "
        f"{figures['stateTransitions']} state transitions, largest state {figures['largestStateBytes']} bytes, "
        f"history events {history['run']} (run) / {history['largestChild']} (largest child) -> {path}"
    )


def describe_permissions(figures: dict[str, Any], path: Path) -> str:
    """One line: the calls checked against the stack's policies, and any denied (permissions.json has each)."""
    if not figures:
        return f"permissions: not checked -> {path}"
    denied = figures["denied"]
    verdict = "none denied"
    if denied:
        first = denied[0]
        verdict = f"{len(denied)} DENIED, first: {first['principal']} {first['action']} on {first['resource']}"
    checked = f"{figures['checked']} calls checked for {len(figures['principals'])} principals"
    return f"permissions: {checked}, {verdict} -> {path}"


def _print_report_path(path: Path | None) -> None:
    """Where the run's page is, as a link a terminal can open (it needs no network)."""
    if path is not None:
        print(f"report:      {path} (open {path.resolve().as_uri()} in a browser)")


def _print_file(label: str, path: Path | None, rows: int) -> None:
    if path is None:
        print(f"{label + ':':<12} none")
        return
    with path.open(newline="", encoding="utf-8") as handle:
        lines: list[Any] = []
        for number, row in enumerate(csv.reader(handle)):
            if number > rows:
                break
            lines.append(",".join(row))
    print(f"{label + ':':<12} {path}")
    for line in lines:
        print(f"    {line}")


if __name__ == "__main__":
    sys.exit(main())
