"""The report's claims table: every sample's atomic claims with decision, strength and evidence."""

from __future__ import annotations

from typing import Any

from store import claims as store_claims
from store import labels as store_labels


def _mark(word: str, decision: str) -> str:
    return f"[[{word}]]" if decision != "supported" else word


def claims_section(store: Any, sweep_id: int) -> tuple[str, list[str], list[list[str]]]:
    """Every sample's claims with decision, score and evidence, words the evidence lacks marked
    [[like this]] in unsupported and contradicted claims; the judge's verdicts as extra columns."""
    from engine.metrics.claims import marked_claim
    from store import metrics as store_metrics

    models = store_claims.judge_models(store, sweep_id)
    judged: dict[tuple[int, int, str], str] = {}
    for model in models:
        for row in store_claims.sweep_claim_judgements(store, sweep_id, model=model):
            judged[(int(row["generation_id"]), int(row["claim_index"]), model)] = (
                row["label"] or row["status"]
            )
    by_generation: dict[int, list[dict[str, Any]]] = {}
    for claim in store_claims.sweep_claims(store, sweep_id):
        by_generation.setdefault(int(claim["generation_id"]), []).append(claim)
    labels = {int(r["generation_id"]): r["label"] for r in store_labels.sweep_labels(store, sweep_id)}
    headers = [
        "variant",
        "cell",
        "sample",
        "human label",
        "weakest claim",
        "claim grounding",
        "atomic claim",
        "decision (rule)",
        "strength",
        "evidence",
    ]
    headers += [f"judge: {model}" for model in models]
    rows: list[list[str]] = []
    for sample in store_metrics.sample_table(store, sweep_id):
        generation_id = int(sample["generation_id"])
        claims = by_generation.get(generation_id, [])
        cell = f"T={sample['temperature']:g} p={sample['top_p']:g} k={sample['top_k']}"
        metrics = sample.get("metrics") or {}
        grounding, weakest = metrics.get("claim_grounding"), metrics.get("claim_support_min")
        lead = [
            sample["variant"],
            cell,
            str(sample["sample_index"]),
            labels.get(generation_id, ""),
            "–" if weakest is None else f"{weakest:.2f}",
            "–" if grounding is None else f"{grounding:.2f}",
        ]
        if not claims:
            why = "refusal: no claim checked" if sample.get("refusal") else "no claim checked (no sources)"
            rows.append(lead + [why, "", "", ""] + [""] * len(models))
            continue
        for number, claim in enumerate(sorted(claims, key=lambda c: (c.get("clause") or 0, c["start"]))):
            shown = marked_claim(claim, mark=_mark)
            verdicts = [judged.get((generation_id, int(claim["claim_index"]), m), "") for m in models]
            rows.append(
                (lead if number == 0 else [""] * len(lead))
                + [
                    shown,
                    f"{claim['decision']} ({claim['rule']})",
                    "–" if claim.get("strength") is None else f"{claim['strength']:.2f}",
                    (claim.get("evidence") or "")
                    + (f" [source says: {claim['source_says']}]" if claim.get("source_says") else ""),
                ]
                + verdicts
            )
    title = (
        "Atomic claims and their evidence (strength: support when supported, 0 when contradicted; "
        "words the evidence lacks marked [[like this]])"
    )
    return title, headers, rows
