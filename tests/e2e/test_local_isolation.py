"""Promise 3: the local runtime talks to nothing outside its process, whatever AWS settings the machine has.

A full `batchline local run` runs in a child process whose environment and AWS config files point every
endpoint, proxy, credential provider and profile at a listener on 127.0.0.1. The listener must accept
nothing, the credential process must never run, and (from the child's audit hook) every socket the child
opens must go to a port the child itself listens on: the Google fake the Vertex emulation talks to.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import SAMPLES

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(180)

# Runs the CLI with an audit hook that writes every socket, DNS and process event of the child to a file.
AUDITED_CLI = """
import json, sys
events = open(sys.argv[1], "w")
WATCHED = {"socket.connect", "socket.getaddrinfo", "socket.sendto", "socket.sendmsg",
           "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn"}
listening = []  # sockets this process bound: a connect to one of their ports stays inside the process

def own_ports():
    ports = set()
    for sock in listening:
        try:
            ports.add(sock.getsockname()[1])
        except OSError:
            pass
    return ports

def hook(event, args):
    if event == "socket.bind":
        listening.append(args[0])
    elif event in WATCHED:
        if event == "socket.connect":
            detail = [args[1][0], args[1][1], args[1][1] in own_ports()]
        else:
            detail = repr(args)
        events.write(json.dumps([event, detail]) + "\\n")
        events.flush()

sys.addaudithook(hook)
from batchline_local.cli import main
sys.exit(main(sys.argv[2:]))
"""
# Every service the local run calls, by the name AWS_ENDPOINT_URL_<SERVICE> takes (the service ID).
SERVICE_IDS = [
    "S3",
    "SFN",
    "LAMBDA",
    "EVENTBRIDGE",
    "SQS",
    "IAM",
    "STS",
    "SAGEMAKER",
    "PERSONALIZE",
    "BEDROCK",
    "MACHINE_LEARNING",
    "CLOUDFORMATION",
]


class Listener:
    """A TCP listener on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self.accepted: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, peer = self._socket.accept()
            except TimeoutError:
                continue
            self.accepted.append(peer)
            connection.close()

    def __enter__(self) -> Listener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    with Listener() as running:
        yield running


def hostile_aws_settings(home: Path, listener: Listener, marker: Path) -> dict[str, str]:
    """Environment and config files that send every AWS call, proxy and credential lookup to the listener."""
    credential_process = f"{sys.executable} -c \"open({str(marker)!r}, 'w').write('ran')\""
    config = f"""
[default]
region = eu-west-3
endpoint_url = {listener.url}
credential_process = {credential_process}
services = hostile

[profile hostile]
region = eu-west-3
endpoint_url = {listener.url}
credential_process = {credential_process}
services = hostile

[services hostile]
s3 =
  endpoint_url = {listener.url}
sfn =
  endpoint_url = {listener.url}
lambda =
  endpoint_url = {listener.url}
"""
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "config").write_text(config)
    (home / ".aws" / "credentials").write_text("[hostile]\naws_access_key_id = REAL\naws_secret_access_key = REAL\n")
    elsewhere = home / "elsewhere-config"
    elsewhere.write_text(config)
    return {
        "AWS_ENDPOINT_URL": listener.url,
        **{f"AWS_ENDPOINT_URL_{service}": listener.url for service in SERVICE_IDS},
        "AWS_PROFILE": "hostile",
        "AWS_DEFAULT_PROFILE": "hostile",
        "AWS_CONFIG_FILE": str(elsewhere),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / ".aws" / "credentials"),
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{listener.url}/credentials",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": listener.url,
        "AWS_EC2_METADATA_DISABLED": "false",
        "AWS_USE_DUALSTACK_ENDPOINT": "true",
        "AWS_USE_FIPS_ENDPOINT": "true",
        "HTTP_PROXY": listener.url,
        "HTTPS_PROXY": listener.url,
        "ALL_PROXY": listener.url,
        "http_proxy": listener.url,
        "https_proxy": listener.url,
    }


def test_a_local_run_reaches_nothing_the_machines_aws_settings_point_at(tmp_path: Path, listener: Listener) -> None:
    # GIVEN a machine whose every AWS setting (and proxy) points at a listener, and no AWS credentials but a
    # credential process that would leave a marker file
    home, marker, events = tmp_path / "home", tmp_path / "credential-process-ran", tmp_path / "audit.jsonl"
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        **hostile_aws_settings(home, listener, marker),
    }

    # WHEN a Vertex demo file (AWS and the Google fake both) runs through the whole local pipeline
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            AUDITED_CLI,
            str(events),
            "local",
            "run",
            str(SAMPLES / "demo-vertex.csv"),
            "--pipeline",
            "demo-vertex",
            "--out",
            str(tmp_path / "out"),
            "--json",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )

    # THEN the run succeeds, and nothing left the process
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["event"]["detail"]["status"] == "SUCCEEDED"
    assert listener.accepted == []
    assert not marker.exists()
    audited = [json.loads(line) for line in events.read_text().splitlines()]
    connects = [detail for event, detail in audited if event == "socket.connect"]
    assert connects, "the Vertex emulation talks to its Google fake over 127.0.0.1"
    assert all(host == "127.0.0.1" and own for host, _, own in connects), connects
    lookups = {eval(address)[0] for event, address in audited if event == "socket.getaddrinfo"}  # noqa: S307
    assert lookups <= {"127.0.0.1", "localhost"}, lookups
    # The one child a local run may start is the permission checks' IAM evaluator (node, reading stdin), and the
    # stack's synth when its template is not cached yet; both get no proxy or AWS setting of the machine.
    children = [detail for event, detail in audited if event.startswith(("subprocess", "os."))]
    assert all("evaluate.mjs" in child or "batchline_local.permissions.synth" in child for child in children), children
    assert any("evaluate.mjs" in child for child in children)
    for child in children:
        assert listener.url not in child and "AWS_ENDPOINT_URL" not in child, child
    assert not [address for event, address in audited if event in ("socket.sendto", "socket.sendmsg")]
