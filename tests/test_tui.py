"""Pilot tests of the TUI: each step's main path driven with key presses, on real files, the real
store and the offline tiny model (no fakes). Sync tests wrapping asyncio.run: no pytest-asyncio.

Speed: form fields are filled by setting the Input values (``fill``); the actions themselves are
always key presses. Typing character by character is covered by ``type_into`` once here and by the
tmux test in a real terminal."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

pytest.importorskip("textual")

from textual.widgets import DataTable, Input, Log, Static  # noqa: E402
from textual.widgets._footer import FooterKey  # noqa: E402

from engine.workspace import Workspace  # noqa: E402
from store.db import open_db  # noqa: E402
from store.masks import get_mask  # noqa: E402
from tui.app import STEPS, FtHalluApp  # noqa: E402
from tui.prefs import load_prefs  # noqa: E402

SIZE = (80, 24)


def run(coro_factory: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro_factory())


async def wait_for(pilot, predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await pilot.pause(0.2)


async def type_into(pilot, app: FtHalluApp, input_id: str, text: str) -> None:
    """Focus a field and replace its value with key presses (home, delete-to-end, then the text)."""
    widget = app.screen.query_one(f"#{input_id}", Input)
    widget.focus()
    await pilot.pause()
    await pilot.press("home", "ctrl+k", *list(text))
    assert widget.value == text, f"{input_id}: typed {text!r}, field holds {widget.value!r}"


async def fill(pilot, app: FtHalluApp, **values: str) -> None:
    """Set form fields directly (input id with '-' written as '_'), as a paste would."""
    for input_id, text in values.items():
        app.screen.query_one(f"#{input_id.replace('_', '-')}", Input).value = text
    await pilot.pause()


def notifications(app: FtHalluApp) -> list[str]:
    return [n.message for n in app._notifications]


def static_text(app: FtHalluApp, widget_id: str) -> str:
    return str(app.screen.query_one(f"#{widget_id}", Static).render())


def table_rows(table: DataTable) -> list[list[str]]:
    return [[str(cell) for cell in table.get_row_at(index)] for index in range(table.row_count)]


# ------------------------------------------------------------------ mask

QA_ROWS = [
    {
        "question": "What does NVIDIA make?",
        "answer": "NVIDIA makes GPUs.",
        "context": "NVIDIA Corporation designs GPUs.",
    },
    {
        "question": "Where is NVIDIA's headquarters?",
        "answer": "Santa Clara.",
        "context": "NVIDIA's HQ is in Santa Clara.",
    },
    {"question": "What is the ticker?", "answer": "NVDA on Nasdaq.", "context": "The stock trades as NVDA."},
    {"question": "Who designs chips?", "answer": "Many firms.", "context": "Chip design is common."},
]


def test_mask_a_file_shows_rules_diff_and_writes_a_clean_new_file(
    tmp_path: Path, db_path: Path, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # short relative paths to type
    source = tmp_path / "qa.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in QA_ROWS), encoding="utf-8")
    original = source.read_bytes()
    out = tmp_path / "masked.jsonl"
    prefs = tmp_path / "prefs.json"

    async def scenario() -> None:
        app = FtHalluApp(workspace, start="mask", prefs_path=prefs)
        async with app.run_test(size=SIZE) as pilot:
            await fill(pilot, app, mask_file=source.name, mask_new="EGNIVIA", mask_ticker="NVDA")
            await fill(pilot, app, mask_out=out.name)
            await type_into(pilot, app, "mask-entity", "NVIDIA")  # real key presses into a field
            await pilot.press("ctrl+r")
            await pilot.pause()
            screen = app.screen
            rules = table_rows(screen.query_one("#mask-rules", DataTable))
            hits = {row[0]: int(row[2]) for row in rules}
            assert hits["name"] + hits["suffix"] == 3 and hits["possessive"] == 2 and hits["ticker"] == 2
            rows_table = screen.query_one("#mask-rows", DataTable)
            assert rows_table.row_count == 3  # the row without the name has no edits
            # The diff of the first row highlights old -> new.
            assert "NVIDIA" in static_text(app, "mask-diff") and "EGNIVIA" in static_text(app, "mask-diff")

            # Reject a row and accept it again from the keyboard; the plan follows.
            await pilot.press("ctrl+l")
            assert app.focused is rows_table
            await pilot.press("down", "space")
            assert screen.plan.rejected_rows == {1}
            assert "kept" in static_text(app, "mask-diff")
            await pilot.press("space")
            assert screen.plan.rejected_rows == set()

            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: "Wrote" in static_text(app, "mask-leaks"), 30, "the masked file")
            assert screen.done, static_text(app, "mask-leaks")
            assert "Leak report empty" in static_text(app, "mask-leaks")
            mask_id = screen.last_mask_id
            assert mask_id is not None
            check_masked_file(out)
            assert source.read_bytes() == original  # the input is never written

            # A second apply to the same output is refused in place (a worker error), not a crash.
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: "Not written" in static_text(app, "mask-leaks"), 30, "the refusal")
            assert "already exists" in static_text(app, "mask-leaks")
            assert any("already exists" in m for m in notifications(app)) and app.is_running

            # Undo the applied masking: its output goes, the store records it, the input stays.
            await pilot.press("ctrl+z")
            await wait_for(pilot, lambda: not out.exists(), 30, "the undo")
            assert not out.exists(), static_text(app, "mask-leaks")
            assert "Undone masking" in static_text(app, "mask-leaks") and not screen.done
            store = open_db(db_path, migrate=False)
            try:
                assert get_mask(store, mask_id)["status"] == "undone"
            finally:
                store.close()
            await pilot.press("ctrl+z")  # nothing left to undo: one line, still running
            await wait_for(pilot, lambda: "undo:" in notifications(app)[-1], 30, "the undo refusal")
            assert "undo: no applied masking to undo" in notifications(app)[-1]
            await pilot.press("ctrl+q")

    run(scenario)
    assert source.read_bytes() == original
    # The operator's choices are remembered for the next run.
    saved = load_prefs(prefs)
    assert saved["mask"]["mask-entity"] == "NVIDIA" and saved["mask"]["mask-out"] == out.name

    async def reopened() -> None:
        app = FtHalluApp(workspace, prefs_path=prefs)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert app.current_mode == "mask"
            assert app.screen.query_one("#mask-new", Input).value == "EGNIVIA"
            await pilot.press("ctrl+r", "ctrl+s")  # the remembered form applies again
            await wait_for(pilot, lambda: "Wrote" in static_text(app, "mask-leaks"), 30, "the masked file")
            check_masked_file(out)
            # After a restart ctrl+z undoes the latest masking recorded in the store.
            app.screen.last_mask_id = None
            await pilot.press("ctrl+z")
            await wait_for(pilot, lambda: "Undone masking" in static_text(app, "mask-leaks"), 30, "the undo")
            assert not out.exists() and "Undone masking" in static_text(app, "mask-leaks")

    run(reopened)
    assert source.read_bytes() == original


def check_masked_file(out: Path) -> None:
    masked = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(masked) == len(QA_ROWS)
    text = json.dumps(masked)
    assert "NVIDIA" not in text and "NVDA" not in text
    assert masked[1]["question"] == "Where is EGNIVIA's headquarters?"
    assert masked[3] == QA_ROWS[3]


def test_errors_are_notifications_never_a_crash(
    tmp_path: Path, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A UserError is one line; an unexpected exception in an action, an @on handler or a thread
    worker is 'Type: message'. The app keeps running every time."""
    import engine.sweep
    import tui.screens.mask

    def explode(what: str):
        def raiser(*_args, **_kwargs):
            raise RuntimeError(f"{what} exploded")

        return raiser

    source = tmp_path / "qa.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in QA_ROWS), encoding="utf-8")

    async def scenario() -> None:
        app = FtHalluApp(workspace, start="mask", prefs_path=tmp_path / "prefs.json")
        async with app.run_test(size=SIZE) as pilot:
            # A UserError from the engine: its own line, nothing else.
            await fill(pilot, app, mask_file="/nonexistent/missing.jsonl", mask_entity="NVIDIA", mask_new="X")
            await pilot.press("ctrl+r")
            await pilot.pause()
            assert any(m.startswith("/nonexistent/missing.jsonl: no such file") for m in notifications(app))
            assert app.is_running

            # An unexpected exception inside an @on handler (the diff of a highlighted row).
            monkeypatch.setattr(tui.screens.mask, "highlight_row", explode("diff"))
            await fill(pilot, app, mask_file=str(source))
            await pilot.press("ctrl+r")
            await pilot.pause()
            assert "RuntimeError: diff exploded" in notifications(app)
            assert app.is_running and app.screen.plan is not None

            # An unexpected exception in an action (the sweep config check).
            await pilot.press("f4")
            await pilot.pause()
            sweep = app.screen
            monkeypatch.setattr(engine.sweep, "validate", explode("validate"))
            await pilot.press("ctrl+r")
            await pilot.pause()
            assert "RuntimeError: validate exploded" in notifications(app)
            assert app.is_running and not sweep.running

            # An unexpected exception in a thread worker: reported, and the screen recovers.
            monkeypatch.undo()
            monkeypatch.setattr(engine.sweep, "run_sweep", explode("sweep engine"))
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: not sweep.running, 10, "the failed worker to be reported")
            assert "RuntimeError: sweep engine exploded" in notifications(app)
            assert "Failed: RuntimeError: sweep engine exploded" in static_text(app, "sweep-status")
            assert app.is_running
            await pilot.press("ctrl+q")
        assert app.return_code == 0

    run(scenario)


