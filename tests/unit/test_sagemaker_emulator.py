"""The emulator follows SageMaker's DataProcessing join semantics, so Collect is tested against them."""

import pytest

from batchline_local.emulators.sagemaker import RecordFailed, emulated_score, select, transform_file

PROCESSING = {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,3:]"}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("$[1:]", ["b", "c", "d"]),
        ("$[0,-1]", ["a", "d"]),
        ("$[0,2:]", ["a", "c", "d"]),
        ("$", ["a", "b", "c", "d"]),
    ],
)
def test_select_supports_index_and_slice_filters(expression: str, expected: list[str]) -> None:
    assert select(["a", "b", "c", "d"], expression) == expected


def test_join_keeps_the_key_and_appends_the_prediction() -> None:
    out = transform_file('k1,1,2\n"k,2",3,4\n', PROCESSING, "part-00000.csv")
    lines = out.splitlines()
    assert lines[0] == f"k1,{emulated_score(['1', '2'])}"
    assert lines[1].startswith('"k,2",')


def test_scores_are_deterministic_probabilities() -> None:
    score = emulated_score(["12", "80.5", "3"])
    assert score == emulated_score(["12", "80.5", "3"])
    assert 0.0 < float(score) < 1.0


def test_a_non_numeric_feature_fails_the_file_naming_the_record() -> None:
    with pytest.raises(RecordFailed, match="record 2 of part-00001.csv"):
        transform_file("k1,1,2\nk2,abc,2\n", PROCESSING, "part-00001.csv")
