"""Blind labelling, several labellers and their agreement: `ft-hallu label --blind`, `--who`, CSV
export/import with who, and Cohen's kappa / `--agreed-only` in `ft-hallu calibrate`.

The TUI's blind view (App.run_test pilot) is checked here, the Gradio tab in test_gradio.py
(gradio_client), both with the same ``blind_checks.assert_blind`` as the CLI's output.
"""

from __future__ import annotations

import asyncio
import csv
import io
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from blind_checks import assert_blind, blind_texts  # noqa: E402
from claims_sweep import ANSWERS, make_scored_sweep  # noqa: E402

from cli import main  # noqa: E402
from engine import calibrate as ec  # noqa: E402
from engine import labels as el  # noqa: E402
from engine.errors import UserError  # noqa: E402
from store import labels as sl  # noqa: E402

SIZE = (80, 24)


@pytest.fixture
def scored(tmp_path):
    store, sweep_id = make_scored_sweep(tmp_path)
    yield store, sweep_id, tmp_path / "ft.db"
    store.close()


def _text_of(store, sweep_id: int) -> dict[str, int]:
    return {row["text"]: int(row["id"]) for row in store.db.query("select id, text from generations")}


def _label(db: Path, sweep_id: int, who: str, keys: str, monkeypatch, capsys, *extra: str) -> str:
    monkeypatch.setattr(sys, "stdin", io.StringIO(keys))
    argv = ["--db", str(db), "label", "--sweep", str(sweep_id), "--blind", "--who", who, *extra]
    assert main(argv) == 0
    return capsys.readouterr().out


def _shown_ids(out: str, by_text: dict[str, int]) -> list[int]:
    return [by_text[line[len("answer: ") :]] for line in out.splitlines() if line.startswith("answer: ")]


def test_blind_session_hides_variant_settings_and_scores_in_a_seeded_order_and_resumes(
    scored, monkeypatch, capsys
) -> None:
    store, sweep_id, db = scored
    by_text = _text_of(store, sweep_id)
    ids = sl.sweep_generation_ids(store, sweep_id)
    order = el.blind_order(ids, el.DEFAULT_BLIND_SEED)
    assert sorted(order) == ids and order != ids  # shuffled, not grid order
    assert el.blind_order(ids, el.DEFAULT_BLIND_SEED) == order  # reproducible
    assert el.blind_order(ids, 7) != order  # another seed, another order

    out = _label(db, sweep_id, "ann", "f\ns\nh wrong business\nq\n", monkeypatch, capsys)
    head, *items = out.split("\n--- ")
    assert f"6 of 6 sample(s) left for ann; order: seed {el.DEFAULT_BLIND_SEED}" in head
    assert_blind(items, store, sweep_id)
    assert _shown_ids(out, by_text) == order[:4]  # 1 labelled, 2 skipped, 3 labelled, 4 quit
    assert [item.split(" ", 1)[0] for item in items] == ["1", "2", "3", "4"]
    assert "saved 2 label(s); run again to continue in the same order" in out
    labels = {r["generation_id"]: (r["label"], r["note"]) for r in el.sweep_labels(store, sweep_id)}
    assert labels == {order[0]: ("faithful", None), order[2]: ("hallucinated", "wrong business")}

    # Resume: the same order (seed recorded), the skipped sample first, then on from where it stopped.
    out = _label(db, sweep_id, "ann", "u\nr\n", monkeypatch, capsys)
    head, *items = out.split("\n--- ")
    assert f"4 of 6 sample(s) left for ann; order: seed {el.DEFAULT_BLIND_SEED}" in head
    assert _shown_ids(out, by_text) == [order[1], order[3], order[4]]
    assert [item.split(" ", 1)[0] for item in items] == ["2", "4", "5"]
    assert_blind(items, store, sweep_id)
    assert sl.blind_seed(store, sweep_id, who="ann") == el.DEFAULT_BLIND_SEED


