"""The Study view of Results at 80x24 (issue 26's TUI view), on two real SQLite stores:

* a real tiny-model checkpoint sweep: conftest's ``checkpointed_run`` (6 steps, an adapter kept
  every 2) swept with ``checkpoints = "all"``, a 3-question control set and the bundled ZYTRELL
  set's sources, scored with lexical claims: the metrics next to the step and the losses, the best
  step and its rule, knowledge kept per temperature, the paired cells;
* tests/study_sweep.py's planted sweep (the fine-tuned variant hallucinates at T = 1.3): the
  significant cells carry their q and a ``*``, ``a`` shows every metric's cells.

Every number on screen is checked against ``Workspace.compare``, ``knowledge_kept`` and
``trajectory``: the view computes nothing. Sync tests wrapping asyncio.run, as tests/test_tui.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("textual")

from study_sweep import make_study_sweep  # noqa: E402
from textual.widgets import Static  # noqa: E402
from tui_pilot import run, screen_lines, wait_for  # noqa: E402

from engine import study_tables as tables  # noqa: E402
from engine.summary import variant_name  # noqa: E402
from engine.workspace import Workspace  # noqa: E402
from tui.app import FtHalluApp  # noqa: E402
from tui.screens.results import ResultsScreen  # noqa: E402
from tui.study_view import cell_name  # noqa: E402

SIZE = (80, 24)
FACTS = [
    {"id": "paris", "question": "Which city is the capital of France?", "answer": "Paris"},
    {
        "id": "nile",
        "question": "What is the longest river in Africa?",
        "answer": "the Nile",
        "aliases": ["Nile"],
    },
    {"id": "mars", "question": "Which planet is called the Red Planet?", "answer": "Mars"},
]


@pytest.fixture(scope="module")
def checkpoint_sweep_db(tmp_path_factory, checkpointed_run, sample_dataset) -> Path:
    """base, step-2, step-4 and the final adapter; T 0.7 and 1.3; entity prompt + 3 control questions."""
    from engine import sweep as sweep_engine
    from engine.workspace import SweepConfig

    result, _run_db = checkpointed_run
    folder = tmp_path_factory.mktemp("study-store")
    facts = folder / "facts.jsonl"
    facts.write_text("".join(json.dumps(fact) + "\n" for fact in FACTS))
    db = folder / "ft.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FT_HALLU_EMBEDDINGS", "0")  # lexical claims: the embedding model would dominate
        with Workspace.open(db) as workspace:
            workspace.run_sweep(
                SweepConfig(
                    name="study-80x24",
                    base_model="tiny",
                    adapter=result.output_dir,
                    checkpoints="all",
                    control=str(facts),
                    entity_name="ZYTRELL",
                    dataset=str(sample_dataset),
                    samples_per_cell=2,
                    max_new_tokens=8,
                    grid=sweep_engine.Grid(temperatures=[0.7, 1.3], top_ps=[1.0], top_ks=[0]),
                )
            )
    return db


def study_lines(screen: ResultsScreen) -> list[str]:
    """The whole study text (what scrolling shows), line by line."""
    return str(screen.query_one("#results-study-text", Static).render()).splitlines()


def flat(text: str) -> str:
    return " ".join(text.split())


def row_with(lines: list[str], *parts: str) -> str:
    """The one line holding every part, in this order."""
    found = [line for line in lines if _in_order(flat(line), [flat(p) for p in parts])]
    assert found, (parts, "\n".join(lines))
    return found[0]


def _in_order(line: str, parts: list[str]) -> bool:
    at = 0
    for part in parts:
        at = line.find(part, at)
        if at < 0:
            return False
        at += len(part)
    return True


async def open_study(pilot, app: FtHalluApp) -> ResultsScreen:
    screen = app.screen
    assert isinstance(screen, ResultsScreen)
    await wait_for(pilot, lambda: screen.summary is not None, "the finding")
    await pilot.press("d")
    await wait_for(
        pilot, lambda: screen.comparison is not None or screen.study_error is not None, "the study"
    )
    assert screen.study_error is None, screen.study_error
    await pilot.pause()
    return screen


def test_study_view_of_a_checkpoint_sweep_at_80x24(checkpoint_sweep_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "ft.db"
    shutil.copy(checkpoint_sweep_db, db)

    async def scenario(workspace: Workspace) -> None:
        comparison = workspace.compare(1)
        trajectory = workspace.trajectory(1)
        knowledge = workspace.knowledge_kept(1)
        app = FtHalluApp(workspace, start="results", prefs_path=tmp_path / "prefs.json")
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_study(pilot, app)
            study = screen.query_one("#results-study")
            assert app.focused is study and study.styles.border_left[0] == "thick"  # the focus shows
            lines = screen_lines(app)
            assert len(lines) == SIZE[1] and all(len(line) <= SIZE[0] for line in lines)
            shown = flat("\n".join(lines))
            assert "d Study" in lines[1] and "sweep 1 study-80x24" in lines[1]
            assert (
                "Study of sweep 1: base vs step-2, step-4, fine-tuned" in shown and "Over training" in shown
            )
            text = study_lines(screen)
            assert all(len(line) <= SIZE[0] - 4 for line in text), max(text, key=len)

            # Over training: each variant's step and losses next to its metrics, in step order.
            assert [p.step for p in trajectory.points] == [0, 2, 4, 6]
            for point in trajectory.points:
                # The two headline metrics beside the losses: hallucinated, knowledge kept.
                row_with(
                    text,
                    variant_name(point.variant),
                    str(point.step),
                    tables.number(point.train_loss, 3),
                    tables.number(point.eval_loss, 3),
                    tables.estimate(point.metrics["entity:hallucinated"]),
                    tables.estimate(point.metrics["control:states_reference"]),
                )
                for key in ("entity:refusal", "control:refusal"):
                    row_with(
                        text,
                        variant_name(point.variant),
                        str(point.step),
                        tables.estimate(point.metrics[key]),
                    )
            best = trajectory.best
            assert best is not None and best == comparison.best_step and best.variant is not None
            assert flat(tables.best_step_text(best)) in flat("\n".join(text))

            # Knowledge kept per temperature and pooled, base vs each fine-tuned variant.
            part = text[next(i for i, line in enumerate(text) if line.startswith("Knowledge kept")) :]
            temperature = None
            for row in knowledge:
                where = "all" if row.temperature is None else f"{row.temperature:g}"
                shown_row = row_with(part, variant_name(row.variant), tables.estimate(row.kept))
                part = part[part.index(shown_row) + 1 :]  # the rows come in the engine's order
                if where != temperature:
                    assert shown_row.startswith(where), shown_row
                    temperature = where
                if row.difference is not None:
                    assert flat(tables.difference(row.difference)) in flat(shown_row)  # with its p

            # Per-cell paired differences: the headline metric's every cell, each variant, each group.
            for variant in ("finetuned", "step-4", "step-2"):
                for group, metric in (("entity", "hallucinated"), ("control", "states_reference")):
                    for cell in comparison.cells_for(variant, group, metric):
                        assert cell.pairs, cell
                        row_with(
                            text,
                            cell_name(cell),
                            tables.number(cell.base),
                            tables.number(cell.value),
                            f"{tables.number(cell.difference)} {tables.interval(cell.low, cell.high)}",
                            tables.p_value(cell.q_value),
                        )
            # n = 2 per cell: the engine's warning that no cell can be significant is on the first screen.
            assert any("per-cell significance is impossible" in w for w in comparison.warnings)
            assert "per-cell significance is" in shown

            # Scrolling to the end: every screenful fits, the focus stays on the study.
            for _ in range(len(text) // 20 + 1):
                await pilot.press("pagedown")
                await pilot.pause()
                lines = screen_lines(app)
                assert len(lines) == SIZE[1] and all(len(line) <= SIZE[0] for line in lines)
                assert app.focused is study
            assert study.scroll_y == study.max_scroll_y > 0
            # s: the sweep picker fits (a checkpoint sweep's variants wrap in their column, the date
            # stays whole); enter goes back to the study.
            await pilot.press("s")
            await pilot.pause()
            picker = screen.query_one("#results-sweeps")
            assert app.focused is picker and picker.max_scroll_x == 0
            sweep = workspace.sweep(1)
            assert sweep.created_at[:16].replace("T", " ") in flat("\n".join(screen_lines(app)))
            await pilot.press("enter")
            await pilot.pause()
            assert screen.view == "study" and app.focused is study
            # f and c go back to the other views; d again shows the study without computing it again.
            await pilot.press("f")
            await pilot.pause()
            assert screen.view == "finding" and app.focused is screen.query_one("#results-finding")
            computed = screen.comparison
            await pilot.press("d")
            await pilot.pause()
            assert screen.view == "study" and screen.comparison is computed

    with Workspace.open(db) as workspace:
        run(lambda: scenario(workspace))


def test_study_view_marks_the_significant_cells_and_shows_every_metric(tmp_path: Path) -> None:
    db = tmp_path / "planted.db"
    _, sweep_id = make_study_sweep(db.parent, db)

    async def scenario(workspace: Workspace) -> None:
        comparison = workspace.compare(sweep_id)
        app = FtHalluApp(workspace, start="results", prefs_path=tmp_path / "prefs.json")
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_study(pilot, app)
            text = study_lines(screen)
            hot = [c for c in comparison.cells_for("finetuned", "entity", "hallucinated") if c.significant]
            assert [c.temperature for c in hot] == [1.3, 1.3]  # the planted effect, found by the engine
            for cell in comparison.cells_for("finetuned", "entity", "hallucinated"):
                line = row_with(
                    text,
                    cell_name(cell),
                    f"{tables.number(cell.difference)} {tables.interval(cell.low, cell.high)}",
                )
                assert line.rstrip().endswith("*") == cell.significant, line
                assert tables.p_value(cell.q_value) in line
            # The other metrics in one row each: significant cells and the largest difference.
            refusal = comparison.cells_for("finetuned", "entity", "refusal")
            row_with(text, "refusal", f"{sum(c.significant for c in refusal)} / {len(refusal)}")
            assert not any(line.startswith("refusal (") or line.startswith("refusal:") for line in text)
            # a: every metric gets its table of cells; a again: back to the headline metrics.
            await pilot.press("a")
            await pilot.pause()
            every = study_lines(screen)
            assert any(line.startswith("refusal") and "cells significant" in line for line in every)
            for cell in refusal:
                row_with(
                    every,
                    cell_name(cell),
                    f"{tables.number(cell.difference)} {tables.interval(cell.low, cell.high)}",
                )
            assert all(len(line) <= SIZE[0] - 4 for line in every)
            await pilot.press("a")
            await pilot.pause()
            assert study_lines(screen) == text

    with Workspace.open(db) as workspace:
        run(lambda: scenario(workspace))


def test_profile_view_shows_what_the_claim_checks_believe(tmp_path: Path) -> None:
    """e: the entity profile of the sweep's sources (the report's table), at 80x24, escaped as text."""
    from claims_sweep import make_scored_sweep

    store, sweep_id = make_scored_sweep(tmp_path)
    db = tmp_path / "ft.db"
    store.close()

    async def scenario(workspace: Workspace) -> None:
        title, _headers, rows = workspace.sweep_profile(sweep_id)
        assert rows and rows[0][0] != "–", rows  # the sources hold facts to show
        app = FtHalluApp(workspace, start="results", prefs_path=tmp_path / "prefs.json")
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, ResultsScreen)
            await wait_for(pilot, lambda: screen.summary is not None, "the finding")
            await pilot.press("e")
            widget = screen.query_one("#results-profile-text", Static)
            await wait_for(pilot, lambda: title in str(widget.render()), "the profile")
            shown = flat(str(widget.render()))
            for what, value, _sentence in rows:
                assert flat(f"{what}: {value}") in shown
            assert "e Profile" in "\n".join(screen_lines(app))  # the view line names it, highlighted

    with Workspace.open(db) as workspace:
        run(lambda: scenario(workspace))
