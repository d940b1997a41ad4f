"""The report's heatmaps: one figure per metric and prompt group, a row per top_k, each variant and
fine-tuned − base, a number in every cell (PNG and SVG)."""

from __future__ import annotations

import io

from engine.grid import NA_COLOUR, MetricGrid, degenerate_note, difference_scale, value_scale
from engine.metrics.catalog import MetricSpec
from engine.report.blocks import FIGURE_DPI, Figure, small_png
from engine.report.display import variant_label


def heatmap_figure(grid: MetricGrid, spec: MetricSpec, *, title: str, name: str, n: int | None) -> Figure:
    """One figure: a row per top_k; each variant, then fine-tuned − base; numbers in every cell.

    Value panels share the metric's colour scale and range (engine/grid.py: blue better, red
    worse); difference panels share one symmetric scale over the metric's whole range, so a
    colour means the same amount in every figure of this metric.
    """
    import matplotlib
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.colors import LinearSegmentedColormap, Normalize
    from matplotlib.figure import Figure as MplFigure

    variants, top_ks = list(grid.variants), list(grid.top_ks)
    with_difference = grid.has_difference
    columns = len(variants) + (1 if with_difference else 0)
    vmin, vmax = grid.colour_range(spec)
    span = grid.difference_range(spec)
    scales = {False: value_scale(spec), True: difference_scale(spec)}
    norms = {False: Normalize(vmin, vmax), True: Normalize(-span, span)}
    cmaps = {
        kind: LinearSegmentedColormap.from_list(scale.name, list(scale.stops)).with_extremes(bad=NA_COLOUR)
        for kind, scale in scales.items()
    }
    decimals = spec.decimals(n or 1)
    panel_w, panel_h = 0.42 * len(grid.top_ps) + 0.9, 0.32 * len(grid.temperatures) + 0.75
    width = 0.9 + columns * panel_w + (1.3 if with_difference else 0.7)
    height = 0.95 + len(top_ks) * panel_h
    style = {"svg.fonttype": "none", "svg.hashsalt": name, "font.size": 9, "font.sans-serif": ["DejaVu Sans"]}
    with matplotlib.rc_context(style):
        fig = MplFigure(figsize=(width, height))
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(top_ks), columns, squeeze=False)
        fig.subplots_adjust(
            left=0.75 / width,
            right=1 - (1.15 if with_difference else 0.6) / width,
            top=1 - 0.72 / height,
            bottom=0.45 / height,
            hspace=0.55,
            wspace=0.25,
        )
        images = {}
        for row, k in enumerate(top_ks):
            panels = [(v, grid.matrix(v, k), False) for v in variants]
            if with_difference:
                panels.append(("fine-tuned − base", grid.difference(k), True))
            for col, (label, data, is_diff) in enumerate(panels):
                ax = axes[row][col]
                # Vector cells (not an image): crisp in the SVG and a few hundred bytes each.
                images[is_diff] = ax.pcolormesh(
                    np.ma.masked_invalid(data),
                    cmap=cmaps[is_diff],
                    norm=norms[is_diff],
                    edgecolors="white",
                    linewidth=0.6,
                )
                ax.set_facecolor(NA_COLOUR)  # cells without a value
                ax.set_xlim(0, data.shape[1])
                ax.set_ylim(data.shape[0], 0)
                ax.set_title(f"{variant_label(label)} · top_k={k}", fontsize=9)
                grid_axes(ax, grid.temperatures, grid.top_ps, first_col=col == 0, last_row=row == len(top_ks) - 1)
                for i in range(data.shape[0]):
                    for j in range(data.shape[1]):
                        value = data[i, j]
                        if not np.isfinite(value):
                            ax.text(
                                j + 0.5, i + 0.5, "n/a", ha="center", va="center", fontsize=8, color="#555555"
                            )
                            continue
                        text = f"{value:+.{decimals}f}" if is_diff else f"{value:.{decimals}f}"
                        if is_diff and round(value, decimals) == 0:
                            text = f"{0:.{decimals}f}"
                        colour = scales[is_diff].text_colour(float(norms[is_diff](value)))
                        ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=9, color=colour)
        direction = {"higher": "higher is better", "lower": "lower is better"}.get(
            spec.direction, "neither way is better"
        )
        fig.suptitle(f"{title}\n({direction}; n = {n} samples per cell)" if n else title, fontsize=10)
        right = 1 - 1.0 / width
        bar_h = (1 - 1.17 / height) / (2 if with_difference else 1)
        bar = fig.add_axes(
            (
                right + 0.12 / width,
                0.45 / height + (bar_h if with_difference else 0),
                0.13 / width,
                bar_h * 0.9,
            )
        )
        fig.colorbar(images[False], cax=bar).ax.tick_params(labelsize=7)
        bar.set_title("value", fontsize=7)
        if with_difference:
            diff_bar = fig.add_axes((right + 0.12 / width, 0.45 / height, 0.13 / width, bar_h * 0.9))
            fig.colorbar(images[True], cax=diff_bar).ax.tick_params(labelsize=7)
            diff_bar.set_title("difference", fontsize=7)
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=FIGURE_DPI)
        svg = io.BytesIO()
        FigureCanvasSVG(fig)
        fig.savefig(svg, format="svg", metadata={"Date": None})
    caption_parts = [f"{spec.label}: {spec.description}" if spec.description else spec.label]
    if n and (note := degenerate_note(spec.name, n, spec)):
        caption_parts.append(f"Note: {note}")
    if with_difference:
        caption_parts.append(
            "Difference panel: fine-tuned − base, blue where fine-tuned is better, red where worse"
            if spec.direction != "context"
            else "Difference panel: fine-tuned − base (purple lower, orange higher)"
        )
    return Figure(name, title, ". ".join(caption_parts) + ".", small_png(png.getvalue()), svg.getvalue())


def grid_axes(ax, temperatures, top_ps, *, first_col: bool, last_row: bool) -> None:
    """One temperature x top_p panel's ticks and labels: top_p under the bottom row, temperature
    beside the first column (every figure of the report draws its grid panels this way)."""
    ax.set_xticks([j + 0.5 for j in range(len(top_ps))], [f"{p:g}" for p in top_ps], fontsize=8)
    ax.set_yticks(
        [i + 0.5 for i in range(len(temperatures))], [f"{t:g}" for t in temperatures] if first_col else [], fontsize=8
    )
    ax.tick_params(length=0)
    if last_row:
        ax.set_xlabel("top_p", fontsize=8)
    if first_col:
        ax.set_ylabel("temperature", fontsize=8)
