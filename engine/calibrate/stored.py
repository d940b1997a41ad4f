"""A stored sweep against its human labels: every scored generation's scores (the judge's and a
verifier's when they have run), :func:`calibrate_sweep`, and the report's calibration table."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from engine import labels as labelling
from engine import verifier as engine_verifier
from engine.calibrate.measures import BOOTSTRAP_RESAMPLES
from engine.calibrate.scores import MIN_LABELS, CalibrationResult, calibrate_rows, with_interval
from engine.metrics.tokens import TOKEN_METRICS


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
    verifier_model: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "results": [r.to_dict() for r in self.results]}


def sweep_score_rows(
    store: Any,
    sweep_id: int,
    *,
    judge_model: str | None = None,
    chosen: labelling.ChosenLabels | None = None,
    verifier_model: str | None = None,
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
                **{name: metrics.get(name) for name in TOKEN_METRICS},
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
    if verifier_model is not None:
        _add_verifier_scores(store, sweep_id, verifier_model, rows)
    return rows


def _add_verifier_scores(store: Any, sweep_id: int, model: str, rows: list[dict[str, Any]]) -> None:
    from store import verifier as store_verifier

    per_answer = engine_verifier.answer_scores(store, sweep_id, model)
    cells = {
        (c["variant"], float(c["temperature"]), float(c["top_p"]), int(c["top_k"]), c["prompt_id"]): c
        for c in store_verifier.verifier_cells(store, sweep_id, model=model)
    }
    for row in rows:
        row.update(per_answer.get(row["generation_id"]) or {})
        cell = cells.get((row["variant"], row["temperature"], row["top_p"], row["top_k"], row["prompt_id"]))
        row["verifier_semantic_entropy"] = cell["semantic_entropy"] if cell else None


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
    verifier_model: str | None = None,
    min_labels: int = MIN_LABELS,
    resamples: int = BOOTSTRAP_RESAMPLES,
    agreed_only: bool = False,
) -> SweepCalibration:
    """Every score of a scored sweep against its human labels (the judge's only with ``judge_model``;
    a verifier's with ``verifier_model``, by default the first verifier that has run on the sweep).

    With several labellers the newest label of a generation counts, or with ``agreed_only`` only
    the generations every labeller of it gave the same label; Cohen's kappa of each pair of
    labellers comes with the result.
    """
    from engine.errors import UserError
    from store import core as store_core
    from store import verifier as store_verifier

    if not store_core.get_sweep(store, sweep_id):
        raise UserError(f"sweep {sweep_id}: no such sweep")
    verifiers = store_verifier.verifier_models(store, sweep_id)
    if verifier_model is None:
        verifier_model = next(iter(verifiers), None)
    elif verifier_model not in verifiers:
        known = ", ".join(verifiers) or "none has run on it"
        raise UserError(f"--verifier {verifier_model}: no verdicts for sweep {sweep_id} (verifiers: {known})")
    label_rows = labelling.sweep_labels(store, sweep_id)
    chosen = labelling.choose_labels(label_rows, agreed_only=agreed_only)
    rows = sweep_score_rows(
        store, sweep_id, judge_model=judge_model, chosen=chosen, verifier_model=verifier_model
    )
    labelled = [row for row in rows if row["label"]]
    counts: dict[str, int] = {}
    for row in labelled:
        counts[row["label"]] = counts.get(row["label"], 0) + 1
    results = calibrate_rows(
        labelled,
        min_labels=min_labels,
        judge_model=judge_model,
        verifier_model=verifier_model,
        resamples=resamples,
    )
    agreement = labelling.pairwise_agreement(label_rows) if len(chosen.labellers) > 1 else []
    return SweepCalibration(
        sweep_id,
        len(labelled),
        counts,
        results,
        judge_model,
        labels_rule=chosen.describe(),
        agreement=agreement,
        verifier_model=verifier_model,
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
        name = r.display_name
        if r.status != "ok":
            rows.append([name, r.target, str(r.n), str(r.n_positive), r.status, "", "", ""])
            continue
        rows.append(
            [
                name,
                r.target,
                str(r.n),
                str(r.n_positive),
                with_interval(r.auroc, r.auroc_interval),
                with_interval(r.auprc, r.auprc_interval),
                f"{r.base_rate:.2f}" if r.base_rate is not None else "",
                (r.threshold_rule or "")
                + (f" (TPR {r.tpr:.2f}, FPR {r.fpr:.2f})" if r.tpr is not None else ""),
            ]
        )
    return title, headers, rows
