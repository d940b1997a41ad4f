"""Calibration of the scores against human labels: AUROC, AUPRC, bootstrap intervals, best threshold.

The math is pure numpy (no sklearn). ``calibrate_sweep`` gathers a sweep's labelled generations and
their scores from the store. Which label counts as positive depends on what a score detects: the
hallucination scores separate *hallucinated* from *faithful* answers (refusals and unclear ones are
left out: they make no claim to check), the refusal detector separates *refusal* from the rest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from engine import labels as labelling
from engine.metrics import catalog

MIN_LABELS = 20  # fewer labelled, scored samples than this: "not enough labels"
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 2024
NOT_ENOUGH = "not enough labels"


# ---------------------------------------------------------------- pure math


def _as_arrays(scores: Sequence[float], positives: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    if len(scores) != len(positives):
        raise ValueError("one label per score")
    return np.asarray(scores, dtype=float), np.asarray(positives, dtype=bool)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank (what the Mann-Whitney statistic needs)."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=float)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def auroc(scores: Sequence[float], positives: Sequence[bool]) -> float | None:
    """Probability that a random positive scores above a random negative (ties count half).

    Higher score = more likely positive. None when either class is absent.
    """
    values, labels = _as_arrays(scores, positives)
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(values)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auprc(scores: Sequence[float], positives: Sequence[bool]) -> float | None:
    """Average precision: sum over distinct thresholds (high to low) of precision x recall gained.

    Tied scores enter together, so the result does not depend on their order. None without positives.
    """
    values, labels = _as_arrays(scores, positives)
    n_pos = int(labels.sum())
    if n_pos == 0 or len(labels) == 0:
        return None
    order = np.argsort(-values, kind="mergesort")
    values, labels = values[order], labels[order]
    # The last index of each run of equal scores: a threshold admits the whole run at once.
    run_ends = np.r_[np.nonzero(np.diff(values))[0], len(values) - 1]
    true_positives = np.cumsum(labels)[run_ends]
    admitted = run_ends + 1
    precision = true_positives / admitted
    recall = true_positives / n_pos
    recall_gain = np.diff(np.r_[0.0, recall])
    return float((recall_gain * precision).sum())


@dataclass(frozen=True)
class Threshold:
    value: float  # flag a sample as positive when its (oriented) score is >= value
    tpr: float
    fpr: float
    precision: float


def best_threshold(scores: Sequence[float], positives: Sequence[bool]) -> Threshold | None:
    """The cut that maximises Youden's J = TPR - FPR (ties: the higher cut, i.e. fewer flags)."""
    values, labels = _as_arrays(scores, positives)
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    best: Threshold | None = None
    best_j = -math.inf
    for cut in sorted(set(values.tolist()), reverse=True):
        flagged = values >= cut
        tp = int((flagged & labels).sum())
        fp = int((flagged & ~labels).sum())
        tpr, fpr = tp / n_pos, fp / n_neg
        j = tpr - fpr
        if j > best_j + 1e-12:
            best_j = j
            best = Threshold(float(cut), tpr, fpr, tp / max(1, tp + fp))
    return best


def bootstrap_interval(
    scores: Sequence[float],
    positives: Sequence[bool],
    statistic: Callable[[Sequence[float], Sequence[bool]], float | None],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    level: float = 0.95,
) -> tuple[float, float] | None:
    """Percentile bootstrap of a statistic over (score, label) pairs; resamples lacking a class are skipped."""
    values, labels = _as_arrays(scores, positives)
    if len(values) == 0:
        return None
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(values), size=(resamples, len(values)))
    estimates = [result for index in draws if (result := statistic(values[index], labels[index])) is not None]
    if not estimates:
        return None
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(estimates, [tail, 100 - tail])
    return float(low), float(high)


# ---------------------------------------------------------------- one score against labels


@dataclass(frozen=True)
class ScoreSpec:
    """A score to calibrate: where its value comes from and which way it points."""

    name: str
    label: str
    higher_means_positive: bool  # grounding: False (low grounding flags a hallucination)
    target: str  # "hallucinated" (vs faithful) or "refusal" (vs everything else)
    level: str = "sample"  # sample | cell (one value per cell, given to each of its samples)
    judge: bool = False  # only a judge gives it


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


# ---------------------------------------------------------------- the scores of a sweep


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
)


