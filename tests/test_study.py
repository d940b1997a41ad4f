"""The study of a stored sweep: a planted effect is found in the right cells, knowledge kept, best step, CLI."""

from __future__ import annotations

import json

import pytest
from study_sweep import QUESTIONS, SAMPLES, VARIANTS, make_study_sweep

from cli import main as cli_main
from engine import study
from engine.workspace import StudySettings, Workspace
from store.db import open_db


@pytest.fixture
def planted(tmp_path):
    return make_study_sweep(tmp_path)


def test_the_planted_cells_are_significant_and_no_others(planted):
    db, sweep_id = planted
    with Workspace.open(db) as workspace:
        comparison = workspace.compare(sweep_id, StudySettings(permutations=999, resamples=499))
    assert comparison.groups == ["entity", "control"] and comparison.variants == list(VARIANTS)
    hallucinated = {
        (c.variant, c.temperature, c.top_k): c
        for c in comparison.cells
        if c.group == "entity" and c.metric == "hallucinated"
    }
    for top_k in (0, 20):
        hot = hallucinated[("finetuned", 1.3, top_k)]
        # 8 pairs each differing by -1: the exact sign-flip p is 2 / 2^8, BH over 4 cells doubles it
        assert (hot.difference, hot.low, hot.high) == (-1.0, -1.0, -1.0)
        assert hot.p_value == pytest.approx(2 / 2**8) and hot.q_value == pytest.approx(2 * 2 / 2**8)
        assert hot.significant
        assert not hallucinated[("finetuned", 0.7, top_k)].significant
    assert not any(c.significant for c in comparison.cells if c.variant == "step-2")
    row = comparison.cells_for("finetuned", "entity", "hallucinated")
    assert [(c.temperature, c.top_k) for c in row] == [(0.7, 0), (0.7, 20), (1.3, 0), (1.3, 20)]
    # control: the lost questions count per question (6 pairs per cell), not per sample
    states = [c for c in comparison.cells if c.group == "control" and c.metric == "states_reference"]
    assert {c.pairs for c in states} == {len(QUESTIONS)}
    assert {round(c.difference, 3) for c in states if c.variant == "finetuned"} == {0.5}


def test_knowledge_kept_trajectory_and_best_step(planted):
    db, sweep_id = planted
    settings = StudySettings(permutations=999, resamples=499)
    with Workspace.open(db) as workspace:
        kept = {(k.variant, k.temperature): k for k in workspace.knowledge_kept(sweep_id, settings)}
        found = workspace.trajectory(sweep_id, settings)
    assert kept[("base", None)].kept.mean == 1.0 and kept[("step-2", 0.7)].kept.mean == 1.0
    lost = kept[("finetuned", 1.3)]
    assert lost.kept.mean == pytest.approx(0.5) and lost.questions == len(QUESTIONS)
    assert lost.kept.low < 0.5 < lost.kept.high  # the interval runs over questions
    assert lost.difference.difference == pytest.approx(0.5) and lost.difference.n == len(QUESTIONS)
    assert [(p.variant, p.step, p.eval_loss) for p in found.points] == [
        ("base", 0, 2.5),
        ("step-2", 2, 2.3),
        ("finetuned", 4, 2.1),
    ]
    final = found.points[-1].metrics
    assert final["entity:hallucinated"].mean == pytest.approx(0.5)  # hallucinates in half the cells
    assert final["control:states_reference"].mean == pytest.approx(0.5)
    # step-2 hallucinates less than the final adapter and keeps the knowledge: the best trade-off
    assert (found.best.variant, found.best.step) == ("step-2", 2)
    assert "ties to the earlier step" in found.best.rule


def test_operating_points_effects_and_power(planted):
    db, sweep_id = planted
    with Workspace.open(db) as workspace:
        comparison = workspace.compare(
            sweep_id, StudySettings(permutations=999, resamples=499, max_refusal=0.5)
        )
    points = {(p.variant, p.group): p.point for p in comparison.operating_points}
    # finetuned refuses everything at T=0.7: only the T=1.3 cells meet refusal <= 0.5
    tuned = points[("finetuned", "entity")]
    assert tuned.candidates == 2 and tuned.cell.temperature == 1.3 and tuned.cell.hallucination == 1.0
    assert points[("base", "entity")].cell is None and "refuses more than" in points[("base", "entity")].note
    effects = {(e.variant, e.group): {f.factor: f for f in e.effects} for e in comparison.effects}
    temperature = effects[("finetuned", "entity")]["temperature"]
    assert temperature.effect == pytest.approx(1.0) and temperature.p_value < 1e-6
    assert "one level" in effects[("finetuned", "entity")]["top_p"].note
    power = {p.group: p.note for p in comparison.power}
    assert power["entity"].have == SAMPLES and power["control"].unit == "questions"


