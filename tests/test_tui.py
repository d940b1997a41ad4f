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

from textual.widgets import DataTable, Input, RichLog, Static  # noqa: E402
from textual.widgets._footer import FooterKey  # noqa: E402

from engine.workspace import Workspace  # noqa: E402
from store.db import open_db  # noqa: E402
from store.masks import get_mask  # noqa: E402
from tui.app import STEPS, FtHalluApp  # noqa: E402
from tui.dialogs import ChoiceScreen  # noqa: E402
from tui.prefs import load_prefs  # noqa: E402
from tui.screens.base import log_text  # noqa: E402
from tui.steps import step_key  # noqa: E402

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


async def fill(pilot, app: FtHalluApp, ids: dict[str, str] | None = None, **values: str) -> None:
    """Set form fields directly, as a paste would: ``ids`` by input id, ``values`` by input id with
    '-' written as '_' (for ids without '_' of their own)."""
    for input_id, text in {**(ids or {}), **{k.replace("_", "-"): v for k, v in values.items()}}.items():
        app.screen.query_one(f"#{input_id}", Input).value = text
    await pilot.pause()


def notifications(app: FtHalluApp) -> list[str]:
    return [n.message for n in app._notifications]


def static_text(app: FtHalluApp, widget_id: str) -> str:
    return str(app.screen.query_one(f"#{widget_id}", Static).render())


def table_rows(table: DataTable) -> list[list[str]]:
    return [[str(cell) for cell in table.get_row_at(index)] for index in range(table.row_count)]


def input_value(app: FtHalluApp, input_id: str) -> str:
    return app.screen.query_one(f"#{input_id}", Input).value


async def answer(pilot, app: FtHalluApp, key: str, *, expect: str) -> str:
    """Wait for the modal question, check it says ``expect``, answer with ``key``; returns its text."""
    await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen), 30, f"the question ({expect})")
    choices = "\n".join(f"{k}: {label}" for k, label, _value in app.screen.answers)
    question = f"{app.screen.title_text}\n{app.screen.question}\n{choices}"
    assert expect in question, question
    await pilot.press(key)
    await wait_for(pilot, lambda: not isinstance(app.screen, ChoiceScreen), 10, "the question to close")
    return question


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

            # Hand-off: the masked file is Fine-tune's dataset and Sweep's dataset and entity.
            await pilot.press("f4")
            await wait_for(pilot, lambda: app.current_mode == "finetune", 10, "Fine-tune")
            await wait_for(
                pilot, lambda: input_value(app, "ft-dataset") == str(out.resolve()), 10, "the dataset"
            )
            # Loading a TOML fills the form from it but keeps what the previous step just wrote.
            tiny_toml = Path(__file__).resolve().parents[1] / "configs" / "finetune.tiny.toml"
            await fill(pilot, app, ft_config_file=str(tiny_toml))
            await pilot.press("ctrl+o")
            await wait_for(pilot, lambda: input_value(app, "ft-name") == "tiny-demo", 10, "the loaded TOML")
            assert input_value(app, "ft-dataset") == str(out.resolve())
            assert any("kept dataset" in m for m in notifications(app))
            await pilot.press("f6")
            await wait_for(
                pilot, lambda: input_value(app, "sw-dataset") == str(out.resolve()), 10, "sweep dataset"
            )
            assert input_value(app, "sw-entity_name") == "EGNIVIA"
            await pilot.press("f3")
            await wait_for(pilot, lambda: app.current_mode == "mask", 10, "Mask again")

            # A second apply to the same output asks first; 'n' writes nothing.
            written = out.read_bytes()
            await pilot.press("ctrl+s")
            await answer(pilot, app, "n", expect=f"{out.name} already exists")
            assert out.read_bytes() == written and "Wrote" in static_text(app, "mask-leaks")

            # Undo asks first: 'n' keeps the file, 'y' undoes: its output goes, the store records it.
            await pilot.press("ctrl+z")
            await answer(pilot, app, "n", expect="Undo")
            assert out.exists()
            await pilot.press("ctrl+z")
            await answer(pilot, app, "y", expect=f"Undo masking {mask_id}")
            await wait_for(pilot, lambda: not out.exists(), 30, "the undo")
            assert not out.exists(), static_text(app, "mask-leaks")
            assert "Undone masking" in static_text(app, "mask-leaks") and not screen.done
            store = open_db(db_path, migrate=False)
            try:
                assert get_mask(store, mask_id)["status"] == "undone"
            finally:
                store.close()
            await pilot.press("ctrl+z")  # nothing left to undo: one line, still running
            await answer(pilot, app, "y", expect="Undo")
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
            await answer(pilot, app, "y", expect="the latest applied masking")
            await wait_for(pilot, lambda: "Undone masking" in static_text(app, "mask-leaks"), 30, "the undo")
            assert not out.exists() and "Undone masking" in static_text(app, "mask-leaks")

    run(reopened)
    assert source.read_bytes() == original


NAMED_ROWS = [
    {
        "question": "What is the [bold]Stridebot[/bold]?",
        "answer": "NVIDIA's Stridebot moves shelves.",
        "context": "NVIDIA's main product is the Stridebot. Mara Lindqvist has served as Chief Executive Officer since 2016.",
    },
    {
        "question": "Who keeps NVIDIA's share register?",
        "answer": "Computershare Trust Company.",
        "context": "Computershare Trust Company serves as NVIDIA's transfer agent.",
    },
]


