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
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from engine.grid import NA_COLOUR, MetricGrid, difference_scale, paired_difference_scale, value_scale
from engine.metrics.catalog import UNDEFINED_AT_ONE, MetricSpec
from engine.workspace import CellDifference, KnowledgeKept, Trajectory
from gradio_app import study_views

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
    figure.add_annotation(
        text=message, showarrow=False, font={"size": 15}, x=0.5, y=0.5, xref="paper", yref="paper"
    )
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


def _temperature_axis(figure: go.Figure, temperatures: list[str], row: int, col: int) -> None:
    """A panel's y axis: every temperature as a category, the lowest on top."""
    figure.update_yaxes(
        title_text="temperature",
        type="category",
        categoryorder="array",
        categoryarray=temperatures,
        range=[len(temperatures) - 0.5, -0.5],
        showgrid=False,
        row=row,
        col=col,
    )


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
            _temperature_axis(figure, y, r, c)
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
            "colorbar": {"title": {"text": spec.label, "side": "right"}, "x": 1.0, "len": 0.9},
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


# ---------------------------------------------------------------- the study (engine/study.py results)


def study_cells_figure(
    cells: Sequence[CellDifference], *, title: str, higher_is_better: bool | None
) -> go.Figure:
    """base − variant per cell, one panel per top_k (temperature x top_p), on one symmetric scale
    (a share's whole range, ±1); each cell shows the difference and a ★ when it is significant after
    the Benjamini–Hochberg adjustment; its hover gives the interval, the means, p and q."""
    if not cells:
        return empty_figure("no cells for this row")
    temperatures = sorted({c.temperature for c in cells})
    top_ps = sorted({c.top_p for c in cells})
    top_ks = sorted({c.top_k for c in cells})
    by_key = {(c.temperature, c.top_p, c.top_k): c for c in cells}
    x = [f"{p:g}" for p in top_ps]
    y = [f"{t:g}" for t in temperatures]
    figure = make_subplots(
        rows=1, cols=len(top_ks), subplot_titles=[f"top_k = {k}" for k in top_ks], horizontal_spacing=0.08
    )
    for column, top_k in enumerate(top_ks, start=1):
        z, text, hover = [], [], []
        for temperature in temperatures:
            z_row, text_row, hover_row = [], [], []
            for top_p in top_ps:
                cell = by_key.get((temperature, top_p, top_k))
                where = f"T={temperature:g} p={top_p:g} k={top_k}"
                if cell is None or cell.difference is None:
                    z_row.append(None)
                    text_row.append("n/a")
                    hover_row.append(f"{where}<br>no pair with a value on both sides")
                    continue
                z_row.append(cell.difference)
                text_row.append(
                    study_views.signed(cell.difference, cell.pairs) + (" ★" if cell.significant else "")
                )
                hover_row.append(
                    f"{where}<br>base − variant {study_views.difference_text(cell)}"
                    f"<br>base {study_views.share(cell.base, cell.pairs)} · variant "
                    f"{study_views.share(cell.value, cell.pairs)} · {cell.pairs} pairs"
                    f"<br>p {study_views.p_text(cell.p_value)} · q (BH) {study_views.p_text(cell.q_value)}"
                    + (" · significant" if cell.significant else "")
                )
            z.append(z_row)
            text.append(text_row)
            hover.append(hover_row)
        figure.add_trace(
            go.Heatmap(
                z=z,
                x=x,
                y=y,
                text=text,
                texttemplate="%{text}",
                textfont={"size": 15},
                hovertext=hover,
                hovertemplate="%{hovertext}<extra></extra>",
                coloraxis="coloraxis",
                xgap=2,
                ygap=2,
                name=f"base − variant · top_k={top_k}",
            ),
            row=1,
            col=column,
        )
        figure.update_xaxes(title_text="top_p", type="category", showgrid=False, row=1, col=column)
        _temperature_axis(figure, y, 1, column)
    figure.update_layout(
        title={"text": title, "x": 0.01},
        height=130 + PANEL_HEIGHT,
        margin={"l": 60, "r": 40, "t": 80, "b": 40},
        plot_bgcolor=NA_COLOUR,
        coloraxis={
            "colorscale": paired_difference_scale(higher_is_better).plotly(),
            "cmin": -1.0,
            "cmax": 1.0,
            "colorbar": {"title": {"text": "base − variant", "side": "right"}},
        },
    )
    return figure