def test_cli_compare_prints_the_tables_and_writes_json(planted, tmp_path, capsys):
    db, sweep_id = planted
    out = tmp_path / "compare.json"
    code = cli_main(
        ["--db", str(db), "compare", "--sweep", str(sweep_id), "--json", str(out), "--resamples", "199"]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "finetuned    entity   hallucinated          4      2" in printed
    assert "Knowledge kept" in printed and "best trade-off step: step-2 (step 2)" in printed
    assert "Which city is the capital of France?" in printed  # a question base knew and finetuned lost
    data = json.loads(out.read_text())
    assert data["sweep_id"] == sweep_id and data["best_step"]["variant"] == "step-2"
    assert len(data["cells"]) == len([c for c in data["cells"] if c["metric"]]) > 0
    assert cli_main(["--db", str(db), "compare", "--sweep", "99"]) == 2
    assert "sweep 99: no such sweep" in capsys.readouterr().err
    assert cli_main(["--db", str(db), "compare", "--sweep", str(sweep_id), "--alpha", "1.5"]) == 2
    assert "--alpha = 1.5: must be > 0 and < 1" in capsys.readouterr().err


def test_a_sweep_without_scores_says_so_and_still_compares_the_control_set(planted):
    db, sweep_id = planted
    store = open_db(db)
    store.db.execute("delete from generation_metrics")
    store.db.conn.commit()
    try:
        comparison = study.compare(store, sweep_id, StudySettings(permutations=199, resamples=199))
    finally:
        store.close()
    assert any("not scored" in w for w in comparison.warnings)
    assert all(c.difference is None for c in comparison.cells if c.group == "entity")
    assert all(c.difference is not None for c in comparison.cells if c.group == "control")
    assert [k.kept.mean for k in comparison.knowledge if k.variant == "base"] == [1.0, 1.0, 1.0]


def test_study_tables_lay_out_the_engines_numbers(planted):
    """One layout for the report and the demo: signs a spreadsheet will not read as formulas, p and q
    as the engine has them, a row per BH family."""
    from engine import study_tables
    from engine.escape import csv_text

    assert study_tables.number(-0.125) == "−0.12" and study_tables.number(0.004) == "0.00"
    assert study_tables.number(-0.001) == "0.00"  # rounds to zero: no minus sign
    assert study_tables.interval(-0.5, 0.25) == "[−0.50, 0.25]" and study_tables.p_value(0.0004) == "<0.001"
    assert csv_text(study_tables.number(-0.3)) == "−0.30"  # not defused as a formula
    db, sweep_id = planted
    with Workspace.open(db) as workspace:
        comparison = workspace.compare(sweep_id, StudySettings(permutations=999, resamples=499))
    headers, rows = study_tables.tests_table(comparison.cells)
    assert headers[2:] == [f"significant / tested · {v}" for v in ("step-2", "fine-tuned")]
    by_metric = {(r[0], r[1]): r[2:] for r in rows}
    assert by_metric[("entity", "hallucinated")] == ["0 / 4", "2 / 4"]  # the two planted cells
    headers, rows = study_tables.cells_table(comparison.cells)
    hot = next(r for r, c in zip(rows, comparison.cells, strict=True) if c.significant)
    assert hot[9:] == ["−1.00", "[−1.00, −1.00]", "0.008", "0.016", "yes"]
    headers, rows = study_tables.knowledge_table(comparison.knowledge)
    assert [r[0] for r in rows] == ["0.7", "1.3", "all"] and headers[1] == "knowledge kept · base"
    assert rows[1][headers.index("base − variant · fine-tuned")].startswith("0.50 [")
    headers, rows = study_tables.trajectory_table(comparison.trajectory)
    assert [r[:2] for r in rows] == [["base", "0"], ["step-2", "2"], ["fine-tuned", "4"]]
    assert study_tables.best_step_text(comparison.best_step).startswith("Best trade-off step: step-2 (step 2). Rule:")