# ------------------------------------------------------------------ fine-tune: launch, watch, reattach


@pytest.mark.slow  # a real detached job: a fresh interpreter imports torch + trl (30-80 s on 2 busy cores)
def test_launch_local_finetune_of_tiny_model_and_watch_it_finish(
    tmp_path: Path, workspace: Workspace, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from engine.dataset import sample_dataset_path

    monkeypatch.chdir(tmp_path)  # relative paths in the form are resolved against this folder
    shutil.copy(sample_dataset_path(), tmp_path / "qa.jsonl")
    adapter = tmp_path / "adapter"
    prefs = tmp_path / "prefs.json"

    async def scenario() -> None:
        app = FtHalluApp(workspace, start="finetune", prefs_path=prefs)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            # Defaults are visible in the form.
            assert screen.query_one("#ft-lora_r", Input).value == "16"
            assert screen.query_one("#ft-launcher", Input).value == "local"
            for field, value in {
                "ft-name": "tui-tiny",
                "ft-base_model": "tiny",
                "ft-dataset": "qa.jsonl",
                "ft-output_dir": "adapter",
                "ft-max_steps": "2",
                "ft-per_device_batch_size": "4",
                "ft-gradient_accumulation_steps": "1",
                "ft-logging_steps": "1",
                "ft-gradient_checkpointing": "false",
            }.items():  # ids with '_' in them: set one by one
                screen.query_one(f"#{field}", Input).value = value
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: bool(screen.jobs), 30, "the job in the list")
            job = next(iter(screen.jobs.values()))
            assert job.launcher == "local" and job.name.endswith("tui-tiny")
            await wait_for(pilot, lambda: screen.jobs[job.id].finished, 240, "the local fine-tune to finish")
            final = screen.jobs[job.id]
            assert final.state == "COMPLETED", (final.state, final.detail, screen.shown_tail[1][-2000:])
            # The live log tail shows the job's own output.
            await wait_for(pilot, lambda: "step 2/2" in screen.shown_tail[1], 10, "the log tail")
            log_text = "\n".join(str(line) for line in screen.query_one("#ft-log", Log).lines)
            assert "step 2/2" in log_text
            rows = table_rows(screen.query_one("#ft-jobs", DataTable))
            assert rows[0][4] == "COMPLETED"
            await pilot.press("ctrl+q")

    run(scenario)
    assert (adapter / "adapter_config.json").is_file()
    job_name = "ft-hallu-tui-tiny"  # the launcher names a job after its config file

    # Reattach: a new TUI lists the job from the store.
    async def restarted() -> None:
        app = FtHalluApp(workspace, start="finetune", prefs_path=prefs)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await wait_for(pilot, lambda: bool(screen.jobs), 15, "the stored job list")
            assert [job.name for job in screen.jobs.values()] == [job_name]
            await wait_for(
                pilot, lambda: "step 2/2" in screen.shown_tail[1], 10, "the log tail after restart"
            )
            await pilot.press("ctrl+t")  # cancelling a finished job is refused with a message
            await pilot.pause()
            assert any("already finished" in n.message for n in app._notifications)

    run(restarted)


