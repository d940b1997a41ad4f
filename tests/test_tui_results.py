"""Results at 80x24 on a real tiny-model sweep store (base and a trained adapter, the bundled ZYTRELL
set's sources and one held-out question, scored with lexical claims): the finding on the first
screen without a key, metric columns paged by catalogue group, the samples with their scores, claims
and label; then the same screen in a real 80x24 terminal (tmux).

Sync tests wrapping asyncio.run, as tests/test_tui.py. One sweep for the module, copied per test.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("textual")

from textual.widgets import DataTable, Static  # noqa: E402
from textual.widgets._footer import FooterKey  # noqa: E402
from tui_pilot import run, screen_lines, wait_for  # noqa: E402

from engine.metrics import catalog  # noqa: E402
from engine.metrics.claim_words import claim_words  # noqa: E402
from engine.summary import summary_table  # noqa: E402
from engine.workspace import Workspace  # noqa: E402
from tui.app import FtHalluApp  # noqa: E402
from tui.dialogs import ChoiceScreen  # noqa: E402
from tui.screens.results import ResultsScreen  # noqa: E402

SIZE = (80, 24)
REPO = Path(__file__).resolve().parents[1]
HOSTILE = "[bold red]boss[/bold red] [link=http://x]y[/link] [/]"


@pytest.fixture(scope="module")
def results_db(tmp_path_factory, tiny_model_dir, tiny_adapter_dir, sample_dataset) -> Path:
    """A scored sweep: base + fine-tuned, T 0.5 and 1, entity prompt + 1 held-out question, n = 2."""
    from engine import sweep as sweep_engine
    from engine.workspace import SweepConfig

    db = tmp_path_factory.mktemp("results-store") / "ft.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FT_HALLU_EMBEDDINGS", "0")  # lexical claims: the embedding model would dominate
        with Workspace.open(db) as workspace:
            workspace.run_sweep(
                SweepConfig(
                    name="results-80x24",
                    base_model="tiny",
                    adapter=str(tiny_adapter_dir),
                    entity_name="ZYTRELL",
                    dataset=str(sample_dataset),
                    eval_questions=1,
                    samples_per_cell=2,
                    max_new_tokens=8,
                    grid=sweep_engine.Grid(temperatures=[0.5, 1.0], top_ps=[1.0], top_ks=[0]),
                )
            )
    return db


@pytest.fixture()
def store_copy(results_db: Path, tmp_path: Path) -> Path:
    db = tmp_path / "ft.db"
    shutil.copy(results_db, db)
    return db


def flat(text: str) -> str:
    """Text with focus bars and scrollbars gone and every run of whitespace one space (wrapped lines
    joined), so a wrapped sentence can be found whole."""
    return " ".join(text.replace("█", " ").replace("▌", " ").split())


def static_text(screen, widget_id: str) -> str:
    return str(screen.query_one(f"#{widget_id}", Static).render())


def test_results_open_on_the_finding_at_80x24_without_a_key(store_copy: Path, tmp_path: Path) -> None:
    async def scenario(workspace: Workspace) -> None:
        summary = workspace.summary(1)
        app = FtHalluApp(workspace, start="results", prefs_path=tmp_path / "prefs.json")
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, ResultsScreen)
            await wait_for(pilot, lambda: screen.summary is not None, "the summary")
            await pilot.pause()
            lines = screen_lines(app)
            assert len(lines) == SIZE[1] and all(len(line) <= SIZE[0] for line in lines)
            shown = flat("\n".join(lines))
            # The entity prompt first: its headline, prompt text and every row of its table, then
            # the held-out question's headline and text, all on this first screen.
            entity, held_out = summary.groups
            assert entity.group == "entity" and held_out.group == "held-out"
            assert flat(entity.headline) in shown, "\n".join(lines)
            assert shown.index(flat(entity.headline)) < shown.index(flat(held_out.headline))
            for group in (entity, held_out):
                for prompt in group.prompts:
                    assert flat(prompt.text) in shown, (prompt.text, "\n".join(lines))
            headers, rows = summary_table(entity, long=True)
            assert " ".join(headers) in shown
            for row in rows:  # value [interval] and n, per variant and temperature
                assert " ".join(row) in shown, (row, "\n".join(lines))
            # The sweep line names the sweep and the views; the sweep list is not on screen.
            assert "sweep 1 results-80x24" in lines[1] and "Finding" in lines[1] and "Cells" in lines[1]
            assert not any("created" in line for line in lines)

    with Workspace.open(store_copy) as workspace:
        run(lambda: scenario(workspace))


def test_the_sweep_line_stays_one_row_with_a_long_name_and_several_sweeps(
    store_copy: Path, tmp_path: Path
) -> None:
    """The keys, the sweep's id and its state on one row at 80 columns: a long name gives way."""
    from store import core

    long_name = "a-sweep-name-far-too-long-for-one-row-of-eighty-columns"
    with Workspace.open(store_copy) as workspace:
        with workspace.handle() as store:
            store.db["sweeps"].update(1, {"name": long_name})
            core.get_or_create_sweep(
                store, name="second", source="sweep", base_model="tiny", adapter_dir=None,
                config_hash="second", config={}, expected_rows=4,
            )  # fmt: skip

    async def scenario(workspace: Workspace) -> None:
        app = FtHalluApp(workspace, start="results", prefs_path=tmp_path / "prefs.json")
        app.handoff("results", {"sweep": 1})  # the long-named one, not the newest (empty) sweep
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await wait_for(pilot, lambda: screen.summary is not None and screen.sweep_id == 1, "sweep 1")
            await pilot.pause()
            lines = screen_lines(app)
            assert "Finding" in lines[1] and "sweep 1 a-sweep-name" in lines[1], "\n".join(lines[:4])
            assert "…" in lines[1] and "completed" in lines[1] and long_name not in lines[1]
            assert "completed" not in lines[2] and "sweep" not in lines[2], "\n".join(lines[:4])

    with Workspace.open(store_copy) as workspace:
        run(lambda: scenario(workspace))