def test_a_given_seed_is_recorded_and_a_new_one_says_so(scored, monkeypatch, capsys) -> None:
    store, sweep_id, db = scored
    by_text = _text_of(store, sweep_id)
    order = el.blind_order(sl.sweep_generation_ids(store, sweep_id), 7)
    out = _label(db, sweep_id, "bob", "f\nq\n", monkeypatch, capsys, "--seed", "7")
    assert "order: seed 7;" in out and _shown_ids(out, by_text) == order[:2]
    out = _label(db, sweep_id, "bob", "q\n", monkeypatch, capsys)  # no --seed: the recorded one
    assert "order: seed 7;" in out and _shown_ids(out, by_text) == [order[1]]
    out = _label(db, sweep_id, "bob", "q\n", monkeypatch, capsys, "--seed", "8")
    assert "order: seed 8 (was 7: a new order)" in out


def test_two_labellers_are_kept_apart_and_blind_never_shows_the_other_label(
    scored, monkeypatch, capsys
) -> None:
    store, sweep_id, db = scored
    by_text = _text_of(store, sweep_id)
    order = el.blind_order(sl.sweep_generation_ids(store, sweep_id), el.DEFAULT_BLIND_SEED)
    _label(db, sweep_id, "ann", "h\nf\nq\n", monkeypatch, capsys)
    # Bob's queue still holds every sample, and ann's labels never show in his session.
    out = _label(db, sweep_id, "bob", "f\nq\n", monkeypatch, capsys)
    assert "6 of 6 sample(s) left for bob" in out and _shown_ids(out, by_text) == order[:2]
    assert "your label now" not in out and "hallucinated" not in out.split("\n--- ", 1)[1]
    assert el.labelling_queue(store, sweep_id, who="ann") == sorted(set(order) - set(order[:2]))
    assert order[0] not in el.labelling_queue(store, sweep_id, who="bob")
    assert order[1] in el.labelling_queue(store, sweep_id, who="bob")
    # Relabelling shows your own label only.
    out = _label(db, sweep_id, "bob", "q\n", monkeypatch, capsys, "--relabel")
    assert "(your label now: faithful)" in out and "hallucinated" not in out.split("\n--- ", 1)[1]
    item = el.next_blind(store, sweep_id, who="cy", seed=el.DEFAULT_BLIND_SEED, relabel=True)
    assert item is not None and item.label is None and item.left == 6
    rows = {(r["generation_id"], r["who"]): r["label"] for r in el.sweep_labels(store, sweep_id)}
    assert rows == {
        (order[0], "ann"): "hallucinated",
        (order[1], "ann"): "faithful",
        (order[0], "bob"): "faithful",
    }
    # Counted once per generation (its newest label), as calibrate counts it.
    assert el.label_counts(store, sweep_id) == {"faithful": 2, "hallucinated": 0, "refusal": 0, "unclear": 0}


def test_blind_api_refuses_bad_positions_names_and_seeds(scored) -> None:
    store, sweep_id, _ = scored
    with pytest.raises(UserError, match="position 7: the blind order of sweep .* has 6 items"):
        el.label_blind(store, sweep_id, who="ann", seed=1, position=7, label="faithful")
    with pytest.raises(UserError, match="--who: the labeller's name is empty"):
        el.start_blind(store, sweep_id, who="  ")
    with pytest.raises(UserError, match="--who: the labeller's name holds a control character"):
        el.start_blind(store, sweep_id, who="ann\x1b[2J")
    with pytest.raises(UserError, match="seed: 'x' is not a whole number"):
        el.check_seed("x", where="seed")
    with pytest.raises(UserError, match="sweep 99: no such sweep"):
        el.start_blind(store, 99, who="ann")
    assert el.sweep_labels(store, sweep_id) == []
    # A generation added later slots into the order without moving the others.
    before = el.blind_order([1, 2, 3, 4, 5, 6], 3)
    after = el.blind_order([1, 2, 3, 4, 5, 6, 7], 3)
    assert [g for g in after if g != 7] == before