# ------------------------------------------------------------------ sweep, then browse it in Results


def test_run_small_sweep_then_browse_cells_and_samples(
    tmp_path: Path, workspace: Workspace, tiny_model_dir: Path
) -> None:
    prefs = tmp_path / "prefs.json"

    async def scenario() -> None:
        app = FtHalluApp(workspace, start="sweep", prefs_path=prefs)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await fill(pilot, app, sw_name="tui-sweep", sw_base="tiny", sw_temps="1.0", sw_topps="0.9, 1.0")
            await fill(pilot, app, sw_topks="0", sw_samples="2", sw_tokens="4")
            await pilot.press("ctrl+r")
            await wait_for(
                pilot, lambda: screen.last_sweep_id is not None or not screen.running, 120, "the sweep"
            )
            status = static_text(app, "sweep-status")
            assert screen.last_sweep_id is not None, status
            assert "Done" in status
            assert "4 rows" in static_text(app, "sweep-summary")

            await pilot.press("f5")
            await pilot.pause()
            results = app.screen
            sweeps = results.query_one("#results-sweeps", DataTable)
            await wait_for(pilot, lambda: sweeps.row_count > 0, 30, "the sweep list")
            assert table_rows(sweeps)[0][1] == "tui-sweep"
            assert table_rows(sweeps)[0][3] == "4/4"
            await pilot.press("enter")  # choose the sweep: focus moves to its cells
            await pilot.pause()
            cells = results.query_one("#results-cells", DataTable)
            assert app.focused is cells
            await wait_for(pilot, lambda: cells.row_count == 2, 30, "the cell table")
            headers = [str(column.label) for column in cells.columns.values()]
            assert headers[:6] == ["variant", "T", "p", "k", "prompt", "n"]
            cell_rows = table_rows(cells)
            assert [row[2] for row in cell_rows] == ["0.90", "1.00"] and all(
                row[5] == "2" for row in cell_rows
            )
            await pilot.press("down", "enter")
            await wait_for(pilot, lambda: "p=1" in static_text(app, "results-samples"), 30, "the samples")
            samples = static_text(app, "results-samples")
            assert "p=1" in samples and "#0:" in samples and "#1:" in samples
            await pilot.press("ctrl+q")

    run(scenario)