def calibrate_rows(
    rows: Sequence[dict[str, Any]],
    *,
    specs: Sequence[ScoreSpec] = SCORES,
    min_labels: int = MIN_LABELS,
    judge_model: str | None = None,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> list[CalibrationResult]:
    """Calibrate every spec over rows that carry ``label`` and one value per score name."""
    results = []
    for spec in specs:
        if spec.judge and judge_model is None:
            continue
        pairs = [(row.get(spec.name), row["label"]) for row in rows if row.get("label")]
        result = calibrate_score(spec, pairs, min_labels=min_labels, resamples=resamples)
        if spec.judge:
            result.judge_model = judge_model
        results.append(result)
    return results


def format_results(results: Sequence[CalibrationResult]) -> list[str]:
    """Plain-text table lines (what the CLI prints and the report embeds)."""
    lines = [
        f"{'score':<26} {'n':>4} {'pos':>4}  {'AUROC [95% CI]':<22} {'AUPRC [95% CI]':<22} best threshold",
    ]
    for r in results:
        name = r.score + (f" (judge: {r.judge_model})" if r.judge_model else "")
        if r.status != "ok":
            lines.append(f"{name:<26} {r.n:>4} {r.n_positive:>4}  {r.status}")
            continue
        lines.append(
            f"{name:<26} {r.n:>4} {r.n_positive:>4}  {_with_interval(r.auroc, r.auroc_interval):<22} "
            f"{_with_interval(r.auprc, r.auprc_interval):<22} {r.threshold_rule or '-'}"
            + (f" (TPR {r.tpr:.2f}, FPR {r.fpr:.2f})" if r.tpr is not None else "")
        )
    return lines


def _with_interval(value: float | None, interval: tuple[float, float] | None) -> str:
    if value is None:
        return "-"
    if interval is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{interval[0]:.2f}, {interval[1]:.2f}]"


# ---------------------------------------------------------------- a stored sweep


@dataclass
class SweepCalibration:
    sweep_id: int
    labelled: int  # generations with a human label
    label_counts: dict[str, int]
    results: list[CalibrationResult]
    judge_model: str | None
    # Which label counts when several people labelled a generation (labels.ChosenLabels.describe).
    labels_rule: str = ""
    agreement: list[labelling.PairAgreement] = field(default_factory=list)  # Cohen's kappa per pair

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "results": [r.to_dict() for r in self.results]}


def sweep_score_rows(
    store: Any,
    sweep_id: int,
    *,
    judge_model: str | None = None,
    chosen: labelling.ChosenLabels | None = None,
) -> list[dict[str, Any]]:
    """One row per scored generation: its grid key and every calibrated score (cell scores repeated).

    ``label`` is the label ``chosen`` picks for the generation (default: the newest of any
    labeller), or None.
    """
    from engine.metrics import score_cell
    from store import claims as store_claims
    from store import core as store_core
    from store import labels as store_labels
    from store import metrics as store_metrics

    sweep = store_core.get_sweep(store, sweep_id)
    entity = (sweep.get("config") or {}).get("entity_name") or None
    if chosen is None:
        chosen = labelling.choose_labels(store_labels.sweep_labels(store, sweep_id))
    cells = {store_metrics.cell_key(c): c for c in store_metrics.cell_table(store, sweep_id)}
    method = next((c["similarity_method"] for c in cells.values() if c.get("similarity_method")), "lexical")
    samples = store_metrics.sample_table(store, sweep_id)
    rows: list[dict[str, Any]] = []
    for sample in samples:
        metrics = sample.get("metrics") or {}
        cell = cells.get(store_metrics.cell_key(sample)) or {}
        label = chosen.labels.get(int(sample["generation_id"]))
        rows.append(
            {
                "generation_id": int(sample["generation_id"]),
                "variant": sample["variant"],
                "temperature": float(sample["temperature"]),
                "top_p": float(sample["top_p"]),
                "top_k": int(sample["top_k"]),
                "prompt_id": sample["prompt_id"],
                "text": sample.get("text") or "",
                "metrics": metrics,
                "label": label,
                "claim_support_min": metrics.get("claim_support_min"),
                "claim_grounding": metrics.get("claim_grounding"),
                "grounding": metrics.get("grounding"),
                "conflict": _flag(metrics.get("conflict")),
                "degenerate": _flag(metrics.get("degenerate")),
                "refusal": _flag(metrics.get("refusal")),
                "semantic_entropy": cell.get("semantic_entropy"),
            }
        )
    # Semantic entropy of all samples at one (variant, prompt, temperature): with one sample per
    # cell (the original run) the cell entropy is always 0 and this is where the spread shows.
    pools: dict[tuple[str, str, float], list[dict[str, Any]]] = {}
    for row in rows:
        pools.setdefault((row["variant"], row["prompt_id"], row["temperature"]), []).append(row)
    for members in pools.values():
        if not any(m["label"] for m in members):
            continue  # only labelled samples are calibrated; pooling costs a similarity matrix
        pooled = score_cell(
            [m["text"] for m in members], [m["metrics"] for m in members], entity=entity, method=method
        )
        for member in members:
            member["semantic_entropy_pooled"] = pooled.semantic_entropy
    if judge_model is not None:
        _add_judge_scores(store, sweep_id, judge_model, rows, store_claims)
    return rows


