"""Fine-tune: the config as a form (defaults visible), launcher and cluster settings, launch,
the job list with state, elapsed time and a live log tail, cancel, and reattach after a restart.

Jobs live in the store (engine.jobs / store.jobs), so a restarted TUI lists the running ones
again and keeps following them: that is the reattach. Its poll also settles jobs (reads what
finished ones left in their folders into the store).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable, Input, RichLog, Static

from engine import finetune as finetune_engine
from engine.configfile import to_toml
from engine.dataset import write_atomic
from engine.errors import UserError
from engine.files import resolve_from
from engine.finetune import FinetuneConfig, config_from_dict
from engine.workspace import ClusterSettings, Job
from tui import launching
from tui.screens.base import (
    StepScreen,
    error_line,
    guarded,
    job_line,
    parse_int,
    step_bar,
    step_footer,
    step_worker,
    wrapped_log,
)

POLL_SECONDS = 1.0
# The job list; each job's detail goes below it (wrapped), so 80 columns hold every column whole.
JOB_COLUMNS = ("#", "job", "name", "state", "elapsed")
TAIL_LINES = 60
CLUSTER_FIELDS: tuple[tuple[str, str, str], ...] = (
    # (input id, label, placeholder)
    ("ft-cluster-file", "cluster TOML", "settings file (overrides the fields below)"),
    ("ft-partition", "partition", "Slurm partition"),
    ("ft-account", "account", ""),
    ("ft-gpus", "gpus", "0"),
    ("ft-time", "time limit", "08:00:00"),
    ("ft-mem", "memory", "64G"),
)


def _field_id(name: str) -> str:
    return f"ft-{name}"


def _format_default(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(value)
    return str(value)


def parse_form_value(name: str, text: str, default: Any) -> Any:
    """Turn a form string into the type of the config field's default; errors name the field."""
    text = text.strip()
    if name == "target_modules":
        parts = [p.strip() for p in text.split(",") if p.strip()]
        return parts[0] if len(parts) == 1 else parts
    if isinstance(default, bool):
        lowered = text.lower()
        if lowered in ("true", "yes", "1", "on"):
            return True
        if lowered in ("false", "no", "0", "off"):
            return False
        raise UserError(f"fine-tune form: field '{name}' must be true or false, got {text!r}")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise UserError(f"fine-tune form: field '{name}' must be a whole number, got {text!r}") from None
    if isinstance(default, float):
        try:
            return float(text)
        except ValueError:
            raise UserError(f"fine-tune form: field '{name}' must be a number, got {text!r}") from None
    return text


