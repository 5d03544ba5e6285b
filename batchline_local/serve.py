"""``batchline local serve``: the local runtime behind a moto server, for commands run from other shells.

The server answers from the runtime's in-memory AWS (moto's backends are process-wide), so the handlers,
the emulators and the state machine interpreter all stay in this process. Two stand-ins make it look like a
deployed stack to the CLI: a CloudFormation stack carrying the stack's outputs, so ``--endpoint-url`` finds
everything by stack name as on AWS; and a watcher that hands each new inbox object version to StartRun once,
the route S3 -> EventBridge -> StartRun that moto does not run, and each execution that ends stopped, timed out
or failed to ExecutionEnded once, the stack's rule on the status change (so `batchline cancel --endpoint-url`
stops the run's jobs and publishes its failure event as on AWS). A third watches cdk.json: a change is reloaded
as a redeploy would take it (LocalRuntime.reload), and a change that cannot be used leaves the last good one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from batchline_local import runtime as runtime_module
from batchline_local.runtime import BUCKETS, ENDED_BY_RULE, EVENT_BUS, REGION, LocalRuntime, load_pipeline_context

PLACEHOLDER_QUEUE = "batchline-local-stack"


def publish_stack(runtime: LocalRuntime, stack_name: str, *, update: bool = False) -> dict[str, str]:
    """A stack with the outputs stacks/batchline_stack.py writes (CloudFormation needs one resource: a queue);
    ``update`` rewrites the outputs of the stack published before (after a reload of cdk.json)."""
    outputs = {
        "InboxBucketName": BUCKETS["inbox"],
        "WorkBucketName": BUCKETS["work"],
        "ResultsBucketName": BUCKETS["results"],
        "EventBusName": EVENT_BUS,
        "StateMachineArn": runtime.state_machine_arn,
        "PipelineNames": ",".join(sorted(runtime.pipelines.pipelines)),
    }
    template = {
        "Description": "Batchline local runtime (moto): the outputs of a deployed stack",
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": PLACEHOLDER_QUEUE}}},
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }
    cloudformation = runtime.client("cloudformation")
    if update:
        cloudformation.update_stack(StackName=stack_name, TemplateBody=json.dumps(template))
    else:
        cloudformation.create_stack(StackName=stack_name, TemplateBody=json.dumps(template))
    return outputs


class ConfigWatcher(threading.Thread):
    """Reloads cdk.json's pipelines into the served runtime when the file changes, as a redeploy would.

    A change that cannot be used (not JSON, no pipelines, a stack that does not synthesize) is one line on stderr
    and changes nothing: the previous configuration stays in force until the file is fixed. A pipeline whose own
    settings are invalid is left out, named, as at start.
    """

    def __init__(
        self, runtime: LocalRuntime, path: Path, stack_name: str, seen: str | None, interval: float = 1.0
    ) -> None:
        super().__init__(name="batchline-config-watcher", daemon=True)
        self._runtime = runtime
        self._path = path
        self._stack_name = stack_name
        self._interval = interval
        self._seen = seen  # the fingerprint of the file as it was when the runtime's configuration was read
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self._interval):
            self.check()

    def check(self) -> str | None:
        """Reload if the file changed since the last look; returns the line it printed, if any."""
        seen = _fingerprint(self._path)
        if seen == self._seen:
            return None
        self._seen = seen
        refused: dict[str, str] = {}
        try:
            pipelines = load_pipeline_context(self._path, refused=refused)
            self._runtime.reload(pipelines)
            publish_stack(self._runtime, self._stack_name, update=True)
        except Exception as exc:  # whatever it is, the served runtime goes on with what it had
            line = f"batchline: {self._path.name} not reloaded: {_one_line(exc)} (the previous configuration stays)"
        else:
            for problem in refused.values():
                print(f"batchline: left out, invalid: {problem}", file=sys.stderr, flush=True)
            line = f"batchline: {self._path.name} reloaded: pipelines {', '.join(sorted(pipelines)) or '(none)'}"
        print(line, file=sys.stderr, flush=True)
        return line


def _fingerprint(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _one_line(exc: Exception) -> str:
    """An error's message as one line: its last non-empty line (a synth failure ends with the reason)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