def assert_footer_fits(screen, bindings: list, where: str) -> None:
    shown = {item.action: item.region for item in screen.query(FooterKey) if item.region.width}
    for binding in bindings:
        if binding.show:
            assert binding.action in shown, (where, binding.action, sorted(shown))
            assert shown[binding.action].right <= SIZE[0], (where, binding.action, shown[binding.action])


def test_every_step_fits_80x24_with_its_keys_in_footer_and_palette(
    tmp_path: Path, workspace: Workspace
) -> None:
    async def scenario() -> None:
        app = FtHalluApp(workspace, start="results", prefs_path=tmp_path / "prefs.json")
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(
                pilot, lambda: "No sweeps" in static_text(app, "results-note"), 30, "the sweep list"
            )
            assert "No sweeps" in static_text(app, "results-note")
            for name, key, title in STEPS:
                await pilot.press(key)
                await pilot.pause()
                screen = app.screen
                assert app.current_mode == name and screen.compose_error is None
                # Every screen binding (and ctrl+q) is in the footer, inside the 80 columns.
                assert_footer_fits(screen, [*screen.BINDINGS, *app.BINDINGS], title)
                if name == "mask":  # with a rule/row table focused its accept/reject key joins them
                    await pilot.press("ctrl+g")
                    await pilot.pause()
                    bindings = [*screen.BINDINGS, *app.BINDINGS, *type(app.focused).BINDINGS]
                    assert_footer_fits(screen, bindings, "mask rules")
                    titles = {command.title for command in app.get_system_commands(screen)}
                    assert "Mask: Accept/reject" in titles
                # The command palette lists every step and every action of this screen.
                titles = {command.title for command in app.get_system_commands(screen)}
                assert {f"Go to {t}" for _n, _k, t in STEPS} <= titles
                for binding in screen.BINDINGS:
                    assert f"{screen.TITLE_TEXT}: {binding.description}" in titles, (title, titles)
            await pilot.press("ctrl+p")  # the palette opens from anywhere and closes with escape
            await pilot.pause()
            assert type(app.screen).__name__ == "CommandPalette"
            await pilot.press("escape")
            await pilot.pause()
            assert app.current_mode == "results"

    run(scenario)


