"""One metric over the sampling grid as matrices: temperature rows x top_p columns, per variant and top_k.

The Gradio heatmaps and the HTML report both draw from :class:`MetricGrid`, so turning stored cells
into matrices (missing cells as NaN) and the fine-tuned minus base difference is written once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

DIFFERENCE = ("finetuned", "base")  # (minuend, subtrahend) of the difference panel


@dataclass(frozen=True)
class MetricGrid:
    """A metric's cell values; ``values[variant][top_k][i][j]`` is temperature i, top_p j (or None)."""

    metric: str
    temperatures: tuple[float, ...]
    top_ps: tuple[float, ...]
    top_ks: tuple[int, ...]
    variants: tuple[str, ...]
    values: Mapping[str, Mapping[int, list[list[float | None]]]]

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
        )

    @property
    def empty(self) -> bool:
        return not self.variants or not self.top_ks

    @property
    def has_difference(self) -> bool:
        return all(variant in self.variants for variant in DIFFERENCE)

    def matrix(self, variant: str, top_k: int) -> np.ndarray:
        """Temperature x top_p values as floats, NaN where a cell has no value."""
        rows = self.values[variant][top_k]
        return np.array([[np.nan if x is None else float(x) for x in row] for row in rows], dtype=float)

    def difference(self, top_k: int) -> np.ndarray:
        """Fine-tuned minus base, NaN where either is missing."""
        minuend, subtrahend = DIFFERENCE
        return self.matrix(minuend, top_k) - self.matrix(subtrahend, top_k)

    def finite_values(self) -> np.ndarray:
        """Every present value of every variant panel (for colour ranges)."""
        parts = [m[np.isfinite(m)] for m in (self.matrix(v, k) for v in self.variants for k in self.top_ks)]
        return np.concatenate(parts) if parts else np.array([], dtype=float)
