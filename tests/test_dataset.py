import json
import subprocess
import sys

import pytest

from engine import dataset as ds
from engine.errors import UserError


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


ROWS = [
    {"question": "What does ACME make?", "answer": "Anvils.", "context": "ACME makes anvils.", "id": 0},
    {"question": "Where is ACME?", "answer": "Arizona.", "context": "ACME is in Arizona.", "id": 1},
    {"question": "What does ACME make?", "answer": "Anvils.", "context": "ACME makes anvils.", "id": 2},
    {"question": "Who runs ACME?", "answer": "W. Coyote.", "context": "W. Coyote runs ACME.", "id": 3},
]


def test_loads_json_array_and_jsonl_identically(tmp_path):
    jsonl = write_jsonl(tmp_path / "a.jsonl", ROWS)
    array = tmp_path / "a.json"
    array.write_text(json.dumps(ROWS, indent=2))
    assert ds.load_items(jsonl) == ds.load_items(array)
    assert [i.id for i in ds.load_items(jsonl)] == ["0", "1", "2", "3"]


def test_errors_name_file_line_and_field(tmp_path):
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text(json.dumps(ROWS[0]) + "\n{not json\n")
    with pytest.raises(UserError, match=r"bad.jsonl:2: invalid JSON"):
        ds.load_items(bad_json)
    missing = write_jsonl(tmp_path / "missing.jsonl", [ROWS[0], {"question": "q", "context": "c"}])
    with pytest.raises(UserError, match=r"missing.jsonl:2: missing field 'answer'"):
        ds.load_items(missing)
    wrong_type = write_jsonl(tmp_path / "type.jsonl", [{"question": "q", "answer": 3, "context": "c"}])
    with pytest.raises(UserError, match=r"type.jsonl:1: field 'answer' must be a string, got int"):
        ds.load_items(wrong_type)
    array = tmp_path / "arr.json"
    array.write_text(json.dumps([ROWS[0], {"question": "", "answer": "a", "context": "c"}]))
    with pytest.raises(UserError, match=r"arr.json: item 1: field 'question' is empty"):
        ds.load_items(array)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(UserError, match="no QA items"):
        ds.load_items(empty)
    with pytest.raises(UserError, match="no such file"):
        ds.load_items(tmp_path / "nope.jsonl")


def test_dedupe_and_split_without_leakage(tmp_path):
    items = ds.load_items(write_jsonl(tmp_path / "a.jsonl", ROWS * 5))
    assert len(ds.dedupe(items)) == 3
    split = ds.split_items(items, eval_fraction=0.34, seed=7)
    train_questions = {i.question for i in split.train}
    assert split.eval and all(i.question not in train_questions for i in split.eval)
    assert ds.split_items(items, eval_fraction=0.34, seed=7) == split  # deterministic


def test_messages_follow_the_original_layout():
    item = ds.QAItem("Q?", "A.", "C.")
    assert ds.to_messages(item) == [
        {"role": "system", "content": "C."},
        {"role": "user", "content": "Q?"},
        {"role": "assistant", "content": "A."},
    ]
    assert [m["role"] for m in ds.to_messages(item, include_context=False)] == ["user", "assistant"]


def test_check_reports_the_seed_file_duplicates(seed_data):
    report = ds.check(seed_data / "EGNIVIA-train.jsonl")
    assert report.rows == 400
    assert report.unique_pairs == 197
    assert report.positional_split_leaks > 0  # the original 90/10 split leaks
    assert report.engine_split_leaks == 0


