"""One metric over the sampling grid as matrices: temperature rows x top_p columns, per variant and top_k.

The Gradio heatmaps and the HTML report both draw from :class:`MetricGrid`, so turning stored cells
into matrices (missing cells as NaN) and the fine-tuned minus base difference is written once.
The colours are one fact here too (:func:`value_scale`, :func:`difference_scale`): blue is better
and red worse by the metric's direction, in value panels and difference panels alike; metrics
with no direction get a sequential (value) or purple-orange (difference) scale. Plotly takes
``ColourScale.plotly()``, matplotlib ``ColourScale.stops``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.metrics import catalog
from engine.metrics.catalog import MetricSpec, MissingReason

DIFFERENCE = ("finetuned", "base")  # (minuend, subtrahend) of the difference panel
# Cell metrics computed from the samples' meaning clusters: with n samples they take one value per
# way of splitting n answers into clusters, so a small n leaves them only a few possible values.
CLUSTER_METRICS = frozenset({"semantic_entropy", "majority_share", "n_clusters"})
FLAT_TOLERANCE = 1e-9  # values closer than this count as equal (a metric "with no variation")

# ---------------------------------------------------------------- colours

GOOD = "#2166ac"  # blue: better by the metric's direction
MIDDLE = "#f7f7f7"
BAD = "#b2182b"  # red: worse
NA_COLOUR = "#d9d9d9"  # a cell without a value


@dataclass(frozen=True)
class ColourScale:
    """A colour scale as (position 0..1, hex colour) stops, for Plotly and matplotlib alike."""

    name: str
    stops: tuple[tuple[float, str], ...]

    def plotly(self) -> list[list[object]]:
        """Plotly's ``colorscale`` form."""
        return [[position, colour] for position, colour in self.stops]

    def colour_at(self, fraction: float) -> tuple[float, float, float]:
        """The RGB (0..1) at ``fraction`` of the scale, linearly between stops."""
        fraction = min(1.0, max(0.0, fraction))
        for (p0, c0), (p1, c1) in zip(self.stops, self.stops[1:], strict=False):
            if fraction <= p1:
                share = 0.0 if p1 == p0 else (fraction - p0) / (p1 - p0)
                a, b = _rgb(c0), _rgb(c1)
                return tuple(x + (y - x) * share for x, y in zip(a, b, strict=True))  # type: ignore[return-value]
        return _rgb(self.stops[-1][1])

    def text_colour(self, fraction: float) -> str:
        """'black' or 'white', whichever reads better on the colour at ``fraction``."""
        red, green, blue = self.colour_at(fraction)
        luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
        return "black" if luminance > 0.45 else "white"


def _rgb(colour: str) -> tuple[float, float, float]:
    value = colour.lstrip("#")
    return tuple(int(value[i : i + 2], 16) / 255 for i in (0, 2, 4))  # type: ignore[return-value]


_BETTER_UP = ColourScale("worse-better", ((0.0, BAD), (0.5, MIDDLE), (1.0, GOOD)))
_BETTER_DOWN = ColourScale("better-worse", ((0.0, GOOD), (0.5, MIDDLE), (1.0, BAD)))
_SEQUENTIAL = ColourScale(  # viridis, sampled: for metrics that are neither better high nor low
    "sequential",
    ((0.0, "#440154"), (0.25, "#3b528b"), (0.5, "#21918c"), (0.75, "#5ec962"), (1.0, "#fde725")),
)
_NEUTRAL_DIVERGING = ColourScale("neutral-diverging", ((0.0, "#5e3c99"), (0.5, MIDDLE), (1.0, "#e66101")))


def value_scale(spec: MetricSpec) -> ColourScale:
    """The colours of a metric's value panels: red (worse) to blue (better), or sequential."""
    return {"higher": _BETTER_UP, "lower": _BETTER_DOWN}.get(spec.direction, _SEQUENTIAL)


