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
from textual.reactive import reactive
from textual.widgets import Input, ProgressBar, RichLog, Static

from engine import generate as gen
from engine.configfile import describe_setting
from engine.errors import UserError
from engine.secrets import redact_url
from engine.workspace import QaSource
from tui.screens.base import (
    StepScreen,
    error_line,
    guarded,
    parse_int,
    show_line,
    show_lines,
    step_bar,
    step_footer,
    step_worker,
    wrapped_log,
)
from tui.steps import step_key

# Fields whose change moves the default output folder (it follows the current source).
SOURCE_FIELDS = ("gen-ticker", "gen-year", "gen-filing", "gen-name")
# Each field's help is its setting's own (engine.configfile.describe_setting): input id -> (class, field).
FIELD_HELP: dict[str, tuple[type, str]] = {
    "gen-ticker": (QaSource, "ticker"),
    "gen-year": (QaSource, "year"),
    "gen-form-type": (QaSource, "form"),
    "gen-quarter": (QaSource, "quarter"),
    "gen-identity": (QaSource, "sec_identity"),
    "gen-filing": (QaSource, "filing"),
    "gen-base-url": (gen.EndpointConfig, "base_url"),
    "gen-model": (gen.EndpointConfig, "model"),
    "gen-key-env": (gen.EndpointConfig, "api_key_env"),
    "gen-env-file": (gen.EndpointConfig, "env_file"),
    "gen-questions": (gen.GenerateConfig, "questions_per_chunk"),
    "gen-max-items": (gen.GenerateConfig, "max_items"),
    "gen-workers": (gen.GenerateConfig, "workers"),
    "gen-name": (gen.GenerateConfig, "name"),
    "gen-out": (gen.GenerateConfig, "output_dir"),
}
# What this screen says instead of the CLI's "run the same command again to resume".
RESUME_WORDS = "ctrl+r resumes; finished chunks are kept"


