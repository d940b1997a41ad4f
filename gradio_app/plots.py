"""The app's interactive figures (Plotly), drawn from :class:`engine.grid.MetricGrid` and fine-tune runs.

Heatmaps: one row per top_k, one panel per variant plus a difference panel. The colours are the
engine's (``engine.grid.value_scale`` / ``difference_scale``, the report's too): blue better, red
worse by the metric's direction. Variant panels share one scale fixed to the metric's natural range
(from the catalogue); the difference panels share one symmetric scale for the whole figure, the
metric's whole range when it is bounded (``MetricGrid.difference_range``), so a colour is the same
amount in every figure. Cell numbers carry the decimals their n allows (``MetricSpec.format(value,
n)``). Cells without a value say why ("n/a: every answer refused", "undefined (n = 1)"). Each cell
carries ``customdata`` "variant|T|p|k" so a click can open its samples (see ``page.js``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from engine.grid import NA_COLOUR, MetricGrid, difference_scale, value_scale
from engine.metrics.catalog import UNDEFINED_AT_ONE, MetricSpec

DIFFERENCE_PANEL = "finetuned − base"
PANEL_HEIGHT = 280


@dataclass(frozen=True)
class Panel:
    """One heatmap panel: its title, the values and what each cell's hover and click say."""

    title: str
    z: np.ndarray
    text: list[list[str]]
    hover: list[list[str]]
    clicks: list[list[str]]
    difference: bool


def empty_figure(message: str) -> go.Figure:
    figure = go.Figure()
    figure.add_annotation(text=message, showarrow=False, font={"size": 15}, x=0.5, y=0.5)
    figure.update_layout(
        height=160,
        xaxis={"visible": False},
        yaxis={"visible": False},
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
    )
    return figure


def _panel(grid: MetricGrid, spec: MetricSpec, variant: str, top_k: int) -> Panel:
    z = grid.matrix(variant, top_k)
    text, hover, clicks = [], [], []
    for i, temperature in enumerate(grid.temperatures):
        text_row, hover_row, click_row = [], [], []
        for j, top_p in enumerate(grid.top_ps):
            info = grid.cell_info(variant, top_k, i, j)
            where = f"{variant} · T={temperature:g} p={top_p:g} k={top_k}"
            value = z[i, j]
            n = info.n if info else None
            if np.isfinite(value):
                shown = spec.format(float(value), n)
                interval = (
                    f" [{spec.format(info.interval[0], n)}, {spec.format(info.interval[1], n)}]"
                    if info and info.interval
                    else ""
                )
                detail = f"{spec.label}: {shown}{interval}"
            elif info is None:
                shown, detail = "–", "no cell at this setting"
            else:
                shown = UNDEFINED_AT_ONE.short if info.reason == UNDEFINED_AT_ONE else "n/a"
                detail = f"{spec.label}: {info.note or 'n/a'}"
            samples = f"n = {info.n}" if info else "n = 0"
            text_row.append(shown)
            hover_row.append(f"{where}<br>{detail}<br>{samples}<br><i>click to read the samples</i>")
            click_row.append(f"{variant}|{temperature:g}|{top_p:g}|{top_k}" if info else "")
        text.append(text_row)
        hover.append(hover_row)
        clicks.append(click_row)
    return Panel(f"{variant} · top_k={top_k}", z, text, hover, clicks, difference=False)


def _difference_panel(grid: MetricGrid, spec: MetricSpec, top_k: int, names: tuple[str, str]) -> Panel:
    z = grid.difference(top_k)
    text, hover, clicks = [], [], []
    for i, temperature in enumerate(grid.temperatures):
        text_row, hover_row, click_row = [], [], []
        for j, top_p in enumerate(grid.top_ps):
            where = f"T={temperature:g} p={top_p:g} k={top_k}"
            value = z[i, j]
            sides = [grid.cell_info(name, top_k, i, j) for name in grid.pair]
            counts = [side.n for side in sides if side is not None]
            decimals = spec.decimals(min(counts)) if counts and not spec.fmt.endswith("d") else 2
            if np.isfinite(value):
                shown = f"{value:+.{decimals}f}"
                verdict = {"higher": value > 0, "lower": value < 0}.get(spec.direction)
                word = "" if verdict is None or value == 0 else (" (better)" if verdict else " (worse)")
                detail = f"{names[0]} − {names[1]}: {shown}{word}"
            else:
                shown, detail = "n/a", "no difference: a side has no value"
            text_row.append(shown)
            hover_row.append(f"{where}<br>{detail}<br><i>click to read both sides</i>")
            click_row.append(f"all|{temperature:g}|{top_p:g}|{top_k}")
        text.append(text_row)
        hover.append(hover_row)
        clicks.append(click_row)
    return Panel(f"{names[0]} − {names[1]} · top_k={top_k}", z, text, hover, clicks, difference=True)


def _difference_title(spec: MetricSpec) -> str:
    if spec.direction == "context":
        return "difference (neither way is better)"
    return "difference: blue better, red worse"


