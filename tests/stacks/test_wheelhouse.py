"""The layers build from the wheels `make setup` fetched, never from a package index (offline `make synth`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks import wheelhouse


def test_a_layer_missing_from_the_wheelhouse_fails_naming_make_setup_and_never_asks_an_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN pip settings that point at an index (which --isolated and --no-index must ignore)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_NO_INDEX", "0")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("batchline-no-such-package==1.0\n")
    empty = tmp_path / "wheels"
    empty.mkdir()

    with pytest.raises(wheelhouse.WheelsMissing) as raised:
        wheelhouse.install(requirements, tmp_path / "layer" / "python", wheelhouse=empty)

    message = str(raised.value)
    assert "make setup" in message and "batchline-no-such-package" in message
    assert "127.0.0.1" not in message and "\x1b[" not in message  # no index tried; no terminal colours