def test_mask_screen_reports_identifying_names_and_masks_them_in_the_plan(
    tmp_path: Path, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Mask screen shows the report mask-leaks prints; ctrl+n adds the names to the plan, space
    on a leak: rule keeps a name; the step is done only when nothing identifying is left."""
    from engine import mask
    from tui.screens.mask import NAMES_HINT

    monkeypatch.chdir(tmp_path)
    source = tmp_path / "named.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in NAMED_ROWS), encoding="utf-8")
    out = tmp_path / "named.masked.jsonl"

    async def scenario() -> None:
        app = FtHalluApp(workspace, start="mask", prefs_path=tmp_path / "prefs.json")
        async with app.run_test(size=SIZE) as pilot:
            await fill(pilot, app, mask_file=source.name, mask_entity="NVIDIA", mask_new="EGNIVIA")
            await fill(pilot, app, mask_out=out.name)
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: "would leave" in static_text(app, "mask-leaks"), 30, "the report")
            screen = app.screen
            text = static_text(app, "mask-leaks")
            # The very lines of the engine report mask-leaks prints, with this screen's hint.
            expected = mask.plan_leak_report(mask.plan_file(source, screen.plan.rules)).lines(hint=NAMES_HINT)
            assert all(line in text for line in expected), text
            assert "Stridebot (" in text and "Mara Lindqvist (" in text and "ctrl+n" in text
            assert "Computershare" not in text  # a transfer agent is a third party
            assert "[bold]Stridebot[/bold]" in text  # dataset text is shown, never read as markup

            await pilot.press("ctrl+s")  # the name is masked, the products are not: not done
            await wait_for(pilot, lambda: "Wrote" in static_text(app, "mask-leaks"), 30, "the masked file")
            text = static_text(app, "mask-leaks")
            assert "LEAKS REMAIN" in text and "Leak report empty" not in text and not screen.done
            assert "2 identifying name(s) (ctrl+n masks them)" in notifications(app)[-1]

            await pilot.press("ctrl+n")
            await wait_for(
                pilot, lambda: "nothing identifying" in static_text(app, "mask-leaks"), 30, "names"
            )
            rules = [row[0] for row in table_rows(screen.query_one("#mask-rules", DataTable))]
            assert rules[-2:] == ["leak:Mara Lindqvist", "leak:Stridebot"] or rules[-2:] == [
                "leak:Stridebot",
                "leak:Mara Lindqvist",
            ]
            new = next(r.replacement for r in screen.plan.rules if r.id == "leak:Stridebot")
            assert new in static_text(app, "mask-diff")  # the diff shows the invented name
            # Long rules and names wrap inside the box (42 columns): nothing cut, no sideways scroll.
            await pilot.pause()
            table = screen.query_one("#mask-rules", DataTable)
            assert table.max_scroll_x == 0 and table.virtual_size.width <= table.outer_size.width
            shown = [" ".join(str(cell).split()) for row in table_rows(table) for cell in row]
            assert all(rule.id in shown and rule.replacement in shown for rule in screen.plan.rules)
            # Keep Mara Lindqvist on purpose: space on her rule.
            await pilot.press("ctrl+g")
            for _ in range(rules.index("leak:Mara Lindqvist")):
                await pilot.press("down")
            await pilot.press("space")
            assert "leak:Mara Lindqvist" in screen.plan.rejected_rules
            await wait_for(pilot, lambda: "kept on purpose" in static_text(app, "mask-leaks"), 30, "kept")

            await pilot.press("ctrl+s")
            await answer(pilot, app, "y", expect=f"{out.name} already exists")
            await wait_for(pilot, lambda: "Leak report empty" in static_text(app, "mask-leaks"), 30, "done")
            assert screen.done and "Mara Lindqvist (1)" in static_text(app, "mask-leaks")
            await pilot.press("ctrl+q")

    run(scenario)
    written = out.read_text(encoding="utf-8")
    assert "Stridebot" not in written and "NVIDIA" not in written and "Mara Lindqvist" in written


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
    import engine.job_kinds
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
            await pilot.press("f6")
            await pilot.pause()
            sweep = app.screen
            monkeypatch.setattr(engine.sweep, "validate", explode("validate"))
            await pilot.press("ctrl+r")
            await pilot.pause()
            assert "RuntimeError: validate exploded" in notifications(app)
            assert app.is_running and not sweep.running

            # An unexpected exception in a thread worker (the job submission): reported, the screen recovers.
            monkeypatch.undo()
            monkeypatch.setattr(engine.job_kinds, "launch_sweep", explode("sweep engine"))
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: not sweep.running, 60, "the failed worker to be reported")
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
    launched: list[int] = []

    async def scenario() -> None:
        app = FtHalluApp(workspace, start="finetune", prefs_path=prefs)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            # Defaults are visible in the form (the advanced ones folded away).
            assert screen.query_one("#ft-lora_r", Input).value == "16"
            assert screen.query_one("#ft-launcher", Input).value == "local"
            await fill(pilot, app, {
                "ft-name": "tui-tiny", "ft-base_model": "tiny", "ft-dataset": "qa.jsonl",
                "ft-output_dir": "adapter", "ft-max_steps": "2", "ft-per_device_batch_size": "4",
                "ft-gradient_accumulation_steps": "1", "ft-logging_steps": "1",
                "ft-gradient_checkpointing": "false",
            })  # fmt: skip
            await pilot.press("ctrl+r")
            # The launch opens the Jobs step on the new job.
            await wait_for(pilot, lambda: app.current_mode == "jobs", 30, "the Jobs step")
            jobs = app.screen
            await wait_for(pilot, lambda: bool(jobs.jobs), 30, "the job in the list")
            job = next(iter(jobs.jobs.values()))
            assert job.launcher == "local" and job.name.endswith("tui-tiny") and jobs.selected == job.id
            launched.append(job.id)
            # Quit while it trains: the question names the job, y quits at once and it keeps running.
            if not jobs.jobs[job.id].finished:
                await pilot.press("ctrl+q")
                await answer(pilot, app, "y", expect=f"finetune job {job.id}")
        assert app.return_code == 0 and any(f"job {job.id}" in line for line in app.left_running)

    run(scenario)

    async def reattached() -> None:
        app = FtHalluApp(workspace, start="jobs", prefs_path=prefs)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            job_id = launched[0]
            await wait_for(pilot, lambda: job_id in screen.jobs, 30, "the job after the restart")
            await wait_for(pilot, lambda: screen.jobs[job_id].finished, 240, "the local fine-tune to finish")
            await wait_for(pilot, lambda: screen.reports[job_id].adapter is not None, 30, "its run record")
            report = screen.reports[job_id]
            assert screen.jobs[job_id].state == "COMPLETED", (report.detail, report.log[-2000:])
            # The detail says what finished, its losses, where the adapter is and how long it took.
            detail = static_text(app, "jobs-detail")
            assert "COMPLETED in" in detail and "train loss" in detail and f"adapter in {adapter}" in detail
            # The log tail shows the job's own lines (the losses), wrapped rather than cut, no bars.
            await wait_for(pilot, lambda: "step 2/2" in log_text(screen.query_one("#jobs-log", RichLog)), 10, "log")
            assert "%|" not in log_text(screen.query_one("#jobs-log", RichLog))
            row = table_rows(screen.query_one("#jobs-table", DataTable))[0]
            assert row[1:5] == ["fine-tune", "tui-tiny", "COMPLETED", "2/2 steps"]
            # The same run name again: the adapter folder is in use, so it asks before any job starts.
            await pilot.press("f4")
            await wait_for(pilot, lambda: app.current_mode == "finetune", 10, "Fine-tune")
            await pilot.press("ctrl+r")
            await answer(pilot, app, "n", expect=f"{adapter} already holds a run")
            await pilot.pause(0.5)
            assert len(workspace.jobs(refresh=False)) == 1
            # Hand-off: the finished adapter (and its base) is the Sweep's.
            await pilot.press("f6")
            await wait_for(pilot, lambda: input_value(app, "sw-adapter") == str(adapter), 10, "the adapter")
            assert input_value(app, "sw-base_model") == "tiny"
            await pilot.press("ctrl+q")

    run(reattached)
    assert (adapter / "adapter_config.json").is_file()
    job_name = "ft-hallu-tui-tiny"  # the launcher names a job after its config file

    # Reattach: a new TUI lists the job from the store.
    async def restarted() -> None:
        app = FtHalluApp(workspace, start="jobs", prefs_path=prefs)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await wait_for(pilot, lambda: bool(screen.jobs), 15, "the stored job list")
            assert [job.name for job in screen.jobs.values()] == [job_name]
            await wait_for(
                pilot, lambda: "step 2/2" in log_text(screen.query_one("#jobs-log", RichLog)), 10, "the log"
            )
            await pilot.press("ctrl+t")  # cancelling a finished job is refused with a message
            await pilot.pause()
            assert any("already finished" in n.message for n in app._notifications)

    run(restarted)


# ------------------------------------------------------------------ sweep as a job, then Results


@pytest.mark.slow  # a real detached job: a fresh interpreter imports torch (20-60 s on 2 busy cores)
def test_sweep_runs_as_a_job_survives_quit_and_hands_its_sweep_to_results(
    tmp_path: Path, workspace: Workspace, tiny_model_dir: Path, tiny_adapter_dir: Path
) -> None:
    prefs = tmp_path / "prefs.json"

    async def scenario() -> None:
        app = FtHalluApp(workspace, start="sweep", prefs_path=prefs)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await fill(pilot, app, {"sw-name": "tui-sweep", "sw-base_model": "tiny", "sw-adapter": str(tiny_adapter_dir)})
            await fill(pilot, app, {"sw-grid-temperatures": "1.0", "sw-grid-top_ps": "0.9, 1.0", "sw-grid-top_ks": "0"})
            await fill(pilot, app, {"sw-samples_per_cell": "2", "sw-max_new_tokens": "4"})
            assert "ft-hallu job launch sweep --config" in static_text(app, "sweep-cli")
            assert "--local" in static_text(app, "sweep-cli")
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: screen.job is not None, 60, "the sweep job")
            first = screen.job
            assert first.kind == "sweep" and first.launcher == "local"
            # The job belongs to its own process: quitting asks, names it, and 'n' stays.
            if not screen.job.finished:
                await pilot.press("ctrl+q")
                question = await answer(pilot, app, "n", expect=f"sweep job {first.id}")
                assert "keeps running" in question and app.is_running
            await wait_for(pilot, lambda: screen.last_sweep_id is not None, 240, "the sweep job to be stored")
            status = static_text(app, "sweep-status")
            assert f"Done: sweep {screen.last_sweep_id} stored" in status, status
            assert "8/8 rows stored" in static_text(app, "sweep-summary")
            # The live log says which variant and cell each row belongs to.
            assert "finetuned T=1 p=0.9 k=0" in log_text(screen.query_one("#sweep-log", RichLog))
            sweep_id = screen.last_sweep_id

            # Hand-off: Results opens on the sweep just stored.
            await pilot.press("f7")
            results = app.screen
            await wait_for(pilot, lambda: results.sweep_id == sweep_id, 30, "the handed-on sweep")
            sweeps = results.query_one("#results-sweeps", DataTable)
            assert table_rows(sweeps)[0][1] == "tui-sweep" and table_rows(sweeps)[0][3] == "8/8"

            # The same config under another name is that sweep: shown, never "Done" with nothing stored.
            await pilot.press("f6")
            await wait_for(pilot, lambda: app.current_mode == "sweep", 10, "Sweep again")
            await fill(pilot, app, {"sw-name": "renamed"})
            await pilot.press("ctrl+r")
            question = await answer(pilot, app, "s", expect=f"Identical to sweep {sweep_id} ('tui-sweep'")
            assert "fresh seeds" in question
            await wait_for(pilot, lambda: app.current_mode == "results", 10, "Results")
            assert any(f"Identical to sweep {sweep_id}" in m for m in notifications(app))
            assert len(workspace.sweeps()) == 1

            # Fresh seeds: a new job with the next free seed; cancelling it asks first.
            await pilot.press("f6")
            await wait_for(pilot, lambda: app.current_mode == "sweep", 10, "Sweep again")
            await pilot.press("ctrl+r")
            await answer(pilot, app, "f", expect="Identical")
            await wait_for(pilot, lambda: screen.job is not None and screen.job.id != first.id, 60, "job 2")
            assert input_value(app, "sw-seed") == "2025"
            await pilot.press("ctrl+t")
            await answer(pilot, app, "y", expect=f"Cancel sweep job {screen.job.id}")
            await wait_for(pilot, lambda: screen.job.finished, 30, "the cancel")
            if screen.job.state != "CANCELLED":
                # The 8-row tiny job can end between the question and the kill (an idle machine did):
                # then it keeps its own end and the refusal says so.
                assert screen.job.state == "COMPLETED", screen.job.state
                await wait_for(
                    pilot, lambda: any("already finished" in " ".join(m.split()) for m in notifications(app)), 30, "refused"
                )
            await pilot.press("ctrl+q")  # nothing runs any more: quits at once
        assert app.return_code == 0

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
            # Which source holds the key is said (never the key itself).
            assert "API key: found in $OPENAI_API_KEY" in static_text(app, "gen-key")
            assert secret not in static_text(app, "gen-key")
            await fill(pilot, app, gen_filing=filing.name, gen_base_url=base_url)
            await fill(pilot, app, gen_model="llama3.1:8b-instruct", gen_questions="3", gen_out=out.name)
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: not screen.running, 30, "generation")
            status = static_text(app, "gen-status")
            assert "Done" in status, (status, static_text(app, "gen-error"))
            assert "Q0:" in log_text(screen.query_one("#gen-items", RichLog))  # items as they arrived
            # Hand-off: Check and Mask open with the generated file.
            await pilot.press("f2")
            await wait_for(pilot, lambda: app.current_mode == "check", 10, "Check")
            assert input_value(app, "check-file") == str((out / "train.jsonl").resolve())
            await pilot.press("f3")
            await wait_for(pilot, lambda: app.current_mode == "mask", 10, "Mask")
            assert input_value(app, "mask-file") == str((out / "train.jsonl").resolve())
            await pilot.press("ctrl+q")

    with running_stub() as stub:
        run(lambda: scenario(stub.base_url))
    rows = (out / "train.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 3
    assert secret not in (tmp_path / "prefs.json").read_text(encoding="utf-8")


def test_generate_folder_follows_the_source_and_says_what_is_missing(
    tmp_path: Path, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine import generate as gen

    monkeypatch.chdir(tmp_path)

    async def scenario() -> None:
        app = FtHalluApp(workspace, start="generate", prefs_path=tmp_path / "prefs.json")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("ctrl+r")  # no source at all: says what to give, not "...not both"
            await pilot.pause()
            assert "source: give a ticker (with a year) or a local filing" in notifications(app)
            assert not any("not both" in m for m in notifications(app))
            await fill(pilot, app, gen_ticker="NVDA", gen_year="2023")
            assert input_value(app, "gen-out") == str(gen.output_dir_for("NVDA-2023"))
            # Switching to a local filing moves the folder with it (it was never typed by hand).
            await fill(pilot, app, gen_ticker="", gen_filing="acme-10k.txt")
            assert input_value(app, "gen-out") == str(gen.output_dir_for("acme-10k"))
            await fill(pilot, app, gen_ticker="NVDA")
            await pilot.press("ctrl+r")
            await pilot.pause()
            assert any("not both" in m for m in notifications(app))
            # A folder typed by hand is the operator's: a new source leaves it alone.
            await fill(pilot, app, gen_ticker="", gen_out="mine")
            await fill(pilot, app, gen_filing="other.txt")
            assert input_value(app, "gen-out") == "mine"
            # Idle: the progress bar has a total (no indeterminate animation).
            assert app.screen.query_one("#gen-progress").total == 1

    run(scenario)


def test_below_80x24_says_so_and_notifications_time_out(tmp_path: Path, workspace: Workspace) -> None:
    async def small() -> None:
        app = FtHalluApp(workspace, start="mask", prefs_path=tmp_path / "prefs.json")
        async with app.run_test(size=(60, 20)) as pilot:
            await pilot.pause()
            note = app.screen.query_one("#too-small", Static)
            assert note.display and "needs 80x24" in str(note.render()) and "60x20" in str(note.render())
            app.notify("passing note")
            await pilot.pause(app.NOTIFICATION_TIMEOUT + 0.8)
            assert "passing note" not in notifications(app)  # gone without a key press

    async def big_enough() -> None:
        app = FtHalluApp(workspace, start="mask", prefs_path=tmp_path / "prefs.json")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert not app.screen.query_one("#too-small", Static).display

    run(small)
    run(big_enough)


def test_slurm_hint_names_the_launcher_field_not_a_cli_flag(
    tmp_path: Path, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no sbatch here: the engine's hint is about --local

    async def scenario() -> None:
        app = FtHalluApp(workspace, start="sweep", prefs_path=tmp_path / "prefs.json")
        async with app.run_test(size=SIZE) as pilot:
            # No adapter: another test may have left a finished one in the shared home, and the form
            # proposes the latest (its base would not fit "tiny" and the refusal would be about that).
            await fill(
                pilot, app, {"sw-launcher": "slurm", "sw-base_model": "tiny", "sw-name": "on-slurm", "sw-adapter": ""}
            )
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: "Failed" in static_text(app, "sweep-status"), 30, "the refusal")
            status = static_text(app, "sweep-status")
            assert "sbatch: not found" in status and "set launcher to local" in status, status
            assert "--local" not in status and not any("--local" in m for m in notifications(app))

    run(scenario)


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


def test_every_binding_has_an_id_and_a_tooltip() -> None:
    """As in posting: each key has an id (stable for a keymap, ``<screen>.<action>``) and a tooltip
    (shown in the command palette); no id is used twice."""
    from textual.binding import Binding

    from tui.app import SCREENS
    from tui.screens.blind import BlindLabelScreen
    from tui.screens.mask import ToggleTable

    owners = [FtHalluApp, ChoiceScreen, ToggleTable, BlindLabelScreen, *SCREENS.values()]
    bindings = [(owner.__name__, b) for owner in owners for b in owner.BINDINGS if isinstance(b, Binding)]
    assert len(bindings) == sum(len(owner.BINDINGS) for owner in owners)  # no tuple shorthands left
    missing = [(owner, b.key, b.action) for owner, b in bindings if not (b.id and b.tooltip)]
    assert missing == []
    ids = [b.id for _owner, b in bindings]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_in_flight_flags_are_reactives() -> None:
    from textual.reactive import Reactive

    from tui.screens.finetune import FinetuneScreen
    from tui.screens.generate import GenerateScreen
    from tui.screens.jobs import JobsScreen
    from tui.screens.sweep import SweepScreen

    for screen, names in ((SweepScreen, ("running", "polling")), (FinetuneScreen, ("running",)),
                          (GenerateScreen, ("running",)), (JobsScreen, ("polling",))):  # fmt: skip
        for name in names:
            assert isinstance(screen.__dict__.get(name), Reactive), (screen.__name__, name)


# ------------------------------------------------------------------ forms at 80x24: basic fields, focus, help


def visible_in(widget, container) -> bool:
    """The widget's whole row is inside the container's visible region (not scrolled away or cut)."""
    row, box = widget.region, container.region
    return row.height > 0 and box.y <= row.y and row.bottom <= box.bottom and row.bottom <= SIZE[1] - 1


def test_forms_show_their_basic_fields_at_80x24_with_a_visible_focus_and_help(
    tmp_path: Path, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every form's basic fields fit one 80x24 screen (the rest folded away); tab gives the row the
    marker, the bar and a highlighted label, and the line under the form the field's own help."""
    from engine.configfile import describe_setting
    from engine.finetune import FinetuneConfig
    from engine.sweep import SweepConfig
    from tui.screens import finetune as ft_screen
    from tui.screens import sweep as sw_screen

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    forms = {
        "generate": ("gen-form", ["gen-ticker", "gen-year", "gen-filing", "gen-identity", "gen-base-url",
                                  "gen-model", "gen-env-file", "gen-out"]),
        "check": ("check-form", ["check-file", "check-out"]),
        "mask": (None, ["mask-file", "mask-entity", "mask-new", "mask-ticker", "mask-aliases", "mask-out"]),
        "finetune": ("ft-form", ["ft-launcher", "ft-config-file",
                                 *(f"ft-{name}" for name in ft_screen.BASIC_FIELDS)]),
        "sweep": ("sweep-form", ["sw-launcher", "sw-config-file",
                                 *(f"sw-{name.replace('.', '-')}" for name in sw_screen.BASIC_FIELDS)]),
    }  # fmt: skip
    helps = {
        "ft-lora_r": describe_setting(FinetuneConfig, "lora_r"),
        "sw-grid-top_ps": describe_setting(SweepConfig, "grid.top_ps"),
    }

    async def scenario() -> None:
        app = FtHalluApp(workspace, start="generate", prefs_path=tmp_path / "prefs.json")
        async with app.run_test(size=SIZE) as pilot:
            for step, key, _title in STEPS:
                if step not in forms:
                    continue
                await pilot.press(key)
                await wait_for(pilot, lambda step=step: app.current_mode == step, 10, step)
                await pilot.pause()
                screen = app.screen
                form_id, basic = forms[step]
                box = screen.query_one(f"#{form_id}") if form_id else screen
                for input_id in basic:  # every basic row on screen at once, nothing scrolled
                    row = screen.query_one(f"#{input_id}", Input).parent
                    assert visible_in(row, box), (step, input_id, row.region, box.region)
                # Tab through the first ones, then the last: the focused row carries the marker and
                # its help is shown (the basic rows are all alike; fewer key presses keep this fast).
                screen.query_one(f"#{basic[0]}", Input).focus()
                for index, input_id in enumerate([*basic[:3], *basic[3:][-1:]]):
                    if index == 3:  # not reached by tab: focused directly
                        screen.query_one(f"#{input_id}", Input).focus()
                    await pilot.pause()
                    assert app.focused is screen.query_one(f"#{input_id}", Input), (step, app.focused)
                    row = app.focused.parent
                    marker = row.query_one(".field-marker")
                    assert row.has_pseudo_class("focus-within") and marker.styles.visibility == "visible"
                    assert visible_in(row, box), (step, input_id)
                    label, help_text = screen.help_texts[input_id]
                    assert help_text and static_text(app, "field-help") == f"{label}: {help_text}"
                    others = [m for m in screen.query(".field-marker") if m is not marker]
                    assert all(m.styles.visibility == "hidden" for m in others)
                    await pilot.press("tab")
            # The advanced settings are folded away: one row, tab reaches the title, enter opens it.
            await pilot.press("f4")
            await pilot.pause()
            screen = app.screen
            advanced = screen.query_one("#ft-advanced")
            assert advanced.collapsed and not screen.query_one("#ft-lora_r", Input).parent.region.height
            advanced.query_one("CollapsibleTitle").focus()
            await wait_for(pilot, lambda: "▶ advanced" in str(advanced.title), 10, "the fold's marker")
            await pilot.press("enter")
            await wait_for(pilot, lambda: not advanced.collapsed, 10, "the fold to open")
            await pilot.press("tab")
            await wait_for(pilot, lambda: app.focused is screen.query_one("#ft-overwrite", Input), 10, "overwrite")
            screen.query_one("#ft-lora_r", Input).focus()
            await pilot.pause()
            assert static_text(app, "field-help") == f"lora_r: {helps['ft-lora_r']}"
            assert visible_in(app.focused.parent, screen.query_one("#ft-form"))
            # Offline, a fresh form proposes a base model that loads here (the engine decides).
            from engine.proposals import propose_base_model

            proposed = propose_base_model()
            await wait_for(pilot, lambda: input_value(app, "ft-base_model") == proposed.base_model, 10, "base")
            if not proposed.is_default:
                assert f"proposed {proposed.base_model}" in static_text(app, "ft-status")
            await pilot.press("f6")
            await pilot.pause()
            app.screen.query_one("#sw-grid-top_ps", Input).focus()
            await pilot.pause()
            assert static_text(app, "field-help") == f"top_ps: {helps['sw-grid-top_ps']}"

    run(scenario)


def test_an_empty_log_gives_its_rows_to_the_form(tmp_path: Path, workspace: Workspace) -> None:
    from tui.screens.base import show_lines

    async def scenario() -> None:
        app = FtHalluApp(workspace, start="generate", prefs_path=tmp_path / "prefs.json")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = app.screen
            log, form = screen.query_one("#gen-items", RichLog), screen.query_one("#gen-form")
            assert not log.display and not screen.query_one("#gen-error").display
            screen.query_one("#gen-out", Input).focus()  # the last basic row
            await pilot.pause()
            roomy = form.region.height
            show_lines(log, [f"item {n}" for n in range(8)])
            await pilot.pause(0.3)
            assert log.display and form.region.height < roomy and "item 7" in log_text(log)
            assert visible_in(app.focused.parent, form)  # the focused row stays in view
            show_lines(log, [])
            await pilot.pause()
            assert not log.display and form.region.height == roomy

    run(scenario)


def test_a_long_value_shows_its_start_once_its_field_is_left(tmp_path: Path, workspace: Workspace) -> None:
    """Typing leaves a long value scrolled to its end; tab away and the field shows its start."""

    async def scenario() -> None:
        app = FtHalluApp(workspace, start="generate", prefs_path=tmp_path / "prefs.json")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            field = app.screen.query_one("#gen-filing", Input)
            field.focus()
            await pilot.pause()
            await pilot.press(*"reports/a-very-long-folder-name/and-another-one/annual-report-2024-final.htm")
            await pilot.pause()
            assert field.scroll_offset.x > 0  # the end is in view while typing
            await pilot.press("tab")
            await pilot.pause()
            assert app.focused is not field and field.scroll_offset.x == 0 and field.value.endswith("final.htm")

    run(scenario)


# ------------------------------------------------------------------ the dataset check step


def test_check_step_reports_duplicates_and_writes_a_deduplicated_copy(
    tmp_path: Path, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Check step shows what `dataset check` prints; ctrl+s writes the rows without exact
    duplicates to a NEW file (atomic, asks before replacing one) and hands it on: to Mask, or to
    Fine-tune and Sweep when the checked file is a masked output. The input is never written."""
    from engine import dataset as ds

    monkeypatch.chdir(tmp_path)
    source = tmp_path / "qa.jsonl"
    rows = [*QA_ROWS, QA_ROWS[0], QA_ROWS[1], QA_ROWS[0]]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    original = source.read_bytes()
    copy = tmp_path / "qa.dedup.jsonl"

    async def scenario() -> None:
        app = FtHalluApp(workspace, start="check", prefs_path=tmp_path / "prefs.json")
        async with app.run_test(size=SIZE) as pilot:
            await fill(pilot, app, check_file=source.name)
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: "rows:" in static_text(app, "check-report"), 30, "the report")
            report = static_text(app, "check-report")
            for line in ds.check(source.name).lines():  # the very lines the CLI prints
                assert line in report, (line, report)
            assert f"3 of 7 rows are exact duplicates: ctrl+s writes the other 4 to {copy.name}" in report
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: copy.exists() and "Wrote" in static_text(app, "check-report"), 30, "copy")
            assert source.read_bytes() == original
            assert [json.loads(line) for line in copy.read_text().splitlines()] == QA_ROWS
            assert f"{step_key('mask')} masks it" in static_text(app, "check-report")
            # Writing again asks first; n leaves the copy as it is.
            copy.write_text("mine\n")
            await pilot.press("ctrl+s")
            await answer(pilot, app, "n", expect=f"{copy.name} already exists")
            assert copy.read_text() == "mine\n"
            await pilot.press("ctrl+s")
            await answer(pilot, app, "y", expect="already exists")
            await wait_for(pilot, lambda: copy.read_text() != "mine\n", 30, "the overwrite")
            # The copy is Mask's QA file now.
            await pilot.press("f3")
            await wait_for(pilot, lambda: input_value(app, "mask-file") == str(copy.resolve()), 10, "hand-off")
            # The copy as its own input or a folder: refused by name, nothing written.
            await pilot.press("f2")
            await fill(pilot, app, check_out=source.name)
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert any("is the input file" in m for m in notifications(app)) and source.read_bytes() == original
            # A file without duplicates is handed on as it is: typed here, it is Mask's QA file.
            clean = tmp_path / "clean.jsonl"
            clean.write_text("".join(json.dumps(row) + "\n" for row in QA_ROWS), encoding="utf-8")
            await fill(pilot, app, check_file=clean.name, check_out="")
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: "No exact duplicates" in static_text(app, "check-report"), 30, "report")
            assert f"{step_key('mask')} masks it (filled in)" in static_text(app, "check-report")
            await pilot.press("f3")
            await wait_for(pilot, lambda: input_value(app, "mask-file") == str(clean.resolve()), 10, "hand-off")

    run(scenario)

    # A masked output (recorded in the store): its copy is what Fine-tune and Sweep train and sweep on.
    plan = workspace.plan_mask(str(source), entity="NVIDIA", new_name="EGNIVIA", ticker="NVDA", aliases=[])
    masked = tmp_path / "qa.masked.jsonl"
    workspace.apply_mask(plan, masked, entity="NVIDIA", new_name="EGNIVIA")
    masked_copy = tmp_path / "qa.masked.dedup.jsonl"
    clean = tmp_path / "clean.jsonl"
    plan = workspace.plan_mask(str(clean), entity="NVIDIA", new_name="EGNIVIA", ticker="NVDA", aliases=[])
    clean_masked = tmp_path / "clean.masked.jsonl"
    workspace.apply_mask(plan, clean_masked, entity="NVIDIA", new_name="EGNIVIA")

    async def masked_input() -> None:
        app = FtHalluApp(workspace, start="check", prefs_path=tmp_path / "prefs2.json")
        async with app.run_test(size=SIZE) as pilot:
            await fill(pilot, app, check_file=masked.name)
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: masked_copy.exists(), 30, "the copy of the masked file")
            await wait_for(pilot, lambda: "fine-tunes on it" in static_text(app, "check-report"), 10, "hand-off")
            await pilot.press("f4")
            await wait_for(pilot, lambda: input_value(app, "ft-dataset") == str(masked_copy.resolve()), 10, "ft")
            await pilot.press("f6")
            await wait_for(pilot, lambda: input_value(app, "sw-dataset") == str(masked_copy.resolve()), 10, "sw")
            assert input_value(app, "sw-entity_name") == "EGNIVIA"
            # A masked output without duplicates goes on to Fine-tune as it is.
            await pilot.press("f2")
            await fill(pilot, app, check_file=clean_masked.name)
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: "No exact duplicates" in static_text(app, "check-report"), 30, "report")
            assert f"{step_key('finetune')} fine-tunes on it (filled in)" in static_text(app, "check-report")
            # A copy holding some of a masked output's rows (written by another tool: other bytes) is
            # still the masked set: checked, it goes on to Fine-tune with the mask's name.
            subset = tmp_path / "qa.masked.subset.jsonl"
            kept = [json.loads(line) for line in masked_copy.read_text().splitlines()][1:]
            subset.write_text("".join(json.dumps(row, indent=None, separators=(",", ":")) + "\n" for row in kept))
            await fill(pilot, app, check_file=subset.name)
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: "No exact duplicates" in static_text(app, "check-report"), 30, "again")
            assert f"{step_key('finetune')} fine-tunes on it (filled in)" in static_text(app, "check-report")
            await pilot.press("f6")
            await wait_for(pilot, lambda: input_value(app, "sw-dataset") == str(subset.resolve()), 10, "sw")
            assert input_value(app, "sw-entity_name") == "EGNIVIA"

    run(masked_input)


# ------------------------------------------------------------------ the Jobs step

# What a fine-tune job prints (trl's carriage-return bars included) and the record job-run leaves.
FINETUNE_LIKE = r"""
for a; do [ "$prev" = --job-dir ] && dir=$a; prev=$a; done
echo "loading tiny (lora, cpu)"
printf 'Dropping fully masked examples:   0%%|          | 0/8\rDropping fully masked examples: 100%%|##########| 8/8\n'
echo "step 1/2 loss 2.5000"
echo "step 2/2 loss 1.9000"
cat > "$dir/finetune-result.json" <<JSON
{"status": "completed", "name": "jobs-ft", "mode": "lora", "base_model": "tiny", "output_dir": "$FT_HALLU_TEST_OUT",
 "dataset": "$FT_HALLU_TEST_DATASET",
 "result": {"train_loss": 2.2, "eval_loss_before": 3.0, "eval_loss_after": 2.4}}
JSON
echo "saved adapter to $FT_HALLU_TEST_OUT"
"""
SHARD_CRASH = 'echo "sweep shard 0: 4 of 4 rows to generate"; echo "RuntimeError: CUDA out of memory"; exit 1'


def test_jobs_step_lists_every_job_and_cancels_resubmits_ingests_and_opens(
    tmp_path: Path, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One place for every job: state, progress, a detail line that says what finished and where
    (or why it failed), the log without bars; cancel, re-submit a failed shard, ingest, open."""
    from engine.workspace import ClusterSettings

    adapter = tmp_path / "adapter"
    monkeypatch.setenv("FT_HALLU_TEST_OUT", str(adapter))  # jobs get FT_HALLU_* (an allow-list)
    # The fine-tune trained on a masked file: Sweep gets that file and the name the mask gave.
    source = tmp_path / "qa.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in QA_ROWS), encoding="utf-8")
    masked = tmp_path / "qa.masked.jsonl"
    plan = workspace.plan_mask(str(source), entity="NVIDIA", new_name="QORVANT", ticker="NVDA", aliases=[])
    workspace.apply_mask(plan, masked, entity="NVIDIA", new_name="QORVANT")
    monkeypatch.setenv("FT_HALLU_TEST_DATASET", str(masked))
    ft_script, shard_script = tmp_path / "ft.sh", tmp_path / "shard.sh"
    ft_script.write_text(FINETUNE_LIKE)
    shard_script.write_text(SHARD_CRASH)
    ft_toml = tmp_path / "ft.toml"
    ft_toml.write_text(
        f'[finetune]\nname = "jobs-ft"\nbase_model = "tiny"\ndataset = "{tmp_path / "qa.jsonl"}"\n'
        f'output_dir = "{adapter}"\n'
    )
    sweep_toml = tmp_path / "sweep.toml"
    sweep_toml.write_text('[sweep]\nname = "jobs-sweep"\nbase_model = "tiny"\nsamples_per_cell = 2\n'
                          "[sweep.grid]\ntemperatures = [1.0]\ntop_ps = [1.0]\ntop_ks = [0, 5]\n")  # fmt: skip
    done = workspace.launch(ft_toml, ClusterSettings(command=("/bin/sh", str(ft_script))), "local", log_dir=tmp_path)
    crashed = workspace.launch_sweep_file(
        sweep_toml, ClusterSettings(command=("/bin/sh", str(shard_script))), "local", log_dir=tmp_path
    )
    for job in (done, crashed):
        assert [j.state for j in workspace.follow_job(job, poll_seconds=0.05)][-1] in ("COMPLETED", "FAILED")
    sleeper = workspace.launch(
        ft_toml, ClusterSettings(command=("/bin/sh", "-c", "sleep 300", "job")), "local", log_dir=tmp_path
    )

    async def scenario() -> None:
        app = FtHalluApp(workspace, start="jobs", prefs_path=tmp_path / "prefs.json")
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            table = screen.query_one("#jobs-table", DataTable)
            await wait_for(pilot, lambda: table.row_count == 3 and len(screen.reports) == 3, 30, "the jobs")
            rows = {row[0]: row for row in table_rows(table)}
            assert rows[str(done.id)][1:5] == ["fine-tune", "jobs-ft", "COMPLETED", "2/2 steps"]
            assert rows[str(crashed.id)][1:4] == ["sweep", "sweep-jobs-sweep", "FAILED"]
            assert rows[str(sleeper.id)][3] == "RUNNING" and rows[str(sleeper.id)][6] == "local"
            assert any("Reattached to 1 running job(s)" in m for m in notifications(app))
            # The running one is selected first; cancelling asks, then it is CANCELLED.
            assert screen.selected == sleeper.id and "ctrl+t cancels it" in static_text(app, "jobs-detail")
            await pilot.press("ctrl+t")
            await answer(pilot, app, "y", expect=f"Cancel job {sleeper.id}")
            await wait_for(pilot, lambda: screen.jobs[sleeper.id].state == "CANCELLED", 30, "the cancel")

            # The failed sweep says why, and re-submits its shard (a new attempt of the same job).
            await pilot.press("down")
            await wait_for(pilot, lambda: screen.selected == crashed.id, 10, "the sweep row")
            detail = static_text(app, "jobs-detail")
            assert "FAILED after" in detail and "exit 1: RuntimeError: CUDA out of memory" in detail, detail
            assert "re-submit shard(s) 0" in detail and "ctrl+r re-submits" in detail
            await pilot.press("ctrl+r")
            await answer(pilot, app, "y", expect=f"Queue shard(s) 0 of job {crashed.id}")
            await wait_for(pilot, lambda: "Re-submitted as job" in static_text(app, "jobs-note"), 30, "resubmit")
            await wait_for(pilot, lambda: max(screen.jobs) > sleeper.id, 30, "the new attempt")
            again = workspace.job(max(screen.jobs))
            assert again.parent_id == crashed.id and screen.selected == again.id
            # Listing reads nothing into the store: the attempt the screen saw end is ingested only
            # when asked. Ingest reads what it left (here: nothing) and says so.
            await wait_for(pilot, lambda: screen.jobs[again.id].finished, 30, "the attempt to end")
            await wait_for(pilot, lambda: "ctrl+e reads its rows" in static_text(app, "jobs-detail"), 10, "hint")
            assert workspace.job(again.id).ingested_at is None
            await pilot.press("ctrl+e")
            await wait_for(pilot, lambda: "results file(s)" in static_text(app, "jobs-note"), 30, "ingest")
            assert workspace.job(again.id).ingested_at is not None

            # The finished fine-tune: its losses and adapter, its log without bars; ctrl+o sweeps it.
            while screen.selected != done.id:
                await pilot.press("down")
                await pilot.pause()
            await wait_for(pilot, lambda: "train loss" in static_text(app, "jobs-detail"), 10, "the detail")
            detail = static_text(app, "jobs-detail")
            assert f"fine-tune ft-hallu-jobs-ft (local:{done.job_id}) COMPLETED in" in detail
            assert "train loss 2.2000, eval loss 3.0000 -> 2.4000" in detail and f"adapter in {adapter}" in detail
            await wait_for(pilot, lambda: "step 2/2" in log_text(screen.query_one("#jobs-log", RichLog)), 10, "log")
            log = log_text(screen.query_one("#jobs-log", RichLog))
            assert "step 1/2 loss 2.5000" in log and "%|" not in log
            assert f"saved adapter to {adapter}" in " ".join(log.split())
            assert f"log {done.log_path}" in log.replace("\n", "")  # broken after a '/', never in a name
            await pilot.press("ctrl+o")
            await wait_for(pilot, lambda: app.current_mode == "sweep", 10, "Sweep")
            await wait_for(pilot, lambda: input_value(app, "sw-adapter") == str(adapter), 10, "the adapter")
            assert input_value(app, "sw-base_model") == "tiny"
            assert input_value(app, "sw-dataset") == str(masked) and input_value(app, "sw-entity_name") == "QORVANT"
            # Quitting names no job: none runs any more (the new attempt failed at once).
            await wait_for(pilot, lambda: all(job.finished for job in screen.jobs.values()), 30, "all finished")

    run(scenario)


# ------------------------------------------------------------------ wording: key source, resume key, toasts


def test_generate_says_where_the_key_was_found_and_its_own_resume_key(
    tmp_path: Path, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine import generate as gen
    from engine.errors import UserError
    from tui.screens.base import wrap_words

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    (tmp_path / "apikey.env").write_text("OPENAI_API_KEY=sk-from-the-file-7f3a\n")
    long_path = tmp_path / "a-folder-with-a-rather-long-name" / "and-another-one-below-it" / "train.jsonl"

    async def scenario() -> None:
        app = FtHalluApp(workspace, start="generate", prefs_path=tmp_path / "prefs.json")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            key_line = static_text(app, "gen-key")
            assert key_line == f"API key: found in {tmp_path / 'apikey.env'} (hidden)" and "sk-" not in key_line
            screen = app.screen
            # A failed run says this screen's key, not the CLI's words.
            failure = f"endpoint: chunk c2 failed (1 of 3 chunks done and kept in {long_path}; {gen.RESUME_HINT})"
            shown = screen.report_error(gen.GenerationError(failure))
            assert "ctrl+r resumes" in shown and gen.RESUME_HINT not in shown
            # An error toast breaks a long path only after one of its '/', never inside a name.
            screen.report_error(UserError(f"{long_path}: no such file"))
            await pilot.pause()
            message = notifications(app)[-1]
            width = min(76, SIZE[0] - 2) - 4
            assert message == wrap_words(f"{long_path}: no such file", width)
            lines = message.split("\n")
            assert len(lines) > 1 and all(len(line) <= width for line in lines)
            assert all(line.endswith("/") or line.endswith(":") or " " in line for line in lines[:-1])
            assert message.replace("/\n", "/").replace("\n", " ") == f"{long_path}: no such file"

    run(scenario)


def test_wrap_words_breaks_at_spaces_and_path_separators() -> None:
    from tui.screens.base import wrap_words

    assert wrap_words("short line", 40) == "short line"
    wrapped = wrap_words("see /very/long/path/to/some/file.jsonl now", 16)
    assert wrapped.split("\n") == ["see", "/very/long/path/", "to/some/", "file.jsonl now"]  # the path on its own lines
    assert wrap_words("a-single-name-without-separators-at-all", 10) == "a-single-name-without-separators-at-all"


def test_form_values_of_fields_with_named_words_or_numbers() -> None:
    """save_checkpoints takes "none", "epoch", every N steps or a list of steps; a sweep's checkpoints
    "all" or a list; anything else names what the field takes."""
    from engine.errors import UserError
    from engine.finetune import FinetuneConfig
    from engine.sweep import SweepConfig
    from tui import forms

    ft = {field.path: field for field in forms.form_fields(FinetuneConfig, "ft")}
    sw = {field.path: field for field in forms.form_fields(SweepConfig, "sw")}
    saves = [forms.parse_value(ft["save_checkpoints"], text, where="f") for text in ("epoch", "20", "10, 30")]
    assert saves == ["epoch", 20, [10, 30]]
    assert [forms.parse_value(sw["checkpoints"], text, where="s") for text in ("", "all", "4", "2, 4")] == [
        "",
        "all",
        [4],
        [2, 4],
    ]
    assert forms.parse_value(ft["target_modules"], "q_proj, v_proj", where="f") == ["q_proj", "v_proj"]
    with pytest.raises(UserError, match="f: save_checkpoints = 'often': must be 'none' or 'epoch', or a whole"):
        forms.parse_value(ft["save_checkpoints"], "often", where="f")
