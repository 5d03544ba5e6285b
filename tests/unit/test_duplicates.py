"""The disk-backed duplicate finder answers exactly what a dict of every key would, with bounded memory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from batchline import duplicates as module
from batchline.duplicates import DuplicateKeys
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def in_memory(keys: list[str]) -> list[tuple[int, int]]:
    """The reference: what the old all-keys-in-a-dict registry reported, as (line, first line)."""
    first: dict[str, int] = {}
    found = []
    for line, key in enumerate(keys, start=2):
        previous = first.setdefault(key, line)
        if previous != line:
            found.append((line, previous))
    return found


def on_disk(keys: list[str], directory: Path, **options: int) -> list[tuple[int, int]]:
    directory.mkdir(exist_ok=True)
    with DuplicateKeys(str(directory), **options) as finder:
        for line, key in enumerate(keys, start=2):
            finder.add(key, line)
        return list(finder.duplicates())


def test_repeats_name_their_own_line_and_the_first_line(tmp_path: Path) -> None:
    assert on_disk(["a", "b", "a", "c", "b", "a"], tmp_path) == [(4, 2), (6, 3), (7, 2)]


def test_duplicates_from_many_partitions_come_back_in_line_order(tmp_path: Path) -> None:
    keys = [f"k{n % 500}" for n in range(5000)]
    found = on_disk(keys, tmp_path, partitions=8)
    assert found == in_memory(keys)
    assert len(found) == 4500


def test_many_repeats_of_one_key_survive_splitting_that_cannot_separate_them(tmp_path: Path) -> None:
    # GIVEN partitions far smaller than one key's repeats, so the finder splits down to its depth limit
    keys = ["same"] * 3000 + ["other", "same"]
    found = on_disk(keys, tmp_path, partitions=2, partition_bytes=64)
    assert found == in_memory(keys)
    assert found[-1] == (len(keys) + 1, 2)


def test_oversized_partitions_are_split_and_still_exact(tmp_path: Path) -> None:
    keys = [f"user-{n % 700}" for n in range(4000)]
    assert on_disk(keys, tmp_path, partitions=2, partition_bytes=4096) == in_memory(keys)


def test_unicode_keys_compare_by_exact_text(tmp_path: Path) -> None:
    # é precomposed and e + combining accent are different keys, as they were in the dict; a lone surrogate
    # from a JSON "\ud800" escape is kept, not mangled.
    keys = ["caf\u00e9", "cafe\u0301", "\U0001f600", "\ud800", "caf\u00e9", "\U0001f600", "\ud800", "k,1\n2", "k,1\n2"]
    assert on_disk(keys, tmp_path) == in_memory(keys) == [(6, 2), (7, 4), (8, 5), (10, 9)]


def test_empty_partitions_and_no_keys_at_all(tmp_path: Path) -> None:
    assert on_disk([], tmp_path / "none") == []
    assert on_disk(["only", "two"], tmp_path / "few", partitions=64) == []
    assert on_disk(["x", "x"], tmp_path / "one", partitions=64) == [(3, 2)]


def test_keys_longer_than_a_read_block_are_read_back_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "_BLOCK", 7)
    keys = ["a" * 50, "b", "a" * 50, "a" * 49, "b"]
    assert on_disk(keys, tmp_path, partitions=1) == [(4, 2), (6, 3)]


def test_spill_files_are_removed_on_exit(tmp_path: Path) -> None:
    on_disk([f"k{n % 10}" for n in range(100)], tmp_path, partitions=4)
    assert os.listdir(tmp_path) == []


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    keys=st.lists(st.text(alphabet=st.sampled_from(list("ab\u00e9\n,\U0001f600")), max_size=4), max_size=300),
    partitions=st.integers(1, 9),
    partition_bytes=st.sampled_from([64, 1024, 8 * 1024 * 1024]),
)
def test_same_answer_as_a_dict_of_every_key(
    keys: list[str], partitions: int, partition_bytes: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("keys")
    assert on_disk(keys, directory, partitions=partitions, partition_bytes=partition_bytes) == in_memory(keys)
