"""Results: the chosen sweep's finding first, then its cells metric group by metric group, and the
chosen cell's samples of every variant side by side with their scores, claims and labels.

The finding is ``Workspace.summary`` (engine/summary.py), computed once in the engine for every
front end: per prompt group (the entity prompt, then the held-out questions) the headline, the
prompt text and the per variant x temperature table with 95% intervals and n, then example answers,
the metrics with no variation and what n makes degenerate. This screen only lays it out.

At 80x24 every row goes to one view at a time: one line names the sweep and the views (Finding,
Cells, Study), ``s`` puts the sweep picker in their place. The Study view is ``Workspace.compare``
(engine/study.py), laid out by tui/study_view.py: the metrics over training steps next to the loss
with the best step and its rule, knowledge kept per temperature, and the per-cell paired
differences base − fine-tuned with intervals and Benjamini–Hochberg q values; it is computed (in a
worker, a second or more) when first opened for a sweep. The cell table shows one page of metric
columns at a time: a catalogue group (hallucination, answers, agreement, reference) or as much of
one as the width holds, left/right move a page; the cell's own columns (T, p, k, prompt) stay.
Decimals follow n (``MetricSpec.format``); a metric with one value everywhere, or none, is one line
instead of columns. Model and dataset text is only ever appended to ``Text`` as plain text.

Every read goes through the workspace in a thread worker; the worker posts what it read as a typed
message and the handler fills the widgets, so the UI thread never waits on the store.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import Resize
from textual.message import Message
from textual.widgets import ContentSwitcher, DataTable, Static

from engine.errors import UserError
from engine.grid import degenerate_note, flat_value
from engine.labels import LABEL_KEYS
from engine.metrics import catalog
from engine.metrics.catalog import MetricGroup, MetricSpec
from engine.metrics.claim_words import claim_words
from engine.records import missing_reason
from engine.summary import ExampleAnswer, GroupSummary, SweepSummary, flat_line, summary_table, variant_name
from engine.workspace import Cell, CellSamples, Comparison, Sample, SweepInfo
from tui.screens.base import StepScreen, error_line, guarded, step_bar, step_footer, step_worker
from tui.screens.blind import BlindLabelScreen
from tui.steps import step_key
from tui.study_view import study_text

SWEEP_COLUMNS = ("id", "name", "status", "rows", "variants", "created")
VARIANT_SHORT = {"base": "b", "finetuned": "ft"}
DELTA = "Δ"
KEY_COLUMNS = ("T", "p", "k", "prompt")
# Columns the cell table's metric pages may not use: the focus bar (1), the vertical scrollbar (2).
TABLE_CHROME = 3
# The table runs with cell_padding 0 and each column one character wider than its content (the
# space before a right-aligned number): a 3-metric page fits 80 columns where padding 1 fits two.
CELL_PADDING = 1
FINDING_CHROME = 4  # the finding's focus bar, padding and scrollbar
VIEWS = ("finding", "cells", "study", "profile")
# Each view's container in the switcher and the widget that takes the focus there.
VIEW_PARTS = {
    "finding": ("results-finding", "#results-finding"),
    "cells": ("results-cellview", "#results-cells"),
    "study": ("results-study", "#results-study"),
    "profile": ("results-profile", "#results-profile"),
}
# From this many terminal rows the samples sit under the cell table; below, enter (or z) shows them
# on the whole screen, so at 80x24 the table keeps 14 rows for the cells.
SAMPLES_BESIDE_FROM = 36
DECISION_STYLES = {"supported": "bold green", "contradicted": "bold red", "unsupported": "bold yellow"}


def variant_shorts(variants: Sequence[str]) -> dict[str, str]:
    """Column titles for the variants: b, ft, and a named adapter by its name (up to 8 characters)
    or the shortest prefix of 5 or more that no other variant shares."""
    shorts = {v: VARIANT_SHORT[v] for v in variants if v in VARIANT_SHORT}
    for variant in variants:
        if variant in shorts:
            continue
        if len(variant) <= 8:
            shorts[variant] = variant
            continue
        others = [v for v in variants if v != variant]
        length = next(
            (n for n in range(5, len(variant)) if not any(o.startswith(variant[:n]) for o in others)),
            len(variant),
        )
        shorts[variant] = variant[:length]
    return shorts


def _g(value: float) -> str:
    return f"{value:g}"


# ------------------------------------------------------------------ cells and their metric pages


@dataclass(frozen=True)
class GridCell:
    """One (T, p, k, prompt) cell with every variant's aggregate: the row of the comparison table."""

    temperature: float
    top_p: float
    top_k: int
    prompt_id: str
    by_variant: dict[str, Cell]

    @property
    def key(self) -> str:
        return json.dumps([self.temperature, self.top_p, self.top_k, self.prompt_id])

    def value(self, variant: str, metric: str) -> float | None:
        cell = self.by_variant.get(variant)
        return cell.value(metric) if cell is not None else None

    def n(self, variant: str) -> int:
        cell = self.by_variant.get(variant)
        return cell.n if cell is not None else 0


def group_cells(cells: list[Cell]) -> list[GridCell]:
    """Cells of every variant at one (T, p, k, prompt) together; the entity prompt first."""
    grouped: dict[tuple[float, float, int, str], dict[str, Cell]] = {}
    for cell in cells:
        k = cell.key
        grouped.setdefault((k.temperature, k.top_p, k.top_k, k.prompt_id), {})[k.variant] = cell
    return [
        GridCell(t, p, k, prompt, by_variant)
        for (t, p, k, prompt), by_variant in sorted(
            grouped.items(), key=lambda item: (item[0][3] != "entity", item[0][3], item[0][:3])
        )
    ]


def format_value(spec: MetricSpec, value: float | None, n: int) -> str:
    """A cell's value with the decimals its n allows ('–' without one)."""
    return spec.format(value, n) if n else spec.format(value)


def format_delta(
    spec: MetricSpec, tuned: float | None, base: float | None, n_tuned: int, n_base: int
) -> Text:
    """Fine-tuned minus base, with the coarser precision of the two; dim when there is no difference."""
    if tuned is None or base is None:
        return Text("–", style="dim")
    diff = tuned - base
    if spec.fmt.endswith("d"):
        shown = f"{round(diff):+d}"
    else:
        decimals = min(spec.decimals(max(n_tuned, 1)), spec.decimals(max(n_base, 1)))
        shown = f"{diff:+.{decimals}f}"
    if float(shown) == 0:  # no difference at the precision n allows: no sign either
        return Text(shown.lstrip("+-"), style="dim")
    return Text(shown.replace("-", "−"), style="bold")


VALUE, DIFFERENCE = "value", "difference"


