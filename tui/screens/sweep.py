"""Sweep: grid, samples per cell and prompts; start (resumable), live progress, stop, summary."""

from __future__ import annotations

import threading
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Log, ProgressBar, Static

from engine import sweep as sweep_engine
from engine.errors import UserError
from engine.workspace import SweepConfig, SweepProgress, SweepResult
from tui.screens.base import StepScreen, parse_int, parse_number_list, step_bar, step_footer, step_worker

# cell_metrics column -> the short name shown in the summary
SUMMARY_METRICS = {
    "refusal_rate": "refus",
    "token_f1": "F1",
    "grounding": "ground",
    "semantic_entropy": "entropy",
}


def _defaults() -> dict[str, Any]:
    config, grid = SweepConfig(), sweep_engine.Grid()
    return {
        "sw-name": config.name,
        "sw-base": config.base_model,
        "sw-adapter": config.adapter,
        "sw-entity": config.entity_name,
        "sw-prompt": config.prompt_template,
        "sw-dataset": config.dataset,
        "sw-evalq": config.eval_questions,
        "sw-temps": ", ".join(f"{t:g}" for t in grid.temperatures),
        "sw-topps": ", ".join(f"{p:g}" for p in grid.top_ps),
        "sw-topks": ", ".join(str(k) for k in grid.top_ks),
        "sw-samples": config.samples_per_cell,
        "sw-tokens": config.max_new_tokens,
        "sw-seed": config.seed,
    }