def elapsed_text(started: str | None, finished: str | None, now: dt.datetime | None = None) -> str:
    if not started:
        return "-"
    try:
        begin = dt.datetime.fromisoformat(started)
        end = dt.datetime.fromisoformat(finished) if finished else (now or dt.datetime.now(dt.UTC))
    except ValueError:
        return "?"
    seconds = max(0, int((end - begin).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class FinetuneScreen(StepScreen):
    STEP = "finetune"
    TITLE_TEXT = "Fine-tune"
    # The longest field name fits whole (gradient_accumulation_steps), never cut.
    LABEL_WIDTH = max(len(item.name) for item in dataclasses.fields(FinetuneConfig)) + 1
    BINDINGS = [
        Binding(
            "ctrl+r", "launch", "Launch", id="finetune.launch",
            tooltip="Check the form and launch the fine-tune as a job (it keeps running if you quit)",
        ),
        Binding(
            "ctrl+t", "cancel_job", "Cancel job", id="finetune.cancel",
            tooltip="Cancel the selected job (asks first)",
        ),
        Binding(
            "ctrl+g", "focus_widget('ft-jobs')", "Jobs", id="finetune.jobs",
            tooltip="Move to the job list (its log tail shows below)",
        ),
        Binding("ctrl+f", "focus_form", "Form", id="finetune.form", tooltip="Move to the form"),
        Binding(
            "ctrl+o", "load_toml", "Load TOML", id="finetune.load-toml",
            tooltip="Fill the form from the config TOML file",
        ),
        Binding(
            "ctrl+s", "save_toml", "Save TOML", id="finetune.save-toml",
            tooltip="Write the form to the config TOML file",
        ),
    ]  # fmt: skip
    running: reactive[bool] = reactive(False, init=False)  # a launch is being submitted

    class Launched(Message):
        def __init__(self, job: Job) -> None:
            super().__init__()
            self.job = job

    class JobsUpdated(Message):
        def __init__(self, jobs: list[Job], tail: str, tail_job: int | None, error: str | None) -> None:
            super().__init__()
            self.jobs, self.tail, self.tail_job, self.error = jobs, tail, tail_job, error

    class Cancelled(Message):
        def __init__(self, job: Job) -> None:
            super().__init__()
            self.job = job

    def __init__(self) -> None:
        super().__init__()
        self.jobs: dict[int, Job] = {}
        self.selected_job: int | None = None
        self.shown_tail: tuple[int | None, str] = (None, "")
        self.first_poll = True
        self.handed_jobs: set[int] = set()  # fine-tunes whose adapter was handed to Sweep
        self.job_widths: list[int] = []

    def compose(self) -> ComposeResult:
        defaults = FinetuneConfig()
        yield step_bar(self.STEP)
        yield Static("Fine-tune: config (defaults shown), launcher, jobs", classes="step-title")
        with VerticalScroll(id="ft-form"):
            yield Static("launcher", classes="section")
            yield self.field("launcher", "ft-launcher", "local", "local or slurm")
            for input_id, label, placeholder in CLUSTER_FIELDS:
                yield self.field(label, input_id, "", placeholder)
            yield Static("config", classes="section")
            yield self.field("config TOML", "ft-config-file", "", "ctrl+o loads it, ctrl+s saves the form")
            for item in dataclasses.fields(FinetuneConfig):
                yield self.field(
                    item.name, _field_id(item.name), _format_default(getattr(defaults, item.name))
                )
        yield Static("", id="ft-cli", classes="hint")
        yield DataTable(id="ft-jobs", cursor_type="row", zebra_stripes=True)
        yield Static("", id="ft-detail", classes="hint")
        yield wrapped_log("ft-log")
        yield step_footer()

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#ft-jobs", DataTable)
        table.add_columns(*JOB_COLUMNS)
        remembered = self.ft_app.prefs.get("finetune_job")
        if isinstance(remembered, int):
            self.selected_job = remembered
        self.poll_jobs()
        self.set_interval(POLL_SECONDS, self.poll_jobs)
        self.show_cli()

    def action_focus_form(self) -> None:
        self.query_one("#ft-launcher").focus()

    # ------------------------------------------------------------ TOML and the CLI command

    def launched_path(self) -> str:
        """Where a launch writes the form (Workspace.launch_finetune); the job reads that file."""
        return launching.launched_path("finetune", self.value("ft-name") or "finetune")

    def show_cli(self) -> None:
        command = launching.cli_command(
            "finetune", self.launched_path(), self.value("ft-launcher").lower(), self.value("ft-cluster-file")
        )
        self.query_one("#ft-cli", Static).update(
            Text(f"Same as (ctrl+r writes the file): {command}", style="dim")
        )

    @guarded
    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id in ("ft-config-file", "ft-name", "ft-launcher", "ft-cluster-file"):
            self.show_cli()

    def action_load_toml(self) -> None:
        path = self.value("ft-config-file")
        if not path:
            raise UserError("config TOML: give the file to load (e.g. configs/finetune.tiny.toml)")
        config = finetune_engine.load_config(Path(path).expanduser())  # checked: names file and field
        for item in dataclasses.fields(FinetuneConfig):
            self.set_value(_field_id(item.name), _format_default(getattr(config, item.name)))
        if not self.keep_handed(path):
            self.notify(f"Loaded {path}.", markup=False)

    def action_save_toml(self) -> None:
        path = self.value("ft-config-file")
        if not path:
            raise UserError("config TOML: give the file to save to (e.g. my-finetune.toml)")
        config = self.build_config()
        target = Path(path).expanduser()
        write_atomic(target, to_toml("finetune", config))
        self.notify(f"Saved {target}.", markup=False)

    # ------------------------------------------------------------ launch

    def build_config(self) -> FinetuneConfig:
        defaults = FinetuneConfig()
        values = {
            item.name: parse_form_value(
                item.name, self.value(_field_id(item.name)), getattr(defaults, item.name)
            )
            for item in dataclasses.fields(FinetuneConfig)
        }
        config = config_from_dict(values, where="fine-tune form")
        # The config file is written under the data folder and the job may start elsewhere:
        # paths typed relative to where the TUI runs are made absolute now.
        for name in ("dataset", "output_dir"):
            setattr(config, name, resolve_from(getattr(config, name), Path.cwd()))
        if config.base_model.startswith(".") and Path(config.base_model).exists():
            config.base_model = str(Path(config.base_model).resolve())
        return config

    def build_cluster(self) -> ClusterSettings:
        from_file = launching.cluster_from_file(self.value("ft-cluster-file"))
        if from_file is not None:
            return from_file
        settings = ClusterSettings(
            partition=self.value("ft-partition") or None,
            account=self.value("ft-account") or None,
            gpus=parse_int(self.value("ft-gpus"), field_name="gpus", default=0) or 0,
            time=self.value("ft-time") or None,
            mem=self.value("ft-mem") or None,
        )
        settings.validate("cluster settings form")
        return settings

    def action_launch(self) -> None:
        if self.running:
            self.notify("Already submitting a job...", severity="warning")
            return
        # A bad field raises UserError, reported by the StepScreen guard.
        launcher = launching.check_launcher(self.value("ft-launcher"))
        config = self.build_config()
        cluster = self.build_cluster()
        self.remember()
        job_name = f"ft-hallu-{config.name}"
        for job in self.jobs.values():  # the run name is checked now, not by a job failing later
            if job.name == job_name and not job.finished:
                raise UserError(
                    f"name: job {job.id} ({job.ref}) named {config.name!r} is still {job.state}; "
                    "pick another name or cancel it (ctrl+t)"
                )
        output = config.resolved_output_dir()
        if output.is_dir() and any(output.iterdir()) and not config.overwrite:
            self.confirm(
                "Overwrite the adapter?",
                f"{output} already holds a run (name {config.name!r}). Train again and overwrite it? "
                "(n: change name or output_dir instead)",
                "Yes, overwrite it",
                lambda: self.start_launch(dataclasses.replace(config, overwrite=True), cluster, launcher),
            )
            return
        self.start_launch(config, cluster, launcher)

    def start_launch(self, config: FinetuneConfig, cluster: ClusterSettings, launcher: str) -> None:
        self.running = True
        self.notify(f"Submitting {config.name} ({launcher})...", markup=False)  # a name is shown as typed
        self._launch(config, cluster, launcher)

    @step_worker(group="ft-launch")
    def _launch(self, config: FinetuneConfig, cluster: ClusterSettings, launcher_name: str) -> None:
        # A failure is reported by StepScreen.on_worker_state_changed -> worker_failed.
        # The job's own checks run here first, so a bad dataset or output folder is said now,
        # not by a job that exits 2 seconds after it was queued.
        finetune_engine.check_inputs(config)
        self.post_message(self.Launched(self.workspace.launch_finetune(config, cluster, launcher_name)))

    def report_error(self, exc: BaseException, *, where: str = "", title: str = "") -> str:
        if isinstance(exc, UserError):
            exc = UserError(launching.launcher_words(str(exc)))
        return super().report_error(exc, where=where, title=title)

    def busy_work(self) -> list[str]:
        return [job_line(job) for job in self.jobs.values() if not job.finished]

    def worker_failed(self, worker, line: str) -> None:
        if worker.group == "ft-launch":
            self.running = False
        elif worker.group == "ft-cancel":
            self.poll_jobs()

    def on_finetune_screen_launched(self, message: Launched) -> None:
        self.running = False
        job = message.job
        self.selected_job = job.id
        self.ft_app.prefs["finetune_job"] = job.id
        waiting = self.ft_app.prefs.get("finetunes_to_hand_on")
        self.ft_app.prefs["finetunes_to_hand_on"] = [*(waiting if isinstance(waiting, list) else []), job.id]
        self.ft_app.write_prefs()
        self.clear_handed()
        self.notify(f"Job {job.id} submitted ({job.ref}).", markup=False)
        self.poll_jobs()
        self.query_one("#ft-jobs", DataTable).focus()

    # ------------------------------------------------------------ job list and log tail

    def poll_jobs(self) -> None:
        self._poll(self.selected_job)

    @step_worker(group="ft-poll", exclusive=True)
    def _poll(self, selected: int | None) -> None:
        # Polled every second: errors are caught here and notified once, not every second.
        try:
            jobs = self.workspace.settle_jobs()  # finished jobs' run records and rows come in here
            if selected is None or selected not in {job.id for job in jobs}:
                active = [job for job in jobs if not job.finished]
                selected = (active or jobs)[0].id if jobs else None
            tail = ""
            if selected is not None:
                job = next(job for job in jobs if job.id == selected)
                tail = self.workspace.job_log(job, TAIL_LINES)
        except Exception as exc:  # noqa: BLE001 - e.g. the launch module missing or a broken store
            self.post_message(self.JobsUpdated([], "", None, error_line(exc)))
            return
        self.post_message(self.JobsUpdated(jobs, tail, selected, None))

    def on_finetune_screen_jobs_updated(self, message: JobsUpdated) -> None:
        if message.error:
            if self.first_poll:
                self.notify(message.error, title="jobs", severity="error", markup=False)
            self.first_poll = False
            return
        table = self.query_one("#ft-jobs", DataTable)
        previous = dict(self.jobs)
        self.jobs = {job.id: job for job in message.jobs}
        rows = {
            job.id: (
                str(job.id),
                Text(job.ref),
                Text(job.name),
                job.state,
                elapsed_text(job.started_at or job.submitted_at, job.finished_at),
            )
            for job in message.jobs
        }
        self.hand_on_adapters(previous, message.jobs)
        # Widths from the content, set here: auto-widths follow only on the table's next refresh,
        # so an unfocused table showed 'COMPLET' and 'loc' (a state that grows rebuilds it).
        widths = [
            max([len(title), *(len(str(values[index])) for values in rows.values())])
            for index, title in enumerate(JOB_COLUMNS)
        ]
        if list(previous) == list(self.jobs) and table.row_count == len(rows) and widths == self.job_widths:
            for job_id, values in rows.items():
                for column, value in zip(table.columns, values, strict=False):
                    table.update_cell(str(job_id), column, value)
        else:
            table.clear(columns=True)
            for title, width in zip(JOB_COLUMNS, widths, strict=True):
                table.add_column(title, width=width)
            for job_id, values in rows.items():
                table.add_row(*values, key=str(job_id))
            self.job_widths = widths
        if self.first_poll:
            running = [job for job in message.jobs if not job.finished]
            if running:
                self.notify(f"Reattached to {len(running)} running job(s).")
            self.first_poll = False
        shown = self.jobs.get(message.tail_job) if message.tail_job is not None else None
        detail = ""
        if shown is not None:
            detail = f"job {shown.id} {shown.state}: {shown.detail or 'no detail'}; output {shown.output_dir}"
        self.query_one("#ft-detail", Static).update(Text(detail))
        if message.tail_job is not None:
            if self.selected_job != message.tail_job:
                self.selected_job = message.tail_job
            if str(message.tail_job) in table.rows and table.cursor_row != table.get_row_index(
                str(message.tail_job)
            ):
                table.move_cursor(row=table.get_row_index(str(message.tail_job)))
            if self.shown_tail != (message.tail_job, message.tail):
                log = self.query_one("#ft-log", RichLog)
                log.clear()
                for line in message.tail.splitlines():
                    log.write(Text(line))
                self.shown_tail = (message.tail_job, message.tail)

    def hand_on_adapters(self, previous: dict[int, Job], jobs: list[Job]) -> None:
        """A fine-tune launched from this TUI hands its adapter (and base) to Sweep once it completes,
        also when it completed while the TUI was closed (the launched ids are in the preferences)."""
        prefs = self.ft_app.prefs
        waiting = [i for i in prefs.get("finetunes_to_hand_on", []) if isinstance(i, int)]
        for job in jobs:
            seen_finishing = job.id in previous and not previous[job.id].finished
            if job.kind == "sweep" or job.state != "COMPLETED" or job.id in self.handed_jobs:
                continue
            if job.id not in waiting and not seen_finishing:
                continue  # finished before this TUI looked, launched elsewhere: the operator chooses
            self.handed_jobs.add(job.id)
            waiting = [i for i in waiting if i != job.id]
            prefs["finetunes_to_hand_on"] = waiting
            raw = job.config.get("finetune") or {}
            table = raw.get("finetune", raw) if isinstance(raw, dict) else {}
            values = {"sw-adapter": job.output_dir}
            if isinstance(table.get("base_model"), str):
                values["sw-base"] = table["base_model"]
            self.ft_app.handoff("sweep", values)  # writes the preferences
            self.notify(
                f"Job {job.id} finished: F4 sweeps its adapter {job.output_dir} (filled in).", markup=False
            )

    @on(DataTable.RowHighlighted, "#ft-jobs")
    @guarded
    def _job_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            job_id = int(event.row_key.value)
            if job_id != self.selected_job:
                self.selected_job = job_id
                self.ft_app.prefs["finetune_job"] = job_id
                self.poll_jobs()

    # ------------------------------------------------------------ cancel

    def action_cancel_job(self) -> None:
        job = self.jobs.get(self.selected_job) if self.selected_job is not None else None
        if job is None:
            self.notify("No job selected (ctrl+g focuses the job list).", severity="warning")
            return
        if job.finished:
            self.notify(f"Job {job.id} already finished: {job.state}.", severity="warning")
            return
        self.confirm(
            "Cancel the job?",
            f"Cancel job {job.id} ({job.ref}, {job.name}, {job.state})? Its training stops; "
            "what it wrote so far stays in its folder.",
            "Yes, cancel it",
            lambda: self.start_cancel(job),
        )

    def start_cancel(self, job: Job) -> None:
        self.notify(f"Cancelling job {job.id} ({job.ref})...", markup=False)
        self._cancel(job)

    @step_worker(group="ft-cancel")
    def _cancel(self, job: Job) -> None:
        self.post_message(self.Cancelled(self.workspace.cancel_job(job)))

    def on_finetune_screen_cancelled(self, message: Cancelled) -> None:
        self.notify(f"Job {message.job.id}: {message.job.state}.")
        self.poll_jobs()