def test_export_import_round_trip_keeps_who(scored, tmp_path) -> None:
    store, sweep_id, _ = scored
    el.set_label(store, 3, "faithful", who="ann", note="fine")
    el.set_label(store, 3, "hallucinated", who="bob", note="no: invented")
    el.set_label(store, 4, "hallucinated", who="ann")
    out = tmp_path / "labels.csv"
    assert el.export_labels_csv(store, sweep_id, out) == 3
    exported = sorted(
        (r["generation_id"], r["who"], r["label"], r["note"]) for r in csv.DictReader(out.open())
    )
    assert exported == [
        ("3", "ann", "faithful", "fine"),
        ("3", "bob", "hallucinated", "no: invented"),
        ("4", "ann", "hallucinated", ""),
    ]
    # Into a fresh store holding the same sweep: every labeller's label comes back as theirs.
    (tmp_path / "copy").mkdir()
    other, other_sweep = make_scored_sweep(tmp_path / "copy")
    try:
        result = el.import_labels_csv(other, other_sweep, out)  # no --who: the file's
        assert result.written == 3
        got = sorted(
            (r["generation_id"], r["who"], r["label"], r["note"]) for r in el.sweep_labels(other, other_sweep)
        )
        assert got == [
            (3, "ann", "faithful", "fine"),
            (3, "bob", "hallucinated", "no: invented"),
            (4, "ann", "hallucinated", None),
        ]
        assert el.export_labels_csv(other, other_sweep, tmp_path / "again.csv", who="bob") == 1
    finally:
        other.close()


def test_import_refuses_a_row_without_who_when_others_name_labellers(scored, tmp_path) -> None:
    store, sweep_id, _ = scored
    source = tmp_path / "in.csv"
    source.write_text("generation_id,label,who\n3,faithful,ann\n4,hallucinated,\n")
    with pytest.raises(
        UserError, match=r"in\.csv:3: field 'who' is empty while other rows name labellers \(ann\)"
    ):
        el.import_labels_csv(store, sweep_id, source)
    assert el.sweep_labels(store, sweep_id) == []
    # With --who the empty row is that labeller's; a file naming nobody is the default labeller's.
    assert el.import_labels_csv(store, sweep_id, source, who="bob").written == 2
    assert {(r["generation_id"], r["who"]) for r in el.sweep_labels(store, sweep_id)} == {
        (3, "ann"),
        (4, "bob"),
    }
    bad = tmp_path / "bad.csv"
    bad.write_text('generation_id,label,who\n3,faithful,"a\x07b"\n')
    with pytest.raises(
        UserError, match=r"bad\.csv:2: field 'who': the labeller's name holds a control character"
    ):
        el.import_labels_csv(store, sweep_id, bad)


# ------------------------------------------------------------------ agreement


def _rows_from_table(table: list[list[int]], categories: tuple[str, ...]) -> list[dict]:
    """Label rows of two labellers (ann, bob) whose cross-table is ``table``."""
    rows, gid = [], 0
    for i, first in enumerate(categories):
        for j, second in enumerate(categories):
            for _ in range(table[i][j]):
                gid += 1
                rows.append({"generation_id": gid, "who": "ann", "label": first, "created_at": "1"})
                rows.append({"generation_id": gid, "who": "bob", "label": second, "created_at": "2"})
    return rows


def test_kappa_of_a_textbook_example_by_hand() -> None:
    # 50 answers: both say hallucinated 20, both faithful 15, they differ on 15.
    # p_o = 35/50 = 0.70; p_e = 0.5 x 0.6 + 0.5 x 0.4 = 0.50; kappa = (0.70 - 0.50) / (1 - 0.50) = 0.40.
    rows = _rows_from_table([[20, 5], [10, 15]], ("hallucinated", "faithful"))
    (pair,) = el.pairwise_agreement(rows)
    assert (pair.first, pair.second, pair.shared, pair.agreed) == ("ann", "bob", 50, 35)
    assert pair.kappa == pytest.approx(0.40)
    assert pair.kappa_low < 0.40 < pair.kappa_high
    assert "ann vs bob: 35/50 same label, Cohen's kappa 0.400" in pair.describe()


