"""Generate: a 10-K (ticker + year from EDGAR, or a local filing) -> QA items through any
OpenAI-compatible endpoint, with live progress, items as they arrive, errors in place, and resume.

The API key is read by the engine from the environment or ``apikey.env``; this screen only says
whether one was found and never shows it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Log, ProgressBar, Static

from engine import generate as gen
from engine.errors import UserError
from engine.workspace import QaSource
from tui.screens.base import StepScreen, parse_int, step_bar, step_footer, step_worker


class _StopRequested(Exception):
    """Raised from the progress callback to stop a run; chunks already finished stay on disk."""


def _engine_defaults() -> dict[str, Any]:
    config = gen.GenerateConfig(output_dir="")
    return {
        "model": config.endpoint.model,
        "key_env": config.endpoint.api_key_env,
        "env_file": config.endpoint.env_file or "",
        "questions": config.questions_per_chunk,
        "workers": config.workers,
    }


class GenerateScreen(StepScreen):
    STEP = "generate"
    TITLE_TEXT = "Generate"
    BINDINGS = [
        Binding("ctrl+r", "start", "Start/resume"),
        Binding("ctrl+t", "stop", "Stop"),
        Binding("ctrl+y", "check_key", "Check key"),
    ]

    class Event(Message):
        def __init__(
            self, kind: str, done: int, total: int, items: int, chunk_id: str | None, text: str
        ) -> None:
            super().__init__()
            self.kind, self.done, self.total, self.items, self.chunk_id, self.text = (
                kind,
                done,
                total,
                items,
                chunk_id,
                text,
            )

    class Finished(Message):
        def __init__(self, summary: str, stopped: bool) -> None:
            super().__init__()
            self.summary, self.stopped = summary, stopped

    def __init__(self) -> None:
        super().__init__()
        self._stop = threading.Event()
        self.running = False
        self.engine_error: str | None = None

    def compose(self) -> ComposeResult:
        try:
            d = _engine_defaults()
        except Exception as exc:  # noqa: BLE001 - engine.generate missing or broken: say so, stay up
            self.engine_error = f"the generation engine is not available: {type(exc).__name__}: {exc}"
            d = {
                "model": "",
                "key_env": "OPENAI_API_KEY",
                "env_file": "apikey.env",
                "questions": 5,
                "workers": 8,
            }
        yield step_bar(self.STEP)
        yield Static("Generate: 10-K -> question / answer / context items", classes="step-title")
        with VerticalScroll(id="gen-form"):
            yield Static("source: a ticker and year (EDGAR) or a local filing", classes="section")
            yield self.field("ticker", "gen-ticker", "", "e.g. NVDA")
            yield self.field("year", "gen-year", "", "e.g. 2024")
            yield self.field("form", "gen-form-type", "10-K", "10-K or 10-Q")
            yield self.field("quarter", "gen-quarter", "", "10-Q only: 1..4")
            yield self.field("SEC identity", "gen-identity", "", "Your Name you@example.com (EDGAR asks)")
            yield self.field("local filing", "gen-filing", "", "HTML/PDF/text file (instead of EDGAR)")
            yield Static("endpoint", classes="section")
            yield self.field("base URL", "gen-base-url", "", "empty = OpenAI; http://127.0.0.1:11434/v1")
            yield self.field("model", "gen-model", d["model"])
            yield self.field("key variable", "gen-key-env", d["key_env"], "name only; the key is never shown")
            yield self.field("key file", "gen-env-file", d["env_file"], "dotenv file read if unset")
            yield Static("output", classes="section")
            yield self.field("questions/chunk", "gen-questions", d["questions"])
            yield self.field("max items", "gen-max-items", "", "cap on the merged set (empty: all)")
            yield self.field("workers", "gen-workers", d["workers"])
            yield self.field("name", "gen-name", "", "default: TICKER-YEAR or the file name")
            yield self.field("output folder", "gen-out", "", "same folder again = resume")
        yield Static("", id="gen-key", classes="hint")
        yield ProgressBar(id="gen-progress", show_eta=True)
        yield Static(
            "Idle. ctrl+r starts; running it again on the same folder resumes.",
            id="gen-status",
            classes="status",
        )
        yield Static("", id="gen-error", classes="error")
        yield Log(id="gen-items", max_lines=300)
        yield step_footer()

    def on_mount(self) -> None:
        super().on_mount()
        if self.engine_error:
            self.query_one("#gen-error", Static).update(Text(self.engine_error))
        else:
            self.action_check_key()

    def endpoint(self) -> gen.EndpointConfig:
        return gen.EndpointConfig(
            model=self.value("gen-model") or gen.DEFAULT_MODEL,
            base_url=self.value("gen-base-url") or None,
            api_key_env=self.value("gen-key-env") or gen.DEFAULT_KEY_ENV,
            env_file=self.value("gen-env-file") or None,
        )

    def action_check_key(self) -> None:
        """Say whether a key is available (never what it is)."""
        box = self.query_one("#gen-key", Static)
        endpoint = self.endpoint()
        try:
            gen.resolve_api_key(endpoint)
        except UserError:
            box.update(
                Text(
                    f"API key: not found in ${endpoint.api_key_env} or {endpoint.env_file or '-'}",
                    style="yellow",
                )
            )
            return
        box.update(
            Text(
                f"API key: found (${endpoint.api_key_env} / {endpoint.env_file or '-'}), hidden",
                style="green",
            )
        )

    def build_config(self) -> tuple[gen.GenerateConfig, QaSource]:
        ticker, filing = self.value("gen-ticker"), self.value("gen-filing")
        if bool(ticker) == bool(filing):
            raise UserError("source: give either a ticker (with a year) or a local filing, not both")
        if ticker:
            year = parse_int(self.value("gen-year"), field_name="year")
            if year is None:
                raise UserError("year: required with a ticker")
            source = QaSource(
                ticker=ticker.upper(),
                year=year,
                form=self.value("gen-form-type") or "10-K",
                quarter=parse_int(self.value("gen-quarter"), field_name="quarter"),
                sec_identity=self.value("gen-identity") or None,
            )
        else:
            source = QaSource(filing=filing)
        name = self.value("gen-name") or source.default_name
        out = self.value("gen-out") or str(gen.output_dir_for(name))
        config = gen.GenerateConfig(
            output_dir=out,
            name=name,
            endpoint=self.endpoint(),
            questions_per_chunk=parse_int(
                self.value("gen-questions"), field_name="questions/chunk", default=5
            )
            or 5,
            max_items=parse_int(self.value("gen-max-items"), field_name="max items"),
            workers=parse_int(self.value("gen-workers"), field_name="workers", default=8) or 8,
        )
        config.validate()
        return config, source

    def action_start(self) -> None:
        if self.engine_error:
            self.report_error(UserError(self.engine_error))
            return
        if self.running:
            self.notify("Generation is already running (ctrl+t stops it).", severity="warning")
            return
        try:
            config, source = self.build_config()
        except UserError as exc:
            self.query_one("#gen-error", Static).update(Text(str(exc)))
            raise  # reported by the StepScreen guard
        self.remember()
        self.set_value("gen-out", config.output_dir)
        self._stop.clear()
        self.running = True
        self.query_one("#gen-error", Static).update("")
        self.query_one("#gen-items", Log).clear()
        self.query_one("#gen-status", Static).update(Text("Reading the filing..."))
        self._run(config, source)

    def action_stop(self) -> None:
        if not self.running:
            self.notify("Nothing is running.")
            return
        self._stop.set()
        self.query_one("#gen-status", Static).update(Text("Stopping: finished chunks are kept for resume..."))

    @step_worker(group="generate", exclusive=True)
    def _run(self, config: gen.GenerateConfig, source: QaSource) -> None:
        raw_path = Path(config.output_dir).resolve() / gen.RAW_ITEMS_FILE

        def on_progress(event) -> None:
            text = ""
            if event.kind == "chunk_done" and event.chunk_id:
                record = gen.read_raw_records(raw_path).get(event.chunk_id, {})
                questions = [item.get("question", "") for item in record.get("items", [])]
                text = "\n".join(questions)
            else:
                text = event.message
            self.post_message(
                self.Event(
                    event.kind, event.chunks_done, event.chunks_total, event.items_total, event.chunk_id, text
                )
            )
            if self._stop.is_set():
                raise _StopRequested

        try:
            result = self.workspace.generate_qa(config, source, on_progress=on_progress)
        except _StopRequested:
            self.post_message(self.Finished(f"stopped; finished chunks kept in {raw_path}", True))
            return
        # Any other failure is reported by StepScreen.on_worker_state_changed -> worker_failed.
        summary = (
            f"{result.items} items from {result.chunks_total} chunks ({result.chunks_sent} sent now) "
            f"-> {result.dataset_path}"
        )
        self.post_message(self.Finished(summary, False))

    def worker_failed(self, worker, line: str) -> None:
        if worker.group == "generate":  # finished chunks stay on disk for resume
            self.running = False
            self.query_one("#gen-status", Static).update(
                Text("Failed; ctrl+r resumes with the chunks already done.", style="bold red")
            )
            self.query_one("#gen-error", Static).update(Text(line))

    def on_generate_screen_event(self, message: Event) -> None:
        bar = self.query_one("#gen-progress", ProgressBar)
        bar.update(total=max(message.total, 1), progress=message.done)
        self.query_one("#gen-status", Static).update(
            Text(f"{message.done}/{message.total} chunks, {message.items} items")
        )
        log = self.query_one("#gen-items", Log)
        if message.kind in ("retry", "chunk_failed"):
            self.query_one("#gen-error", Static).update(Text(f"{message.chunk_id}: {message.text}"))
            log.write_line(f"! {message.chunk_id}: {message.text}")
        elif message.text:
            for line in message.text.splitlines():
                log.write_line(line)

    def on_generate_screen_finished(self, message: Finished) -> None:
        self.running = False
        status = self.query_one("#gen-status", Static)
        style = "yellow" if message.stopped else "bold green"
        status.update(Text(("Stopped: " if message.stopped else "Done: ") + message.summary, style=style))
        if not message.stopped:
            self.notify("Generation finished. F2 masks the new set.")