def field_help(input_id: str) -> str:
    try:
        cls, name = FIELD_HELP[input_id]
        return describe_setting(cls, name)
    except Exception:  # noqa: BLE001 - help is a courtesy: a broken engine module still opens the form
        return ""


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
        Binding(
            "ctrl+r", "start", "Start/resume", id="generate.start",
            tooltip="Generate QA items from the filing (a stopped run resumes where it stopped)",
        ),
        Binding("ctrl+t", "stop", "Stop", id="generate.stop", tooltip="Stop after the chunks in flight"),
        Binding(
            "ctrl+y", "check_key", "Check key", id="generate.check-key",
            tooltip="Ask the endpoint whether the API key and model work",
        ),
    ]  # fmt: skip
    running: reactive[bool] = reactive(False, init=False)  # a generation runs in this process

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
        def __init__(self, summary: str, stopped: bool, dataset_path: str | None = None) -> None:
            super().__init__()
            self.summary, self.stopped, self.dataset_path = summary, stopped, dataset_path

    def __init__(self) -> None:
        super().__init__()
        self._stop = threading.Event()
        self.engine_error: str | None = None
        self.auto_out = ""  # the output folder this screen filled in itself (follows the source)
        self.out_dir = ""  # the folder of the current run (its finished chunks are what resumes)

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
        with VerticalScroll(id="gen-form", classes="form-area"):
            yield Static("source: a ticker and year (EDGAR) or a local filing", classes="section")
            yield self.gen_field("ticker", "gen-ticker", "", "e.g. NVDA")
            yield self.gen_field("year", "gen-year", "", "e.g. 2024")
            yield self.gen_field("local filing", "gen-filing", "", "HTML/PDF/text file (instead of EDGAR)")
            yield self.gen_field("SEC identity", "gen-identity", "", "Your Name you@example.com (EDGAR asks)")
            yield Static("endpoint (any OpenAI-compatible server)", classes="section")
            yield self.gen_field("base URL", "gen-base-url", "", "empty = OpenAI; http://127.0.0.1:11434/v1")
            yield self.gen_field("model", "gen-model", d["model"])
            yield self.gen_field("key file", "gen-env-file", d["env_file"], "dotenv file read if unset")
            yield self.gen_field("output folder", "gen-out", "", "follows the source; same folder = resume")
            with self.folded(
                "more: form, quarter, key variable, questions, max items, workers, name",
                "gen-more",
            ):
                yield self.gen_field("form", "gen-form-type", "10-K", "10-K or 10-Q")
                yield self.gen_field("quarter", "gen-quarter", "", "10-Q only: 1..4")
                yield self.gen_field(
                    "key variable", "gen-key-env", d["key_env"], "name only; the key is never shown"
                )
                yield self.gen_field("questions/chunk", "gen-questions", d["questions"])
                yield self.gen_field("max items", "gen-max-items", "", "cap on the merged set (empty: all)")
                yield self.gen_field("workers", "gen-workers", d["workers"])
                yield self.gen_field("name", "gen-name", "", "default: TICKER-YEAR or the file name")
        yield self.help_line()
        yield Static("", id="gen-key", classes="hint")
        # A total from the start: an empty bar while idle, not the indeterminate animation.
        yield ProgressBar(id="gen-progress", total=1, show_eta=True)
        yield Static(
            "Idle. ctrl+r starts; ctrl+r again on the same output folder resumes.",
            id="gen-status",
            classes="status",
        )
        yield Static("", id="gen-error", classes="error")
        yield wrapped_log("gen-items", max_lines=300)
        yield step_footer()

    def gen_field(self, label: str, input_id: str, value: Any = "", placeholder: str = "") -> Any:
        return self.field(label, input_id, value, placeholder, help=field_help(input_id))

    def show_error(self, line: str) -> None:
        """The error line under the status; it takes no row while there is none."""
        show_line(self.query_one("#gen-error", Static), Text(line))

    def on_mount(self) -> None:
        super().on_mount()
        self.auto_out = self.value("gen-out") if self.value("gen-out") == self.default_out() else ""
        self.show_error("")
        if self.engine_error:
            self.show_error(self.engine_error)
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
        """Say whether a key is available and where it was found (never what it is)."""
        box = self.query_one("#gen-key", Static)
        endpoint = self.endpoint()
        try:
            _key, found_in = gen.find_api_key(endpoint)
        except UserError:
            where = f"${endpoint.api_key_env} or {endpoint.env_file}" if endpoint.env_file else f"${endpoint.api_key_env}"
            box.update(Text(f"API key: not found in {where}", style="yellow"))
            return
        box.update(Text(f"API key: found in {found_in} (hidden)", style="green"))

    def default_out(self) -> str:
        """The output folder for the current source and name ('' while no source is given)."""
        ticker, filing = self.value("gen-ticker"), self.value("gen-filing")
        if bool(ticker) == bool(filing):
            return ""
        name = self.value("gen-name")
        if not name:
            name = f"{ticker.upper()}-{self.value('gen-year')}" if ticker else Path(filing).stem
        try:
            return str(gen.output_dir_for(name))
        except Exception:  # noqa: BLE001 - a half-typed name: keep the folder as it is
            return ""

    @guarded
    def on_input_changed(self, event: Input.Changed) -> None:
        """The output folder follows the source unless the operator typed one of their own."""
        if event.input.id not in SOURCE_FIELDS:
            return
        current = self.value("gen-out")
        if current and current != self.auto_out:
            return  # typed by hand: theirs
        new = self.default_out()
        if new != current:
            self.auto_out = new
            self.set_value("gen-out", new)

    def build_config(self) -> tuple[gen.GenerateConfig, QaSource]:
        ticker, filing = self.value("gen-ticker"), self.value("gen-filing")
        if not ticker and not filing:
            raise UserError("source: give a ticker (with a year) or a local filing")
        if ticker and filing:
            raise UserError("source: give either a ticker or a local filing, not both (clear one)")
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
            self.show_error(str(exc))
            raise  # reported by the StepScreen guard
        self.remember()
        self.set_value("gen-out", config.output_dir)
        self._stop.clear()
        self.running = True
        self.show_error("")
        show_lines(self.query_one("#gen-items", RichLog), [])
        self.out_dir = config.output_dir
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
        gen.resolve_api_key(config.endpoint)  # a missing key is its own message, before any phase
        # Which side failed: reading the source (EDGAR or a file) until the engine starts sending.
        if source.ticker:
            phase = [f"EDGAR ({source.ticker} {source.year} {source.form})"]
        else:
            phase = [f"reading {source.filing}"]
        endpoint = f"endpoint {redact_url(config.endpoint.base_url or 'api.openai.com')} ({config.endpoint.model})"

        def on_progress(event) -> None:
            phase[0] = endpoint
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
        except Exception as exc:  # noqa: BLE001 - name the side that failed; the line says the rest
            raise UserError(f"{phase[0]}: {error_line(exc)}") from exc
        # Any other failure is reported by StepScreen.on_worker_state_changed -> worker_failed.
        summary = (
            f"{result.items} items from {result.chunks_total} chunks ({result.chunks_sent} sent now) "
            f"-> {result.dataset_path}"
        )
        self.post_message(self.Finished(summary, False, str(result.dataset_path)))

    def chunks_on_disk(self) -> int:
        if not self.out_dir:
            return 0
        raw_path = Path(self.out_dir).resolve() / gen.RAW_ITEMS_FILE
        try:
            return len(gen.read_raw_records(raw_path)) if raw_path.is_file() else 0
        except Exception:  # noqa: BLE001 - an unreadable file: nothing to resume from
            return 0

    def worker_failed(self, worker, line: str) -> None:
        if worker.group == "generate":  # finished chunks stay on disk for resume
            self.running = False
            kept = self.chunks_on_disk()
            again = (
                f"ctrl+r resumes with the {kept} chunk(s) already done."
                if kept
                else "No chunk was finished; ctrl+r starts again."
            )
            self.query_one("#gen-status", Static).update(Text(f"Failed. {again}", style="bold red"))
            self.show_error(line)

    def report_error(self, exc: BaseException, *, where: str = "", title: str = "") -> str:
        """The engine's failures say how the CLI resumes; here it is this screen's key."""
        if isinstance(exc, UserError) and gen.RESUME_HINT in str(exc):
            exc = UserError(str(exc).replace(gen.RESUME_HINT, RESUME_WORDS))
        return super().report_error(exc, where=where, title=title)

    def busy_work(self) -> list[str]:
        if not self.running:
            return []
        return ["Generate runs in this TUI: quitting stops it after the current chunk (kept; ctrl+r resumes)"]

    def stop_for_quit(self) -> list[str]:
        if not self.running:
            return []
        self._stop.set()
        return [f"generation stopping after the current chunk; finished chunks are kept in {self.out_dir}"]

    def on_generate_screen_event(self, message: Event) -> None:
        bar = self.query_one("#gen-progress", ProgressBar)
        bar.update(total=max(message.total, 1), progress=message.done)
        self.query_one("#gen-status", Static).update(
            Text(f"{message.done}/{message.total} chunks, {message.items} items")
        )
        log = self.query_one("#gen-items", RichLog)
        if message.kind in ("retry", "chunk_failed"):
            self.show_error(f"{message.chunk_id}: {message.text}")
            show_lines(log, [Text(f"! {message.chunk_id}: {message.text}", style="red")], clear=False)
        elif message.text:
            show_lines(log, message.text.splitlines(), clear=False)

    def on_generate_screen_finished(self, message: Finished) -> None:
        self.running = False
        status = self.query_one("#gen-status", Static)
        style = "yellow" if message.stopped else "bold green"
        status.update(Text(("Stopped: " if message.stopped else "Done: ") + message.summary, style=style))
        if not message.stopped and message.dataset_path:
            self.ft_app.handoff("check", {"check-file": message.dataset_path, "check-out": ""})
            self.ft_app.handoff("mask", {"mask-file": message.dataset_path, "mask-out": ""})
            self.notify(
                f"Generation finished. {step_key('check')} checks the new set for duplicates, "
                f"{step_key('mask')} masks it (filled in).",
                markup=False,
            )