class InboxWatcher(threading.Thread):
    """Delivers an Object Created event to StartRun for each inbox object version it has not seen, and each
    execution's end that the stack's rule takes (stopped by hand, timed out, failed) to ExecutionEnded once."""

    def __init__(self, runtime: LocalRuntime, interval: float = 0.2) -> None:
        super().__init__(name="batchline-inbox-watcher", daemon=True)
        self._runtime = runtime
        self._interval = interval
        self._seen: set[tuple[str, str]] = set()
        self._ended: set[str] = set()
        self._finished: set[str] = set()  # executions seen ended (their memory handed back)
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self._interval):
            try:
                self.deliver_new()
                self.deliver_endings()
            except Exception:  # a bad upload must not stop the watcher; say what happened and go on
                traceback.print_exc(file=sys.stderr)

    def deliver_new(self) -> None:
        s3 = self._runtime.client("s3")
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=BUCKETS["inbox"]):
            for version in page.get("Versions", []):
                seen = (version["Key"], version["VersionId"])
                if seen in self._seen:
                    continue
                self._seen.add(seen)
                obj = {
                    "bucket": BUCKETS["inbox"],
                    "key": version["Key"],
                    "versionId": version["VersionId"],
                    "size": version["Size"],
                }
                decision = self._runtime.deliver(self._runtime.object_created_event(obj))
                print(f"s3://{obj['bucket']}/{obj['key']}: {_describe(decision)}", file=sys.stderr, flush=True)

    def deliver_endings(self) -> None:
        """ExecutionEnded leaves alone a run that reported itself; each ending is still delivered only once.
        Each run that has ended hands back the memory it used (LocalRuntime.release_memory), once."""
        sfn = self._runtime.client("stepfunctions")
        pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=self._runtime.state_machine_arn)
        ended = False
        for execution in (execution for page in pages for execution in page["executions"]):
            status = execution["status"]
            if status != "RUNNING" and execution["executionArn"] not in self._finished:
                self._finished.add(execution["executionArn"])
                ended = True
            if status not in (*ENDED_BY_RULE, "ABORTED") or execution["executionArn"] in self._ended:
                continue
            self._ended.add(execution["executionArn"])
            answer = self._runtime.execution_ended(execution["name"], status)
            if answer.get("handled"):
                line = f"run {execution['name']} ended {status}: ExecutionEnded stopped its jobs and reported it"
                print(line, file=sys.stderr, flush=True)
        if ended:
            self._runtime.release_memory()


def _describe(decision: dict[str, Any]) -> str:
    if decision.get("started"):
        return f"run {decision['runId']} started"
    return f"no run ({decision.get('reason')})"


def serve(host: str, port: int, stack_name: str, *, verbose: bool = False) -> int:
    """Serve until Ctrl-C or SIGTERM; everything lives in memory and ends with the process."""
    from moto.server import ThreadedMotoServer

    if not verbose:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    refused: dict[str, str] = {}
    config = runtime_module.CDK_JSON  # read when serving starts: a caller may point it elsewhere
    seen = _fingerprint(config)  # before reading it: a change while starting is then reloaded
    pipelines = load_pipeline_context(config, refused=refused)  # a broken pipeline is left out, named
    for problem in refused.values():
        print(f"batchline: left out, invalid: {problem}", file=sys.stderr, flush=True)
    with LocalRuntime(pipelines, quiet=not verbose) as runtime:
        publish_stack(runtime, stack_name)
        server = ThreadedMotoServer(ip_address=host, port=port, verbose=verbose)
        server.start()
        watcher = InboxWatcher(runtime)
        watcher.start()
        config_watcher = ConfigWatcher(runtime, config, stack_name, seen)
        config_watcher.start()
        endpoint = f"http://{host}:{port}"
        print(
            f"Batchline local runtime at {endpoint} as stack {stack_name} (moto; predictions are EMULATED). "
            "Ctrl-C stops it and forgets everything; a change to cdk.json is reloaded.\n"
            "In another shell:\n"
            f"  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION={REGION}\n"
            f"  batchline submit samples/demo-sagemaker.csv --pipeline demo-sagemaker --wait --endpoint-url {endpoint}",
            flush=True,
        )
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            watcher.stopped.set()
            config_watcher.stopped.set()
            watcher.join(timeout=5)
            config_watcher.join(timeout=60)
            server.stop()
    return 0
