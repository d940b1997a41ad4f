"""What a report is made of: blocks (paragraphs, tables, figures), sections, the report itself,
and what a section builder reads.

engine/report/render.py renders these (HTML, Markdown, CSV, LaTeX), engine/report/build.py lists
the builders in order (``SECTION_BUILDERS``); every builder module (sections, study) imports them
from here, so no builder module imports the renderer back.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import summary as engine_summary

SHOWN_ROWS = 60  # rows of a long table shown in the HTML/Markdown; the CSV holds them all
FIGURE_DPI = 100

Say = Callable[[str], None]


@dataclass(frozen=True)
class Paragraph:
    text: str
    strong: bool = False  # the headline


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]
    name: str = ""  # file stem under tables/ (csv and tex); '' = not written as a file
    caption: str = ""
    text_columns: frozenset[int] = frozenset()  # columns holding answers: wrapped, left-aligned
    # Rows shown in HTML/Markdown (None: all; 0: none, only where the files are).
    shown: int | None = SHOWN_ROWS
    # Headers written "group · column" get a spanning group row in HTML (CSV/Markdown keep them whole).
    grouped_headers: bool = False


@dataclass(frozen=True)
class Figure:
    name: str  # file stem under figures/
    title: str
    caption: str
    png: bytes
    svg: bytes
    inline: bool = True  # drawn inside report.html; else linked (its files are always written)


Block = Paragraph | Table | Figure


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    level: int = 2


@dataclass
class ReportContext:
    """What every section builder may read: the store, the sweep, its summary, cells and samples."""

    store: Any
    sweep_id: int
    sweep: dict[str, Any]
    summary: engine_summary.SweepSummary
    cells: list[dict[str, Any]]
    samples: list[dict[str, Any]]
    data_folder: Path
    method: str
    say: Say

    @property
    def entity(self) -> str | None:
        return (self.sweep.get("config") or {}).get("entity_name")


@dataclass
class Report:
    title: str
    sections: list[Section]
    summary: engine_summary.SweepSummary

    def tables(self) -> list[Table]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Table) and b.name]

    def figures(self) -> list[Figure]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Figure)]


def small_png(data: bytes) -> bytes:
    """The PNG with a 256-colour palette: a heatmap has few colours, so the file shrinks ~3x (95 -> 34 KB)
    with no banding in the colour bars (64 colours banded them)."""
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    out = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, format="PNG", optimize=True)
    return out.getvalue()