def test_cli_dataset_check(seed_data, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "cli", "dataset", "check", str(seed_data / "EGNIVIA-train.jsonl")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "rows:                 400" in done.stdout
    assert "unique question/answer pairs: 197" in done.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q"}\n')
    failed = subprocess.run(
        [sys.executable, "-m", "cli", "dataset", "check", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert failed.returncode == 2
    assert failed.stderr.strip() == f"ft-hallu: error: {bad}:1: missing field 'answer'"


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "out.jsonl"
    ds.write_records_atomic(target, ROWS, "jsonl")
    assert [json.loads(line) for line in target.read_text().splitlines()] == ROWS
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_bundled_sample_is_valid_and_masked():
    items = ds.load_items(ds.sample_dataset_path())
    assert len(items) >= 30
    assert all("ZYTRELL" in (i.question + i.answer + i.context) or "Stridebot" in i.answer for i in items)


def test_check_reports_duplicate_ids_and_the_cli_exits_1(tmp_path, capsys):
    from cli import main

    rows = [dict(ROWS[0], id=7), dict(ROWS[1], id=7), dict(ROWS[3], id=8)]
    path = write_jsonl(tmp_path / "dup.jsonl", rows)
    report = ds.check(path)
    assert report.duplicate_ids == {"7": [f"{path}:1", f"{path}:2"]}
    assert f"duplicate ids:        1 (id '7' at {path}:1, {path}:2)" in report.lines()
    array = tmp_path / "dup.json"
    array.write_text(json.dumps(rows))
    assert ds.check(array).duplicate_ids == {"7": [f"{array}: item 0", f"{array}: item 1"]}
    assert main(["dataset", "check", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"ft-hallu: error: {path}:2: id '7' already used at {path}:1"]
    assert ds.check(write_jsonl(tmp_path / "ok.jsonl", ROWS)).duplicate_ids == {}


def test_drop_duplicates_writes_a_new_file_and_never_the_input(tmp_path):
    """The first of each exact duplicate is kept with its id and extra fields, in the input's order;
    the input's bytes are untouched; a JSON array stays an array."""
    rows = [*ROWS, {**ROWS[1], "id": 9, "source": "p. 3"}, {**ROWS[3], "context": "Another context."}]
    source = write_jsonl(tmp_path / "qa.jsonl", rows)
    before = source.read_bytes()
    out = ds.deduplicated_path(source)
    assert out == tmp_path / "qa.dedup.jsonl"
    result = ds.write_deduplicated(source, out)
    assert (result.rows_in, result.rows_out, result.dropped) == (6, 4, 2)
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["id"] for row in kept] == [0, 1, 3, 3]  # ids 2 and 9 repeated rows 0 and 1
    assert kept[3]["context"] == "Another context."  # same question/answer, other context: kept
    assert source.read_bytes() == before
    assert ds.check(out).exact_duplicates == 0
    assert "2 exact duplicates dropped" in result.line() and f"{source} unchanged" in result.line()
    array = tmp_path / "qa.json"
    array.write_text(json.dumps(rows))
    ds.write_deduplicated(array, tmp_path / "copy.json")
    assert len(json.loads((tmp_path / "copy.json").read_text())) == 4
    assert not list(tmp_path.glob("*.tmp"))


def test_drop_duplicates_refuses_the_input_an_existing_file_and_bad_rows(tmp_path):
    source = write_jsonl(tmp_path / "qa.jsonl", ROWS)
    with pytest.raises(UserError, match="is the input file"):
        ds.write_deduplicated(source, tmp_path / "." / "qa.jsonl")
    taken = tmp_path / "taken.jsonl"
    taken.write_text("mine\n")
    with pytest.raises(UserError, match="taken.jsonl: already exists"):
        ds.write_deduplicated(source, taken)
    assert taken.read_text() == "mine\n"
    assert ds.write_deduplicated(source, taken, overwrite=True).rows_out == 3
    bad = write_jsonl(tmp_path / "bad.jsonl", [ROWS[0], {"question": "q"}])
    with pytest.raises(UserError, match="bad.jsonl:2: missing field 'answer'"):
        ds.write_deduplicated(bad, tmp_path / "never.jsonl")
    assert not (tmp_path / "never.jsonl").exists()


def test_cli_drop_duplicates_of_the_seed_file(seed_data, tmp_path):
    out = tmp_path / "NVDA.dedup.json"
    done = subprocess.run(
        [sys.executable, "-m", "cli", "dataset", "check", str(seed_data / "NVDA.json"), "--drop-duplicates", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "exact duplicates:     201" in done.stdout
    assert f"wrote {out}: 199 of 400 rows (201 exact duplicates dropped" in done.stdout
    assert ds.check(out).rows == 199 and ds.check(out).exact_duplicates == 0
