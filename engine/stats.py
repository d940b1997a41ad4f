"""Paired inference over a sweep's grid: pure functions over arrays, every test from scipy or statsmodels.

Base and fine-tuned samples of one cell share their random numbers (the row seed ignores the
variant, engine/sweep.py), so sample *i* of the base and sample *i* of a fine-tuned variant form a
pair. Everything here uses that pairing:

* :func:`paired_difference`: the mean difference a − b of one cell with a **paired bootstrap**
  interval (``scipy.stats.bootstrap(paired=True)``, BCa; the percentile interval where BCa is
  undefined) and a **sign-flip permutation test** (``scipy.stats.permutation_test`` with
  ``permutation_type="samples"``: under "no difference" each pair's two values are exchangeable, so
  every sign pattern of the differences is equally likely; exact when 2^n is within the resamples).
* :func:`bh_adjust`: Benjamini–Hochberg adjusted p-values (``scipy.stats.false_discovery_control``)
  across the cells of one metric and variant.
* :func:`factor_effects`: the effect of temperature, top_p and top_k on one variant's per-sample
  values, from an OLS linear-probability model with HC3 standard errors (statsmodels).
* :func:`operating_point`: the recommended cell by a stated rule.
* :func:`samples_needed`: how many pairs per cell the test needs (statsmodels' paired t-test power,
  the permutation test's large-sample equivalent), and :func:`fewest_pairs_for` the hard floor of
  the sign-flip test.

scipy and statsmodels are imported inside the functions: importing them costs ~1.5 s, which every
front end would otherwise pay at start-up (docs/DEVELOPING.md).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Values = Sequence[float]


@dataclass(frozen=True)
class PairedDifference:
    """The paired comparison of one cell: means, difference a − b, interval and p-value."""

    n: int  # pairs with a value on both sides
    mean_a: float | None
    mean_b: float | None
    difference: float | None  # mean of a − b
    low: float | None  # paired bootstrap interval of the difference
    high: float | None
    p_value: float | None  # two-sided sign-flip permutation test; None with no pair


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x - y, axis=axis)


def paired_difference(
    a: Values,
    b: Values,
    *,
    confidence: float = 0.95,
    resamples: int = 1999,
    permutations: int = 9999,
    seed: int = 2024,
) -> PairedDifference:
    """Mean of ``a − b`` over pairs with its paired bootstrap interval and sign-flip p-value.

    ``a[i]`` and ``b[i]`` are one pair (same cell, prompt and sample index); a pair with a missing
    value (None or NaN) on either side is left out. One pair: the difference without interval
    (p = 1, a single pair cannot reject). All differences equal: the interval is that value.
    """
    x, y = _pairs(a, b)
    n = len(x)
    if n == 0:
        return PairedDifference(0, None, None, None, None, None, None)
    difference = float(np.mean(x - y))
    means = float(np.mean(x)), float(np.mean(y))
    if n == 1:
        return PairedDifference(1, *means, difference, None, None, 1.0)
    low, high = _paired_interval(x, y, difference, confidence, resamples, seed)
    return PairedDifference(n, *means, difference, low, high, sign_flip_p(x, y, permutations, seed))


def _pairs(a: Values, b: Values) -> tuple[np.ndarray, np.ndarray]:
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    x = np.array([np.nan if v is None else float(v) for v in a], dtype=float)
    y = np.array([np.nan if v is None else float(v) for v in b], dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    return x[keep], y[keep]


def _paired_interval(
    x: np.ndarray, y: np.ndarray, difference: float, confidence: float, resamples: int, seed: int
) -> tuple[float, float]:
    from scipy import stats

    if np.allclose(x - y, difference):
        return difference, difference  # every resample gives the same difference
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            # BCa is undefined on some small samples (scipy warns and returns NaN): then percentile.
            warnings.simplefilter("ignore")
            found = stats.bootstrap(
                (x, y),
                _mean_difference,
                paired=True,
                vectorized=True,
                n_resamples=resamples,
                confidence_level=confidence,
                method=method,
                rng=np.random.default_rng(seed),
            ).confidence_interval
        if np.isfinite(found.low) and np.isfinite(found.high):
            return float(found.low), float(found.high)
    return difference, difference


def sign_flip_p(x: Values, y: Values, permutations: int = 9999, seed: int = 2024) -> float:
    """Two-sided p-value of "the mean paired difference is 0" by flipping pairs (exact for small n)."""
    from scipy import stats

    first, second = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(first) < 2 or not np.any(first != second):
        return 1.0  # no pair differs: nothing to flip
    result = stats.permutation_test(
        (first, second),
        _mean_difference,
        permutation_type="samples",
        vectorized=True,
        n_resamples=permutations,
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    return float(min(1.0, result.pvalue))


def bh_adjust(p_values: Sequence[float | None]) -> list[float | None]:
    """Benjamini–Hochberg adjusted p-values (q-values) of the given ones; None stays None."""
    from scipy import stats

    present = [i for i, p in enumerate(p_values) if p is not None]
    adjusted: list[float | None] = [None] * len(p_values)
    if present:
        found = stats.false_discovery_control([float(p_values[i]) for i in present], method="bh")  # type: ignore[arg-type]
        for i, q in zip(present, np.atleast_1d(found), strict=True):
            adjusted[i] = float(q)
    return adjusted


# ------------------------------------------------------------------ means with intervals


@dataclass(frozen=True)
class Estimate:
    """A mean with its bootstrap interval and how many values (and units resampled) it rests on."""

    mean: float | None
    low: float | None
    high: float | None
    n: int  # values
    units: int  # resampled units: clusters when clustered, else values


def mean_interval(
    values: Values,
    *,
    clusters: Sequence[Any] | None = None,
    confidence: float = 0.95,
    resamples: int = 1999,
    seed: int = 2024,
) -> Estimate:
    """The mean of ``values`` with a percentile bootstrap interval.

    With ``clusters`` (one label per value, e.g. the question) the unit resampled is the cluster: the
    mean of cluster means, so a question asked many times weighs as much as one asked once, and the
    interval reflects how much the questions differ, not only the samples.
    """
    pairs = [(v, c) for v, c in zip(values, clusters or [None] * len(values), strict=True) if v is not None]
    if not pairs:
        return Estimate(None, None, None, 0, 0)
    if clusters is not None:
        grouped: dict[Any, list[float]] = {}
        for value, cluster in pairs:
            grouped.setdefault(cluster, []).append(float(value))
        units = np.array([np.mean(v) for v in grouped.values()])
    else:
        units = np.array([float(v) for v, _ in pairs])
    mean = float(np.mean(units))
    if len(units) < 2 or np.allclose(units, mean):
        return Estimate(mean, mean, mean, len(pairs), len(units))
    from scipy import stats

    found = stats.bootstrap(
        (units,),
        np.mean,
        vectorized=True,
        n_resamples=resamples,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    ).confidence_interval
    return Estimate(mean, float(found.low), float(found.high), len(pairs), len(units))


def paired_cluster_difference(
    a: Sequence[float | None],
    b: Sequence[float | None],
    clusters: Sequence[Any],
    *,
    confidence: float = 0.95,
    resamples: int = 1999,
    permutations: int = 9999,
    seed: int = 2024,
) -> PairedDifference:
    """:func:`paired_difference` on cluster means: each cluster (a question) is one pair."""
    grouped: dict[Any, tuple[list[float], list[float]]] = {}
    for x, y, cluster in zip(a, b, clusters, strict=True):
        if x is None or y is None:
            continue
        first, second = grouped.setdefault(cluster, ([], []))
        first.append(float(x))
        second.append(float(y))
    firsts = [float(np.mean(x)) for x, _ in grouped.values()]
    seconds = [float(np.mean(y)) for _, y in grouped.values()]
    return paired_difference(
        firsts, seconds, confidence=confidence, resamples=resamples, permutations=permutations, seed=seed
    )


# ------------------------------------------------------------------ sampling settings' effects


@dataclass(frozen=True)
class FactorEffect:
    """How much one sampling setting moves a metric, other settings held (a regression estimate)."""

    factor: str  # temperature | top_p | top_k
    levels: list[float]  # the grid's levels, in the order the effect runs (top_k 0 = off, last)
    effect: float | None  # predicted change from the first level to the last
    low: float | None
    high: float | None
    p_value: float | None  # Wald test of the factor (all its terms), HC3 covariance
    coding: str  # "linear" (one slope) or "levels" (one term per level)
    note: str = ""


FACTORS = ("temperature", "top_p", "top_k")


def _ordered_levels(factor: str, values: Sequence[float]) -> list[float]:
    levels = sorted(set(values))
    if factor == "top_k" and 0 in levels:  # top_k = 0 is "no cut-off": the widest, so last
        levels = [k for k in levels if k != 0] + [0]
    return levels


def factor_effects(
    rows: Sequence[dict[str, float]],
    value: str = "value",
    *,
    factors: Sequence[str] = FACTORS,
    confidence: float = 0.95,
) -> list[FactorEffect]:
    """The effect of each sampling setting on ``row[value]`` from one OLS over all of a variant's samples.

    Temperature and top_p enter as straight lines (effect: the slope times the grid's span); top_k
    does too unless the grid holds 0 ("no cut-off", not a number on the same scale), when each level
    gets its own term (effect: the widest level against the narrowest). Binary metrics make this a
    linear probability model: effects read in rate units, as the heatmaps do. HC3 standard errors
    (heteroscedasticity-consistent: binary outcomes have unequal variances).
    """
    import pandas as pd
    import statsmodels.formula.api as smf

    data = pd.DataFrame([r for r in rows if r.get(value) is not None])
    found: list[FactorEffect] = []
    varying = [f for f in factors if len(data) and data[f].nunique() > 1]
    for factor in factors:
        if factor not in varying:
            levels = sorted(set(data[factor])) if len(data) else []
            found.append(FactorEffect(factor, levels, None, None, None, None, "-", "one level in the grid"))
    if not varying:
        return found
    if data[value].nunique() <= 1:
        for factor in varying:
            levels = _ordered_levels(factor, data[factor].tolist())
            found.append(
                FactorEffect(
                    factor, levels, 0.0, 0.0, 0.0, None, "-", "constant: every sample scores the same"
                )
            )
        return _in_order(found, factors)
    terms, coding = [], {}
    for factor in varying:
        if factor == "top_k" and 0 in set(data[factor]):
            levels = _ordered_levels(factor, data[factor].tolist())
            data["top_k_level"] = pd.Categorical(data[factor], categories=levels)
            terms.append("C(top_k_level)")
            coding[factor] = "levels"
        else:
            terms.append(factor)
            coding[factor] = "linear"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = smf.ols(f"{value} ~ " + " + ".join(terms), data=data).fit(cov_type="HC3")
        wald = fit.wald_test_terms(skip_single=False, scalar=True).table
    alpha = 1 - confidence
    intervals = fit.conf_int(alpha=alpha)
    for factor in varying:
        levels = _ordered_levels(factor, data[factor].tolist())
        if coding[factor] == "linear":
            span = levels[-1] - levels[0]
            effect = float(fit.params[factor]) * span
            low, high = (float(v) * span for v in intervals.loc[factor])
            p_value = float(wald.loc[factor, "pvalue"])
        else:
            name = f"C(top_k_level)[T.{levels[-1]}]"
            effect = float(fit.params[name])
            low, high = (float(v) for v in intervals.loc[name])
            p_value = float(wald.loc["C(top_k_level)", "pvalue"])
        found.append(FactorEffect(factor, levels, effect, low, high, p_value, coding[factor]))
    return _in_order(found, factors)


def _in_order(effects: list[FactorEffect], factors: Sequence[str]) -> list[FactorEffect]:
    return sorted(effects, key=lambda e: list(factors).index(e.factor))


# ------------------------------------------------------------------ operating point


@dataclass(frozen=True)
class CellRates:
    """One cell of a variant: its hallucination and refusal rates."""

    temperature: float
    top_p: float
    top_k: int
    n: int
    hallucination: float | None
    refusal: float | None


@dataclass(frozen=True)
class OperatingPoint:
    cell: CellRates | None  # None when no cell meets the rule
    rule: str
    candidates: int  # cells meeting the refusal bound
    note: str = ""


def operating_point(cells: Sequence[CellRates], *, max_refusal: float) -> OperatingPoint:
    """The cell with the lowest hallucination rate among those whose refusal rate is at most ``max_refusal``.

    Ties go to the lower refusal rate, then the lower temperature, top_p and top_k (the more
    conservative settings). Cells without a hallucination rate (no sources) are left out.
    """
    rule = (
        f"lowest hallucination rate among cells with refusal rate <= {max_refusal:g}; ties: lower refusal "
        "rate, then lower temperature, top_p, top_k"
    )
    eligible = [
        c
        for c in cells
        if c.hallucination is not None and c.refusal is not None and c.refusal <= max_refusal + 1e-12
    ]
    if not eligible:
        rated = [c for c in cells if c.hallucination is not None]
        note = (
            "no cell has a hallucination rate (sweep without sources?)"
            if not rated
            else (f"every cell refuses more than {max_refusal:g} of the time")
        )
        return OperatingPoint(None, rule, 0, note)
    best = min(
        eligible, key=lambda c: (c.hallucination, c.refusal, c.temperature, c.top_p, _k_order(c.top_k))
    )
    return OperatingPoint(best, rule, len(eligible))


def _k_order(top_k: int) -> float:
    return math.inf if top_k == 0 else top_k


# ------------------------------------------------------------------ how many samples


@dataclass(frozen=True)
class PowerNote:
    """Samples per cell the paired test needs to detect ``detect`` with probability ``power``."""

    detect: float  # the difference in means to detect
    sd: float  # standard deviation of one pair's difference
    sd_source: str  # "this sweep" or "assumed"
    alpha: float
    power: float
    needed: int  # pairs per cell at alpha
    needed_all_cells: int  # pairs per cell at alpha / cells (a difference in one cell among many)
    floor: int  # fewest pairs with which the sign-flip test can reach alpha at all
    cells: int
    have: int  # pairing units per cell in the sweep
    unit: str = "samples per cell"  # what a pair is: a sample, or a question (its mean over samples)
    warning: str = ""


def fewest_pairs_for(alpha: float) -> int:
    """The smallest n for which a two-sided sign-flip test can give p <= alpha (its smallest p is 2 / 2^n)."""
    return max(1, math.ceil(math.log2(2 / alpha)))


def samples_needed(detect: float, sd: float, *, alpha: float, power: float) -> int:
    """Pairs per cell for a two-sided paired test at ``alpha`` to detect a mean difference ``detect``.

    statsmodels' ``TTestPower`` (one-sample t-test on the differences): the sign-flip permutation
    test of the mean has the same large-sample power, and the t-test's is computable in closed form.
    Never below :func:`fewest_pairs_for`.
    """
    from statsmodels.stats.power import TTestPower

    if sd <= 0:
        return fewest_pairs_for(alpha)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = TTestPower().solve_power(
            effect_size=detect / sd, alpha=alpha, power=power, alternative="two-sided"
        )
    return max(math.ceil(float(np.atleast_1d(found)[0])), fewest_pairs_for(alpha))


def power_note(
    detect: float,
    *,
    differences_by_cell: Sequence[Sequence[float]],
    alpha: float,
    power: float,
    have: int,
    unit: str = "samples per cell",
    cells: int | None = None,
    assumed_sd: float = 0.5,
) -> PowerNote:
    """The power analysis for one metric: sd of pair differences pooled over the cells that have two
    or more pairs (this sweep), else ``assumed_sd``; a warning when the sweep has fewer samples.

    ``cells`` is the grid's number of cells (the BH family's size; default: the cells given).
    """
    variances = [float(np.var(d, ddof=1)) for d in differences_by_cell if len(d) >= 2]
    pooled = math.sqrt(float(np.mean(variances))) if variances else 0.0
    sd, source = (pooled, "this sweep") if pooled > 0 else (assumed_sd, "assumed")
    cells = max(1, cells if cells is not None else len(differences_by_cell))
    needed = samples_needed(detect, sd, alpha=alpha, power=power)
    all_cells = samples_needed(detect, sd, alpha=alpha / cells, power=power)
    floor = fewest_pairs_for(alpha)
    warning = ""
    if have < floor:
        warning = (
            f"{have} {unit}: the paired test cannot reach p <= {alpha:g} in any single cell "
            f"(it needs at least {floor}); per-cell significance is impossible"
        )
    elif have < needed:
        warning = (
            f"{have} {unit}: the paired test needs about {needed} to detect a difference of "
            f"{detect:g} with power {power:g} (sd {sd:.2f}, {source}); a cell without a significant "
            "difference may still differ"
        )
    return PowerNote(detect, sd, source, alpha, power, needed, all_cells, floor, cells, have, unit, warning)


# ------------------------------------------------------------------ helpers for callers


def by_key(rows: Sequence[Any], key: Callable[[Any], Any]) -> dict[Any, list[Any]]:
    grouped: dict[Any, list[Any]] = {}
    for row in rows:
        grouped.setdefault(key(row), []).append(row)
    return grouped