def test_kappa_equals_statsmodels_on_a_four_label_table() -> None:
    from statsmodels.stats.inter_rater import cohens_kappa

    table = [[22, 3, 0, 2], [4, 18, 1, 1], [0, 1, 9, 0], [2, 2, 0, 3]]  # LABEL_VALUES order
    rows = _rows_from_table(table, el.LABEL_VALUES)
    (pair,) = el.pairwise_agreement(rows)
    expected = cohens_kappa(np.asarray(table, dtype=float))
    assert pair.kappa == pytest.approx(float(expected.kappa), abs=1e-12)
    assert (pair.kappa_low, pair.kappa_high) == pytest.approx((expected.kappa_low, expected.kappa_upp))
    n = sum(map(sum, table))
    observed = sum(table[i][i] for i in range(4)) / n
    chance = sum(sum(table[i]) * sum(row[i] for row in table) for i in range(4)) / n**2
    assert pair.kappa == pytest.approx((observed - chance) / (1 - chance))
    # Near-perfect agreement: statsmodels' Wald interval passes 1; the one shown stops at 1.
    near = [[1, 0, 0, 0], [0, 127, 0, 1], [0, 0, 0, 0], [0, 1, 0, 14]]
    (close,) = el.pairwise_agreement(_rows_from_table(near, el.LABEL_VALUES))
    assert cohens_kappa(np.asarray(near, dtype=float)).kappa_upp > 1
    assert close.kappa_low < close.kappa < close.kappa_high == 1.0
    # One label on both sides: chance agreement is 1 and kappa is undefined, not 1 or nan.
    (same,) = el.pairwise_agreement(_rows_from_table([[5]], ("faithful",)))
    assert same.kappa is None and "kappa undefined" in same.describe()
    # Labellers with nothing in common form no pair.
    assert (
        el.pairwise_agreement(
            [
                {"generation_id": 1, "who": "a", "label": "faithful"},
                {"generation_id": 2, "who": "b", "label": "faithful"},
            ]
        )
        == []
    )


def test_choose_labels_newest_or_agreed_only() -> None:
    rows = [
        {"generation_id": 1, "who": "ann", "label": "faithful", "created_at": "2025-01-01"},
        {"generation_id": 1, "who": "bob", "label": "faithful", "created_at": "2025-01-02"},
        {"generation_id": 2, "who": "ann", "label": "hallucinated", "created_at": "2025-01-03"},
        {"generation_id": 2, "who": "bob", "label": "faithful", "created_at": "2025-01-02"},
        {"generation_id": 3, "who": "bob", "label": "refusal", "created_at": "2025-01-01"},
    ]
    newest = el.choose_labels(rows)
    assert newest.labels == {1: "faithful", 2: "hallucinated", 3: "refusal"}
    assert (
        "2 labellers (ann, bob): the newest label of each generation counts (1 disagreement(s)"
        in newest.describe()
    )
    agreed = el.choose_labels(rows, agreed_only=True)
    assert agreed.labels == {1: "faithful"}
    assert "left out 1 disagreement(s) and 1 labelled by one labeller only" in agreed.describe()


