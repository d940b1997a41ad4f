"""Sweep: the config as a form built from ``SweepConfig`` (basic fields first: models, dataset,
grid, samples; the Slurm settings and the advanced fields folded away), launched as a detached job
(local or Slurm), followed live (progress from its results files, the latest rows with their
variant and cell), cancelled after a confirmation, and reattached after a restart. Every job is
also in the Jobs step. A config that is already stored under another name is shown (or
re-seeded), never silently "done". A new form proposes the latest finished adapter in runs/ and
its base (``engine.proposals``).

The TUI process never generates: quitting is instant and the job keeps running.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Input, ProgressBar, RichLog, Static

from engine import proposals
from engine import sweep as sweep_engine
from engine.configfile import to_toml
from engine.dataset import write_atomic
from engine.errors import UserError
from engine.metrics import catalog
from engine.workspace import ClusterSettings, Job, SweepConfig, SweepInfo
from tui import forms, launching
from tui.screens.base import (
    StepScreen,
    guarded,
    job_line,
    keep_focus_in_view,
    parse_int,
    show_line,
    show_lines,
    step_bar,
    step_footer,
    step_worker,
    wrapped_log,
)
from tui.steps import step_key

POLL_SECONDS = 1.0
LOG_ROWS = 12  # latest generated rows shown, each with its variant and cell
# The summary metrics (catalogue order) and their short titles, as in the Results table.
SUMMARY_METRICS = {name: catalog.cell_metric(name).title for name in catalog.SUMMARY_METRICS}


# Shown first, in this order; every other SweepConfig field (a new one too) goes under "advanced".
# control: the known facts a study compares base and fine-tuned on (docs/STUDY.md); checkpoints,
# for a fine-tune that kept some, is under advanced (one more row would push the fold off 80x24).
BASIC_FIELDS = (
    "name", "base_model", "adapter", "dataset", "entity_name", "control",
    "grid.temperatures", "grid.top_ps", "grid.top_ks", "samples_per_cell", "max_new_tokens",
)  # fmt: skip
FIELDS = forms.form_fields(SweepConfig, "sw")


def settled(job: Job) -> bool:
    """Finished and read into the store: nothing more will change."""
    return job.finished and bool(job.ingested_at)


def cell_label(row: dict[str, Any]) -> str:
    return (
        f"{row.get('variant')} T={float(row.get('temperature', 0)):g} p={float(row.get('top_p', 0)):g} "
        f"k={row.get('top_k')} {row.get('prompt_id')} #{row.get('sample_index')}"
    )


class SweepScreen(StepScreen):
    STEP = "sweep"
    TITLE_TEXT = "Sweep"
    LABEL_WIDTH = max(len(item.label) for item in FIELDS) + 1
    BINDINGS = [
        Binding(
            "ctrl+r", "start", "Launch", id="sweep.launch",
            tooltip="Check the form and launch the sweep as a job (it keeps running if you quit)",
        ),
        Binding(
            "ctrl+t", "cancel_job", "Cancel", id="sweep.cancel",
            tooltip="Cancel the sweep job (asks first; rows it wrote are kept)",
        ),
        Binding(
            "ctrl+g", "jobs", "Jobs", id="sweep.jobs",
            tooltip="Open the Jobs step: every job's state, log, re-submit and results",
        ),
        Binding(
            "ctrl+o", "load_toml", "Load TOML", id="sweep.load-toml",
            tooltip="Fill the form from the sweep TOML file",
        ),
        Binding(
            "ctrl+s", "save_toml", "Save TOML", id="sweep.save-toml",
            tooltip="Write the form to the sweep TOML file",
        ),
    ]  # fmt: skip
    running: reactive[bool] = reactive(False, init=False)  # a check or launch is in flight (not the job)
    polling: reactive[bool] = reactive(False, init=False)  # a poll of the followed job is in flight

    class Checked(Message):
        def __init__(self, config: SweepConfig, identical: SweepInfo | None, seed_tried: int) -> None:
            super().__init__()
            self.config, self.identical, self.seed_tried = config, identical, seed_tried

    class Launched(Message):
        def __init__(self, job: Job) -> None:
            super().__init__()
            self.job = job

    class JobUpdate(Message):
        def __init__(
            self,
            job: Job,
            done: int,
            planned: int,
            rate: float | None,
            rows: list[dict[str, Any]],
            summary: str,
        ) -> None:
            super().__init__()
            self.job, self.done, self.planned, self.rate, self.rows, self.summary = (
                job,
                done,
                planned,
                rate,
                rows,
                summary,
            )

    class JobGone(Message):
        def __init__(self, job_id: int) -> None:
            super().__init__()
            self.job_id = job_id

    class Cancelled(Message):
        def __init__(self, job: Job) -> None:
            super().__init__()
            self.job = job

    class Proposed(Message):
        def __init__(self, proposal: proposals.Proposal) -> None:
            super().__init__()
            self.proposal = proposal

    def __init__(self) -> None:
        super().__init__()
        self.job: Job | None = None  # the sweep job this screen follows
        self.last_sweep_id: int | None = None
        self.shown_rows: tuple[Any, ...] = ()
        self.finished_seen: set[int] = set()

    def compose(self) -> ComposeResult:
        defaults = forms.flat_values(SweepConfig(), FIELDS)
        basic, advanced = forms.split_basic(FIELDS, BASIC_FIELDS)
        yield step_bar(self.STEP)
        yield Static("Sweep: base vs fine-tuned over T x top_p x top_k, as a job", classes="step-title")
        with VerticalScroll(id="sweep-form", classes="form-area"):
            yield self.field(
                "launcher", "sw-launcher", "local", "local or slurm",
                help="local: a detached process on this machine; slurm: sbatch (settings folded below)",
            )  # fmt: skip
            yield self.field(
                "sweep TOML", "sw-config-file", "", "ctrl+o loads it, ctrl+s saves the form",
                help="a sweep TOML (configs/sweep.example.toml shape): ctrl+o loads it, ctrl+s saves",
            )  # fmt: skip
            for item in basic:
                yield self.field(item.label, item.input_id, defaults[item.input_id], help=item.help)
            with self.folded("Slurm: cluster TOML, shards", "sw-slurm"):
                yield self.field(
                    "cluster TOML", "sw-cluster-file", "", "Slurm settings (configs/cluster.example.toml)",
                    help="a cluster settings TOML (configs/cluster.example.toml)",
                )  # fmt: skip
                yield self.field(
                    "shards", "sw-shards", "1", "Slurm array tasks splitting the rows",
                    help="Slurm array tasks splitting the rows (a local sweep is one process: 1)",
                )  # fmt: skip
            with self.folded(f"advanced: {len(advanced)} more settings (checkpoints, prompts, tokens, seed)", "sw-advanced"):
                for item in advanced:
                    yield self.field(item.label, item.input_id, defaults[item.input_id], help=item.help)
        yield self.help_line()
        yield Static("", id="sweep-cli", classes="hint")
        yield ProgressBar(id="sweep-progress", total=1, show_eta=False)
        yield Static("", id="sweep-status", classes="status")
        yield wrapped_log("sweep-log", max_lines=200)
        yield Static("", id="sweep-summary", classes="status")
        yield step_footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#sweep-progress", ProgressBar).display = False  # until a job is followed
        self.set_status("")
        self.set_summary("")
        self.show_cli()
        remembered = self.ft_app.prefs.get("sweep_job")
        if isinstance(remembered, int):
            self.follow(remembered)  # reattach: the job this screen followed last time
        self.set_interval(POLL_SECONDS, self.poll)
        self._propose()

    def set_status(self, text: str | Text) -> None:
        """The line about the followed job (or a proposal); it takes no row while empty."""
        show_line(self.query_one("#sweep-status", Static), text)

    def set_summary(self, text: str) -> None:
        show_line(self.query_one("#sweep-summary", Static), Text(text))

    def action_jobs(self) -> None:
        if self.job is not None:
            self.ft_app.prefs["jobs_selected"] = self.job.id
        self.ft_app.action_goto("jobs")

    # ------------------------------------------------------------ the proposed models

    @step_worker(group="sweep-propose", exclusive=True)
    def _propose(self) -> None:
        self.post_message(self.Proposed(proposals.propose_sweep_models()))

    def on_sweep_screen_proposed(self, message: Proposed) -> None:
        """A finished adapter and its base (or a base that loads here) fill fields still at their
        defaults; a value typed, remembered or handed on by another step is kept."""
        proposal, defaults = message.proposal, SweepConfig()
        filled = []
        if (
            proposal.adapter
            and not self.value("sw-adapter")
            and not self.remembered("sw-adapter")  # left empty on purpose in an earlier session
            and "sw-adapter" not in self.handed
            and self.value("sw-base_model") in (defaults.base_model, proposal.base_model)
        ):
            self.set_value("sw-adapter", proposal.adapter)
            filled.append(f"adapter {proposal.adapter}")
        base_free = (
            self.value("sw-base_model") == defaults.base_model
            and "sw-base_model" not in self.handed
            and not self.remembered("sw-base_model")
        )
        if base_free and proposal.base_model != defaults.base_model:
            self.set_value("sw-base_model", proposal.base_model)
            filled.append(f"base_model {proposal.base_model}")
        if filled:
            self.set_status(Text(f"Proposed {' and '.join(filled)}: {proposal.why}.", style="cyan"))

    # ------------------------------------------------------------ the form

    def build_config(self) -> SweepConfig:
        values = forms.collect(FIELDS, self.value, where="sweep form")
        if not values["base_model"]:
            raise UserError("base_model: required (a Hugging Face id, a local folder or 'tiny')")
        base = values["base_model"]
        if base.startswith((".", "~")) and Path(base).expanduser().exists():
            values["base_model"] = str(Path(base).expanduser().resolve())
        # Absolute paths: the job may start elsewhere, and the identity hashes the adapter path.
        for name in ("adapter", "dataset"):
            if values[name]:
                values[name] = str(Path(values[name]).expanduser().resolve())
        values["adapters"] = {
            label: str(Path(folder).expanduser().resolve()) for label, folder in values["adapters"].items()
        }
        if not values["prompt_template"]:
            values["prompt_template"] = SweepConfig().prompt_template
        return sweep_engine.sweep_config_from_dict(values, where="sweep form")

    def build_launch(self) -> tuple[str, ClusterSettings, int]:
        launcher = launching.check_launcher(self.value("sw-launcher"))
        cluster = launching.cluster_from_file(self.value("sw-cluster-file"))
        shards = parse_int(self.value("sw-shards"), field_name="shards", default=1) or 1
        if shards < 1:
            raise UserError("shards: at least 1")
        if launcher == "local" and shards != 1:
            raise UserError("shards: a local sweep runs as one process; set shards to 1 or launcher to slurm")
        return launcher, cluster or ClusterSettings(), shards

    def launched_path(self) -> str:
        """Where a launch writes the form (never over a TOML the operator loaded); the job reads it."""
        return launching.launched_path("sweep", self.value("sw-name") or "sweep")

    def show_cli(self) -> None:
        shards = self.value("sw-shards")
        extra = f"--shards {shards}" if shards not in ("", "1") else ""
        command = launching.cli_command(
            "sweep",
            self.launched_path(),
            self.value("sw-launcher").lower(),
            self.value("sw-cluster-file"),
            extra,
        )
        self.query_one("#sweep-cli", Static).update(
            Text(f"Same as (ctrl+r writes the file): {command}", style="dim")
        )

    @guarded
    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id in ("sw-config-file", "sw-name", "sw-launcher", "sw-cluster-file", "sw-shards"):
            self.show_cli()

    def fill_from(self, config: SweepConfig) -> None:
        for input_id, text in forms.flat_values(config, FIELDS).items():
            self.set_value(input_id, text)

    def action_load_toml(self) -> None:
        path = self.value("sw-config-file")
        if not path:
            raise UserError("sweep TOML: give the file to load (e.g. configs/sweep.example.toml)")
        self.fill_from(sweep_engine.load_sweep_config(Path(path).expanduser()))  # checked, names the field
        if not self.keep_handed(path):
            self.notify(f"Loaded {path}.", markup=False)

    def action_save_toml(self) -> None:
        path = self.value("sw-config-file")
        if not path:
            raise UserError("sweep TOML: give the file to save to (e.g. my-sweep.toml)")
        target = Path(path).expanduser()
        write_atomic(target, to_toml("sweep", self.build_config()))
        self.notify(f"Saved {target}.", markup=False)

    # ------------------------------------------------------------ launch

    def action_start(self) -> None:
        if self.running:
            self.notify("Already checking / submitting a sweep...", severity="warning")
            return
        if self.job is not None and not self.job.finished:
            raise UserError(f"sweep job {self.job.id} is still {self.job.state}; ctrl+t cancels it first")
        config = self.build_config()  # a bad field is reported by the StepScreen guard
        self.build_launch()
        self.remember()
        self.running = True
        self.set_status("Checking the config against the stored sweeps...")
        self._check(config, 0)

    @step_worker(group="sweep-check", exclusive=True)
    def _check(self, config: SweepConfig, bump: int) -> None:
        # Looking for a free seed (fresh seeds): the next seeds until one is not stored yet.
        for step in range(bump, bump + 50):
            candidate = dataclasses.replace(config, seed=config.seed + step) if step else config
            identical = self.workspace.identical_sweep(candidate)
            if identical is None or not bump:
                self.post_message(self.Checked(candidate, identical, step))
                return
        raise UserError("seed: 50 seeds in a row are already stored; set one by hand")

    def on_sweep_screen_checked(self, message: Checked) -> None:
        same = message.identical
        if same is None:
            if message.seed_tried:
                self.set_value("sw-seed", message.config.seed)
            self.launch(message.config)
            return
        self.running = False
        rows = f"{same.generation_count}/{same.expected_rows or '?'} rows"
        line = f"Identical to sweep {same.id} ({same.name!r}, {same.status}, {rows})"
        self.set_status(Text(line + ".", style="yellow"))
        answers: list[tuple[str, str, Any]] = [("s", f"Show sweep {same.id} in Results", "show")]
        if same.status not in ("completed", "running"):  # a running one is followed, not doubled
            answers.append(("r", f"Resume sweep {same.id} (it keeps its name {same.name!r})", "resume"))
        answers.append(("f", "A new sweep with fresh seeds under this name", "fresh"))
        question = (
            f"{line}: the name is only a label, so running this config again would add nothing. "
            "Show it, or change the seed for new samples?"
        )

        def chosen(answer: Any) -> None:
            if answer == "show":
                self.show_in_results(same.id, f"identical to sweep {same.id} — showing it")
            elif answer == "resume":
                self.launch(message.config)
            elif answer == "fresh":
                self.running = True
                self._check(message.config, 1)

        self.ask("Already stored", question, answers, chosen)

    def show_in_results(self, sweep_id: int, why: str) -> None:
        self.last_sweep_id = sweep_id
        self.ft_app.handoff("results", {"sweep": sweep_id})
        self.notify(why.capitalize() + ".", markup=False)
        self.ft_app.action_goto("results")

    def launch(self, config: SweepConfig) -> None:
        launcher, cluster, shards = self.build_launch()
        self.running = True
        self.set_status(f"Submitting {config.name} ({launcher})...")
        show_lines(self.query_one("#sweep-log", RichLog), [])
        self.set_summary("")
        self._launch(config, launcher, cluster, shards)

    @step_worker(group="sweep-launch", exclusive=True)
    def _launch(self, config: SweepConfig, launcher: str, cluster: ClusterSettings, shards: int) -> None:
        # The workspace writes the config where the CLI command above reads it, then launches it.
        self.post_message(
            self.Launched(self.workspace.launch_sweep(config, cluster, launcher, shards=shards))
        )

    def worker_failed(self, worker, line: str) -> None:
        if worker.group == "sweep-poll":
            self.polling = False
        if worker.group in ("sweep-check", "sweep-launch"):
            self.running = False
            self.set_status(Text(f"Failed: {line}", style="bold red"))

    def report_error(self, exc: BaseException, *, where: str = "", title: str = "") -> str:
        if isinstance(exc, UserError):
            exc = UserError(launching.launcher_words(str(exc)))
        return super().report_error(exc, where=where, title=title)

    def on_sweep_screen_launched(self, message: Launched) -> None:
        self.running = False
        job = message.job
        self.clear_handed()
        self.ft_app.prefs["jobs_selected"] = job.id  # the Jobs step opens on it
        self.notify(f"Sweep job {job.id} submitted ({job.ref}); quitting leaves it running.", markup=False)
        self.follow(job.id)

    def follow(self, job_id: int) -> None:
        self.ft_app.prefs["sweep_job"] = job_id
        self.ft_app.write_prefs()
        self.start_poll(job_id)

    # ------------------------------------------------------------ following the job

    def poll(self) -> None:
        # One poll at a time: a final state's ingest (and scoring) may outlast the interval.
        if self.job is not None and not settled(self.job) and not self.polling:
            self.start_poll(self.job.id)

    def start_poll(self, job_id: int) -> None:
        self.polling = True
        self._poll(job_id)

    @step_worker(group="sweep-poll")
    def _poll(self, job_id: int) -> None:
        try:
            # Its state; once it has finished, its rows are read into the store (and scored) here,
            # unless another poll of this process (the Fine-tune job list) is doing that right now.
            [job] = self.workspace.settle_jobs([job_id])
        except UserError:  # a remembered job of another store (--db): nothing to reattach to
            self.post_message(self.JobGone(job_id))
            return
        progress = self.workspace.job_progress(job)
        rows = self.workspace.job_latest_rows(job, LOG_ROWS)
        summary = self._summary(job) if settled(job) else ""
        done, planned, rate = (
            (progress.done, progress.planned, progress.rows_per_second) if progress else (0, 0, None)
        )
        self.post_message(self.JobUpdate(job, done, planned, rate, rows, summary))

    def _summary(self, job: Job) -> str:
        """Per variant, the summary metrics of the sweep the job's rows went into (after ingest)."""
        sweeps = [entry for entry in (job.ingest or {}).get("sweeps", []) if isinstance(entry, dict)]
        if not sweeps:
            return f"job {job.id}: nothing ingested ({job.detail or job.state})"
        sweep_id = int(sweeps[0]["sweep_id"])
        lines = [f"sweep {sweep_id}: {sweeps[0].get('stored')}/{sweeps[0].get('expected')} rows stored"]
        try:
            for row in self.workspace.variant_summary(sweep_id, tuple(SUMMARY_METRICS)):
                values = " ".join(
                    f"{short}={row.means[name]:.2f}" if row.means.get(name) is not None else f"{short}=-"
                    for name, short in SUMMARY_METRICS.items()
                )
                lines.append(f"{row.variant:<9} {row.prompt_id:<10} cells={row.cells}  {values}")
        except Exception as exc:  # noqa: BLE001 - the sweep itself is stored; only the summary is missing
            lines.append(f"(no metrics summary: {exc})")
        return "\n".join(lines)

    def on_sweep_screen_job_gone(self, message: JobGone) -> None:
        self.polling = False
        if self.ft_app.prefs.get("sweep_job") == message.job_id:
            self.ft_app.prefs.pop("sweep_job", None)
            self.ft_app.write_prefs()

    def on_sweep_screen_job_update(self, message: JobUpdate) -> None:
        self.polling = False
        job = message.job
        self.job = job
        bar = self.query_one("#sweep-progress", ProgressBar)
        if not bar.display:
            bar.display = True
            keep_focus_in_view(bar)
        if message.planned:
            bar.update(total=message.planned, progress=message.done)
        rate = f", {message.rate:.2f} rows/s" if message.rate else ""
        head = f"Job {job.id} ({job.ref}) {job.state}: {message.done}/{message.planned or '?'} rows{rate}"
        keys = tuple((row.get("variant"), row.get("t")) for row in message.rows)
        if keys != self.shown_rows:
            self.shown_rows = keys
            lines = []
            for row in message.rows:
                line = Text(f"[{cell_label(row)}] ", style="bold cyan")
                line.append(" ".join(str(row.get("text") or "").split()))
                lines.append(line)
            show_lines(self.query_one("#sweep-log", RichLog), lines)
        if not job.finished:
            self.set_status(Text(head + ". Quitting leaves it running; ctrl+t cancels."))
            return
        if not settled(job):
            self.set_status(Text(head + ". Reading its rows into the store (and scoring them)..."))
            return
        if job.id in self.finished_seen:
            return
        self.finished_seen.add(job.id)
        self.set_summary(message.summary)
        sweeps = [e for e in (job.ingest or {}).get("sweeps", []) if isinstance(e, dict)]
        if job.state == "COMPLETED" and sweeps:
            sweep_id = int(sweeps[0]["sweep_id"])
            self.last_sweep_id = sweep_id
            if message.planned:
                bar.update(total=message.planned, progress=message.planned)
            self.set_status(Text(f"Done: sweep {sweep_id} stored. {step_key('results')} shows it in Results.", style="bold green"))
            self.ft_app.handoff("results", {"sweep": sweep_id})
        else:
            self.set_status(Text(f"{head}. {job.detail or ''} ({step_key('jobs')} Jobs: its log and re-submit)".strip(), style="yellow"))

    # ------------------------------------------------------------ cancel and quit

    def action_cancel_job(self) -> None:
        job = self.job
        if job is None or job.finished:
            self.notify("No sweep job is running.", severity="warning")
            return
        self.confirm(
            "Cancel the sweep?",
            f"Cancel sweep job {job.id} ({job.ref}, {job.state})? Rows it wrote so far are kept "
            "and ingested; launching the same config again finishes the rest.",
            "Yes, cancel it",
            lambda: self._cancel(job),
        )

    @step_worker(group="sweep-cancel")
    def _cancel(self, job: Job) -> None:
        self.post_message(self.Cancelled(self.workspace.cancel_job(job)))

    def on_sweep_screen_cancelled(self, message: Cancelled) -> None:
        self.notify(f"Sweep job {message.job.id}: {message.job.state}.")
        self.start_poll(message.job.id)

    def busy_work(self) -> list[str]:
        lines = [job_line(self.job)] if self.job is not None and not self.job.finished else []
        if self.running:
            lines.append("Sweep: a launch is being submitted (it completes or fails on its own)")
        return lines