def _flag(value: Any) -> float | None:
    return None if value is None else float(bool(value))


def _add_judge_scores(
    store: Any, sweep_id: int, model: str, rows: list[dict[str, Any]], store_claims: Any
) -> None:
    verdicts: dict[int, list[str]] = {}
    for judged in store_claims.sweep_claim_judgements(store, sweep_id, model=model):
        if judged["label"]:
            verdicts.setdefault(int(judged["generation_id"]), []).append(judged["label"])
    cells = {
        (c["variant"], float(c["temperature"]), float(c["top_p"]), int(c["top_k"]), c["prompt_id"]): c
        for c in store_claims.judge_cells(store, sweep_id, model=model)
    }
    for row in rows:
        labels = verdicts.get(row["generation_id"])
        row["judge_claim_grounding"] = labels.count("supported") / len(labels) if labels else None
        cell = cells.get((row["variant"], row["temperature"], row["top_p"], row["top_k"], row["prompt_id"]))
        row["judge_semantic_entropy"] = cell["semantic_entropy"] if cell else None


def calibrate_sweep(
    store: Any,
    sweep_id: int,
    *,
    judge_model: str | None = None,
    min_labels: int = MIN_LABELS,
    resamples: int = BOOTSTRAP_RESAMPLES,
    agreed_only: bool = False,
) -> SweepCalibration:
    """Every score of a scored sweep against its human labels (the judge's only with ``judge_model``).

    With several labellers the newest label of a generation counts, or with ``agreed_only`` only
    the generations every labeller of it gave the same label; Cohen's kappa of each pair of
    labellers comes with the result.
    """
    from engine.errors import UserError
    from store import core as store_core

    if not store_core.get_sweep(store, sweep_id):
        raise UserError(f"sweep {sweep_id}: no such sweep")
    label_rows = labelling.sweep_labels(store, sweep_id)
    chosen = labelling.choose_labels(label_rows, agreed_only=agreed_only)
    rows = sweep_score_rows(store, sweep_id, judge_model=judge_model, chosen=chosen)
    labelled = [row for row in rows if row["label"]]
    counts: dict[str, int] = {}
    for row in labelled:
        counts[row["label"]] = counts.get(row["label"], 0) + 1
    results = calibrate_rows(labelled, min_labels=min_labels, judge_model=judge_model, resamples=resamples)
    agreement = labelling.pairwise_agreement(label_rows) if len(chosen.labellers) > 1 else []
    return SweepCalibration(
        sweep_id, len(labelled), counts, results, judge_model, chosen.describe(), agreement
    )


def report_section(
    store: Any, sweep_id: int, *, judge_model: str | None = None
) -> tuple[str, list[str], list[list[str]]]:
    """The report's calibration table: (title, headers, rows); a judge's scores when one has run."""
    from store import claims as store_claims

    if judge_model is None:
        judge_model = next(iter(store_claims.judge_models(store, sweep_id)), None)
    result = calibrate_sweep(store, sweep_id, judge_model=judge_model)
    title = f"Calibration against human labels ({result.labelled} labelled; AUROC/AUPRC, 95% bootstrap CIs)"
    if result.agreement:  # several labellers: say which label counts and how well they agree
        kappas = "; ".join(pair.describe() for pair in result.agreement)
        title = f"{title[:-1]}; {result.labels_rule}; {kappas})"
    headers = [
        "score",
        "target",
        "n",
        "positives",
        "AUROC [95% CI]",
        "AUPRC [95% CI]",
        "base rate",
        "best threshold",
    ]
    if not result.labelled:
        return (
            title,
            headers,
            [["(no human labels yet)", f"ft-hallu label --sweep {sweep_id}", "0", "0", "", "", "", ""]],
        )
    rows = []
    for r in result.results:
        name = r.label + (f" (judge: {r.judge_model})" if r.judge_model else "")
        if r.status != "ok":
            rows.append([name, r.target, str(r.n), str(r.n_positive), r.status, "", "", ""])
            continue
        rows.append(
            [
                name,
                r.target,
                str(r.n),
                str(r.n_positive),
                _with_interval(r.auroc, r.auroc_interval),
                _with_interval(r.auprc, r.auprc_interval),
                f"{r.base_rate:.2f}" if r.base_rate is not None else "",
                (r.threshold_rule or "")
                + (f" (TPR {r.tpr:.2f}, FPR {r.fpr:.2f})" if r.tpr is not None else ""),
            ]
        )
    return title, headers, rows