@dataclass(frozen=True)
class MetricColumn:
    """One metric's columns on a page: each variant's value, then each fine-tuned variant minus base
    (a metric wider than the table is split: its values on one page, its differences on the next)."""

    metric: str
    spec: MetricSpec
    parts: tuple[tuple[str, str], ...]  # (VALUE or DIFFERENCE, variant) per column
    widths: tuple[int, ...]  # one per column

    @property
    def width(self) -> int:
        return sum(w + CELL_PADDING for w in self.widths)

    def split(self, room: int) -> list[MetricColumn]:
        """As few pieces as fit ``room`` each (the title repeated on every piece)."""
        pieces: list[list[int]] = []
        for index, width in enumerate(self.widths):
            if (
                pieces
                and sum(self.widths[i] + CELL_PADDING for i in pieces[-1]) + width + CELL_PADDING <= room
            ):
                pieces[-1].append(index)
            else:
                pieces.append([index])
        return [
            MetricColumn(
                self.metric,
                self.spec,
                tuple(self.parts[i] for i in piece),
                tuple(max(self.widths[i], len(self.spec.title) if i == piece[0] else 0) for i in piece),
            )
            for piece in pieces
        ]

    def heads(self, shorts: dict[str, str], single_difference: bool) -> list[str]:
        """Two-line column titles: the metric over the first column, then b / ft / Δ."""
        heads = []
        for index, (kind, variant) in enumerate(self.parts):
            below = (
                shorts[variant] if kind == VALUE else DELTA if single_difference else DELTA + shorts[variant]
            )
            heads.append(f"{self.spec.title if index == 0 else ''}\n{below}")
        return heads

    def values(self, cell: GridCell) -> list[Text]:
        shown = []
        for kind, variant in self.parts:
            if kind == VALUE:
                text = Text(format_value(self.spec, cell.value(variant, self.metric), cell.n(variant)))
            else:
                text = format_delta(
                    self.spec,
                    cell.value(variant, self.metric),
                    cell.value("base", self.metric),
                    cell.n(variant),
                    cell.n("base"),
                )
            text.justify = "right"
            shown.append(text)
        return shown


@dataclass(frozen=True)
class MetricPage:
    """What left/right moves by: a catalogue group, or the part of it that fits the width."""

    group: MetricGroup
    part: int  # 1-based
    parts: int
    columns: tuple[MetricColumn, ...]

    @property
    def title(self) -> str:
        return self.group.name + (f" {self.part}/{self.parts}" if self.parts > 1 else "")


@dataclass(frozen=True)
class SetAside:
    """Metrics left out of the pages, each said in one line: one value everywhere, or no value."""

    flat: tuple[tuple[str, float], ...]  # (metric, the one value)
    missing: tuple[tuple[str, str], ...]  # (metric, why: the catalogue's short reason)


def differences(variants: Sequence[str]) -> list[str]:
    """The variants shown as a difference to base (every other variant, when base is there)."""
    return [v for v in variants if v != "base"] if "base" in variants else []


def metric_column(metric: str, grid: Sequence[GridCell], variants: Sequence[str]) -> MetricColumn:
    spec = catalog.cell_metric(metric)
    shorts = variant_shorts(variants)
    parts = [(VALUE, v) for v in variants] + [(DIFFERENCE, v) for v in differences(variants)]
    column = MetricColumn(metric, spec, tuple(parts), tuple(0 for _ in parts))
    single = len(differences(variants)) == 1
    widths = []
    for (kind, variant), head in zip(parts, column.heads(shorts, single), strict=True):
        one = MetricColumn(metric, spec, ((kind, variant),), (0,))
        shown = [len(one.values(cell)[0]) for cell in grid]
        widths.append(max([*(len(line) for line in head.split("\n")), *shown]))
    return MetricColumn(metric, spec, tuple(parts), tuple(widths))


def set_aside(grid: Sequence[GridCell], variants: Sequence[str], cells: Sequence[Cell]) -> SetAside:
    """The metrics of the catalogue groups with one value in every cell of every variant, or none."""
    flat, missing = [], []
    for _group, metrics in catalog.cell_metric_groups():
        for metric in metrics:
            values = [c.value(v, metric) for c in grid for v in variants]
            if all(value is None for value in values):
                missing.append((metric, missing_reason(metric, cells).short))
            elif sum(value is not None for value in values) > 1 and (value := flat_value(values)) is not None:
                flat.append((metric, value))
    return SetAside(tuple(flat), tuple(missing))


def metric_pages(
    grid: Sequence[GridCell], variants: Sequence[str], width: int, aside: SetAside
) -> list[MetricPage]:
    """Each catalogue group's varying metrics as pages of columns no wider than ``width``."""
    left_out = {metric for metric, _ in aside.flat} | {metric for metric, _ in aside.missing}
    pages: list[MetricPage] = []
    for group, metrics in catalog.cell_metric_groups():
        columns = [
            piece
            for m in metrics
            if m not in left_out
            for piece in metric_column(m, grid, variants).split(width)
        ]
        chunks: list[list[MetricColumn]] = []
        for column in columns:
            if chunks and sum(c.width for c in chunks[-1]) + column.width <= width:
                chunks[-1].append(column)
            else:
                chunks.append([column])
        pages += [MetricPage(group, i + 1, len(chunks), tuple(chunk)) for i, chunk in enumerate(chunks)]
    return pages


def _exact(spec: MetricSpec, value: float) -> str:
    """A value that is the same everywhere, without trailing zeros (0, 0.5, 1)."""
    shown = spec.format(value, 1000)
    return shown.rstrip("0").rstrip(".") if "." in shown else shown


DIRECTION_MARKS = {"higher": " ↑", "lower": " ↓"}