def test_left_right_page_whole_metric_groups_with_decimals_from_n(store_copy: Path, tmp_path: Path) -> None:
    async def scenario(workspace: Workspace) -> None:
        app = FtHalluApp(workspace, start="results", prefs_path=tmp_path / "prefs.json")
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await wait_for(pilot, lambda: bool(screen.pages), "the metric pages")
            await pilot.press("c")
            table = screen.query_one("#results-cells", DataTable)
            assert app.focused is table
            # The footer holds every shown key of the screen and the table's ←→ Group, in 80 columns.
            shown = [b for b in (*screen.BINDINGS, *type(table).BINDINGS, *app.BINDINGS) if b.show]

            def footer() -> dict:
                return {key.action: key.region for key in screen.query(FooterKey) if key.region.width}

            await wait_for(pilot, lambda: {b.action for b in shown} <= set(footer()), "the footer")
            assert all(footer()[b.action].right <= SIZE[0] for b in shown), footer()
            seen = []
            for _ in range(len(screen.pages)):
                await pilot.pause()
                page = screen.pages[screen.page_index]
                heads = [str(column.label) for column in table.columns.values()]
                # The cell's own columns stay; then this page's metrics, each title over its b column.
                assert [h.strip() for h in heads[:4]] == ["T", "p", "k", "prompt"]
                assert [h.split("\n")[0] for h in heads[4:] if h.split("\n")[0]] == [
                    c.spec.title for c in page.columns
                ]
                assert len(heads) == 4 + 3 * len(page.columns)  # b | ft | Δ per metric
                assert {catalog.metric_group(c.spec) for c in page.columns} == {page.group}
                assert table.max_scroll_x == 0, "a page fits 80 columns: nothing to scroll sideways"
                legend = static_text(screen, "results-legend")
                assert f"[{page.title}]" in legend
                for column in page.columns:
                    assert f"{column.spec.title} = {column.spec.label}" in legend
                # Decimals follow n (2 samples: one decimal on a 0..1 range).
                values = [str(value) for value in table.get_row_at(0)]
                cell = screen.grid[0]
                for index, column in enumerate(page.columns):
                    shown = values[4 + 3 * index : 6 + 3 * index]
                    expected = [
                        column.spec.format(cell.value(v, column.metric), cell.n(v))
                        for v in ("base", "finetuned")
                    ]
                    assert shown == expected, (column.metric, shown, expected)
                    if column.spec.bounded and cell.value("base", column.metric) is not None:
                        assert re.fullmatch(r"-?\d\.\d", shown[0]), shown
                seen.append(page)
                await pilot.press("right")
            await pilot.pause()
            assert screen.page_index == 0  # round again
            # Groups come in catalogue order, the main score's first; a group's parts together.
            order = [catalog.METRIC_GROUPS.index(page.group) for page in seen]
            assert order == sorted(order) and seen[0].columns[0].metric == catalog.MAIN_SCORE
            # Every metric is on a page, or said in one line (no variation / no value).
            shown = {column.metric for page in seen for column in page.columns}
            aside = {m for m, _ in screen.aside.flat} | {m for m, _ in screen.aside.missing}
            assert shown | aside == {m for _g, metrics in catalog.cell_metric_groups() for m in metrics}
            assert not shown & aside
            legend = static_text(screen, "results-legend")
            for metric, _value in screen.aside.flat:
                assert f"{catalog.cell_metric(metric).title} " in legend.split("the same in every cell: ")[1]
            # Left goes back a page; n = 2 leaves semantic entropy two values, and the legend says so.
            await pilot.press("left")
            await pilot.pause()
            assert screen.page_index == len(seen) - 1
            while "semantic_entropy" not in {c.metric for c in screen.pages[screen.page_index].columns} | {
                m for m, _ in screen.aside.flat
            }:
                await pilot.press("right")
                await pilot.pause()
            legend = flat(static_text(screen, "results-legend"))
            assert (
                "semantic entropy (nats): with n = 2 samples per cell it can only be 0 or 0.69 (ln 2)"
                in legend
            )

    with Workspace.open(store_copy) as workspace:
        run(lambda: scenario(workspace))


