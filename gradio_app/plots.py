"""The Sweeps tab's figures, drawn from an :class:`engine.grid.MetricGrid` (the matrices are built there)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from engine.grid import MetricGrid

DIFFERENCE_PANEL = "finetuned - base"


def heatmap_figure(grid: MetricGrid, label: tuple[str, str]) -> Figure:
    """One row per top_k: base | fine-tuned | difference; colours shared across panels so they compare."""
    title, direction = label
    if grid.empty:
        figure = Figure(figsize=(8, 2.5))
        axis = figure.add_subplot()
        axis.axis("off")
        axis.text(0.5, 0.5, f"no scored cells for '{title}' yet: press Score", ha="center", va="center")
        return figure
    panels = [*grid.variants, *([DIFFERENCE_PANEL] if grid.has_difference else [])]
    finite = grid.finite_values()
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if vmin == vmax:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    cmap = "viridis_r" if direction == "lower" else "viridis"
    figure = Figure(figsize=(3.6 * len(panels) + 1, 2.6 * len(grid.top_ks) + 0.8), layout="constrained")
    axes = figure.subplots(len(grid.top_ks), len(panels), squeeze=False)
    for r, k in enumerate(grid.top_ks):
        for c, panel in enumerate(panels):
            axis = axes[r][c]
            if panel == DIFFERENCE_PANEL:
                data = grid.difference(k)
                span = float(np.nanmax(np.abs(data))) if np.isfinite(data).any() else 1.0
                image = axis.imshow(data, cmap="coolwarm", vmin=-span or -1, vmax=span or 1, aspect="auto")
            else:
                data = grid.matrix(panel, k)
                image = axis.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
            for (i, j), value in np.ndenumerate(data):
                if np.isfinite(value):
                    axis.text(
                        j,
                        i,
                        f"{value:.2f}",
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white",
                        bbox={"facecolor": "black", "alpha": 0.25, "pad": 1, "linewidth": 0},
                    )
            axis.set_xticks(range(len(grid.top_ps)), [f"{p:g}" for p in grid.top_ps])
            axis.set_yticks(range(len(grid.temperatures)), [f"{t:g}" for t in grid.temperatures])
            axis.set_xlabel("top_p")
            axis.set_ylabel("temperature")
            axis.set_title(f"{panel} · top_k={k}", fontsize=10)
            if panel in (grid.variants[-1], DIFFERENCE_PANEL):
                figure.colorbar(image, ax=axis, shrink=0.8)
    hint = {"higher": " (higher is better)", "lower": " (lower is better)"}.get(direction, "")
    figure.suptitle(f"{title}{hint}")
    return figure
