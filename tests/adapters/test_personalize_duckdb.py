"""The DuckDB engine turns Personalize .out lines into the same rows the adapter's rules define."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from batchline import keyed
from batchline.adapters import personalize_duckdb as engine
from batchline.config import PersonalizeSettings, parse_pipelines
from batchline.errors import OutputInvalid

LINES = [
    {"input": {"userId": "u1"}, "output": {"recommendedItems": ["i1", "=cmd", "-3"], "scores": [0.5, 0.25, 1.0]}},
    {"input": {"userId": "u2"}, "output": {"recommendedItems": [], "scores": []}, "error": None},
    {"input": {"userId": "u3"}, "error": "bad user"},
    {"input": {"userId": "@u4"}, "output": None, "error": {"code": 7}},
    {"input": {"userId": "u5"}, "output": {"recommendedItems": ["a,b", 'q"x'], "scores": [1e-05]}, "error": ""},
]


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def settings(**service: Any) -> PersonalizeSettings:
    body = {
        "provider": "personalize",
        "recipe": "USER_PERSONALIZATION",
        "solutionVersionArn": "arn:aws:personalize:us-east-1:123456789012:solution/s/abc",
        **service,
    }
    parsed = parse_pipelines({"p": {"keyColumn": "k", "service": body}}).get("p").service
    assert isinstance(parsed, PersonalizeSettings)
    return parsed


def run(tmp_path: Path, lines: list[dict[str, Any]], header: list[str] | None, **service: Any) -> dict[str, Any]:
    source = tmp_path / "shard.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    paths = {name: str(tmp_path / f"{name}.csv") for name in ("rows", "keys", "failed")}
    counts = engine.shard_to_csv(
        engine.connect(str(tmp_path)),
        str(source),
        settings=settings(**service),
        predictions_path=paths["rows"],
        keys_path=paths["keys"],
        failed_path=paths["failed"],
        header=header,
        spreadsheet_safe=True,
    )
    read = {name: read_csv(Path(path)) for name, path in paths.items()}
    return {"counts": counts, **read}


def test_long_form_has_a_row_per_item_with_rank_and_score_and_neutralised_formulas(tmp_path: Path) -> None:
    out = run(tmp_path, LINES, ["userId", "rank", "item_id", "score"])
    assert out["rows"] == [
        ["userId", "rank", "item_id", "score"],
        ["u1", "1", "i1", "0.5"],
        ["u1", "2", "'=cmd", "0.25"],
        ["u1", "3", "-3", "1.0"],  # a number keeps its sign
        ["u2", "", "", ""],  # no recommendations: still one row for the user
        ["u5", "1", "a,b", "0.00001"],  # the score's JSON number text, not re-formatted through a double
        ["u5", "2", 'q"x', ""],  # fewer scores than items
    ]
    assert out["counts"] == engine.ShardCounts(records=5, predicted=3, failed=2, rows=6)
    assert out["keys"] == [["u1"], ["u2"], ["u3"], ["@u4"], ["u5"]]  # keys as echoed, never neutralised
    assert out["failed"] == [["u3", "Personalize: bad user"], ["@u4", 'Personalize: {"code":7}']]


def test_scores_sent_as_strings_are_read_as_numbers_and_a_word_is_invalid_output(tmp_path: Path) -> None:
    def line(scores: list[Any]) -> dict[str, Any]:
        return {"input": {"userId": "u1"}, "output": {"recommendedItems": ["a", "b"], "scores": scores}}

    (tmp_path / "strings").mkdir()
    (tmp_path / "word").mkdir()
    rows = run(tmp_path / "strings", [line(["0.5", 2])], None)["rows"]
    assert rows == [["u1", "1", "a", "0.5"], ["u1", "2", "b", "2.0"]]
    with pytest.raises(OutputInvalid, match="not readable"):
        run(tmp_path / "word", [line(["high", 0.1])], None)


def test_wide_form_joins_items_and_scores_and_later_shards_have_no_header(tmp_path: Path) -> None:
    out = run(tmp_path, LINES[:2], None, outputFormat="wide")
    assert out["rows"] == [["u1", "i1|=cmd|-3", "0.5|0.25|1.0"], ["u2", "", ""]]


def test_segment_jobs_list_users_per_item(tmp_path: Path) -> None:
    lines = [{"input": {"itemId": "i9"}, "output": {"recommendedUsers": ["a", "=b", "-1"]}}]
    out = run(tmp_path, lines, None, recipe="ITEM_AFFINITY")
    assert out["rows"] == [["i9", "a"], ["i9", "'=b"], ["i9", "-1"]]


def test_a_line_without_its_key_fails_the_shard(tmp_path: Path) -> None:
    with pytest.raises(OutputInvalid, match="do not echo userId"):
        run(tmp_path, [{"input": {}, "output": {"recommendedItems": ["x"]}}], None)


def reconcile(tmp_path: Path, staged: list[tuple[int, str]], seen: list[str], failed: list[tuple[str, str]]) -> Any:
    index = tmp_path / "index" / "part-00000.jsonl.index.csv"
    index.parent.mkdir()
    index.write_text("".join(f"{line},{key},{key}\n" for line, key in staged))
    (tmp_path / "keys.csv").write_text("".join(f"{key}\n" for key in seen))
    (tmp_path / "failed.csv").write_text("".join(f"{key},{reason}\n" for key, reason in failed))
    out = tmp_path / "out.csv"
    result = keyed.reconcile(
        keyed.connect(str(tmp_path)),
        index_paths=[str(index)],
        keys_paths=[str(tmp_path / "keys.csv")],
        failed_paths=[str(tmp_path / "failed.csv")],
        out_path=str(out),
        source_name="users.csv",
        missing_reason="Personalize returned no output line for it ({part})",
    )
    return result, read_csv(out)


def test_reconcile_reports_errors_and_missing_records_with_their_input_lines(tmp_path: Path) -> None:
    result, rows = reconcile(tmp_path, [(2, "a"), (3, "b"), (4, "c")], ["a", "b"], [("b", "Personalize: no")])
    assert result.failed == 2
    assert rows == [
        ["users.csv", "3", "b", "service", "Personalize: no", ""],
        ["users.csv", "4", "c", "service", "Personalize returned no output line for it (part-00000.jsonl)", ""],
    ]


@pytest.mark.parametrize(
    ("seen", "message"), [(["a", "zz"], "not staged .*'zz'"), (["a", "a"], "more than once .*'a'")]
)
def test_reconcile_refuses_output_that_is_not_this_jobs(tmp_path: Path, seen: list[str], message: str) -> None:
    with pytest.raises(OutputInvalid, match=message):
        reconcile(tmp_path, [(2, "a")], seen, [])


def test_output_that_is_not_json_lines_is_invalid_output_not_a_crash(tmp_path: Path) -> None:
    source = tmp_path / "shard.jsonl"
    source.write_text('{"input": {"userId": "u1"}}\nnot json at all\n')
    with pytest.raises(OutputInvalid, match="not readable JSON lines"):
        engine.shard_to_csv(
            engine.connect(str(tmp_path)),
            str(source),
            settings=settings(),
            predictions_path=str(tmp_path / "rows.csv"),
            keys_path=str(tmp_path / "keys.csv"),
            failed_path=str(tmp_path / "failed.csv"),
            header=None,
            spreadsheet_safe=True,
        )


@pytest.mark.parametrize("header", [["user, id", "rank", "item_id", "score"], ["Rank", "rank", "item_id", "score"]])
def test_the_first_shard_carries_the_header_however_its_names_look(tmp_path: Path, header: list[str]) -> None:
    out = run(tmp_path, LINES[:1], header)
    assert out["rows"][0] == header and out["rows"][1] == ["u1", "1", "i1", "0.5"]


def test_reconcile_gives_the_same_answers_over_many_hash_partitions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keyed, "PARTITION_KEYS", 2)  # five staged keys: three partitions
    staged = [(2, "a"), (3, "b"), (4, "c"), (5, "d"), (6, "e")]
    result, rows = reconcile(tmp_path, staged, ["a", "c", "e"], [("c", "Personalize: no")])
    assert result.failed == 3
    assert [(row[1], row[2]) for row in rows] == [("3", "b"), ("4", "c"), ("5", "d")]  # in line order


def test_a_repeated_key_is_found_in_whichever_partition_it_falls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keyed, "PARTITION_KEYS", 1)
    with pytest.raises(OutputInvalid, match="more than once .*'d'"):
        reconcile(tmp_path, [(2, "a"), (3, "b"), (4, "c"), (5, "d")], ["a", "b", "d", "d"], [])


def test_reconcile_writes_buckets_over_several_rounds_with_the_same_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keyed, "PARTITION_KEYS", 1)  # six buckets ...
    monkeypatch.setattr(keyed, "BUCKETS_PER_WRITE", 4)  # ... written in two reads of the index
    staged = [(2, "a"), (3, "b"), (4, "c"), (5, "d"), (6, "e"), (7, "f")]
    result, rows = reconcile(tmp_path, staged, ["a", "c", "e", "f"], [("a", "Personalize: no")])
    assert result.failed == 3
    missing = "Personalize returned no output line for it (part-00000.jsonl)"
    assert [(row[1], row[2], row[4]) for row in rows] == [
        ("2", "a", "Personalize: no"),
        ("3", "b", missing),
        ("5", "d", missing),
    ]
    assert not (tmp_path / "reconcile-buckets").exists()  # scratch files do not pile up in a warm Lambda


def test_an_unknown_key_in_a_bucket_without_staged_keys_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import duckdb

    monkeypatch.setattr(keyed, "PARTITION_KEYS", 1)  # two staged keys: two buckets
    bucket_of = dict(
        duckdb.sql("SELECT k, hash(k) % 2 FROM unnest(['a', 'b', 'c', 'd', 'e', 'f', 'g']) t(k)").fetchall()
    )
    first, *others = sorted(bucket_of)
    # GIVEN both staged keys in one bucket and an output key that falls in the other, empty one
    same = [key for key in others if bucket_of[key] == bucket_of[first]][:1]
    unknown = [key for key in others if bucket_of[key] != bucket_of[first]][:1]
    assert same and unknown
    with pytest.raises(OutputInvalid, match=f"not staged .*'{unknown[0]}'"):
        reconcile(tmp_path, [(2, first), (3, same[0])], [first, same[0], unknown[0]], [])
    assert not (tmp_path / "reconcile-buckets").exists()


def test_theme_jobs_write_the_theme_and_relevance_scores_on_every_row(tmp_path: Path) -> None:
    # The output of a theme job, as themed-batch-recommendations.html shows it: no scores, no error field.
    lines = [
        {
            "input": {"itemId": "40"},
            "output": {
                "recommendedItems": ["36", "50"],
                "theme": "Strong female lead",
                "itemsThemeRelevanceScores": [0.19994527, -0.138913],
            },
        },
        {
            "input": {"itemId": "43"},
            "output": {"recommendedItems": ["5"], "theme": "=HYPERLINK()", "itemsThemeRelevanceScores": [0.1]},
        },
    ]
    theme = {
        "recipe": "RELATED_ITEMS",
        "batchInferenceJobMode": "THEME_GENERATION",
        "themeGenerationConfig": {"fieldsForThemeGeneration": {"itemName": "TITLE"}},
    }
    out = run(tmp_path, lines, ["itemId", "rank", "item_id", "score", "theme"], **theme)
    assert out["rows"] == [
        ["itemId", "rank", "item_id", "score", "theme"],
        ["40", "1", "36", "0.19994527", "Strong female lead"],
        ["40", "2", "50", "-0.138913", "Strong female lead"],
        ["43", "1", "5", "0.1", "'=HYPERLINK()"],  # a generated theme is text: neutralised like any cell
    ]
    (tmp_path / "wide").mkdir()
    wide = run(tmp_path / "wide", lines, None, outputFormat="wide", **theme)
    assert wide["rows"][0] == ["40", "36|50", "0.19994527|-0.138913", "Strong female lead"]