def test_sample_pane_shows_scores_claims_in_words_and_label(
    store_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FT_HALLU_LABELLER", "tui-tester")
    with sqlite3.connect(store_copy) as con:  # an answer holding Rich markup must show as written
        (hostile_id,) = con.execute(
            "select id from generations where variant = 'base' and prompt_id = 'entity' and temperature = 0.5 "
            "and sample_index = 0"
        ).fetchone()
        con.execute("update generations set text = ? where id = ?", (HOSTILE, hostile_id))

    async def scenario(workspace: Workspace) -> None:
        app = FtHalluApp(workspace, start="results", prefs_path=tmp_path / "prefs.json")
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await wait_for(pilot, lambda: bool(screen.grid), "the cells")
            await pilot.press("c", "enter")  # enter: the cell's samples on the whole screen
            await wait_for(pilot, lambda: screen.maximized is not None, "the zoomed samples")
            await wait_for(pilot, lambda: len(screen.query(".results-sample")) == 4, "both sides' samples")
            samples = screen.samples
            assert samples is not None and samples.variants == ("base", "finetuned")
            assert (samples.temperature, samples.prompt_id) == (0.5, "entity")
            ids = [s.generation_id for row in samples.rows for s in row.by_variant.values()]
            claims = workspace.sample_claims(1, ids)
            assert claims, "the tiny model's answers make claims the lexical checker can test"
            main = catalog.main_score()
            for row in samples.rows:
                for sample in row.by_variant.values():
                    shown = flat(static_text(screen, f"results-sample-{sample.generation_id}"))
                    assert f"#{sample.sample_index} label: none yet" in shown
                    # The main score first, before every other score.
                    assert shown.index(main.label) < shown.index("claims ")
                    for claim in claims.get(sample.generation_id, []):
                        words = claim_words(claim)
                        assert f"{words.verdict}: {flat(words.text)}" in shown
                        assert f"why: {flat(words.reason)}" in shown
                        if words.evidence:
                            assert f"{words.evidence_label}: {flat(words.evidence)}" in shown
            assert HOSTILE in static_text(screen, f"results-sample-{hostile_id}")
            # The side by side header names the prompt; every line fits 80 columns.
            assert "Tell me about ZYTRELL" in static_text(screen, "results-prompt")
            assert all(len(line) <= SIZE[0] for line in screen_lines(app))
            # n marks the next sample, v the other side, l labels it.
            await pilot.press("n", "v", "l")
            await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen), "the label question")
            assert "Label finetuned sample #1" in app.screen.title_text
            await pilot.press("h")
            target = samples.rows[1].get("finetuned")
            await wait_for(
                pilot, lambda: screen.labels.get(target.generation_id) == "hallucinated", "the label"
            )
            assert workspace.label_of(target.generation_id, who="tui-tester") == "hallucinated"
            shown = flat(static_text(screen, f"results-sample-{target.generation_id}"))
            assert "#1 label: hallucinated" in shown
            assert "marked" in screen.query_one(f"#results-sample-{target.generation_id}").classes
            # escape: back to the cell table.
            await pilot.press("escape")
            await pilot.pause()
            assert screen.maximized is None and app.focused is screen.query_one("#results-cells")

    with Workspace.open(store_copy) as workspace:
        run(lambda: scenario(workspace))


