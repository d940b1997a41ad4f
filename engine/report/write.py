"""Writing a report's files: report.html, report.md, figures/ and tables/, moved in only when finished."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.files import (
    first_existing_parent,
    is_disk_full,
    naming,
    remove_empty,
    remove_leftovers,
    replace_folder,
    staging_folder,
)
from engine.report.blocks import Say
from engine.report.build import build_report
from engine.report.render import render_html, render_markdown, table_csv, table_latex


@dataclass(frozen=True)
class ReportPaths:
    html: Path
    markdown: Path
    figures: list[Path]
    tables: list[Path]
    seconds: float


def write_report(
    store: Any,
    sweep_id: int,
    out_dir: str | Path,
    *,
    method: str = "auto",
    say: Say | None = None,
    data_folder: str | Path | None = None,
) -> ReportPaths:
    """Write report.html, report.md, figures/ (PNG + SVG) and tables/ (CSV + LaTeX) into ``out_dir``.

    Everything is built in a staging folder beside ``out_dir`` first; only a finished report is
    moved in (a new ``out_dir`` whole; else figures/ and tables/ swapped in whole, then the two
    reports), so a failed run (a full disk, a kill) leaves the old report as it was, no empty
    folder and no half-written file. Other files in ``out_dir`` are never touched.
    """
    started = time.perf_counter()
    out = Path(out_dir)
    report = build_report(store, sweep_id, method=method, say=say, data_folder=data_folder)
    remove_leftovers(out)  # what a killed earlier report left beside it
    existing = first_existing_parent(out.parent)
    created = [p for p in (out.parent.absolute(), *out.parent.absolute().parents) if p != existing and not p.exists()]
    staging = staging_folder(out)
    try:
        with naming(out):
            for folder in ("figures", "tables"):
                (staging / folder).mkdir()
            for figure in report.figures():
                (staging / "figures" / f"{figure.name}.png").write_bytes(figure.png)
                (staging / "figures" / f"{figure.name}.svg").write_bytes(figure.svg)
            for table in report.tables():
                (staging / "tables" / f"{table.name}.csv").write_text(table_csv(table), encoding="utf-8")
                (staging / "tables" / f"{table.name}.tex").write_text(table_latex(table), encoding="utf-8")
            (staging / "report.html").write_text(render_html(report), encoding="utf-8")
            (staging / "report.md").write_text(render_markdown(report), encoding="utf-8")
            _move_in(staging, out)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        remove_empty(created)  # folders made on the way to the report go too
        if is_disk_full(exc):
            raise UserError(f"{out}: disk full while writing the report; nothing was written") from exc
        raise
    return ReportPaths(
        html=out / "report.html",
        markdown=out / "report.md",
        figures=sorted((out / "figures").iterdir()),
        tables=sorted((out / "tables").iterdir()),
        seconds=time.perf_counter() - started,
    )


def _move_in(staging: Path, out: Path) -> None:
    """Put a finished report in place: the staging folder itself when ``out`` is new, else its parts."""
    if not out.exists():
        os.replace(staging, out)
        return
    for folder in ("figures", "tables"):
        replace_folder(staging / folder, out / folder)
    for name in ("report.html", "report.md"):
        os.replace(staging / name, out / name)
    shutil.rmtree(staging, ignore_errors=True)