def test_calibrate_reports_kappa_and_agreed_only_drops_disagreements(scored, capsys) -> None:
    store, sweep_id, db = scored
    ids = sl.sweep_generation_ids(store, sweep_id)
    ann = dict(
        zip(
            ids,
            ["refusal", "refusal", "faithful", "hallucinated", "hallucinated", "hallucinated"],
            strict=True,
        )
    )
    bob = dict(
        zip(ids, ["refusal", "unclear", "faithful", "hallucinated", "faithful", "hallucinated"], strict=True)
    )
    for gid in ids:
        el.set_label(store, gid, ann[gid], who="ann")
        el.set_label(store, gid, bob[gid], who="bob")
    el.set_label(store, ids[0], "refusal", who="cy")  # a third labeller sharing one sample
    argv = ["--db", str(db), "calibrate", "--sweep", str(sweep_id), "--min-labels", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert (
        "labels: 3 labellers (ann, bob, cy): the newest label of each generation counts (2 disagreement(s)"
        in out
    )
    (ann_bob,) = [p for p in el.sweep_agreement(store, sweep_id) if (p.first, p.second) == ("ann", "bob")]
    assert f"agreement: ann vs bob: 4/6 same label, Cohen's kappa {ann_bob.kappa:.3f}" in out
    assert "agreement: ann vs cy: 1/1 same label, kappa undefined" in out
    assert main([*argv, "--agreed-only"]) == 0
    out = capsys.readouterr().out
    assert "sweep 1: 4 labelled generation(s) (faithful 1, hallucinated 2, refusal 1)" in out
    assert (
        "labels: agreed only (ann, bob, cy): 4 generation(s) where every labeller gave the same label; left out 2 disagreement(s)"
        in out
    )
    result = ec.calibrate_sweep(store, sweep_id, agreed_only=True, min_labels=2, resamples=50)
    assert result.labelled == 4 and result.label_counts == {"faithful": 1, "hallucinated": 2, "refusal": 1}
    claim = next(r for r in result.results if r.score == "claim_grounding")
    assert claim.n == 3  # hallucinated vs faithful among the agreed ones only


def test_blind_texts_helper_lists_what_the_views_may_show(scored) -> None:
    store, sweep_id, _ = scored
    texts = blind_texts(store, sweep_id)
    assert set(ANSWERS["finetuned"]) <= texts and "Tell me about EGNIVIA Corporation." in texts


# ------------------------------------------------------------------ TUI


async def _wait(pilot, predicate, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await pilot.pause(0.1)


def test_tui_blind_label_view_hides_what_the_cli_hides_and_keeps_labellers_apart(
    scored, tmp_path, monkeypatch
) -> None:
    pytest.importorskip("textual")
    from textual.widgets import Input, Static
    from textual.widgets._footer import FooterKey

    from engine.workspace import Workspace
    from tui.app import FtHalluApp
    from tui.screens.blind import BlindLabelScreen
    from tui.screens.results import ResultsScreen

    store, sweep_id, db = scored
    monkeypatch.setenv("FT_HALLU_LABELLER", "tui-ann")
    by_text = _text_of(store, sweep_id)
    order = el.blind_order(sl.sweep_generation_ids(store, sweep_id), el.DEFAULT_BLIND_SEED)
    seen: list[int] = []
    rendered: list[str] = []

    def item_text(app) -> str:
        screen = app.screen
        return "\n".join(
            str(screen.query_one(f"#{w}", Static).render()) for w in ("blind-note", "blind-item")
        )

    async def next_item(pilot, app, key: str | None) -> None:
        before = item_text(app) if key else ""
        if key:
            await pilot.press(key)
        await _wait(
            pilot, lambda: item_text(app) != before and "answer: " in item_text(app), "the next sample"
        )
        text = item_text(app)
        rendered.append(text)
        answer = text.split("answer: ", 1)[1].split("\n", 1)[0]
        seen.append(by_text[answer])

    async def scenario() -> None:
        with Workspace.open(db) as workspace:
            app = FtHalluApp(workspace, start="results", prefs_path=tmp_path / "prefs.json")
            async with app.run_test(size=SIZE) as pilot:
                screen = app.screen
                await _wait(pilot, lambda: screen.sweep_id == sweep_id, "the sweep")
                await pilot.press("b")
                await _wait(pilot, lambda: isinstance(app.screen, BlindLabelScreen), "the blind screen")
                assert app.screen.query_one("#blind-who", Input).value == "tui-ann"
                # Every key of the screen is in the footer, inside 80 columns.
                shown = {k.action: k.region for k in app.screen.query(FooterKey) if k.region.width}
                for binding in BlindLabelScreen.BINDINGS:
                    assert binding.action in shown and shown[binding.action].right <= SIZE[0], binding
                await next_item(pilot, app, None)
                await next_item(pilot, app, "f")  # faithful, then the next one
                await next_item(pilot, app, "s")  # skipped
                await next_item(pilot, app, "h")
                assert app.screen.query_one("#blind-seed", Input).value == str(el.DEFAULT_BLIND_SEED)
                # Another labeller: enter in the field starts bob's pass from the beginning.
                who = app.screen.query_one("#blind-who", Input)
                who.value = "tui-bob"
                who.focus()
                before = item_text(app)
                await pilot.press("enter")
                await _wait(
                    pilot, lambda: item_text(app) != before and "tui-bob" in item_text(app), "bob's pass"
                )
                rendered.append(item_text(app))
                assert "6 left for tui-bob" in item_text(app)
                await pilot.press("escape")
                await _wait(pilot, lambda: isinstance(app.screen, ResultsScreen), "back to results")

    asyncio.run(scenario())
    assert seen == order[:4]  # the CLI's order for the same seed
    assert "1 of 6 · 6 left for tui-ann" in rendered[0]
    assert_blind(rendered, store, sweep_id)
    labels = {(r["generation_id"], r["who"]): r["label"] for r in el.sweep_labels(store, sweep_id)}
    assert labels == {(order[0], "tui-ann"): "faithful", (order[2], "tui-ann"): "hallucinated"}
    assert sl.blind_seed(store, sweep_id, who="tui-bob") == el.DEFAULT_BLIND_SEED
