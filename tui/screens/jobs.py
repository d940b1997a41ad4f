"""Jobs: every fine-tune and sweep job, local or Slurm, in one place.

Each row gives the job's kind, name, state, progress (steps of a fine-tune, rows of a sweep) and
how long it ran; under the table, the selected job's detail line (what finished and where its
output is, or why it failed) and its log's last lines without progress-bar litter, wrapped. The
actions: cancel, re-submit a failed sweep shard, ingest (read what the job left into the store)
and open its results (a sweep in Results, a fine-tune's adapter in Sweep).

The list is polled in a thread worker: ``Workspace.jobs()`` (states only: listing reads nothing
into the store) and ``Workspace.job_report()`` per job (the job's own files). What a finished job
left is read into the store only when asked: ctrl+e (``Workspace.ingest_job``). Jobs live in the store, so a restarted TUI
lists the running ones again and keeps following them (reattach). A fine-tune launched from this
TUI hands its adapter and base to Sweep once it completes, also when it completed while the TUI
was closed (the launched ids are kept in the preferences).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable, RichLog, Static

from engine.errors import UserError
from engine.workspace import IngestResult, Job, JobReport
from tui.screens.base import (
    StepScreen,
    error_line,
    guarded,
    job_line,
    show_line,
    show_lines,
    step_bar,
    step_footer,
    step_worker,
    wrap_words,
    wrapped_log,
)
from tui.steps import step_key

POLL_SECONDS = 1.0
BACKGROUND_EVERY = 5  # polls while another step is shown: one in five, and only while a job is active
LOG_LINES = 60
COLUMNS = ("#", "kind", "name", "state", "progress", "time", "where")
KIND_TITLES = {"finetune": "fine-tune", "sweep": "sweep"}
NAME_PREFIX = "ft-hallu-"  # every job name starts with it; the table shows the rest
LAUNCHED_FROM = f"{step_key('finetune')} Fine-tune or {step_key('sweep')} Sweep"


def job_row(job: Job, report: JobReport | None) -> tuple[Any, ...]:
    name = job.name[len(NAME_PREFIX) :] if job.name.startswith(NAME_PREFIX) else job.name
    return (
        str(job.id),
        KIND_TITLES.get(job.kind, job.kind),
        Text(name),
        job.state,
        report.progress if report is not None else "",
        report.elapsed if report is not None else "",
        job.launcher,
    )


def action_hint(report: JobReport) -> str:
    """What the keys of this screen can do with the job now (short: the detail box has 5 rows)."""
    job = report.job
    if not job.finished:
        return "ctrl+t cancels it."
    hints = []
    if report.sweep_id is not None:
        hints.append(f"ctrl+o opens sweep {report.sweep_id} in Results.")
    elif report.adapter:
        hints.append(f"ctrl+o sweeps it ({step_key('sweep')}).")
    if report.failed_shards:
        hints.append("ctrl+r re-submits the shard(s).")
    if not job.ingested_at and job.job_dir:
        what = "its rows" if job.kind == "sweep" else "its run record"
        hints.append(f"ctrl+e reads {what} into the store.")
    return " ".join(hints)


class JobsScreen(StepScreen):
    STEP = "jobs"
    TITLE_TEXT = "Jobs"
    AUTO_FOCUS = "#jobs-table"
    BINDINGS = [
        Binding("ctrl+t", "cancel_job", "Cancel", id="jobs.cancel", tooltip="Cancel the selected job (asks first)"),
        Binding(
            "ctrl+r", "resubmit", "Resubmit", id="jobs.resubmit",
            tooltip="Queue the selected sweep's unfinished shards again (rows already written are kept)",
        ),
        Binding(
            "ctrl+e", "ingest", "Ingest", id="jobs.ingest",
            tooltip="Read what the selected job left in its folder into the store (also while it runs)",
        ),
        Binding(
            "ctrl+o", "open_results", "Open", id="jobs.open",
            tooltip="Open the job's results: a sweep in Results, a fine-tune's adapter in Sweep",
        ),
    ]  # fmt: skip
    polling: reactive[bool] = reactive(False, init=False)  # a poll of the job list is in flight

    class Polled(Message):
        """The jobs, their reports, and the masked name of each new fine-tune's dataset (job id ->
        name) for the hand-on to Sweep."""

        def __init__(
            self, jobs: list[Job], reports: dict[int, JobReport], names: dict[int, str], error: str | None
        ) -> None:
            super().__init__()
            self.jobs, self.reports, self.names, self.error = jobs, reports, names, error

    class Done(Message):
        """An action's worker finished: ``line`` is said, ``select`` (a new job) is selected."""

        def __init__(self, line: str, select: int | None = None) -> None:
            super().__init__()
            self.line, self.select = line, select

    def __init__(self) -> None:
        super().__init__()
        self.jobs: dict[int, Job] = {}
        self.reports: dict[int, JobReport] = {}
        self.selected: int | None = None
        self.shown_log: tuple[int | None, str] = (None, "")
        self.widths: list[int] = []
        self.first_poll = True
        self.ticks = 0
        self.handed_jobs: set[int] = set()  # fine-tunes whose adapter was handed to Sweep
        self.masked_names: dict[int, str] = {}  # fine-tune job -> the name its masked dataset uses

    def compose(self) -> ComposeResult:
        yield step_bar(self.STEP)
        yield Static("Jobs: every fine-tune and sweep, local or Slurm", classes="step-title")
        yield DataTable(id="jobs-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="jobs-detail")
        yield Static("", id="jobs-note", classes="status")  # what the last action did
        yield wrapped_log("jobs-log", max_lines=LOG_LINES * 2)
        yield step_footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#jobs-table", DataTable).add_columns(*COLUMNS)
        show_line(self.query_one("#jobs-note", Static), "")
        self.take_selection()
        self.poll()
        self.set_interval(POLL_SECONDS, self.tick)

    def on_screen_resume(self) -> None:
        # (StepScreen.on_screen_resume runs too: Textual calls the handler of every class.)
        self.take_selection()
        self.poll()

    def take_selection(self) -> None:
        """A job another step just launched (Fine-tune, Sweep) becomes the selected one."""
        wanted = self.ft_app.prefs.pop("jobs_selected", None)
        if isinstance(wanted, int):
            self.selected = wanted
            self.ft_app.write_prefs()

    # ------------------------------------------------------------ polling

    def tick(self) -> None:
        self.ticks += 1
        if self.polling:
            return
        if not self.is_current:  # another step is shown: only watch for jobs that may still change
            active = any(not job.finished for job in self.jobs.values())
            if not active or self.ticks % BACKGROUND_EVERY:
                return
        self.poll()

    def poll(self) -> None:
        if self.polling:
            return
        self.polling = True
        self._poll(self.selected, dict(self.reports), set(self.masked_names))

    @step_worker(group="jobs-poll", exclusive=True)
    def _poll(self, selected: int | None, known: dict[int, JobReport], named: set[int]) -> None:
        # Polled every second: an error is caught here and said once, not every second.
        try:
            jobs = self.workspace.jobs()  # states only: what a job left comes in with ctrl+e
            reports: dict[int, JobReport] = {}
            names: dict[int, str] = {}
            for job in jobs:
                old = known.get(job.id)
                unchanged = old is not None and old.job == job and job.finished
                report = old if unchanged and job.id != selected else self.workspace.job_report(job, LOG_LINES)
                reports[job.id] = report
                if report.adapter and report.dataset and job.id not in named:  # once per fine-tune
                    recorded = self.workspace.recorded_mask_for(report.dataset)
                    names[job.id] = recorded.new_name if recorded is not None else ""
        except Exception as exc:  # noqa: BLE001 - e.g. a broken store: the screen says it and stays
            self.post_message(self.Polled([], {}, {}, error_line(exc)))
            return
        self.post_message(self.Polled(jobs, reports, names, None))

    def worker_failed(self, worker, line: str) -> None:
        if worker.group == "jobs-poll":
            self.polling = False

    def on_jobs_screen_polled(self, message: Polled) -> None:
        self.polling = False
        if message.error:
            if self.first_poll:
                self.notify(message.error, title="jobs", severity="error", markup=False)
            self.first_poll = False
            return
        previous = dict(self.jobs)
        self.jobs = {job.id: job for job in message.jobs}
        self.reports = message.reports
        self.masked_names.update(message.names)
        if self.selected not in self.jobs:
            active = [job for job in message.jobs if not job.finished]
            self.selected = (active or message.jobs)[0].id if message.jobs else None
        self.fill_table()
        self.hand_on_adapters(previous, message.jobs)
        if self.first_poll:
            running = [job for job in message.jobs if not job.finished]
            if running:
                self.notify(f"Reattached to {len(running)} running job(s).")
            self.first_poll = False
        self.show_selected()

    def fill_table(self) -> None:
        table = self.query_one("#jobs-table", DataTable)
        rows = {job_id: job_row(job, self.reports.get(job_id)) for job_id, job in self.jobs.items()}
        # Widths from the content, set here: auto-widths follow only on the table's next refresh,
        # so an unfocused table showed 'COMPLET' (a state that grows rebuilds the columns).
        widths = [
            max([len(title), *(len(str(values[index])) for values in rows.values())])
            for index, title in enumerate(COLUMNS)
        ]
        same_rows = [str(key) for key in rows] == [key.value for key in table.rows]
        if same_rows and widths == self.widths:
            for job_id, values in rows.items():
                for column, value in zip(table.columns, values, strict=False):
                    table.update_cell(str(job_id), column, value)
        else:
            table.clear(columns=True)
            for title, width in zip(COLUMNS, widths, strict=True):
                table.add_column(title, width=width)
            for job_id, values in rows.items():
                table.add_row(*values, key=str(job_id))
            self.widths = widths
        if self.selected is not None and str(self.selected) in table.rows:
            index = table.get_row_index(str(self.selected))
            if table.cursor_row != index:
                table.move_cursor(row=index)

    def show_selected(self) -> None:
        detail = self.query_one("#jobs-detail", Static)
        report = self.reports.get(self.selected) if self.selected is not None else None
        if report is None:
            detail.update(
                Text(f"No jobs yet: {LAUNCHED_FROM} launches one (ctrl+r there).", style="dim")
                if not self.jobs
                else ""
            )
            show_lines(self.query_one("#jobs-log", RichLog), [])
            return
        job = report.job
        style = "green" if job.state == "COMPLETED" else "red" if job.finished and job.state != "COMPLETED" else ""
        text = Text(report.detail + ".", style=style)
        hint = action_hint(report)
        if hint:
            text.append(" " + hint, style="bold")
        detail.update(text)
        if self.shown_log != (job.id, report.log):
            self.shown_log = (job.id, report.log)
            # Broken between a path's folders rather than inside a name (the log wraps what is left).
            width = max(self.app.size.width - 3, 20)
            head = Text(wrap_words(f"log {job.log_path}", width), style="dim")
            lines = [wrap_words(line, width) for line in report.log.splitlines()] or ["(nothing in it yet)"]
            show_lines(self.query_one("#jobs-log", RichLog), [head, *lines])

    @on(DataTable.RowHighlighted, "#jobs-table")
    @guarded
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is None:
            return
        job_id = int(event.row_key.value)
        if job_id != self.selected:
            self.selected = job_id
            self.show_selected()  # what is known now; the poll brings its log up to date
            self.poll()

    @on(DataTable.RowSelected, "#jobs-table")
    @guarded
    def _row_selected(self, _event: DataTable.RowSelected) -> None:
        self.action_open_results()

    # ------------------------------------------------------------ hand-on to Sweep

    def hand_on_adapters(self, previous: dict[int, Job], jobs: list[Job]) -> None:
        """A fine-tune launched from this TUI hands its adapter (and base) to Sweep once it completes,
        also when it completed while the TUI was closed (the launched ids are in the preferences)."""
        prefs = self.ft_app.prefs
        waiting = [i for i in prefs.get("finetunes_to_hand_on", []) if isinstance(i, int)]
        for job in jobs:
            report = self.reports.get(job.id)
            seen_finishing = job.id in previous and not previous[job.id].finished
            if job.kind != "finetune" or report is None or not report.adapter or job.id in self.handed_jobs:
                continue
            if job.id not in waiting and not seen_finishing:
                continue  # finished before this TUI looked, launched elsewhere: the operator chooses
            self.handed_jobs.add(job.id)
            waiting = [i for i in waiting if i != job.id]
            prefs["finetunes_to_hand_on"] = waiting
            self.ft_app.handoff("sweep", self.sweep_values(report))  # writes the preferences
            self.notify(
                f"Job {job.id} finished: {step_key('sweep')} sweeps its adapter {report.adapter} (filled in).",
                markup=False,
            )

    def sweep_values(self, report: JobReport) -> dict[str, str]:
        """What Sweep needs of a fine-tune: its adapter and base, the QA file it was trained on
        (held-out questions, sources) and the name that file's mask gave the company."""
        values = {"sw-adapter": report.adapter or ""}
        if report.base_model:
            values["sw-base_model"] = report.base_model
        if report.dataset:
            values["sw-dataset"] = report.dataset
        if self.masked_names.get(report.job.id):
            values["sw-entity_name"] = self.masked_names[report.job.id]
        return values

    # ------------------------------------------------------------ actions

    def selected_report(self) -> JobReport:
        report = self.reports.get(self.selected) if self.selected is not None else None
        if report is None:
            raise UserError(f"no job selected: launch one from {LAUNCHED_FROM} (ctrl+r)")
        return report

    def action_cancel_job(self) -> None:
        job = self.selected_report().job
        if job.finished:
            self.notify(f"Job {job.id} already finished: {job.state}.", severity="warning")
            return
        kept = "rows it wrote so far are kept" if job.kind == "sweep" else "no adapter is saved"
        self.confirm(
            "Cancel the job?",
            f"Cancel job {job.id} ({job.ref}, {job.name}, {job.state})? It stops now; {kept}.",
            "Yes, cancel it",
            lambda: self._cancel(job),
        )

    @step_worker(group="jobs-action")
    def _cancel(self, job: Job) -> None:
        done = self.workspace.cancel_job(job)
        self.post_message(self.Done(f"Job {done.id}: {done.state}."))

    def action_resubmit(self) -> None:
        report = self.selected_report()
        job = report.job
        if job.kind != "sweep":
            raise UserError(
                f"job {job.id} is a fine-tune: launch it again from {step_key('finetune')} Fine-tune "
                f"(its config: {job.config_path})"
            )
        if not report.failed_shards:
            raise UserError(f"job {job.id} has no unfinished shard to re-submit ({job.state})")
        shards = ", ".join(map(str, report.failed_shards))
        self.confirm(
            "Re-submit?",
            f"Queue shard(s) {shards} of job {job.id} ({job.name}) again? Rows its earlier attempts "
            "wrote are kept; only the missing ones run.",
            "Yes, re-submit",
            lambda: self._resubmit(job, report.failed_shards),
        )

    @step_worker(group="jobs-action")
    def _resubmit(self, job: Job, shards: tuple[int, ...]) -> None:
        again = [self.workspace.resubmit(job, shard) for shard in shards]
        names = ", ".join(f"job {new.id} ({new.ref})" for new in again)
        self.post_message(self.Done(f"Re-submitted as {names}.", select=again[-1].id))

    def action_ingest(self) -> None:
        job = self.selected_report().job
        show_line(self.query_one("#jobs-note", Static), f"Reading job {job.id}'s folder into the store...")
        self._ingest(job)

    @step_worker(group="jobs-action")
    def _ingest(self, job: Job) -> None:
        result: IngestResult = self.workspace.ingest_job(job)
        self.post_message(self.Done(result.line()))

    def action_open_results(self) -> None:
        report = self.selected_report()
        job = report.job
        if report.sweep_id is not None:
            self.ft_app.handoff("results", {"sweep": report.sweep_id})
            self.ft_app.action_goto("results")
        elif report.adapter:
            self.ft_app.handoff("sweep", self.sweep_values(report))
            self.ft_app.action_goto("sweep")
        elif job.kind == "sweep" and job.state == "COMPLETED" and not job.ingested_at:
            raise UserError(f"job {job.id}'s rows are not in the store yet: ctrl+e reads them in, then ctrl+o")
        else:
            raise UserError(f"job {job.id} has no results to open yet ({job.state})")

    def on_jobs_screen_done(self, message: Done) -> None:
        show_line(self.query_one("#jobs-note", Static), Text(message.line, style="bold"))
        self.notify(message.line, markup=False)
        if message.select is not None:
            self.selected = message.select
        self.poll()

    def busy_work(self) -> list[str]:
        return [job_line(job) for job in self.jobs.values() if not job.finished]