def difference_scale(spec: MetricSpec) -> ColourScale:
    """The colours of a difference panel (symmetric around 0 = white): blue where the change is
    better by the metric's direction, red where worse; purple-orange when neither way is better."""
    return {"higher": _BETTER_UP, "lower": _BETTER_DOWN}.get(spec.direction, _NEUTRAL_DIVERGING)


def base_minus_scale(higher_is_better: bool | None) -> ColourScale:
    """The colours of a base − variant difference (the study's paired differences): blue where the
    variant is better, red where it is worse, so they read as the Sweeps tab's variant − base
    panels do; purple-orange when neither way is better."""
    if higher_is_better is None:
        return _NEUTRAL_DIVERGING
    return _BETTER_DOWN if higher_is_better else _BETTER_UP


# ---------------------------------------------------------------- what n allows


def _partitions(n: int, largest: int | None = None) -> list[tuple[int, ...]]:
    """Every way to split n answers into clusters, as cluster sizes (largest first)."""
    largest = n if largest is None else largest
    if n == 0:
        return [()]
    return [
        (first, *rest) for first in range(min(n, largest), 0, -1) for rest in _partitions(n - first, first)
    ]


def cell_metric_levels(metric: str, n: int) -> tuple[float, ...] | None:
    """Every value a cluster metric can take in a cell of ``n`` samples (None: not a cluster metric,
    or n too large to list)."""
    if metric not in CLUSTER_METRICS or not 1 <= n <= 12:
        return None
    values = set()
    for sizes in _partitions(n):
        if metric == "n_clusters":
            values.add(float(len(sizes)))
        elif metric == "majority_share":
            values.add(round(sizes[0] / n, 12))
        else:
            values.add(round(-sum(s / n * math.log(s / n) for s in sizes) + 0.0, 12))
    return tuple(sorted(values))


def degenerate_note(metric: str, n: int, spec: MetricSpec | None = None) -> str | None:
    """A line saying that n samples per cell leave ``metric`` only two or three possible values
    (semantic entropy at n = 2: 0 or 0.69 = ln 2); None when n gives it room."""
    label = spec.label if spec else metric
    if catalog.undefined_at(metric, n):
        return f"{label}: {catalog.UNDEFINED_AT_ONE.long} in every cell: one sample has no spread"
    levels = cell_metric_levels(metric, n)
    if levels is None or len(levels) > 3:
        return None
    shown = [f"{value:.2f}".rstrip("0").rstrip(".") if value else "0" for value in levels]
    if metric == "semantic_entropy" and n == 2:
        shown[-1] += " (ln 2)"
    listed = " or ".join([", ".join(shown[:-1]), shown[-1]]) if len(shown) > 1 else shown[0]
    return f"{label}: with n = {n} samples per cell it can only be {listed}"


def flat_value(values: Iterable[float | None]) -> float | None:
    """The one value every present, finite value holds (closer than FLAT_TOLERANCE), else None.

    Without any value there is nothing to report: None. A metric with one value everywhere is said
    in one line by the front ends instead of drawn (a flat grid, a column of the same number)."""
    present = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not present or max(present) - min(present) > FLAT_TOLERANCE:
        return None
    return present[0]


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

    def constant(self) -> float | None:
        """The one value every present cell of every variant holds (a flat grid), else None.

        A grid without any value is not constant (None): there is nothing to report.
        """
        return flat_value(self.finite_values().tolist())

    def samples_per_cell(self) -> int | None:
        """The most common number of samples per cell (from ``info``; None without it)."""
        counts = Counter(
            cell.n
            for per_k in self.info.values()
            for rows in per_k.values()
            for row in rows
            for cell in row
            if cell is not None
        )
        return counts.most_common(1)[0][0] if counts else None

    def difference_range(self, spec: MetricSpec) -> float:
        """Half-width of the difference colour scale: the metric's full range when bounded (so a
        colour means the same amount in every figure), else the largest difference present."""
        if spec.bounded:
            return float(spec.range[1]) - float(spec.range[0])  # type: ignore[arg-type]
        return self.difference_span()

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
