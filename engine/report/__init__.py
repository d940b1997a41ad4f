"""A sweep's report, fit for a paper: report.html (self-contained), report.md, figures/ and tables/.

Order: the headline and the summary (engine/summary.py: per prompt group, per variant x
temperature, hallucination, refusals and agreement with 95% intervals), example answers base next
to fine-tuned, heatmaps (base, fine-tuned and their difference per metric and prompt group; a
metric with one value everywhere is one line instead), the least grounded and most divergent
answers (repeated texts once, with a count), the other tables, and last the run's metadata with
paths relative to the data folder. After the heatmaps, the study (engine/report/study.py, numbers
from engine/study.py): the trajectory over training steps, knowledge kept, paired differences per
cell with BH-adjusted significance, sampling-setting effects, operating points and samples needed.
Control questions (``control:*``) appear only there: the entity's tables leave them out.

Structure: the report is a list of :class:`Section` (title + blocks: paragraphs, tables,
figures), each built by one function of :data:`SECTION_BUILDERS` from a :class:`ReportContext`;
both renderers walk the same sections, so a new section is one builder appended there. Every
text a model, a dataset or a user wrote goes through engine/escape.py in each output format.

Modules, bottom up: ``blocks`` (paragraphs, tables, figures, sections, the report, the context a
builder reads), ``display`` (paths, one-line texts, repeats collapsed), ``heatmaps`` (the figures),
``sections`` (the entity's builders) and ``study`` (the study section), ``build`` (the order,
``build_report``) and ``render`` (HTML, Markdown, CSV, LaTeX), ``write`` (the files). The public
names are re-exported here: ``from engine.report import write_report`` keeps working.

Files: figures/<name>.png and .svg for every heatmap, tables/<name>.csv and .tex for every
table with a name; report.html inlines the PNGs, report.md links them.
"""

from __future__ import annotations

from engine.report.blocks import (
    FIGURE_DPI,
    SHOWN_ROWS,
    Block,
    Figure,
    Paragraph,
    Report,
    ReportContext,
    Say,
    Section,
    Table,
    small_png,
)
from engine.report.build import SECTION_BUILDERS, SectionBuilder, build_report, report_context
from engine.report.display import collapse_repeats, display_path, unsupported_words
from engine.report.heatmaps import heatmap_figure
from engine.report.render import render_html, render_markdown, table_csv, table_latex
from engine.report.sections import (
    INLINE_METRICS,
    REPORT_METRICS,
    TABLE_COLUMNS,
    TOP_SAMPLES,
    cells_section,
    ctx_grid,
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
from engine.report.write import ReportPaths, write_report

__all__ = [
    "FIGURE_DPI",
    "INLINE_METRICS",
    "REPORT_METRICS",
    "SECTION_BUILDERS",
    "SHOWN_ROWS",
    "TABLE_COLUMNS",
    "TOP_SAMPLES",
    "Block",
    "Figure",
    "Paragraph",
    "Report",
    "ReportContext",
    "ReportPaths",
    "Say",
    "Section",
    "SectionBuilder",
    "Table",
    "build_report",
    "cells_section",
    "collapse_repeats",
    "ctx_grid",
    "display_path",
    "examples_section",
    "headline_section",
    "heatmap_figure",
    "heatmap_sections",
    "metadata_section",
    "other_sections",
    "render_html",
    "render_markdown",
    "report_context",
    "samples_section",
    "slices_section",
    "small_png",
    "study_sections",
    "summary_section",
    "table_csv",
    "table_latex",
    "unsupported_words",
    "write_report",
]
