"""Check: what ``ft-hallu dataset check FILE`` prints about a QA file (rows, exact duplicates,
question/answer pairs, split leakage, lengths, repeated ids), and a copy without the exact
duplicates written to a NEW file (``--drop-duplicates OUT``); the checked file is never written.

Generate hands its file here. What is fit to go on is handed on: a file without exact duplicates
as it is, else the copy without them; to Mask, or, when the checked file is itself a masked output,
to Fine-tune and Sweep (whose dataset it becomes).
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Static

from engine import dataset as ds
from engine.errors import UserError
from engine.workspace import DatasetReport, DedupeResult
from tui.screens.base import StepScreen, step_bar, step_footer, step_worker
from tui.steps import step_key


def parse_fraction(text: str) -> float:
    if not text.strip():
        return 0.1
    try:
        return float(text)
    except ValueError:
        raise UserError(f"eval fraction: {text!r} is not a number") from None


class CheckScreen(StepScreen):
    STEP = "check"
    TITLE_TEXT = "Check"
    LABEL_WIDTH = len("copy without duplicates") + 1
    BINDINGS = [
        Binding(
            "ctrl+r", "check", "Check", id="check.run",
            tooltip="Count duplicates, split leakage and lengths of the QA file",
        ),
        Binding(
            "ctrl+s", "drop_duplicates", "Drop duplicates", id="check.drop-duplicates",
            tooltip="Write a copy without the exact duplicate rows to a NEW file (the QA file is kept)",
        ),
    ]  # fmt: skip

    class Checked(Message):
        """The report of ``path``; ``new_name`` is the name a recorded mask gave it (None: not masked)."""

        def __init__(self, report: DatasetReport, path: str, new_name: str | None) -> None:
            super().__init__()
            self.report, self.path, self.new_name = report, path, new_name

    class Deduped(Message):
        def __init__(self, result: DedupeResult, new_name: str | None) -> None:
            super().__init__()
            self.result, self.new_name = result, new_name

    def __init__(self) -> None:
        super().__init__()
        self.report: DatasetReport | None = None

    def compose(self) -> ComposeResult:
        yield step_bar(self.STEP)
        yield Static("Check: duplicates, split leakage and lengths of a QA file", classes="step-title")
        with Vertical(id="check-form", classes="form"):
            yield self.field(
                "QA file", "check-file", "", "JSON or JSONL with question/answer/context",
                help="the QA file to check (Generate fills it in); it is never written",
            )  # fmt: skip
            yield self.field(
                "copy without duplicates", "check-out", "", "a NEW file (default: <file>.dedup.jsonl)",
                help="where ctrl+s writes the rows without exact duplicates (the first of each is kept)",
            )  # fmt: skip
            with self.folded("more: the split the leakage count uses", "check-more"):
                yield self.field(
                    "eval fraction", "check-eval", "0.1", "0.1",
                    help="held-out share of the split whose leakage is counted (the fine-tune's eval_fraction)",
                )  # fmt: skip
                yield self.field(
                    "split seed", "check-seed", "2024", "2024", help="the fine-tune's seed (its split)"
                )
        yield self.help_line()
        with VerticalScroll(id="check-report-box"):
            yield Static(
                "ctrl+r checks the QA file (what `ft-hallu dataset check FILE` prints).", id="check-report"
            )
        yield step_footer()

    # ------------------------------------------------------------ check

    def action_check(self) -> None:
        path = self.value("check-file")
        if not path:
            raise UserError("QA file: required")
        seed_text = self.value("check-seed")
        try:
            seed = int(seed_text) if seed_text else 2024
        except ValueError:
            raise UserError(f"split seed: {seed_text!r} is not a whole number") from None
        self.remember()
        self.query_one("#check-report", Static).update(Text(f"Checking {path}..."))
        self._check(path, parse_fraction(self.value("check-eval")), seed)

    @step_worker(group="check-run", exclusive=True)
    def _check(self, path: str, eval_fraction: float, seed: int) -> None:
        report = self.workspace.check_dataset(path, eval_fraction=eval_fraction, seed=seed)
        recorded = self.workspace.recorded_mask_for(path)  # a masked output goes to Fine-tune, not Mask
        self.post_message(self.Checked(report, path, recorded.new_name if recorded is not None else None))

    def worker_failed(self, worker, line: str) -> None:
        self.query_one("#check-report", Static).update(Text(f"Not checked: {line}", style="bold red"))

    def on_check_screen_checked(self, message: Checked) -> None:
        report = message.report
        self.report = report
        text = Text()
        if report.exact_duplicates:
            target = self.output_path()
            text.append(
                f"{report.exact_duplicates} of {report.rows} rows are exact duplicates: ctrl+s writes "
                f"the other {report.rows - report.exact_duplicates} to {target}.\n",
                style="bold yellow",
            )
        else:
            after = self.hand_on(str(Path(message.path).expanduser().resolve()), message.new_name)
            text.append(f"No exact duplicates. {after}.\n", style="bold green")
        if report.duplicate_ids:
            text.append(
                f"Repeated ids ({report.duplicate_id_summary()}): a sweep keys its held-out prompts by id; "
                "fix them in the file.\n",
                style="bold red",
            )
        text.append("\n".join(report.lines()))
        self.query_one("#check-report", Static).update(text)

    def hand_on(self, path: str, new_name: str | None) -> str:
        """Fill ``path`` in where it goes next; the words that say where."""
        if new_name is not None:  # a masked output already: train and sweep on it
            self.ft_app.handoff("finetune", {"ft-dataset": path})
            self.ft_app.handoff("sweep", {"sw-dataset": path, "sw-entity_name": new_name})
            return f"{step_key('finetune')} fine-tunes on it (filled in)"
        self.ft_app.handoff("mask", {"mask-file": path, "mask-out": ""})
        return f"{step_key('mask')} masks it (filled in)"

    # ------------------------------------------------------------ drop duplicates

    def output_path(self) -> Path:
        out = self.value("check-out")
        return Path(out).expanduser() if out else ds.deduplicated_path(Path(self.value("check-file")).expanduser())

    def action_drop_duplicates(self) -> None:
        path = self.value("check-file")
        if not path:
            raise UserError("QA file: required")
        out = self.output_path()
        ds.check_dedupe_target(path, out, overwrite=True)  # the input itself or a folder: refused now
        self.remember()
        if out.exists():
            self.confirm(
                "Overwrite?",
                f"{out} already exists. Replace it with the rows of {path} without duplicates?",
                "Yes, overwrite it",
                lambda: self._drop(path, out, True),
            )
            return
        self._drop(path, out, False)

    @step_worker(group="check-drop", exclusive=True)
    def _drop(self, path: str, out: Path, overwrite: bool) -> None:
        result = self.workspace.drop_duplicates(path, out, overwrite=overwrite)
        recorded = self.workspace.recorded_mask_for(path)  # a masked output: the copy is trainable
        self.post_message(self.Deduped(result, recorded.new_name if recorded is not None else None))

    def on_check_screen_deduped(self, message: Deduped) -> None:
        result = message.result
        after = self.hand_on(str(Path(result.output).resolve()), message.new_name)
        box = self.query_one("#check-report", Static)
        line = result.line()
        box.update(Text(f"{line[0].upper()}{line[1:]}.\n{after}.", style="bold green"))
        self.notify(f"Wrote {result.output} ({result.rows_out} rows); {after}.", markup=False)