# ------------------------------------------------------------------ a real 80x24 terminal


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")
def test_results_in_a_real_80x24_terminal_open_on_the_headline(store_copy: Path, tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_tui_tmux import Tmux

    with Workspace.open(store_copy) as workspace:
        summary = workspace.summary(1)
    entity = summary.groups[0]
    home = tmp_path / "home"
    home.mkdir()
    command = (
        f"cd {tmp_path} && FT_HALLU_HOME={home} {sys.executable} -m cli --db {store_copy} tui --step results"
    )
    tmux = Tmux(f"ft-hallu-results-{uuid.uuid4().hex[:8]}")
    env = {**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm-256color"}
    subprocess.run(
        ["tmux", "-L", tmux.socket, "-f", "/dev/null", "new-session", "-d", "-s", "tui", "-x", "80", "-y", "24",
         "bash", "-c", command],
        check=True, env=env, timeout=30,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        screen = tmux.screen()
        while flat(entity.headline) not in flat(screen):  # no key pressed: the finding is the first screen
            assert time.monotonic() < deadline, f"the headline never showed; the screen was:\n{screen}"
            time.sleep(0.5)
            screen = tmux.screen()
        (tmp_path / "results-80x24.txt").write_text(screen)
        print(screen)  # pytest -s shows what a person sees
        lines = screen.splitlines()
        assert len(lines) <= 24 and max(len(line) for line in lines) <= 80
        for row in summary_table(entity, long=True)[1]:
            assert " ".join(row) in flat(screen), (row, screen)
        assert flat(entity.prompts[0].text) in flat(screen)
        # c: the cells, a group of metric columns with whole titles; right: the next group.
        tmux.keys("c")
        screen = tmux.wait_for("[hallucination", timeout=30)
        titles = {
            catalog.cell_metric(m).title for _g, metrics in catalog.cell_metric_groups() for m in metrics
        }
        lines = screen.splitlines()
        header = next(i for i, line in enumerate(lines) if re.search(r"\bprompt\b.*\bb\b.*\bft\b", line))
        above = lines[header - 1]
        for word in above.replace("█", " ").split():  # a title whole, never 'entrop'
            assert word in titles, (word, above)
        tmux.keys("Right")
        screen = tmux.wait_for("[answers", timeout=30)
        # enter: the chosen cell's samples, each with its main score, on the whole screen.
        tmux.keys("Enter")
        screen = tmux.wait_for(catalog.main_score().label, timeout=30)
        assert "label:" in screen
        tmux.keys("Escape")
        tmux.wait_for("[answers", timeout=30)
        tmux.keys("C-q")
    finally:
        tmux.run("kill-server")