def panels_figure(
    rows: Sequence[Sequence[Panel]],
    grid: MetricGrid,
    spec: MetricSpec,
    title: str,
    *,
    value_range: tuple[float, float],
    span: float,
) -> go.Figure:
    """Lay out panels (rows of equal length): value panels on one scale, difference panels on another."""
    columns = max(len(r) for r in rows)
    figure = make_subplots(
        rows=len(rows),
        cols=columns,
        subplot_titles=[p.title for r in rows for p in r],
        horizontal_spacing=0.07,
        vertical_spacing=min(0.18, 0.36 / max(len(rows), 1)),
    )
    x = [f"{p:g}" for p in grid.top_ps]
    y = [f"{t:g}" for t in grid.temperatures]
    for r, row in enumerate(rows, start=1):
        for c, panel in enumerate(row, start=1):
            figure.add_trace(
                go.Heatmap(
                    z=np.where(np.isfinite(panel.z), panel.z, None).tolist(),
                    x=x,
                    y=y,
                    text=panel.text,
                    texttemplate="%{text}",
                    hovertext=panel.hover,
                    hovertemplate="%{hovertext}<extra></extra>",
                    customdata=panel.clicks,
                    coloraxis="coloraxis2" if panel.difference else "coloraxis",
                    xgap=2,
                    ygap=2,
                    name=panel.title,
                ),
                row=r,
                col=c,
            )
            # Every panel shows every setting, even one whose cells are all missing.
            figure.update_xaxes(
                title_text="top_p",
                type="category",
                categoryorder="array",
                categoryarray=x,
                range=[-0.5, len(x) - 0.5],
                showgrid=False,
                row=r,
                col=c,
            )
            figure.update_yaxes(
                title_text="temperature",
                type="category",
                categoryorder="array",
                categoryarray=y,
                range=[len(y) - 0.5, -0.5],
                showgrid=False,
                row=r,
                col=c,
            )
    # Heatmaps draw no text where z is missing: the reasons go on top as text marks (hover and click too).
    for r, row in enumerate(rows, start=1):
        for c, panel in enumerate(row, start=1):
            missing = [
                (i, j)
                for i in range(len(y))
                for j in range(len(x))
                if not np.isfinite(panel.z[i, j]) and panel.text[i][j]
            ]
            if not missing:
                continue
            figure.add_trace(
                go.Scatter(
                    x=[x[j] for _i, j in missing],
                    y=[y[i] for i, _j in missing],
                    mode="text",
                    text=[panel.text[i][j] for i, j in missing],
                    textfont={"color": "#333", "size": 13},
                    hovertext=[panel.hover[i][j] for i, j in missing],
                    hovertemplate="%{hovertext}<extra></extra>",
                    customdata=[panel.clicks[i][j] for i, j in missing],
                    showlegend=False,
                    name=f"{panel.title} (no value)",
                ),
                row=r,
                col=c,
            )
    low, high = value_range
    hint = {"higher": " · higher is better", "lower": " · lower is better"}.get(spec.direction, "")
    figure.update_layout(
        title={"text": f"{title}{hint}", "x": 0.01},
        height=110 + PANEL_HEIGHT * len(rows),
        margin={"l": 60, "r": 40, "t": 90, "b": 40},
        plot_bgcolor=NA_COLOUR,
        coloraxis={
            "colorscale": value_scale(spec).plotly(),
            "cmin": low,
            "cmax": high,
            "colorbar": {"title": {"text": spec.name, "side": "right"}, "x": 1.0, "len": 0.9},
        },
        coloraxis2={
            "colorscale": difference_scale(spec).plotly(),
            "cmin": -span,
            "cmax": span,
            "colorbar": {"title": {"text": _difference_title(spec), "side": "right"}, "x": 1.1, "len": 0.9},
        },
        clickmode="event",
    )
    return figure


def heatmap_figure(grid: MetricGrid, spec: MetricSpec, *, title: str | None = None) -> go.Figure:
    """One row per top_k: each variant | fine-tuned − base."""
    if grid.empty:
        return empty_figure(f"no scored cells for '{spec.label}' yet: press Score sweep")
    rows = []
    for k in grid.top_ks:
        row = [_panel(grid, spec, v, k) for v in grid.variants]
        if grid.has_difference:
            row.append(_difference_panel(grid, spec, k, grid.pair))
        rows.append(row)
    return panels_figure(
        rows,
        grid,
        spec,
        title or spec.label,
        value_range=grid.colour_range(spec),
        span=grid.difference_range(spec),
    )


def loss_figure(runs: Sequence[tuple[str, list[float], float | None, float | None]]) -> go.Figure:
    """Train loss per logged step for each run; eval loss before and after training as markers.

    ``runs``: (name, train loss history, eval loss before, eval loss after).
    """
    if not runs:
        return empty_figure("no fine-tune run recorded in this store yet: run `ft-hallu finetune`")
    figure = go.Figure()
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    for index, (name, history, before, after) in enumerate(runs):
        colour = palette[index % len(palette)]
        steps = list(range(1, len(history) + 1))
        figure.add_trace(
            go.Scatter(
                x=steps, y=history, mode="lines+markers", name=f"{name} · train", line={"color": colour}
            )
        )
        evals = [(0, before), (len(history), after)]
        shown = [(s, v) for s, v in evals if v is not None]
        if shown:
            figure.add_trace(
                go.Scatter(
                    x=[s for s, _ in shown],
                    y=[v for _, v in shown],
                    mode="lines+markers",
                    name=f"{name} · eval (before / after)",
                    line={"color": colour, "dash": "dash"},
                    marker={"symbol": "diamond", "size": 10},
                )
            )
    figure.update_layout(
        height=420,
        xaxis_title="logged step",
        yaxis_title="loss",
        legend={"orientation": "h", "y": -0.2},
        margin={"l": 60, "r": 20, "t": 30, "b": 40},
    )
    return figure