VARIANT_COLOURS = ["#555555", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b"]


def _error_bars(estimates: Sequence[Any]) -> dict[str, object]:
    """Asymmetric error bars from each estimate's interval (``stats.Estimate``; 0 where it has none)."""
    plus = [(e.high - e.mean) if e and e.high is not None and e.mean is not None else 0 for e in estimates]
    minus = [(e.mean - e.low) if e and e.low is not None and e.mean is not None else 0 for e in estimates]
    return {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus, "thickness": 1.5}


def knowledge_figure(rows: Sequence[KnowledgeKept], variants: Sequence[str]) -> go.Figure:
    """Knowledge kept per temperature, one line per variant, with its interval over questions."""
    per_t = [r for r in rows if r.temperature is not None]
    if not per_t:
        return empty_figure(study_views.NO_CONTROL.split(":")[0])
    figure = go.Figure()
    for index, variant in enumerate(v for v in variants if any(r.variant == v for r in per_t)):
        mine = sorted((r for r in per_t if r.variant == variant), key=lambda r: r.temperature or 0.0)
        figure.add_trace(
            go.Scatter(
                x=[r.temperature for r in mine],
                y=[r.kept.mean for r in mine],
                error_y=_error_bars([r.kept for r in mine]),
                mode="lines+markers",
                name=variant,
                # base wide and dashed: a variant that keeps all it knew draws over it, both still seen
                line={
                    "color": VARIANT_COLOURS[index % len(VARIANT_COLOURS)],
                    **({"width": 5, "dash": "dash"} if variant == "base" else {}),
                },
                hovertext=[
                    f"{variant} · T={r.temperature:g}: {study_views.estimate_text(r.kept)}" for r in mine
                ],
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )
    figure.update_layout(
        height=320,
        xaxis_title="temperature",
        yaxis={"title": "share stating the reference", "range": [-0.05, 1.05]},
        legend={"orientation": "h", "y": -0.25},
        margin={"l": 60, "r": 20, "t": 30, "b": 40},
    )
    return figure


# A trajectory metric's colour is the same in every panel: red what fine-tuning should lower, green
# what it should keep, grey the refusals.
METRIC_COLOURS = {"hallucinated": "#d62728", "states_reference": "#2ca02c", "refusal": "#7f7f7f"}


def trajectory_figure(trajectory: Trajectory) -> go.Figure:
    """Each prompt group's metrics against the training step (with their intervals) over the loss,
    on one shared step axis; the best trade-off step marked by a dotted line (named on the axis)."""
    points = [p for p in trajectory.points if p.step is not None]
    if not points:
        return empty_figure("no checkpoint sweep: its variants have no training step")
    groups = list(dict.fromkeys(key.partition(":")[0] for p in points for key in p.metrics))
    titles = [study_views.group_label(g) for g in groups] + ["loss"]
    figure = make_subplots(
        rows=len(titles), cols=1, shared_xaxes=True, subplot_titles=titles, vertical_spacing=0.09
    )
    steps = [p.step for p in points]
    shown: set[str] = set()
    for row, group in enumerate(groups, start=1):
        keys = list(dict.fromkeys(k for p in points for k in p.metrics if k.startswith(f"{group}:")))
        for key in keys:
            metric = key.partition(":")[2]
            estimates = [p.metrics.get(key) for p in points]
            label = study_views.metric_label(metric)
            figure.add_trace(
                go.Scatter(
                    x=steps,
                    y=[e.mean if e else None for e in estimates],
                    error_y=_error_bars(estimates),
                    mode="lines+markers",
                    name=label,
                    legendgroup=metric,
                    showlegend=metric not in shown,
                    line={"color": METRIC_COLOURS.get(metric, "#1f77b4")},
                    hovertext=[
                        f"{p.variant} · step {p.step}: {label} {study_views.estimate_text(e) if e else '–'}"
                        for p, e in zip(points, estimates, strict=True)
                    ],
                    hovertemplate="%{hovertext}<extra></extra>",
                ),
                row=row,
                col=1,
            )
            shown.add(metric)
        figure.update_yaxes(title_text="share", range=[-0.05, 1.05], row=row, col=1)
    loss_row = len(titles)
    for name, values, dash in (
        ("train loss", [p.train_loss for p in points], "solid"),
        ("eval loss", [p.eval_loss for p in points], "dash"),
    ):
        if any(v is not None for v in values):
            figure.add_trace(
                go.Scatter(
                    x=steps,
                    y=values,
                    mode="lines+markers",
                    name=name,
                    line={"color": "#444444", "dash": dash},
                    connectgaps=True,
                ),
                row=loss_row,
                col=1,
            )
    figure.update_yaxes(title_text="loss", row=loss_row, col=1)
    best = trajectory.best
    axis = "training step (base = 0)"
    if best is not None and best.step is not None:
        figure.add_vline(x=best.step, line={"color": "#2166ac", "dash": "dot", "width": 2})
        axis += f" · dotted: the best trade-off, step {best.step}"
    figure.update_xaxes(tickmode="array", tickvals=steps, ticktext=[str(s) for s in steps])
    figure.update_xaxes(title_text=axis, row=loss_row, col=1)
    figure.update_layout(
        height=120 + 200 * len(titles),
        legend={"orientation": "h", "y": -0.14},
        margin={"l": 60, "r": 20, "t": 40, "b": 40},
    )
    return figure
