"""One metric over the sampling grid as matrices: temperature rows x top_p columns, per variant and top_k.

The Gradio heatmaps and the HTML report both draw from :class:`MetricGrid`, so turning stored cells
into matrices (missing cells as NaN) and the fine-tuned minus base difference is written once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.metrics.catalog import MetricSpec, MissingReason

DIFFERENCE = ("finetuned", "base")  # (minuend, subtrahend) of the difference panel


@dataclass(frozen=True)
class CellInfo:
    """What a heatmap cell's hover says besides its value: samples, interval, why it has no value."""

    n: int
    interval: tuple[float, float] | None = None  # 95% bootstrap interval of the mean (one prompt)
    reason: MissingReason | None = None  # set when the cell has no value (catalog.ALL_REFUSED, ...)

    @property
    def note(self) -> str | None:
        """Why the cell has no value, in words: "n/a: every answer refused", "undefined (n = 1)"."""
        return self.reason.long if self.reason else None


@dataclass(frozen=True)
class MetricGrid:
    """A metric's cell values; ``values[variant][top_k][i][j]`` is temperature i, top_p j (or None)."""

    metric: str
    temperatures: tuple[float, ...]
    top_ps: tuple[float, ...]
    top_ks: tuple[int, ...]
    variants: tuple[str, ...]
    values: Mapping[str, Mapping[int, list[list[float | None]]]]
    # Same shape as ``values``; empty when the grid was built without the cells (the report's).
    info: Mapping[str, Mapping[int, list[list[CellInfo | None]]]] = field(default_factory=dict)
    pair: tuple[str, str] = DIFFERENCE  # (minuend, subtrahend) of the difference panel

    @classmethod
    def from_dict(cls, grid: Mapping[str, Any]) -> MetricGrid:
        """From ``store.metrics.metric_grid``'s dict."""
        return cls(
            metric=str(grid["metric"]),
            temperatures=tuple(float(t) for t in grid["temperatures"]),
            top_ps=tuple(float(p) for p in grid["top_ps"]),
            top_ks=tuple(int(k) for k in grid["top_ks"]),
            variants=tuple(str(v) for v in grid["variants"]),
            values=grid["values"],
            info=grid.get("info") or {},
        )

    @property
    def empty(self) -> bool:
        return not self.variants or not self.top_ks

    @property
    def has_difference(self) -> bool:
        return all(variant in self.variants for variant in self.pair)

    def matrix(self, variant: str, top_k: int) -> np.ndarray:
        """Temperature x top_p values as floats, NaN where a cell has no value."""
        rows = self.values[variant][top_k]
        return np.array([[np.nan if x is None else float(x) for x in row] for row in rows], dtype=float)

    def difference(self, top_k: int) -> np.ndarray:
        """Fine-tuned minus base (``pair``), NaN where either is missing."""
        minuend, subtrahend = self.pair
        return self.matrix(minuend, top_k) - self.matrix(subtrahend, top_k)

    def finite_values(self) -> np.ndarray:
        """Every present value of every variant panel (for colour ranges)."""
        parts = [m[np.isfinite(m)] for m in (self.matrix(v, k) for v in self.variants for k in self.top_ks)]
        return np.concatenate(parts) if parts else np.array([], dtype=float)

    def cell_info(self, variant: str, top_k: int, i: int, j: int) -> CellInfo | None:
        """The hover details of temperature i, top_p j (None: no such cell was stored)."""
        rows = self.info.get(variant, {}).get(top_k)
        return rows[i][j] if rows else None

    def colour_range(self, spec: MetricSpec) -> tuple[float, float]:
        """The metric's natural range: fixed when bounded (rates 0..1), else its low end to the grid's maximum."""
        low = float(spec.range[0])
        if spec.range[1] is not None:
            return low, float(spec.range[1])
        finite = self.finite_values()
        high = float(finite.max()) if finite.size else low + 1.0
        return low, high if high > low else low + 1.0

    def difference_span(self) -> float:
        """One symmetric half-width for every top_k's difference panel (so a colour is one amount)."""
        if not self.has_difference:
            return 1.0
        spans = [np.abs(d[np.isfinite(d)]) for d in (self.difference(k) for k in self.top_ks)]
        present = np.concatenate(spans) if spans else np.array([])
        span = float(present.max()) if present.size else 0.0
        return span if span > 0 else 1.0


def compare_grids(
    first: MetricGrid,
    first_variant: str,
    first_name: str,
    second: MetricGrid,
    second_variant: str,
    second_name: str,
) -> MetricGrid:
    """Two sweeps' grids of one metric on the union of their settings; the difference is second − first."""
    temperatures = tuple(sorted({*first.temperatures, *second.temperatures}))
    top_ps = tuple(sorted({*first.top_ps, *second.top_ps}))
    top_ks = tuple(sorted({*first.top_ks, *second.top_ks}))

    def place(grid: MetricGrid, variant: str, table: str) -> dict[int, list[list[Any]]]:
        out: dict[int, list[list[Any]]] = {k: [[None] * len(top_ps) for _ in temperatures] for k in top_ks}
        source = (grid.values if table == "values" else grid.info).get(variant, {})
        for k, rows in source.items():
            for i, temperature in enumerate(grid.temperatures):
                for j, top_p in enumerate(grid.top_ps):
                    out[k][temperatures.index(temperature)][top_ps.index(top_p)] = rows[i][j]
        return out

    if first_name == second_name:
        raise ValueError("compare_grids: the two sides need different names")
    sides = ((first, first_variant, first_name), (second, second_variant, second_name))
    return MetricGrid(
        metric=first.metric,
        temperatures=temperatures,
        top_ps=top_ps,
        top_ks=top_ks,
        variants=(first_name, second_name),
        values={name: place(grid, variant, "values") for grid, variant, name in sides},
        info={name: place(grid, variant, "info") for grid, variant, name in sides},
        pair=(second_name, first_name),
    )
