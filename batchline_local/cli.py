"""``batchline``: the command line. ``batchline local run`` runs a file through the local runtime."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="batchline", description="Batch predictions: upload a file, get a keyed CSV.")
    commands = parser.add_subparsers(dest="command", required=True)
    local = commands.add_parser("local", help="run against the local AWS emulation (no AWS account needed)")
    local_commands = local.add_subparsers(dest="local_command", required=True)
    run = local_commands.add_parser("run", help="run one file through the whole pipeline locally")
    run.add_argument("file", type=Path, help="CSV file of records (optionally gzip-compressed)")
    run.add_argument("--pipeline", required=True, help="pipeline name, as configured in cdk.json")
    run.add_argument("--out", type=Path, default=Path("batchline-out"), help="folder for the run's outputs")
    run.add_argument("--rows", type=int, default=5, help="how many predictions to print")
    run.add_argument("--verbose", action="store_true", help="show the handlers' structured logs")
    check = commands.add_parser("validate", help="run Prepare's checks on a local file, before uploading anything")
    check.add_argument("file", type=Path, help="CSV or JSON lines file of records")
    check.add_argument("--pipeline", required=True, help="pipeline name, as configured in cdk.json")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.command == "validate":
        return validate(args.file, args.pipeline, as_json=args.json)
    return local_run(args.file, args.pipeline, args.out, rows=args.rows, verbose=args.verbose)


def validate(path: Path, pipeline_name: str, *, as_json: bool = False) -> int:
    """Exit 0 when every record would be sent, 1 when some are rejected or the file is refused, 2 for usage."""
    from batchline.adapters import adapter_for
    from batchline.clients import AwsClients
    from batchline.config import parse_pipelines
    from batchline.errors import BatchlineError, ConfigError, UnknownPipeline
    from batchline.validation import validate_file
    from botocore.exceptions import BotoCoreError, ClientError

    from batchline_local.runtime import load_pipeline_context

    if not path.is_file():
        return _fail_usage(f"cannot read {path}: no such file")
    try:
        pipeline = parse_pipelines(load_pipeline_context()).get(pipeline_name)
    except (UnknownPipeline, ConfigError) as exc:
        return _fail_usage(str(exc))
    try:
        encoder = adapter_for(pipeline, AwsClients()).input_encoder()
    except (BatchlineError, BotoCoreError, ClientError) as exc:  # Amazon ML reads a model's schema from AWS
        return _fail_usage(f"cannot prepare {pipeline_name} offline: {exc}")
    report = validate_file(path, pipeline, encoder)
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


def _fail_usage(message: str) -> int:
    print(f"batchline: {message}", file=sys.stderr)
    return EXIT_USAGE


def local_run(path: Path, pipeline: str, out: Path, *, rows: int = 5, verbose: bool = False) -> int:
    from batchline.errors import ConfigError, UnknownPipeline

    from batchline_local.runtime import LocalRuntime, load_pipeline_context

    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        return _fail_usage(f"cannot read {path}: {exc.strerror or exc}")
    try:
        from batchline.config import parse_pipelines

        parse_pipelines(load_pipeline_context()).get(pipeline)
    except (UnknownPipeline, ConfigError) as exc:
        return _fail_usage(str(exc))

    print("Batchline local run: moto emulation of AWS; service predictions are EMULATED, not from a real model")
    started = time.monotonic()
    with LocalRuntime(quiet=not verbose) as runtime:
        result = runtime.run_file(path, pipeline)
        event = result.event
        out.mkdir(parents=True, exist_ok=True)
        downloaded: dict[str, Path | None] = {}
        if event is not None:
            outputs = event["detail"].get("outputs") or {}
            for name, filename in (
                ("predictions", "predictions.csv"),
                ("errors", "errors.csv"),
                ("manifest", "manifest.json"),
            ):
                target = out / filename
                target.unlink(missing_ok=True)  # never leave an older run's file beside this run's
                downloaded[name] = runtime.download(outputs.get(name), target)
            (out / "event.json").write_text(json.dumps(event, indent=2) + "\n")
    elapsed = time.monotonic() - started

    if event is None:
        print(
            f"run {result.run_id}: execution {result.status}, but no completion event was published",
            file=sys.stderr,
        )
        return EXIT_RUN_FAILED
    detail = event["detail"]
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
    if detail.get("error"):
        print(f"error:       {detail['error'].get('error')}: {detail['error'].get('cause')}")
    print(f"event:       {out / 'event.json'} ({event['detail-type']})")
    print(json.dumps(event, separators=(",", ":")))
    return EXIT_OK if detail["status"] == "SUCCEEDED" else EXIT_RUN_FAILED


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
