"""The Lambda layers' wheels, fetched once so that building the layers needs no network.

`make setup` runs this module: pip downloads every wheel the layers' requirements pin, for the functions' platform
(CPython 3.13 on arm64 Linux), into ``.build/wheels``. The stack's layer bundling (stacks/functions.py) then installs
from that folder only (``--no-index``), so `make synth` works offline, and says so when a wheel is missing.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEELHOUSE = ROOT / ".build" / "wheels"
LAYER_REQUIREMENTS = (
    ROOT / "lambdas" / "layer" / "requirements.txt",
    ROOT / "lambdas" / "collect_layer" / "requirements.txt",
)
# Lambda's Python 3.13 on arm64 runs on Amazon Linux 2023 (glibc 2.34): manylinux2014 and 2_28 wheels fit.
FUNCTION_PLATFORM = (
    "--platform",
    "manylinux2014_aarch64",
    "--platform",
    "manylinux_2_28_aarch64",
    "--implementation",
    "cp",
    "--python-version",
    "3.13",
    "--only-binary=:all:",
)


class WheelsMissing(RuntimeError):
    """The wheelhouse lacks a wheel a layer needs (never filled, or the requirements changed since)."""


def download(requirements: Sequence[Path] = LAYER_REQUIREMENTS, wheelhouse: Path = WHEELHOUSE) -> None:
    """Fetch the layers' wheels from the package index pip is configured with (the one step that needs it)."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    listed = [argument for path in requirements for argument in ("-r", str(path))]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(wheelhouse), *listed]
    subprocess.run([*command, *FUNCTION_PLATFORM], check=True)


def install(requirements: Path, target: Path, wheelhouse: Path = WHEELHOUSE) -> None:
    """Install one layer's requirements into ``target`` from the wheelhouse alone: no index, no pip configuration
    (``--isolated``), so nothing reaches the network whatever the machine's pip settings say."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--isolated",
        "--quiet",
        "--disable-pip-version-check",
        "--no-color",
        "--no-index",
        "--find-links",
        str(wheelhouse),
        "-r",
        str(requirements),
        "--target",
        str(target),
        "--no-compile",
        *FUNCTION_PLATFORM,
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise WheelsMissing(
            f"cannot build the layer of {requirements} from {wheelhouse} without the network: "
            f"{_last_line(completed.stderr)}. Run `make setup` (it fetches the layers' wheels once, with the "
            "package index) and synthesize again."
        )


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("WARNING")]
    return lines[-1] if lines else "pip failed"


if __name__ == "__main__":
    download()