def legend(
    pages: Sequence[MetricPage],
    index: int,
    variants: Sequence[str],
    aside: SetAside,
    samples_per_cell: int | None,
    width: int = 78,
) -> Text:
    """The groups as tabs (the current page in brackets), what the page's columns are, the
    abbreviations, then one line of what is left out and a line per metric n makes degenerate."""
    text = Text()
    page = pages[index] if pages else None
    per_cell = f" · n = {samples_per_cell} per cell" if samples_per_cell else ""
    if page is not None:
        groups = list(dict.fromkeys(p.group for p in pages))
        tabs = Text()
        for number, group in enumerate(groups):
            tabs.append(" │ " if number else "", style="dim")
            current = group == page.group
            tabs.append(f"[{page.title}]" if current else group.name, style="bold reverse" if current else "")
        tabs.append("   ←/→", style="dim")
        if len(tabs) + len(per_cell) <= width:  # n here when it fits, else with the abbreviations
            tabs.append(per_cell, style="dim")
            per_cell = ""
        text.append_text(tabs)
        text.append("\n")
        text.append(
            "; ".join(
                f"{c.spec.title} = {c.spec.label}{DIRECTION_MARKS.get(c.spec.direction, '')}"
                for c in page.columns
            )
            + "\n"
        )
    short = variant_shorts(variants)
    shorts = [f"{short[v]} = {variant_name(v)}" for v in variants if short[v] != v]
    others = differences(variants)
    if others:
        shorts.append(f"{DELTA} = {short[others[0]]} − b" if len(others) == 1 else f"{DELTA}x = x − b")
    line = ", ".join(shorts)
    line += per_cell
    if page is not None:
        line += " · ↑/↓: higher/lower is better"
    text.append(line, style="dim")
    aside_notes = []
    if aside.flat:
        same = ", ".join(
            f"{catalog.cell_metric(m).title} {_exact(catalog.cell_metric(m), v)}" for m, v in aside.flat
        )
        aside_notes.append(f"the same in every cell: {same}")
    by_reason: dict[str, list[str]] = {}
    for metric, reason in aside.missing:
        by_reason.setdefault(reason, []).append(catalog.cell_metric(metric).title)
    aside_notes += [f"no value: {', '.join(titles)} ({reason})" for reason, titles in by_reason.items()]
    notes = [" · ".join(aside_notes)] if aside_notes else []
    if samples_per_cell:  # what n leaves the page's metrics, and the flat ones (why they are flat)
        named = [c.metric for c in page.columns] if page is not None else []
        named += [metric for metric, _ in aside.flat if metric not in named]
        notes += [
            note for m in named if (note := degenerate_note(m, samples_per_cell, catalog.cell_metric(m)))
        ]
    for note in notes:
        text.append("\n" + note, style="yellow")
    return text


# ------------------------------------------------------------------ the finding


def _table_lines(headers: Sequence[str], rows: Sequence[Sequence[str]], width: int) -> Text:
    """The summary table right-aligned, two spaces between columns, or one where two would wrap
    the rows (n = 18 gives '1.00 [0.82, 1.00]' three times: 79 characters with two)."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    gap = "  " if sum(widths) + 2 * (len(widths) - 1) <= width else " "
    text = Text()
    text.append(gap.join(h.rjust(w) for h, w in zip(headers, widths, strict=True)) + "\n", style="bold")
    for row in rows:
        for i, (value, w) in enumerate(zip(row, widths, strict=True)):
            text.append((gap if i else "") + value.rjust(w), style="cyan" if i == 1 else "")
        text.append("\n")
    return text


def _prompt_line(group: GroupSummary) -> Text:
    text = Text()
    text.append("prompts (pooled): " if len(group.prompts) > 1 else "prompt: ", style="dim")
    text.append("; ".join(f'"{" ".join(p.text.split())}"' for p in group.prompts), style="italic")
    return text


def _answer_mark(answer: ExampleAnswer) -> tuple[str, str]:
    """What the main score makes of an example answer, and its style."""
    if answer.refusal:
        return " (refusal)", "magenta"
    if answer.hallucination is None:
        return " (no claim to check)", "dim"
    if catalog.main_score().flags_below is not None:
        flagged = answer.hallucination >= 1
        return (" (hallucinated)", "red") if flagged else (" (not flagged)", "green")
    return f" (hallucination {answer.hallucination:.2f})", ""


def finding_text(summary: SweepSummary, width: int = 76) -> Text:
    """The summary laid out for a terminal: per group the headline, the prompt text and the table
    (entity prompt, then held-out questions), what the columns mean, example answers, then the
    notes and the metrics with no variation (one line per group)."""
    text = Text()
    if not summary.groups:
        text.append(summary.headline, style="bold")
        return text
    for group in summary.groups:
        text.append(group.headline + "\n", style="bold")
        text.append_text(_prompt_line(group))
        text.append("\n")
        headers, rows = summary_table(group, long=True)
        text.append_text(_table_lines(headers, rows, width))
        text.append("\n")
    main = catalog.main_score()
    counted = f" ({summary.score_label} < {main.flags_below})" if main.flags_below is not None else ""
    text.append(
        f"hallucination = {summary.hallucination_label}{counted}, over answers with at least one claim; "
        "agreement = majority-answer share of a cell, mean over the cells at that temperature; "
        "[95% Wilson interval]; n = answers with claims / answers\n",
        style="dim",
    )
    for group in summary.groups:
        if not group.examples:
            continue
        text.append(f"\nExample answers, {group.title} (same cell and sample):\n", style="bold")
        for pair in group.examples:
            text.append(
                f"T={_g(pair.temperature)} top_p={_g(pair.top_p)} top_k={pair.top_k} "
                f"{pair.prompt_id} sample {pair.sample_index}\n",
                style="dim",
            )
            for answer in pair.answers:
                mark, style = _answer_mark(answer)
                text.append(f"  {variant_name(answer.variant)}", style="bold cyan")
                text.append(mark, style=style)
                text.append(": ")
                text.append(" ".join((answer.text or "(empty)").split()) + "\n")
    text.append("\n")
    for note in summary.notes:
        text.append(f"note: {note}\n", style="yellow")
    for group in summary.groups:
        if line := flat_line(group):
            text.append(f"{line}\n", style="dim")
    text.append("\nc: every cell, metric group by metric group, with its samples", style="dim")
    text.append("\nd: the study: paired differences per cell, knowledge kept, metrics over training", style="dim")
    return text


# ------------------------------------------------------------------ a sample with its scores and claims

# Sample metric -> the short title of the cell metric that averages it ('claims' for claim_grounding).
_SHORT_TITLES = {spec.mean_of: spec.title for spec in catalog.CELL_METRICS if spec.mean_of}


def _score(spec: MetricSpec, value: Any) -> str:
    if spec.fmt.endswith("d") and spec.range == (0.0, 1.0):
        return "yes" if value else "no"
    if spec.fmt.endswith("d"):
        return str(int(value))
    return f"{float(value):.2f}"


def sample_text(sample: Sample, claims: Sequence[dict[str, Any]], marked: bool) -> Text:
    """One sample: index and human label, the main score first (with what it counts as), the other
    scores, the answer, then each claim's decision in plain words with its evidence."""
    main = catalog.main_score()
    main_name = main.mean_of or main.name
    text = Text()
    text.append(f"#{sample.sample_index}", style="bold reverse" if marked else "bold cyan")
    text.append("  label: ")
    text.append(sample.label or "none yet (l labels)", style="bold magenta" if sample.label else "dim")
    text.append("\n")
    if not sample.metrics:
        text.append("not scored yet (m scores the sweep)\n", style="dim")
    else:
        value = sample.metrics.get(main_name)
        text.append(f"{main.label} ", style="bold")
        if value is None:
            text.append("– (no claim to check)\n", style="dim")
        else:
            text.append(f"{float(value):.2f}", style="bold")
            if main.flags_below is not None:
                flagged = float(value) < main.flags_below
                text.append(
                    f" < {main.flags_below}: hallucinated"
                    if flagged
                    else f" ≥ {main.flags_below}: not flagged",
                    style="red" if flagged else "green",
                )
            text.append("\n")
        scores = [
            f"{_SHORT_TITLES.get(spec.name, spec.name)} {_score(spec, sample.metrics[spec.name])}"
            for spec in catalog.SAMPLE_METRICS
            if spec.name != main_name and sample.metrics.get(spec.name) is not None
        ]
        if scores:
            text.append(" · ".join(scores) + "\n", style="dim")
    text.append(" ".join(sample.text.split()) or "(empty answer)", style="italic")
    text.append("\n")
    for claim in claims:
        words = claim_words(claim)
        text.append(f"• {words.verdict}", style=DECISION_STYLES.get(words.decision, "bold"))
        text.append(": ")
        text.append(words.text)
        text.append(f"\n  why: {words.reason}", style="dim")
        if words.evidence:
            text.append(f"\n  {words.evidence_label}: ", style="dim")
            text.append(words.evidence, style="dim italic")
        text.append("\n")
    if sample.metrics and not claims and not sample.metrics.get("refusal"):
        text.append("no claims checked (they need the sweep's sources)\n", style="dim")
    return text


