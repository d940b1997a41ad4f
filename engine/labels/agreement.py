"""Several labellers: which label of a generation counts, label counts, and Cohen's kappa per pair."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.labels.samples import LABEL_VALUES, sweep_labels

# Which label of a generation counts when several people labelled it.
NEWEST = "newest"
AGREED = "agreed"


@dataclass(frozen=True)
class ChosenLabels:
    """The one label per generation that calibration uses, and the rule that picked it."""

    labels: dict[int, str]  # generation id -> label
    rule: str  # NEWEST | AGREED
    labellers: tuple[str, ...]
    disagreements: int = 0  # generations the labellers disagree on (left out by AGREED)
    single: int = 0  # generations with one labeller only (left out by AGREED)

    def describe(self) -> str:
        """One line for the output: whose labels, and which rule picked each generation's label."""
        names = ", ".join(self.labellers) or "nobody"
        if self.rule == AGREED:
            return (
                f"labels: agreed only ({names}): {len(self.labels)} generation(s) where every labeller "
                f"gave the same label; left out {self.disagreements} disagreement(s) and "
                f"{self.single} labelled by one labeller only"
            )
        if len(self.labellers) > 1:
            return (
                f"labels: {len(self.labellers)} labellers ({names}): the newest label of each generation "
                f"counts ({self.disagreements} disagreement(s); --agreed-only keeps only the agreed ones)"
            )
        return f"labels: {names}"


def choose_labels(rows: Sequence[dict[str, Any]], *, agreed_only: bool = False) -> ChosenLabels:
    """One label per generation from every labeller's rows (``sweep_labels``).

    NEWEST: the newest label of each generation counts. AGREED (``agreed_only``): only generations
    labelled by at least two labellers who all gave the same label.
    """
    by_generation: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_generation.setdefault(int(row["generation_id"]), []).append(row)
    labellers = tuple(sorted({row["who"] for row in rows}))
    disagreements = sum(len({r["label"] for r in group}) > 1 for group in by_generation.values())
    if agreed_only:
        agreed = {
            gid: group[0]["label"]
            for gid, group in by_generation.items()
            if len(group) > 1 and len({r["label"] for r in group}) == 1
        }
        single = sum(len(group) == 1 for group in by_generation.values())
        return ChosenLabels(agreed, AGREED, labellers, disagreements, single)
    newest = {
        gid: max(group, key=lambda r: (r["created_at"] or "", r["who"]))["label"]
        for gid, group in by_generation.items()
    }
    return ChosenLabels(newest, NEWEST, labellers, disagreements)


@dataclass(frozen=True)
class PairAgreement:
    """Cohen's kappa of two labellers over the generations both labelled (all four labels)."""

    first: str
    second: str
    shared: int  # generations both labelled
    agreed: int  # of those, the same label
    kappa: float | None  # None: undefined (both gave one and the same label to everything)
    kappa_low: float | None = None  # asymptotic 95% interval (statsmodels)
    kappa_high: float | None = None

    def describe(self) -> str:
        share = f"{self.agreed}/{self.shared} same label"
        if self.kappa is None:
            return f"{self.first} vs {self.second}: {share}, kappa undefined (one label only on both sides)"
        interval = (
            f" [95% CI {self.kappa_low:.2f}, {self.kappa_high:.2f}]"
            if self.kappa_low is not None and self.kappa_high is not None
            else ""
        )
        return f"{self.first} vs {self.second}: {share}, Cohen's kappa {self.kappa:.3f}{interval}"


def contingency(pairs: Sequence[tuple[str, str]]) -> list[list[int]]:
    """The LABEL_VALUES x LABEL_VALUES table of (first labeller's label, second's) counts."""
    index = {label: number for number, label in enumerate(LABEL_VALUES)}
    table = [[0] * len(LABEL_VALUES) for _ in LABEL_VALUES]
    for first, second in pairs:
        table[index[first]][index[second]] += 1
    return table


def cohens_kappa(table: Sequence[Sequence[int]]) -> tuple[float | None, float | None, float | None]:
    """(kappa, low, high) of a square contingency table by statsmodels (its asymptotic 95 %
    interval, cut at [-1, 1]); None when undefined.

    Kappa is undefined when chance agreement is 1 (both raters used one and the same category).
    """
    # statsmodels takes ~1.5 s to import: only calibrate with labellers pays it.
    from statsmodels.stats.inter_rater import cohens_kappa as sm_kappa

    counts = np.asarray(table, dtype=float)
    total = counts.sum()
    if total == 0:
        return None, None, None
    chance = float((counts.sum(axis=0) * counts.sum(axis=1)).sum() / total**2)
    if chance >= 1.0 - 1e-12:
        return None, None, None
    with np.errstate(divide="ignore", invalid="ignore"):
        result = sm_kappa(counts)
    # The asymptotic (Wald) interval can pass 1 near perfect agreement (0.926 gave [0.82, 1.03]);
    # kappa cannot, so the interval is cut at [-1, 1].
    low, high = max(float(result.kappa_low), -1.0), min(float(result.kappa_upp), 1.0)
    finite = math.isfinite(low) and math.isfinite(high)
    return float(result.kappa), (low if finite else None), (high if finite else None)


def pairwise_agreement(rows: Sequence[dict[str, Any]]) -> list[PairAgreement]:
    """Cohen's kappa for each pair of labellers that share at least one labelled generation."""
    by_who: dict[str, dict[int, str]] = {}
    for row in rows:
        by_who.setdefault(row["who"], {})[int(row["generation_id"])] = row["label"]
    names = sorted(by_who)
    pairs = []
    for number, first in enumerate(names):
        for second in names[number + 1 :]:
            shared = sorted(set(by_who[first]) & set(by_who[second]))
            if not shared:
                continue
            labels = [(by_who[first][gid], by_who[second][gid]) for gid in shared]
            kappa, low, high = cohens_kappa(contingency(labels))
            agreed = sum(a == b for a, b in labels)
            pairs.append(PairAgreement(first, second, len(shared), agreed, kappa, low, high))
    return pairs


def sweep_agreement(store: Any, sweep_id: int) -> list[PairAgreement]:
    return pairwise_agreement(sweep_labels(store, sweep_id))


def label_counts(store: Any, sweep_id: int) -> dict[str, int]:
    """Labelled generations per label, each generation once (its newest label, as calibrate counts it)."""
    counts = {value: 0 for value in LABEL_VALUES}
    for label in choose_labels(sweep_labels(store, sweep_id)).labels.values():
        counts[label] += 1
    return counts