class SweepScreen(StepScreen):
    STEP = "sweep"
    TITLE_TEXT = "Sweep"
    BINDINGS = [
        Binding("ctrl+r", "start", "Start/resume"),
        Binding("ctrl+t", "stop", "Stop"),
    ]

    class Progress(Message):
        def __init__(self, done: int, total: int, written: int, elapsed: float, texts: list[str]) -> None:
            super().__init__()
            self.done, self.total, self.written, self.elapsed, self.texts = (
                done,
                total,
                written,
                elapsed,
                texts,
            )

    class Finished(Message):
        def __init__(self, sweep_id: int, summary: str, stopped: bool) -> None:
            super().__init__()
            self.sweep_id, self.summary, self.stopped = sweep_id, summary, stopped

    def __init__(self) -> None:
        super().__init__()
        self._stop = threading.Event()
        self.running = False
        self.last_sweep_id: int | None = None

    def compose(self) -> ComposeResult:
        d = _defaults()
        yield step_bar(self.STEP)
        yield Static("Sweep: base vs fine-tuned over T x top_p x top_k", classes="step-title")
        with VerticalScroll(id="sweep-form"):
            yield self.field("name", "sw-name", d["sw-name"])
            yield self.field("base model", "sw-base", d["sw-base"], "HF id, local folder or tiny")
            yield self.field("adapter", "sw-adapter", d["sw-adapter"], "LoRA folder (empty: base only)")
            yield self.field("entity", "sw-entity", d["sw-entity"], "masked name the prompt asks about")
            yield self.field("prompt", "sw-prompt", d["sw-prompt"], "{name} is replaced by the entity")
            yield self.field(
                "QA dataset", "sw-dataset", d["sw-dataset"], "for grounding + held-out questions"
            )
            yield self.field("eval questions", "sw-evalq", d["sw-evalq"])
            yield self.field("temperatures", "sw-temps", d["sw-temps"])
            yield self.field("top_p values", "sw-topps", d["sw-topps"])
            yield self.field("top_k values", "sw-topks", d["sw-topks"], "0 = no top-k")
            yield self.field("samples/cell", "sw-samples", d["sw-samples"])
            yield self.field("max new tokens", "sw-tokens", d["sw-tokens"])
            yield self.field("seed", "sw-seed", d["sw-seed"])
        yield ProgressBar(id="sweep-progress", show_eta=True)
        yield Static(
            "Idle. ctrl+r starts (a stopped sweep resumes where it left off).",
            id="sweep-status",
            classes="status",
        )
        yield Log(id="sweep-log", max_lines=200)
        yield Static("", id="sweep-summary", classes="status")
        yield step_footer()

    def build_config(self) -> SweepConfig:
        grid = sweep_engine.Grid(
            temperatures=parse_number_list(self.value("sw-temps"), float, field_name="temperatures"),
            top_ps=parse_number_list(self.value("sw-topps"), float, field_name="top_p values"),
            top_ks=parse_number_list(self.value("sw-topks"), int, field_name="top_k values"),
        )
        if not self.value("sw-base"):
            raise UserError("base model: required (a Hugging Face id, a local folder or 'tiny')")
        config = SweepConfig(
            name=self.value("sw-name") or "sweep",
            base_model=self.value("sw-base"),
            adapter=self.value("sw-adapter"),
            entity_name=self.value("sw-entity"),
            prompt_template=self.value("sw-prompt") or SweepConfig().prompt_template,
            dataset=self.value("sw-dataset"),
            eval_questions=parse_int(self.value("sw-evalq"), field_name="eval questions", default=0) or 0,
            samples_per_cell=parse_int(self.value("sw-samples"), field_name="samples/cell", default=1) or 1,
            max_new_tokens=parse_int(self.value("sw-tokens"), field_name="max new tokens", default=64) or 64,
            seed=parse_int(self.value("sw-seed"), field_name="seed", default=2024) or 0,
            grid=grid,
        )
        sweep_engine.validate(config, where="sweep form")
        return config

    def action_start(self) -> None:
        if self.running:
            self.notify("A sweep is already running (ctrl+t stops it).", severity="warning")
            return
        config = self.build_config()  # a bad field is reported by the StepScreen guard
        self.remember()
        self._stop.clear()
        self.running = True
        self.query_one("#sweep-log", Log).clear()
        self.query_one("#sweep-summary", Static).update("")
        self.query_one("#sweep-status", Static).update("Loading the model...")
        self._run(config)

    def action_stop(self) -> None:
        if not self.running:
            self.notify("No sweep is running.")
            return
        self._stop.set()
        self.query_one("#sweep-status", Static).update("Stopping after the current batch...")

    @step_worker(group="sweep", exclusive=True)
    def _run(self, config: SweepConfig) -> None:
        # A failure is reported by StepScreen.on_worker_state_changed -> worker_failed below.
        def progress(p: SweepProgress) -> None:
            self.post_message(self.Progress(p.done, p.total, p.written, p.elapsed, list(p.last_texts)))

        result = self.workspace.run_sweep(config, progress=progress, should_stop=self._stop.is_set)
        summary = self._summary(result)
        self.post_message(self.Finished(result.sweep_id, summary, self._stop.is_set()))

    def worker_failed(self, worker, line: str) -> None:
        if worker.group == "sweep":  # rows already written stay in the store; ctrl+r resumes
            self.running = False
            self.query_one("#sweep-status", Static).update(Text(f"Failed: {line}", style="bold red"))

    def _summary(self, result: SweepResult) -> str:
        lines = [
            f"sweep {result.sweep_id}: {result.total_rows} rows ({result.generated_now} new, "
            f"{result.skipped_existing} already stored) in {result.seconds:.1f} s"
        ]
        try:
            for row in self.workspace.variant_summary(result.sweep_id, tuple(SUMMARY_METRICS)):
                # Short names (as in the Results table) keep a variant on one 80-column line.
                values = " ".join(
                    f"{short}={row.means[name]:.2f}" if row.means.get(name) is not None else f"{short}=-"
                    for name, short in SUMMARY_METRICS.items()
                )
                lines.append(f"{row.variant:<9} {row.prompt_id:<10} cells={row.cells}  {values}")
        except Exception as exc:  # noqa: BLE001 - the sweep itself is stored; only the summary is missing
            lines.append(f"(no metrics summary: {exc})")
        return "\n".join(lines)

    def on_sweep_screen_progress(self, message: Progress) -> None:
        bar = self.query_one("#sweep-progress", ProgressBar)
        bar.update(total=message.total, progress=message.done)
        self.query_one("#sweep-status", Static).update(
            Text(
                f"{message.done}/{message.total} rows, {message.written} written this run, "
                f"{message.elapsed:.1f} s"
            )
        )
        log = self.query_one("#sweep-log", Log)
        for text in message.texts:
            log.write_line(" ".join(text.split())[:200])

    def on_sweep_screen_finished(self, message: Finished) -> None:
        self.running = False
        status = self.query_one("#sweep-status", Static)
        self.last_sweep_id = message.sweep_id
        if message.stopped:
            status.update(Text(f"Stopped: sweep {message.sweep_id} kept; ctrl+r resumes it."))
        else:
            status.update(Text(f"Done: sweep {message.sweep_id}. F5 opens Results.", style="bold green"))
            bar = self.query_one("#sweep-progress", ProgressBar)
            if bar.total is not None:
                bar.update(progress=bar.total)
        self.query_one("#sweep-summary", Static).update(Text(message.summary))
        self.notify(f"Sweep {message.sweep_id} {'stopped' if message.stopped else 'finished'}.")
