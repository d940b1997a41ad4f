"""One score against human labels: what a score is (:class:`ScoreSpec`), the scores a sweep is
calibrated on (:data:`SCORES`), the result of one (:class:`CalibrationResult`) and its table lines.

Which label counts as positive depends on what a score detects: the hallucination scores separate
*hallucinated* from *faithful* answers (refusals and unclear ones are left out: they make no claim
to check), the refusal detector separates *refusal* from the rest.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from engine.calibrate.measures import BOOTSTRAP_RESAMPLES, auprc, auroc, best_threshold, bootstrap_interval
from engine.metrics import catalog
from engine.metrics.tokens import TOKEN_METRICS

MIN_LABELS = 20  # fewer labelled, scored samples than this: "not enough labels"
NOT_ENOUGH = "not enough labels"


@dataclass(frozen=True)
class ScoreSpec:
    """A score to calibrate: where its value comes from and which way it points."""

    name: str
    label: str
    higher_means_positive: bool  # grounding: False (low grounding flags a hallucination)
    target: str  # "hallucinated" (vs faithful) or "refusal" (vs everything else)
    level: str = "sample"  # sample | cell (one value per cell, given to each of its samples)
    judge: bool = False  # only a judge gives it
    verifier: bool = False  # only a trained verifier gives it (engine/verifier.py)
    # Recorded while sampling (token log-probs): left out for a sweep that has none (imported logs).
    white_box: bool = False


@dataclass
class CalibrationResult:
    score: str
    label: str
    target: str
    level: str
    n: int  # labelled samples with a value for this score
    n_positive: int
    status: str  # ok | not enough labels | one class only
    auroc: float | None = None
    auroc_interval: tuple[float, float] | None = None
    auprc: float | None = None
    auprc_interval: tuple[float, float] | None = None
    base_rate: float | None = None  # share of positives: the AUPRC of a random score
    threshold: float | None = None  # in the score's own units
    threshold_rule: str | None = None  # e.g. "grounding <= 0.62 flags hallucinated"
    tpr: float | None = None
    fpr: float | None = None
    judge_model: str | None = None
    verifier_model: str | None = None

    @property
    def display_name(self) -> str:
        """The score's label, with "(judge: MODEL)" or "(verifier: NAME)" for the optional ones."""
        return self.label + _origin(self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _origin(result: CalibrationResult) -> str:
    if result.judge_model:
        return f" (judge: {result.judge_model})"
    if result.verifier_model:
        return f" (verifier: {result.verifier_model})"
    return ""


def target_of(label: str, target: str) -> bool | None:
    """Whether a human label is positive for this target; None when the sample does not take part."""
    if label == "unclear":
        return None
    if target == "refusal":
        return label == "refusal"
    if target == "hallucinated":
        return {"hallucinated": True, "faithful": False}.get(label)
    raise ValueError(f"unknown calibration target {target!r}")


def calibrate_score(
    spec: ScoreSpec,
    pairs: Sequence[tuple[float | None, str]],
    *,
    min_labels: int = MIN_LABELS,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> CalibrationResult:
    """AUROC/AUPRC with intervals and the best threshold of one score over (value, human label) pairs."""
    kept = [
        (float(value), positive)
        for value, label in pairs
        if value is not None
        and not _is_nan(value)
        and (positive := target_of(label, spec.target)) is not None
    ]
    n_positive = sum(positive for _, positive in kept)
    result = CalibrationResult(
        score=spec.name,
        label=spec.label,
        target=spec.target,
        level=spec.level,
        n=len(kept),
        n_positive=n_positive,
        status="ok",
    )
    if len(kept) < min_labels:
        result.status = NOT_ENOUGH
        return result
    if n_positive in (0, len(kept)):
        result.status = "one class only"
        return result
    sign = 1.0 if spec.higher_means_positive else -1.0
    oriented = [sign * value for value, _ in kept]
    positives = [positive for _, positive in kept]
    result.auroc = auroc(oriented, positives)
    result.auprc = auprc(oriented, positives)
    result.auroc_interval = bootstrap_interval(oriented, positives, auroc, resamples=resamples)
    result.auprc_interval = bootstrap_interval(oriented, positives, auprc, resamples=resamples)
    result.base_rate = n_positive / len(kept)
    if len(set(oriented)) == 1:
        result.threshold_rule = f"{spec.name} is the same ({kept[0][0]:g}) for every labelled sample"
        return result
    cut = best_threshold(oriented, positives)
    if cut is not None:
        result.threshold = sign * cut.value
        result.tpr, result.fpr = cut.tpr, cut.fpr
        op = ">=" if spec.higher_means_positive else "<="
        result.threshold_rule = f"{spec.name} {op} {result.threshold:.3g} flags {spec.target}"
    return result


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _hallucination_score(name: str, kind: str = "sample") -> ScoreSpec:
    """A catalogue metric calibrated against hallucinated-vs-faithful, label and direction from there."""
    spec = catalog.sample_metric(name) if kind == "sample" else catalog.cell_metric(name)
    if spec.higher_is_better is None:
        raise ValueError(f"{name}: the catalogue gives it no direction to calibrate")
    # A score that is better when higher (grounding) flags a hallucination when it is low.
    level = "sample" if kind == "sample" else "cell"
    return ScoreSpec(name, spec.label, not spec.higher_is_better, "hallucinated", level=level)


def _refusal_score() -> ScoreSpec:
    return ScoreSpec("refusal", catalog.sample_metric("refusal").label, True, "refusal")


# What `ft-hallu calibrate` checks: the catalogue's hallucination scores (0/1 flags such as
# conflict and degenerate get the AUROC (TPR + TNR) / 2 of the flag), the refusal detector, and
# the scores that exist only for calibration (pooled entropy) or only with a judge.
SCORES: tuple[ScoreSpec, ...] = (
    _hallucination_score("claim_support_min"),
    _hallucination_score("claim_grounding"),
    _hallucination_score("grounding"),
    _hallucination_score("conflict"),
    _hallucination_score("degenerate"),
    _refusal_score(),
    # Token signals recorded while sampling: low log-prob / high entropy flags a hallucination.
    *(dataclasses.replace(_hallucination_score(name), white_box=True) for name in TOKEN_METRICS),
    _hallucination_score("semantic_entropy", "cell"),
    ScoreSpec(
        "semantic_entropy_pooled",
        "semantic entropy, all samples of a variant at one temperature (over top_p/top_k)",
        True,
        "hallucinated",
        level="cell",
    ),
    ScoreSpec("judge_claim_grounding", "judge claim grounding (optional)", False, "hallucinated", judge=True),
    ScoreSpec(
        "judge_semantic_entropy",
        "judge semantic entropy by entailment (optional)",
        True,
        "hallucinated",
        level="cell",
        judge=True,
    ),
    ScoreSpec(
        "verifier_claim_grounding",
        "verifier claim grounding, weakest claim's entailment (optional)",
        False,
        "hallucinated",
        verifier=True,
    ),
    ScoreSpec(
        "verifier_entailed_share",
        "verifier share of entailed claims (optional)",
        False,
        "hallucinated",
        verifier=True,
    ),
    ScoreSpec(
        "verifier_semantic_entropy",
        "verifier semantic entropy by entailment (optional)",
        True,
        "hallucinated",
        level="cell",
        verifier=True,
    ),
)


def calibrate_rows(
    rows: Sequence[dict[str, Any]],
    *,
    specs: Sequence[ScoreSpec] = SCORES,
    min_labels: int = MIN_LABELS,
    judge_model: str | None = None,
    verifier_model: str | None = None,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> list[CalibrationResult]:
    """Calibrate every spec over rows that carry ``label`` and one value per score name."""
    results = []
    for spec in specs:
        if spec.judge and judge_model is None:
            continue
        if spec.verifier and verifier_model is None:
            continue
        if spec.white_box and all(row.get(spec.name) is None for row in rows):
            continue  # the sweep was not sampled by the engine with token log-probs
        pairs = [(row.get(spec.name), row["label"]) for row in rows if row.get("label")]
        result = calibrate_score(spec, pairs, min_labels=min_labels, resamples=resamples)
        if spec.judge:
            result.judge_model = judge_model
        if spec.verifier:
            result.verifier_model = verifier_model
        results.append(result)
    return results


def format_results(results: Sequence[CalibrationResult]) -> list[str]:
    """Plain-text table lines (what the CLI prints and the report embeds)."""
    lines = [
        f"{'score':<26} {'n':>4} {'pos':>4}  {'AUROC [95% CI]':<22} {'AUPRC [95% CI]':<22} best threshold",
    ]
    for r in results:
        name = r.score + _origin(r)
        if r.status != "ok":
            lines.append(f"{name:<26} {r.n:>4} {r.n_positive:>4}  {r.status}")
            continue
        lines.append(
            f"{name:<26} {r.n:>4} {r.n_positive:>4}  {with_interval(r.auroc, r.auroc_interval):<22} "
            f"{with_interval(r.auprc, r.auprc_interval):<22} {r.threshold_rule or '-'}"
            + (f" (TPR {r.tpr:.2f}, FPR {r.fpr:.2f})" if r.tpr is not None else "")
        )
    return lines


def with_interval(value: float | None, interval: tuple[float, float] | None) -> str:
    if value is None:
        return "-"
    if interval is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{interval[0]:.2f}, {interval[1]:.2f}]"