class MetricTable(DataTable):
    """The cell table: left/right page through the metric groups instead of scrolling by a column."""

    BINDINGS = [
        Binding("left", "page(-1)", "Group", show=False, id="results.page-back",
                tooltip="The previous group of metric columns"),
        Binding("right", "page(1)", "Group", key_display="←→", id="results.page-on",
                tooltip="The next group of metric columns (the cell's own columns stay)"),
    ]  # fmt: skip

    class Paged(Message):
        def __init__(self, step: int) -> None:
            super().__init__()
            self.step = step

    def action_page(self, step: int) -> None:
        self.post_message(self.Paged(step))


class SamplePane(Vertical):
    """The chosen cell's prompt line and samples: what z puts on the whole screen."""

    ALLOW_MAXIMIZE = True


class ResultsScreen(StepScreen):
    STEP = "results"
    TITLE_TEXT = "Results"
    AUTO_FOCUS = "#results-finding"
    ESCAPE_TO_MINIMIZE = False  # escape is action_back: it also hands the focus back to the cell table
    BINDINGS = [
        Binding("s", "pick_sweep", "Sweeps", id="results.sweeps", tooltip="Pick another stored sweep"),
        Binding("f", "view('finding')", "Finding", show=False, id="results.finding",
                tooltip="The sweep's summary: headline and per-temperature table per prompt group"),
        Binding("c", "view('cells')", "Cells", show=False, id="results.cells",
                tooltip="Every cell's metrics, a group of columns at a time, and its samples"),
        Binding("d", "view('study')", "Study", show=False, id="results.study",
                tooltip="Paired base − fine-tuned differences per cell (BH), knowledge kept, metrics over steps"),
        Binding("e", "view('profile')", "Profile", show=False, id="results.profile",
                tooltip="The entity profile from the sources: what the claim checks believe about the company"),
        Binding("a", "all_cells", "All cells", show=False, id="results.all-cells",
                tooltip="Study: every metric's cells, or the headline metric's only"),
        Binding("n", "move_sample(1)", "Sample", key_display="n/p", id="results.next",
                tooltip="Mark the next sample of the cell (p: the previous one)"),
        Binding("p", "move_sample(-1)", "Prev", show=False, id="results.prev",
                tooltip="Mark the previous sample of the cell"),
        Binding("v", "other_side", "Side", id="results.side", tooltip="Mark the other variant's sample"),
        Binding("l", "label", "Label", id="results.label", tooltip="Set a human label on the marked sample"),
        Binding("z", "zoom", "Zoom", id="results.zoom",
                tooltip="The samples on the whole screen, or back (escape too)"),
        Binding("m", "score", "Score", id="results.score",
                tooltip="Compute the metrics the sweep's samples still lack"),
        Binding("b", "blind", "Blind", id="results.blind",
                tooltip="Label this sweep blind: no variant, settings or scores"),
        Binding("r", "reload", "Reload", show=False, id="results.reload", tooltip="Read the stored sweeps again"),
        Binding("escape", "back", "Back", show=False, id="results.back",
                tooltip="Close the sweep picker or the zoomed samples"),
    ]  # fmt: skip

    class SweepsLoaded(Message):
        def __init__(self, sweeps: list[SweepInfo]) -> None:
            super().__init__()
            self.sweeps = sweeps

    class CellsLoaded(Message):
        def __init__(self, sweep_id: int, cells: list[Cell]) -> None:
            super().__init__()
            self.sweep_id, self.cells = sweep_id, cells

    class SummaryLoaded(Message):
        def __init__(self, sweep_id: int, summary: SweepSummary) -> None:
            super().__init__()
            self.sweep_id, self.summary = sweep_id, summary

    class SamplesLoaded(Message):
        def __init__(self, key: str, samples: CellSamples, claims: dict[int, list[dict[str, Any]]]) -> None:
            super().__init__()
            self.key, self.samples, self.claims = key, samples, claims

    class ProfileLoaded(Message):
        """The entity profile of ``sweep_id``'s sources: the report's title, headers and rows."""

        def __init__(self, sweep_id: int, title: str, headers: list[str], rows: list[list[str]]) -> None:
            super().__init__()
            self.sweep_id, self.title, self.headers, self.rows = sweep_id, title, headers, rows

    class StudyLoaded(Message):
        """``comparison`` of ``sweep_id``, or ``error`` (one line) where it could not be computed."""

        def __init__(self, sweep_id: int, comparison: Comparison | None, error: str | None) -> None:
            super().__init__()
            self.sweep_id, self.comparison, self.error = sweep_id, comparison, error

    class Scored(Message):
        def __init__(self, sweep_id: int, scored: int) -> None:
            super().__init__()
            self.sweep_id = sweep_id
            self.scored = scored

    class Labelled(Message):
        def __init__(self, generation_id: int, label: str, who: str) -> None:
            super().__init__()
            self.generation_id, self.label, self.who = generation_id, label, who

    def __init__(self) -> None:
        super().__init__()
        self.sweep_id: int | None = None  # the sweep shown
        self.wanted_sweep: int | None = None  # the sweep being read
        self.wanted_cell: tuple[int, str] | None = None
        self.sweeps: dict[int, SweepInfo] = {}
        self.summary: SweepSummary | None = None
        self.cells: list[Cell] = []
        self.grid: list[GridCell] = []
        self.grid_cells: dict[str, GridCell] = {}
        self.variants: tuple[str, ...] = ()
        self.aside = SetAside((), ())
        self.pages: list[MetricPage] = []
        self.page_index = 0
        self.pages_width = 0
        self.view = "finding"
        self.samples: CellSamples | None = None
        self.claims: dict[int, list[dict[str, Any]]] = {}
        self.labels: dict[int, str] = {}
        self.mark: tuple[int, int] = (0, 0)  # (row of the cell's samples, variant column) to label
        self.comparison: Comparison | None = None
        self.study_sweep: int | None = None  # the sweep whose study is shown or being computed
        self.study_error: str | None = None
        self.all_cells = False

    def compose(self) -> ComposeResult:
        yield step_bar(self.STEP)  # no title line: at 80x24 every row goes to the finding or the cells
        yield Static("", id="results-note", classes="hint")
        with ContentSwitcher(initial="results-finding", id="results-views"):
            with VerticalScroll(id="results-finding"):
                yield Static("", id="results-summary")
            with Vertical(id="results-picker"):
                yield DataTable(id="results-sweeps", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="results-study"):
                yield Static("", id="results-study-text")
            with VerticalScroll(id="results-profile"):
                yield Static("", id="results-profile-text")
            with Vertical(id="results-cellview"):
                yield Static("", id="results-legend", classes="hint")
                yield MetricTable(
                    id="results-cells", cursor_type="row", zebra_stripes=True, header_height=2, cell_padding=0
                )
                with SamplePane(id="results-samples"):
                    yield Static("", id="results-prompt", classes="hint")
                    yield Horizontal(id="results-sides")
        yield step_footer()

    def on_mount(self) -> None:
        self.query_one("#results-sweeps", DataTable).add_columns(*SWEEP_COLUMNS)
        self.layout_samples()
        self.action_reload()
        self.query_one("#results-finding").focus()

    def on_screen_resume(self) -> None:
        self.take_handoff()
        self.action_reload()

    def on_resize(self, event: Resize) -> None:
        self.layout_samples()
        self.draw_finding()
        self.draw_study()
        if self.grid and self.table_width() != self.pages_width:
            self.fill_cells(keep_row=self.query_one("#results-cells", DataTable).cursor_row)

    def take_handoff(self) -> None:
        """A sweep handed on (just finished, or identical to a new config) becomes the chosen one."""
        wanted = self.ft_app.take_handoff(self.STEP).get("sweep")
        if wanted and wanted.isdigit():
            self.sweep_id = None
            self.wanted_sweep = int(wanted)

    def worker_failed(self, worker, line: str) -> None:
        if worker.group in ("results-sweeps", "results-sweep"):
            self.query_one("#results-note", Static).update(Text(f"reading sweeps: {line}"))

    # ------------------------------------------------------------ views and the sweep line

    def action_view(self, name: str) -> None:
        if name not in VIEWS:
            raise UserError(f"no such view {name!r}; views: {', '.join(VIEWS)}")
        if self.maximized is not None:
            self.minimize()
            self.layout_samples()
        self.view = name
        container, focus = VIEW_PARTS[name]
        self.query_one("#results-views", ContentSwitcher).current = container
        self.query_one(focus).focus()
        if name == "study":
            self.load_study()
        if name == "profile":
            self.load_profile()
        self.draw_sweep_line()

    def action_pick_sweep(self) -> None:
        switcher = self.query_one("#results-views", ContentSwitcher)
        switcher.current = "results-picker"
        table = self.query_one("#results-sweeps", DataTable)
        if self.sweep_id is not None and str(self.sweep_id) in {k.value for k in table.rows}:
            table.move_cursor(row=table.get_row_index(str(self.sweep_id)))
        table.focus()
        self.draw_sweep_line()

    def action_back(self) -> None:
        if self.maximized is not None:
            self.unzoom()
        elif self.picking():
            self.action_view(self.view)

    def samples_beside(self) -> bool:
        """Whether the samples have room under the cell table (else enter or z shows them zoomed)."""
        return self.app.size.height >= SAMPLES_BESIDE_FROM

    def layout_samples(self) -> None:
        pane = self.query_one("#results-samples")
        pane.display = self.samples_beside() or self.maximized is pane

    def action_zoom(self) -> None:
        """The chosen cell's samples on the whole screen (escape or z again: back)."""
        if self.maximized is not None:
            self.unzoom()
            return
        if self.samples is None:
            raise UserError("no samples shown: pick a cell first (c, then up/down)")
        if self.view != "cells" or self.picking():
            self.action_view("cells")
        pane = self.query_one("#results-samples")
        pane.display = True
        self.maximize(pane, container=False)
        sides = self.query(".results-side")
        if sides:
            sides.first().focus()

    def unzoom(self) -> None:
        self.minimize()
        self.layout_samples()
        if self.view == "cells":
            self.query_one("#results-cells").focus()

    def picking(self) -> bool:
        return self.query_one("#results-views", ContentSwitcher).current == "results-picker"

    def draw_sweep_line(self) -> None:
        """One line: the views (the current one highlighted) and the sweep shown."""
        note = self.query_one("#results-note", Static)
        if not self.sweeps:
            return
        text = Text()
        if self.picking():
            text.append("Pick a sweep: up/down, enter shows it, escape goes back", style="bold")
            note.update(text)
            return
        for name, title in (("finding", "f Finding"), ("cells", "c Cells"), ("study", "d Study"), ("profile", "e Profile")):
            text.append(f" {title} ", style="bold reverse" if name == self.view else "bold")
        sweep = self.sweeps.get(self.sweep_id or -1) or self.sweeps.get(self.wanted_sweep or -1)
        if sweep is None:
            note.update(text)
            return
        complete = sweep.status == "completed" and sweep.generation_count == sweep.expected_rows
        state = f" · {sweep.status}" + (
            "" if complete else f" · {sweep.generation_count}/{sweep.expected_rows or '?'} rows"
        )
        state += " · reading…" if self.wanted_sweep != self.sweep_id or self.summary is None else ""
        head = f"  sweep {sweep.id} "
        # One row at 80 columns, never cutting the keys, the id or the state: a complete sweep's row
        # count and the number of sweeps (the footer's "s Sweeps" lists them) are added only where
        # the whole name still fits, then a long name gives way (cut with …, 8 characters kept).
        room = (note.size.width or self.app.size.width) - len(text.plain) - len(head) - len(state)
        tail = state
        extras = [f" · {sweep.generation_count} rows" if complete else ""]
        extras.append(f" · s: {len(self.sweeps)} sweeps" if len(self.sweeps) > 1 else "")
        for extra in extras:
            if extra and len(sweep.name) + len(tail) - len(state) + len(extra) <= room:
                tail += extra
        fits = room - (len(tail) - len(state))
        name = sweep.name if len(sweep.name) <= fits else sweep.name[: max(fits - 1, 8)] + "…"
        text.append(head, style="bold")
        text.append(name)
        text.append(tail, style="dim")
        note.update(text)

    # ------------------------------------------------------------ sweeps

    def action_reload(self) -> None:
        self.forget_study()  # read again: rows may have come in or been scored since
        self._load_sweeps()

    @step_worker(group="results-sweeps", exclusive=True)
    def _load_sweeps(self) -> None:
        self.post_message(self.SweepsLoaded(self.workspace.sweeps()))

    def on_results_screen_sweeps_loaded(self, message: SweepsLoaded) -> None:
        sweeps = message.sweeps
        self.sweeps = {sweep.id: sweep for sweep in sweeps}
        table = self.query_one("#results-sweeps", DataTable)
        selected = self.wanted_sweep or self.sweep_id
        rows = [
            (
                str(sweep.id),
                sweep.name,
                sweep.status,
                f"{sweep.generation_count}/{sweep.expected_rows or '?'}",
                ", ".join(sweep.variants) or "-",
                sweep.created_at[:16].replace("T", " "),
            )
            for sweep in sweeps
        ]
        # Widths from the content: a name or state is never cut; a long list of variants (a
        # checkpoint sweep's) wraps in its column rather than pushing the date off the screen.
        widths = [max([len(title), *(len(row[index]) for row in rows)]) for index, title in enumerate(SWEEP_COLUMNS)]
        room = self.app.size.width - TABLE_CHROME - 2 * table.cell_padding * len(widths)
        variants = SWEEP_COLUMNS.index("variants")
        if sum(widths) > room:
            widths[variants] = max(len("variants") + 4, room - (sum(widths) - widths[variants]))
        table.clear(columns=True)
        for title, width in zip(SWEEP_COLUMNS, widths, strict=True):
            table.add_column(title, width=width)
        for sweep, row in zip(sweeps, rows, strict=True):
            table.add_row(*(Text(value) for value in row), key=str(sweep.id), height=None)
        if not sweeps:
            self.query_one("#results-note", Static).update(
                f"No sweeps in the store yet: run one on the Sweep step ({step_key('sweep')})."
            )
            return
        if selected is None or selected not in self.sweeps:
            selected = sweeps[0].id
        table.move_cursor(row=table.get_row_index(str(selected)))
        self.show_sweep(selected)  # also on a reload: the shown sweep may have been scored meanwhile
        if self.view == "study":
            self.load_study()
        self.draw_sweep_line()

    @on(DataTable.RowSelected, "#results-sweeps")
    @guarded
    def _sweep_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            if int(event.row_key.value) != self.sweep_id:
                self.show_sweep(int(event.row_key.value))
            self.action_view(self.view)  # back to the view the picker covered, now on this sweep

    def show_sweep(self, sweep_id: int) -> None:
        """Read the sweep's summary and cells, then show them."""
        self.wanted_sweep = sweep_id
        if self.sweep_id != sweep_id:
            self.query_one("#results-summary", Static).update(Text(f"Reading sweep {sweep_id}…", style="dim"))
        self.draw_sweep_line()
        self._load_sweep(sweep_id)

    @step_worker(group="results-sweep", exclusive=True)
    def _load_sweep(self, sweep_id: int) -> None:
        # The cells first: they take milliseconds, the summary's intervals up to seconds on a busy CPU.
        self.post_message(self.CellsLoaded(sweep_id, self.workspace.cells(sweep_id)))
        self.post_message(self.SummaryLoaded(sweep_id, self.workspace.summary(sweep_id)))

    def on_results_screen_cells_loaded(self, message: CellsLoaded) -> None:
        if message.sweep_id != self.wanted_sweep:
            return  # the operator moved on to another sweep meanwhile
        same = self.sweep_id == message.sweep_id and bool(self.grid)
        keep_row = self.query_one("#results-cells", DataTable).cursor_row if same else 0
        if not same:
            self.page_index = 0
            self.summary = None
            if self.study_sweep != message.sweep_id:
                self.forget_study()
                if self.view == "study":
                    self.load_study()
        self.sweep_id, self.cells = message.sweep_id, message.cells
        self.grid = group_cells(message.cells)
        self.grid_cells = {cell.key: cell for cell in self.grid}
        present = {cell.key.variant for cell in message.cells}
        self.variants = tuple(sorted(present, key=lambda v: (v != "base", v)))
        self.aside = set_aside(self.grid, self.variants, message.cells)
        self.fill_cells(keep_row)
        self.draw_sweep_line()
        if not same:
            self.clear_samples()
        if self.grid:  # the same sweep again (a reload, a closed question): same cell, mark and zoom
            self.show_samples(message.sweep_id, self.grid[min(keep_row, len(self.grid) - 1)].key)

    def on_results_screen_summary_loaded(self, message: SummaryLoaded) -> None:
        if message.sweep_id != self.wanted_sweep:
            return
        self.summary = message.summary
        self.draw_finding()
        self.draw_sweep_line()

    def draw_finding(self) -> None:
        if self.summary is not None:
            # The finding's text width: the screen less the focus bar, the padding and the scrollbar.
            width = self.app.size.width - FINDING_CHROME
            self.query_one("#results-summary", Static).update(finding_text(self.summary, width))

    # ------------------------------------------------------------ the cell table, a page at a time

    def table_width(self) -> int:
        return max(20, self.app.size.width - TABLE_CHROME)

    def key_values(self, cell: GridCell) -> list[str]:
        values = [_g(cell.temperature), _g(cell.top_p), str(cell.top_k), cell.prompt_id]
        if self.n_varies():
            counts = [cell.n(v) for v in self.variants]
            values.append(str(counts[0]) if len(set(counts)) == 1 else "/".join(map(str, counts)))
        return values

    def n_varies(self) -> bool:
        return len({cell.n(v) for cell in self.grid for v in self.variants}) > 1

    def samples_per_cell(self) -> int | None:
        counts = Counter(cell.n(v) for cell in self.grid for v in self.variants if cell.n(v))
        return counts.most_common(1)[0][0] if counts else None

    def fill_cells(self, keep_row: int = 0) -> None:
        """(Re)build the cell table for the current page: the cell's own columns, then the page's."""
        table = self.query_one("#results-cells", DataTable)
        scored = any(cell.scored for cell in self.cells)
        keys = [self.key_values(cell) for cell in self.grid]
        titles = [*KEY_COLUMNS, *(["n"] if self.n_varies() else [])]
        widths = [max([len(t), *(len(row[i]) for row in keys)]) for i, t in enumerate(titles)]
        self.pages_width = self.table_width()
        room = self.pages_width - sum(w + CELL_PADDING for w in widths)
        self.pages = metric_pages(self.grid, self.variants, room, self.aside) if scored else []
        self.page_index = min(self.page_index, max(len(self.pages) - 1, 0))
        page = self.pages[self.page_index] if self.pages else None
        table.clear(columns=True)
        for title, width in zip(titles, widths, strict=True):
            head = (
                Text(f"\n {title}", justify="left")
                if title == "prompt"
                else Text(f"\n{title}", justify="right")
            )
            table.add_column(head, width=width + CELL_PADDING)
        table.fixed_columns = len(titles)  # the cell stays in view should the page be wider
        shorts = variant_shorts(self.variants)
        single = len(differences(self.variants)) == 1
        for column in page.columns if page else ():
            for head, width in zip(column.heads(shorts, single), column.widths, strict=True):
                table.add_column(Text(head, justify="right"), width=width + CELL_PADDING)
        for cell, key in zip(self.grid, keys, strict=True):
            values: list[Text] = [
                Text(f" {value}", justify="left") if index == 3 else Text(value, justify="right")
                for index, value in enumerate(key)
            ]
            for column in page.columns if page else ():
                values += column.values(cell)
            table.add_row(*values, key=cell.key)
        if 0 < keep_row < table.row_count:
            table.move_cursor(row=keep_row)
        self.draw_legend(scored)

    def draw_legend(self, scored: bool) -> None:
        legend_widget = self.query_one("#results-legend", Static)
        if not self.grid:
            legend_widget.update(Text(f"Sweep {self.sweep_id} has no generations yet.", style="dim"))
            return
        if not scored:
            legend_widget.update(
                Text(
                    f"Sweep {self.sweep_id}: {len(self.grid)} cells, metrics not computed yet (m scores them)",
                    style="dim",
                )
            )
            return
        width = self.app.size.width - 2  # the legend's padding
        legend_widget.update(
            legend(self.pages, self.page_index, self.variants, self.aside, self.samples_per_cell(), width)
        )

    @on(MetricTable.Paged)
    @guarded
    def _paged(self, event: MetricTable.Paged) -> None:
        if not self.pages:
            raise UserError(
                "no metric columns to page through: the sweep has no scored cells yet (m scores them)"
            )
        self.page_index = (self.page_index + event.step) % len(self.pages)
        self.fill_cells(self.query_one("#results-cells", DataTable).cursor_row)

    # ------------------------------------------------------------ samples of a cell, side by side

    def clear_samples(self) -> None:
        self.samples, self.shown_cell = None, None
        self.query_one("#results-prompt", Static).update("")
        self.query_one("#results-sides", Horizontal).remove_children()

    @on(DataTable.RowHighlighted, "#results-cells")
    @guarded
    def _cell_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = str(event.row_key.value)
        if key in self.grid_cells and self.sweep_id is not None and self.wanted_cell != (self.sweep_id, key):
            self.show_samples(self.sweep_id, key)

    @on(DataTable.RowSelected, "#results-cells")
    @guarded
    def _cell_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a cell: its samples on the whole screen (once they are read)."""
        key = str(event.row_key.value)
        if key not in self.grid_cells or self.sweep_id is None:
            return
        if self.shown_cell == key and self.samples is not None:
            self.action_zoom()
        else:
            self.zoom_when_read = True
            self.show_samples(self.sweep_id, key)

    def show_samples(self, sweep_id: int, key: str) -> None:
        """Read the cell's samples with their claims and labels (again, for the cell already shown)."""
        self.wanted_cell = (sweep_id, key)
        self._load_samples(sweep_id, key)

    @step_worker(group="results-samples", exclusive=True)
    def _load_samples(self, sweep_id: int, key: str) -> None:
        cell = self.grid_cells[key]
        samples = self.workspace.cell_samples(
            sweep_id,
            temperature=cell.temperature,
            top_p=cell.top_p,
            top_k=cell.top_k,
            prompt_id=cell.prompt_id,
        )
        ids = [s.generation_id for row in samples.rows for s in row.by_variant.values()]
        self.post_message(self.SamplesLoaded(key, samples, self.workspace.sample_claims(sweep_id, ids)))

    async def on_results_screen_samples_loaded(self, message: SamplesLoaded) -> None:
        if self.wanted_cell != (message.samples.sweep_id, message.key):
            return
        same_cell = self.samples is not None and self.shown_cell == message.key
        self.samples, self.claims, self.labels = message.samples, message.claims, message.samples.labels()
        self.shown_cell = message.key
        if not same_cell:
            self.mark = (0, 0)
        drawn = {widget.id for widget in self.query(".results-sample")}
        if same_cell and drawn == {
            f"results-sample-{s.generation_id}" for _v, m in self.side_samples() for _i, s in m
        }:
            self.draw_samples()  # read again (a reload, a closed question): keep where each side is scrolled
        else:
            await self.build_samples()
        if self.zoom_when_read:
            self.zoom_when_read = False
            self.action_zoom()

    shown_cell: str | None = None  # the cell whose samples are drawn
    zoom_when_read = False  # enter on a cell whose samples are still being read

    def side_samples(self) -> list[tuple[str, list[tuple[int, Sample]]]]:
        """Per variant, its samples with their row index (a variant may lack a sample index)."""
        samples = self.samples
        if samples is None:
            return []
        return [
            (
                variant,
                [(index, row.get(variant)) for index, row in enumerate(samples.rows) if row.get(variant)],
            )
            for variant in samples.variants
        ]  # type: ignore[misc]

    async def build_samples(self) -> None:
        """Mount one Static per sample (a new cell); draw_samples then fills them."""
        sides = self.query_one("#results-sides", Horizontal)
        await sides.remove_children()
        boxes = [
            VerticalScroll(
                Static(Text(variant_name(variant), style="bold underline")),
                *(
                    Static("", classes="results-sample", id=f"results-sample-{sample.generation_id}")
                    for _index, sample in members
                ),
                classes="results-side",
            )
            for variant, members in self.side_samples()
        ]
        await sides.mount_all(boxes)
        self.draw_samples()

    def draw_samples(self) -> None:
        """The prompt line and every sample's text, scores, claims and label; the marked one marked."""
        samples = self.samples
        if samples is None:
            return
        head = Text()
        head.append(f"T={samples.temperature:g} p={samples.top_p:g} k={samples.top_k}  ", style="bold")
        if samples.prompt is not None:
            head.append("prompt: ", style="dim")
            head.append(" ".join(samples.prompt.split()), style="italic")
        if samples.reference:
            head.append("  reference: ", style="dim")
            head.append(" ".join(samples.reference.split()), style="green")
        self.query_one("#results-prompt", Static).update(head)
        for side, (_variant, members) in enumerate(self.side_samples()):
            for index, sample in members:
                if sample.generation_id in self.labels:
                    sample = _with_label(sample, self.labels[sample.generation_id])
                marked = (index, side) == self.mark
                for widget in self.query(f"#results-sample-{sample.generation_id}").results(Static):
                    widget.update(sample_text(sample, self.claims.get(sample.generation_id, []), marked))
                    widget.set_class(marked, "marked")
        self.call_after_refresh(self.scroll_to_mark)

    def scroll_to_mark(self) -> None:
        sample = self.marked_sample()
        if sample is None:
            return
        for found in self.query(f"#results-sample-{sample.generation_id}"):
            found.scroll_visible(animate=False)

    def action_move_sample(self, step: int) -> None:
        if self.samples is None or not self.samples.rows:
            raise UserError("no samples shown: pick a cell first (c, then up/down)")
        row, side = self.mark
        self.mark = ((row + step) % len(self.samples.rows), side)
        self.draw_samples()
        self.show_marked()

    def action_other_side(self) -> None:
        if self.samples is None or not self.samples.variants:
            raise UserError("no samples shown: pick a cell first (c, then up/down)")
        row, side = self.mark
        self.mark = (row, (side + 1) % len(self.samples.variants))
        self.draw_samples()
        self.show_marked()

    def show_marked(self) -> None:
        """Marking a sample while the samples are not on screen (a short terminal) zooms them in."""
        if not self.query_one("#results-samples").display or self.view != "cells":
            self.action_zoom()

    def marked_sample(self) -> Sample | None:
        if self.samples is None or not self.samples.rows:
            return None
        row, side = self.mark
        variant = self.samples.variants[side % len(self.samples.variants)]
        return self.samples.rows[row % len(self.samples.rows)].get(variant)

    def action_label(self) -> None:
        sample = self.marked_sample()
        if sample is None:
            raise UserError("no sample marked: pick a cell (c), then n/p and v choose the sample")
        answers = [(key, label, label) for key, label in LABEL_KEYS.items()]
        preview = " ".join(sample.text.split())
        self.ask(
            f"Label {sample.variant} sample #{sample.sample_index}",
            preview[:600],
            answers,
            lambda label: label and self._label(sample.generation_id, label),
        )

    def action_blind(self) -> None:
        if self.sweep_id is None:
            raise UserError("no sweep chosen: pick one (s)")
        self.app.push_screen(BlindLabelScreen(self.sweep_id))

    @step_worker(group="results-label")
    def _label(self, generation_id: int, label: str) -> None:
        who = self.workspace.set_label(generation_id, label)
        self.post_message(self.Labelled(generation_id, label, who))

    def on_results_screen_labelled(self, message: Labelled) -> None:
        self.labels[message.generation_id] = message.label
        self.draw_samples()
        self.notify(
            f"Labelled generation {message.generation_id} {message.label} ({message.who}).", markup=False
        )

    # ------------------------------------------------------------ scoring

    def action_score(self) -> None:
        if self.sweep_id is None:
            self.notify("No sweep selected.", severity="warning")
            return
        self.notify(f"Scoring sweep {self.sweep_id}...")
        self._score(self.sweep_id)

    @step_worker(group="results-score", exclusive=True)
    def _score(self, sweep_id: int) -> None:
        # A failure is reported by StepScreen.on_worker_state_changed.
        self.post_message(self.Scored(sweep_id, self.workspace.score(sweep_id)))

    def on_results_screen_scored(self, message: Scored) -> None:
        self.notify(f"Sweep {message.sweep_id}: {message.scored} generations scored.")
        if self.sweep_id == message.sweep_id:
            self.forget_study()  # its entity tables need the scores just computed
            self.show_sweep(message.sweep_id)
            if self.view == "study":
                self.load_study()

    # ------------------------------------------------------------ the study (Workspace.compare)

    def forget_study(self) -> None:
        self.comparison, self.study_sweep, self.study_error = None, None, None

    def load_study(self) -> None:
        """Compute the shown sweep's study unless it is computed or being computed."""
        sweep_id = self.wanted_sweep if self.wanted_sweep is not None else self.sweep_id
        if sweep_id is None:
            self.query_one("#results-study-text", Static).update(
                Text(f"No sweep to study: run one on the Sweep step ({step_key('sweep')}).", style="dim")
            )
            return
        if self.study_sweep == sweep_id:
            return
        self.forget_study()
        self.study_sweep = sweep_id
        self.query_one("#results-study-text", Static).update(
            Text(
                f"Computing the study of sweep {sweep_id}: paired bootstrap intervals and permutation "
                "tests per cell, knowledge kept, the trajectory…",
                style="dim",
            )
        )
        self._load_study(sweep_id)

    def load_profile(self) -> None:
        """Read the shown sweep's entity profile (stored once per sources; extracted on first use)."""
        sweep_id = self.wanted_sweep if self.wanted_sweep is not None else self.sweep_id
        widget = self.query_one("#results-profile-text", Static)
        if sweep_id is None:
            widget.update(Text(f"No sweep: run one on the Sweep step ({step_key('sweep')}).", style="dim"))
            return
        widget.update(Text(f"Reading the entity profile of sweep {sweep_id}'s sources…", style="dim"))
        self._load_profile(sweep_id)

    @step_worker(group="results-profile", exclusive=True)
    def _load_profile(self, sweep_id: int) -> None:
        self.post_message(self.ProfileLoaded(sweep_id, *self.workspace.sweep_profile(sweep_id)))

    def on_results_screen_profile_loaded(self, message: ProfileLoaded) -> None:
        text = Text()
        text.append(f"{message.title}\n", style="bold")
        for what, value, sentence in message.rows:
            text.append(f"{what}: ", style="bold")
            text.append(f"{value}\n")  # Text, not markup: source text is shown as written
            if sentence:
                text.append(f"  {sentence}\n", style="dim")
        self.query_one("#results-profile-text", Static).update(text)

    @step_worker(group="results-study", exclusive=True)
    def _load_study(self, sweep_id: int) -> None:
        try:
            comparison = self.workspace.compare(sweep_id)
        except Exception as exc:  # noqa: BLE001 - said in the view (e.g. a sweep without a base variant)
            self.post_message(self.StudyLoaded(sweep_id, None, error_line(exc)))
            return
        self.post_message(self.StudyLoaded(sweep_id, comparison, None))

    def on_results_screen_study_loaded(self, message: StudyLoaded) -> None:
        if message.sweep_id != self.study_sweep:
            return  # another sweep was chosen meanwhile
        self.comparison, self.study_error = message.comparison, message.error
        self.draw_study()

    def draw_study(self) -> None:
        widget = self.query_one("#results-study-text", Static)
        if self.study_error is not None:
            widget.update(Text(f"No study of sweep {self.study_sweep}: {self.study_error}", style="yellow"))
        elif self.comparison is not None:
            width = self.app.size.width - FINDING_CHROME  # the same chrome as the finding
            widget.update(study_text(self.comparison, width, all_cells=self.all_cells))

    def action_all_cells(self) -> None:
        """In the study: every metric's cells, or back to the headline metric's (the others in a line)."""
        if self.view != "study":
            self.action_view("study")
        self.all_cells = not self.all_cells
        self.draw_study()
        self.notify("Study: every metric's cells." if self.all_cells else "Study: the headline metrics' cells.")


def _with_label(sample: Sample, label: str) -> Sample:
    """The sample with the label just set here (the store has it; the loaded record does not yet)."""
    return replace(sample, label=label)
