"""Fine-tune: the config as a form built from ``FinetuneConfig`` (basic fields first, the Slurm
settings and the advanced fields folded away, each field's help under the form), launch as a job.

The job itself is followed in the Jobs step (one place for every job): a launch opens it there.
A new form proposes a base model that loads here (``engine.proposals``): offline, with only the
demo model present, that is the demo model rather than a hub id that cannot be fetched.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Input, Static

from engine import finetune as finetune_engine
from engine import proposals
from engine.configfile import describe_setting, to_toml
from engine.dataset import write_atomic
from engine.errors import UserError
from engine.files import resolve_from
from engine.finetune import FinetuneConfig, config_from_dict
from engine.workspace import ClusterSettings, Job
from tui import forms, launching
from tui.screens.base import StepScreen, guarded, parse_int, show_line, step_bar, step_footer, step_worker
from tui.steps import step_key

# Shown first, in this order; every other FinetuneConfig field (a new one too) goes under "advanced".
# chat_template: a base model without one stops before loading (it names this field);
# save_checkpoints: the adapters a study sweeps as variants (docs/STUDY.md).
BASIC_FIELDS = (
    "name", "base_model", "chat_template", "dataset", "mode", "epochs", "max_steps", "learning_rate",
    "save_checkpoints", "output_dir",
)  # fmt: skip
FIELDS = forms.form_fields(FinetuneConfig, "ft")
CLUSTER_FIELDS: tuple[tuple[str, str, str, str], ...] = (
    # (input id, label, placeholder, ClusterSettings field for the help)
    ("ft-partition", "partition", "Slurm partition", "partition"),
    ("ft-account", "account", "", "account"),
    ("ft-gpus", "gpus", "0", "gpus"),
    ("ft-time", "time limit", "08:00:00", "time"),
    ("ft-mem", "memory", "64G", "mem"),
)


class FinetuneScreen(StepScreen):
    STEP = "finetune"
    TITLE_TEXT = "Fine-tune"
    # The longest field name fits whole (gradient_accumulation_steps), never cut.
    LABEL_WIDTH = max(len(item.label) for item in FIELDS) + 1
    BINDINGS = [
        Binding(
            "ctrl+r", "launch", "Launch", id="finetune.launch",
            tooltip="Check the form and launch the fine-tune as a job (it keeps running if you quit)",
        ),
        Binding(
            "ctrl+g", "jobs", "Jobs", id="finetune.jobs",
            tooltip="Open the Jobs step: every job's state, log, cancel and results",
        ),
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

    class Proposed(Message):
        def __init__(self, proposal: proposals.Proposal) -> None:
            super().__init__()
            self.proposal = proposal

    proposed = ""  # the base model this form proposed (its line goes once another is typed)

    def compose(self) -> ComposeResult:
        defaults = forms.flat_values(FinetuneConfig(), FIELDS)
        basic, advanced = forms.split_basic(FIELDS, BASIC_FIELDS)
        yield step_bar(self.STEP)
        yield Static(
            f"Fine-tune: a LoRA (or full) run as a job; {step_key('jobs')} Jobs follows it", classes="step-title"
        )
        with VerticalScroll(id="ft-form", classes="form-area"):
            yield self.field(
                "launcher", "ft-launcher", "local", "local or slurm",
                help="local: a detached process on this machine; slurm: sbatch (settings below)",
            )  # fmt: skip
            yield self.field(
                "config TOML", "ft-config-file", "", "ctrl+o loads it, ctrl+s saves the form",
                help="a fine-tune TOML (configs/finetune.tiny.toml shape): ctrl+o loads it, ctrl+s saves",
            )  # fmt: skip
            for item in basic:
                yield self.config_row(item, defaults[item.input_id])
            with self.folded("Slurm: cluster TOML, partition, account, gpus, time, memory", "ft-slurm"):
                yield self.field(
                    "cluster TOML", "ft-cluster-file", "", "settings file (overrides the fields below)",
                    help="a cluster settings TOML (configs/cluster.example.toml); it overrides the fields below",
                )  # fmt: skip
                for input_id, label, placeholder, name in CLUSTER_FIELDS:
                    yield self.field(label, input_id, "", placeholder, help=describe_setting(ClusterSettings, name))
            with self.folded(f"advanced: {len(advanced)} more settings (LoRA, optimiser, data, GPUs)", "ft-advanced"):
                for item in advanced:
                    yield self.config_row(item, defaults[item.input_id])
        yield self.help_line()
        yield Static("", id="ft-cli", classes="hint")
        yield Static("", id="ft-status", classes="status")
        yield step_footer()

    def config_row(self, item: forms.FormField, value: str):
        return self.field(item.label, item.input_id, value, help=item.help)

    def on_mount(self) -> None:
        super().on_mount()
        self.set_status("")
        self.show_cli()
        self._propose()

    def set_status(self, text: str | Text) -> None:
        """The line under the form about a launch or a proposal; no row while it says nothing."""
        show_line(self.query_one("#ft-status", Static), text)

    def action_jobs(self) -> None:
        self.ft_app.action_goto("jobs")

    # ------------------------------------------------------------ the proposed base model

    @step_worker(group="ft-propose", exclusive=True)
    def _propose(self) -> None:
        self.post_message(self.Proposed(proposals.propose_base_model()))

    def on_finetune_screen_proposed(self, message: Proposed) -> None:
        """A base model that loads here replaces the default while the field still holds it."""
        proposal = message.proposal
        field = "ft-base_model"
        if proposal.base_model == self.value(field) or self.value(field) != FinetuneConfig().base_model:
            return
        if field in self.handed or self.remembered(field):
            return  # handed on by another step, or the operator's own from an earlier session
        self.set_value(field, proposal.base_model)
        self.proposed = proposal.base_model
        label, help_text = self.help_texts[field]
        self.help_texts[field] = (label, f"{help_text}. Proposed {proposal.base_model}: {proposal.why}")
        self.set_status(Text(f"base_model: proposed {proposal.base_model} ({proposal.why}).", style="cyan"))

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
        if event.input.id == "ft-base_model" and self.proposed and event.value != self.proposed:
            self.proposed = ""  # the operator chose another model: the proposal's line goes
            self.set_status("")

    def action_load_toml(self) -> None:
        path = self.value("ft-config-file")
        if not path:
            raise UserError("config TOML: give the file to load (e.g. configs/finetune.tiny.toml)")
        config = finetune_engine.load_config(Path(path).expanduser())  # checked: names file and field
        for input_id, text in forms.flat_values(config, FIELDS).items():
            self.set_value(input_id, text)
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
        values = forms.collect(FIELDS, self.value, where="fine-tune form")
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
        self.set_status(Text(f"Submitting {config.name} ({launcher})..."))
        self._launch(config, cluster, launcher)

    @step_worker(group="ft-launch")
    def _launch(self, config: FinetuneConfig, cluster: ClusterSettings, launcher_name: str) -> None:
        # A failure is reported by StepScreen.on_worker_state_changed -> worker_failed.
        # The run name is checked now, not by a job failing later; then the job's own checks run
        # here, so a bad dataset or output folder is said now, not 2 seconds after it was queued.
        job_name = f"ft-hallu-{config.name}"
        for job in self.workspace.jobs():  # states asked now: a job that ended unseen is not in the way
            if job.name == job_name and not job.finished:
                raise UserError(
                    f"name: job {job.id} ({job.ref}) named {config.name!r} is still {job.state}; "
                    f"pick another name or cancel it in Jobs ({step_key('jobs')})"
                )
        finetune_engine.check_inputs(config)
        self.post_message(self.Launched(self.workspace.launch_finetune(config, cluster, launcher_name)))

    def report_error(self, exc: BaseException, *, where: str = "", title: str = "") -> str:
        if isinstance(exc, UserError):
            exc = UserError(launching.launcher_words(str(exc)))
        return super().report_error(exc, where=where, title=title)

    def worker_failed(self, worker, line: str) -> None:
        if worker.group == "ft-launch":
            self.running = False
            self.set_status(Text(f"Not launched: {line}", style="bold red"))

    def on_finetune_screen_launched(self, message: Launched) -> None:
        """The job is followed in Jobs: it opens there, and its adapter goes to Sweep when it completes."""
        self.running = False
        job = message.job
        prefs = self.ft_app.prefs
        waiting = prefs.get("finetunes_to_hand_on")
        prefs["finetunes_to_hand_on"] = [*(waiting if isinstance(waiting, list) else []), job.id]
        prefs["jobs_selected"] = job.id
        self.ft_app.write_prefs()
        self.clear_handed()
        jobs_key = step_key("jobs")
        self.set_status(Text(f"Job {job.id} submitted ({job.ref}); {jobs_key} Jobs follows it.", style="green"))
        self.notify(f"Job {job.id} submitted ({job.ref}): following it in Jobs.", markup=False)
        self.ft_app.action_goto("jobs")
