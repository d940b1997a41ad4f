"""Building a report: score what is missing, read what the builders need, run them in order.

:data:`SECTION_BUILDERS` is the report's order; another section is one function appended there.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine import scoring
from engine import summary as engine_summary
from engine.control import is_control_prompt
from engine.report.blocks import Report, ReportContext, Say, Section
from engine.report.display import announce_embeddings
from engine.report.sections import (
    cells_section,
    examples_section,
    headline_section,
    heatmap_sections,
    metadata_section,
    other_sections,
    samples_section,
    slices_section,
    summary_section,
)
from engine.report.study import study_sections
from store import core as store_core
from store import metrics as store_metrics

SectionBuilder = Callable[[ReportContext], "Section | list[Section]"]
# The report's order. Another section is one function appended (or inserted) here.
SECTION_BUILDERS: list[SectionBuilder] = [
    headline_section,
    summary_section,
    examples_section,
    heatmap_sections,
    study_sections,
    samples_section,
    slices_section,
    cells_section,
    other_sections,
    metadata_section,
]


# ------------------------------------------------------------------ building


def report_context(
    store: Any,
    sweep_id: int,
    *,
    method: str = "auto",
    say: Say | None = None,
    data_folder: str | Path | None = None,
) -> ReportContext:
    """Score what is missing (saying so, and saying when a model loads), then read what the
    section builders need."""
    say = say or (lambda _message: None)
    missing = store_metrics.generations_missing_metrics(store, sweep_id)
    if missing:
        announce_embeddings(
            say, f"to score {len(missing)} unscored answers (claim evidence, meaning clusters)"
        )
        say(f"scoring {len(missing)} answers of sweep {sweep_id}")
    scoring.compute_missing(store, sweep_id, method=method)
    return ReportContext(
        store=store,
        sweep_id=sweep_id,
        sweep=store_core.get_sweep(store, sweep_id),
        summary=engine_summary.build_summary(store, sweep_id),
        # Control questions are scored by knowledge kept in the study section, not against the
        # entity's sources: their cells and answers stay out of the entity's tables.
        cells=[c for c in store_metrics.cell_table(store, sweep_id) if not is_control_prompt(c["prompt_id"])],
        samples=[
            s for s in store_metrics.sample_table(store, sweep_id) if not is_control_prompt(s["prompt_id"])
        ],
        data_folder=Path(data_folder) if data_folder else Path(store.path).resolve().parent,
        method=method,
        say=say,
    )


def build_report(
    store: Any,
    sweep_id: int,
    *,
    method: str = "auto",
    say: Say | None = None,
    data_folder: str | Path | None = None,
) -> Report:
    """Every section of :data:`SECTION_BUILDERS`, in order."""
    ctx = report_context(store, sweep_id, method=method, say=say, data_folder=data_folder)
    sections: list[Section] = []
    for builder in SECTION_BUILDERS:
        built = builder(ctx)
        sections.extend(built if isinstance(built, list) else [built])
    return Report(f"ft-hallu report — sweep {sweep_id}", sections, ctx.summary)