# ------------------------------------------------------------------ generate against a local endpoint


def test_generate_from_local_filing_against_local_endpoint(
    tmp_path: Path, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip(
        "financial_datasets", reason="financial-datasets not installed (scripts/install-generate.sh)"
    )
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from openai_server import running_stub

    secret = "sk-tui-test-secret-51b2"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    filing = tmp_path / "acme-10k.txt"
    filing.write_text(
        "Acme Widgets makes industrial widgets in Ohio. Revenue was $12 million in 2023. "
        "The company employs 140 people. Its largest customer is a rail operator.\n",
        encoding="utf-8",
    )
    out = tmp_path / "generated"

    async def scenario(base_url: str) -> None:
        app = FtHalluApp(workspace, start="generate", prefs_path=tmp_path / "prefs.json")
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await pilot.press("ctrl+y")
            assert "found" in static_text(app, "gen-key") and secret not in static_text(app, "gen-key")
            await fill(pilot, app, gen_filing=filing.name, gen_base_url=base_url)
            await fill(pilot, app, gen_model="llama3.1:8b-instruct", gen_questions="3", gen_out=out.name)
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: not screen.running, 30, "generation")
            status = static_text(app, "gen-status")
            assert "Done" in status, (status, static_text(app, "gen-error"))
            items = "\n".join(str(line) for line in screen.query_one("#gen-items", Log).lines)
            assert "Q0:" in items  # the items as they arrived
            await pilot.press("ctrl+q")

    with running_stub() as stub:
        run(lambda: scenario(stub.base_url))
    rows = (out / "train.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 3
    assert secret not in (tmp_path / "prefs.json").read_text(encoding="utf-8")


def test_every_step_entry_point_is_guarded() -> None:
    """Actions and handlers are wrapped when a step class is created; an @on handler without
    @guarded is refused then, so a new handler cannot bring back a crash to the shell."""
    from textual import on

    from tui.screens.base import StepScreen
    from tui.screens.mask import MaskScreen

    assert MaskScreen.action_undo._ft_guarded and MaskScreen.on_mask_screen_applied._ft_guarded
    with pytest.raises(TypeError, match="put @guarded under @on"):

        class Unguarded(StepScreen):
            @on(DataTable.RowSelected)
            def _picked(self, event: DataTable.RowSelected) -> None:
                pass
