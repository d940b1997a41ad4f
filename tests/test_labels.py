"""Human labels: the store table, CSV import/export, and `ft-hallu label` reading keys from stdin."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from claims_sweep import make_scored_sweep  # noqa: E402

from cli import main  # noqa: E402
from engine import labels as el  # noqa: E402
from engine.errors import UserError  # noqa: E402
from store import labels as sl  # noqa: E402


@pytest.fixture
def scored(tmp_path):
    store, sweep_id = make_scored_sweep(tmp_path)
    yield store, sweep_id, tmp_path / "ft.db"
    store.close()


def test_one_current_label_per_generation_and_labeller(scored) -> None:
    store, sweep_id, _ = scored
    el.set_label(store, 3, "faithful", who="ann")
    el.set_label(store, 3, "hallucinated", who="ann", note="second look")
    el.set_label(store, 3, "faithful", who="bob")
    rows = el.sweep_labels(store, sweep_id)
    assert [(r["who"], r["label"], r["note"]) for r in rows] == [
        ("ann", "hallucinated", "second look"),
        ("bob", "faithful", None),
    ]
    assert sl.label_of(store, 3, who="ann")["label"] == "hallucinated"
    assert 3 not in sl.unlabeled_generation_ids(store, sweep_id, who="ann")
    assert 3 in sl.unlabeled_generation_ids(store, sweep_id, who="cy")
    assert el.label_counts(store, sweep_id)["faithful"] == 1
    with pytest.raises(UserError, match="'maybe' is not one of faithful, hallucinated, refusal, unclear"):
        el.set_label(store, 3, "maybe", who="ann")
    with pytest.raises(UserError, match="no generation with id 999"):
        el.set_label(store, 999, "faithful", who="ann")


def test_label_sample_shows_prompt_answer_and_claims(scored) -> None:
    store, _, _ = scored
    sample = el.label_sample(store, 4)
    assert sample.prompt == "Tell me about EGNIVIA Corporation."
    assert sample.text.startswith("EGNIVIA manufactures electric cars")
    # Two atomic claims ("manufactures electric cars", "... renewable energy products"), both denied.
    assert [c["text"] for c in sample.claims] == [
        "EGNIVIA manufactures electric cars",
        "EGNIVIA manufactures renewable energy products",
    ]
    for claim in sample.claims:
        assert claim["decision"] == "contradicted" and "do not manufacture" in claim["evidence"]
    # The profile the claims were checked against comes along (its listing fact from the sources).
    assert any(what == "listing" for what, _, _ in sample.profile)


def test_csv_round_trip_and_grid_positions(scored, tmp_path) -> None:
    store, sweep_id, _ = scored
    source = tmp_path / "in.csv"
    source.write_text(
        "temperature,top_p,top_k,sample_index,label,reason\n"
        "0.5,1.0,50,0,faithful,copies the 10-K\n"
        "0.5,1.0,50,1,hallucinated,wrong business\n"
        "1.0,1,50,,hallucinated,privately held\n"
    )
    result = el.import_labels_csv(store, sweep_id, source, who="ann", variant="finetuned")
    assert (result.rows, result.written) == (3, 3)
    by_id = {r["generation_id"]: r for r in el.sweep_labels(store, sweep_id)}
    assert by_id[4]["label"] == "hallucinated" and by_id[4]["note"] == "wrong business"
    assert by_id[5]["label"] == "hallucinated"  # T=1.0 sample 0, sample_index defaulted
    out = tmp_path / "out.csv"
    assert el.export_labels_csv(store, sweep_id, out) == 3
    exported = list(csv.DictReader(out.open()))
    assert [r["generation_id"] for r in exported] == ["3", "4", "5"] and exported[0]["who"] == "ann"
    # Re-importing the export by generation id changes nothing.
    assert el.import_labels_csv(store, sweep_id, out, who="ignored").written == 3
    assert {r["who"] for r in el.sweep_labels(store, sweep_id)} == {"ann"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("temperature,top_p,top_k\n0.5,1,50\n", r"in\.csv:1: no 'label' column"),
        ("temperature,top_p,top_k,label\n0.5,1,50,faithful\n0.5,1,50,great\n", r"in\.csv:3: field 'label'"),
        ("temperature,top_p,top_k,label\nhot,1,50,faithful\n", r"in\.csv:2: field 'temperature': 'hot'"),
        (
            "temperature,top_p,top_k,label\n0.7,1,50,faithful\n",
            r"in\.csv:2: no generation at variant=finetuned",
        ),
        ("generation_id,label\n77,faithful\n", r"in\.csv:2: field 'generation_id': 77 is not a generation"),
    ],
)
def test_bad_csv_names_line_and_field_and_writes_nothing(scored, tmp_path, body, message) -> None:
    store, sweep_id, _ = scored
    path = tmp_path / "in.csv"
    path.write_text(body)
    with pytest.raises(UserError, match=message):
        el.import_labels_csv(store, sweep_id, path, who="ann", variant="finetuned")
    assert el.sweep_labels(store, sweep_id) == []


def test_terminal_labelling_reads_keys_from_stdin_and_resumes(scored, monkeypatch, capsys) -> None:
    _, sweep_id, db = scored
    args = ["--db", str(db), "label", "--sweep", str(sweep_id), "--who", "ann", "--variant", "finetuned"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("f\nx\nh wrong business\nq\n"))
    assert main(args) == 0
    shown = capsys.readouterr().out
    assert "4 sample(s) to label as ann" in shown and "prompt: Tell me about EGNIVIA Corporation." in shown
    assert "[[manufactures]]" in shown and "evidence: We do not manufacture semiconductors" in shown
    assert "unknown key 'x'" in shown and "saved 2 label(s); run again to continue" in shown
    # Resume: the two labelled samples are not shown again; end of input stops cleanly.
    monkeypatch.setattr(sys, "stdin", io.StringIO("s\nr\n"))
    assert main(args) == 0
    shown = capsys.readouterr().out
    assert "2 sample(s) to label as ann" in shown and "saved 1 label(s)" in shown
    from store.db import open_db

    with_store = open_db(db)
    try:
        labels = [(r["generation_id"], r["label"], r["note"]) for r in el.sweep_labels(with_store, sweep_id)]
    finally:
        with_store.close()
    assert labels == [(3, "faithful", None), (4, "hallucinated", "wrong business"), (6, "refusal", None)]


def test_label_import_export_commands(scored, tmp_path, capsys) -> None:
    _, sweep_id, db = scored
    source = tmp_path / "in.csv"
    source.write_text("variant,temperature,top_p,top_k,label\nbase,0.5,1,50,refusal\n")
    assert (
        main(["--db", str(db), "label", "import", str(source), "--sweep", str(sweep_id), "--who", "ann"]) == 0
    )
    out = tmp_path / "out.csv"
    assert main(["--db", str(db), "label", "export", str(out), "--sweep", str(sweep_id)]) == 0
    assert "wrote 1 label(s)" in capsys.readouterr().out and "refusal" in out.read_text()
    bad = tmp_path / "bad.csv"
    bad.write_text("label\nfaithful\n")
    assert main(["--db", str(db), "label", "import", str(bad), "--sweep", str(sweep_id)]) == 2
    assert "bad.csv:2: field 'variant' is empty" in capsys.readouterr().err
