"""Score a stored sweep incrementally: per-generation metrics that are missing or stale, then the cells they touch.

This is the store-aware side of the metrics; the definitions themselves are pure (engine/metrics/).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from engine.errors import UserError
from engine.metrics import METRICS_VERSION, SourceIndex, load_sources, score_cell, score_sample
from engine.metrics import claims as claim_metrics
from engine.metrics import profile as entity_profiles
from engine.metrics.profile import EntityProfile
from store import claims as store_claims
from store import core as store_core
from store import metrics as store_metrics
from store import profiles as store_profiles

Progress = Callable[[int, int], None]


def sweep_context(sweep: dict[str, Any]) -> tuple[str | None, SourceIndex | None, str]:
    """(entity name, source index, context key) for a sweep row; the key changes when sources do."""
    config = sweep.get("config") or {}
    entity = config.get("entity_name") or None
    sources = load_sources(config.get("dataset_path"), entity)
    key = f"v{METRICS_VERSION}|{sources.key if sources else 'nosources'}|{(entity or '').lower()}"
    return entity, sources, key


def entity_profile(store: Any, dataset_path: str | None, entity: str | None) -> EntityProfile | None:
    """The entity profile of a QA file's contexts: the stored one for these sources, entity and
    extractor version, else extracted now and stored. None without a readable dataset."""
    if not dataset_path or load_sources(dataset_path, entity) is None:
        return None
    texts = claim_metrics.dataset_contexts(dataset_path)
    key = entity_profiles.profile_key(texts, entity)
    stored = store_profiles.get_profile(store, key)
    if stored is not None:
        return entity_profiles.EntityProfile.from_dict(stored)
    profile = entity_profiles.extract_profile(texts, entity)
    store_profiles.save_profile(store, profile.to_dict())
    return profile


def profile_section(store: Any, sweep_id: int) -> tuple[str, list[str], list[list[str]]]:
    """The report's table of the entity profile the claim checks used: what, value, source sentence."""
    sweep = store_core.find_sweep(store, sweep_id) or {}
    config = sweep.get("config") or {}
    profile = entity_profile(store, config.get("dataset_path"), config.get("entity_name") or None)
    title = "Entity profile: what the claim checks believe about the company (from the sources)"
    headers = ["fact", "value", "source sentence"]
    if profile is None:
        return title, headers, [["–", "no source contexts (sweep without a dataset)", ""]]
    return title, headers, [list(row) for row in profile.summary()]


def source_problem(config: dict[str, Any]) -> str | None:
    """Why a sweep's source scores (grounding, claims) are NULL although it names a dataset, or None."""
    path = config.get("dataset_path")
    if not path:
        return None
    if load_sources(path, config.get("entity_name") or None) is not None:
        return None
    from pathlib import Path

    if not Path(path).is_file():
        return f"{path}: no such file, so grounding and claims are n/a"
    return f"{path}: its context fields hold no sentence, so grounding and claims are n/a"


def compute_missing(
    store: Any, sweep_id: int, *, progress: Progress | None = None, method: str = "auto"
) -> int:
    """Score the generations of a sweep that lack (current) metrics, then refresh affected cells.

    ``progress(done, total)`` is called after each batch of samples and each cell. Returns the
    number of generations scored. Safe to call repeatedly: a second call finds nothing to do.
    """
    sweep = store_core.find_sweep(store, sweep_id)
    if not sweep:
        raise UserError(f"sweep {sweep_id}: no such sweep")
    entity, sources, context_key = sweep_context(sweep)
    missing_ids = store_metrics.generations_missing_metrics(store, sweep_id, context_key=context_key)
    # Claims (with their evidence) are computed with the metrics; generations lacking current ones too.
    evidence_method = claim_metrics.resolve_method(method)
    claims_key = claim_metrics.claims_key(context_key)
    missing_ids = sorted(
        set(missing_ids)
        | set(store_claims.generations_missing_claims(store, sweep_id, context_key=claims_key))
    )
    dataset_path = (sweep.get("config") or {}).get("dataset_path")
    profile = entity_profile(store, dataset_path, entity) if missing_ids else None
    evidence = (
        claim_metrics.load_evidence(dataset_path, entity, method=evidence_method, profile=profile)
        if missing_ids
        else None
    )
    stale_cells = set(store_metrics.cells_missing_metrics(store, sweep_id))
    total = len(missing_ids)
    done = 0
    batch_size = 200
    for start in range(0, total, batch_size):
        batch = store_core.iter_generations(store, sweep_id, ids=missing_ids[start : start + batch_size])
        records = []
        claim_records = []
        scored_rows = [
            score_sample(row["text"] or "", reference=row.get("reference"), sources=sources, entity=entity)
            for row in batch
        ]
        batch_claims = claim_metrics.answer_claims(
            [row["text"] or "" for row in batch],
            refusals=[scored.refusal for scored in scored_rows],
            index=evidence,
            entity=entity,
        )
        for row, scored, claims in zip(batch, scored_rows, batch_claims, strict=True):
            scored.claim_grounding = claim_metrics.claim_grounding(claims)
            scored.claim_support_min = claim_metrics.claim_support_min(claims)
            records.append((row["id"], scored.to_dict()))
            claim_records.append((row["id"], [claim.to_dict() for claim in claims]))
            stale_cells.add(store_metrics.cell_key(row))
        store_metrics.save_sample_metrics(store, records, context_key=context_key, version=METRICS_VERSION)
        store_claims.replace_claims(
            store,
            claim_records,
            context_key=claims_key,
            version=claim_metrics.CLAIMS_VERSION,
            method=evidence_method,
        )
        done += len(batch)
        if progress:
            progress(done, total)
    for key in sorted(stale_cells, key=lambda k: tuple(str(v) for v in k)):
        rows = store_metrics.cell_samples(store, sweep_id, key)
        if not rows:
            continue
        cell = score_cell(
            [r["text"] or "" for r in rows], [r["metrics"] for r in rows], entity=entity, method=method
        )
        store_metrics.save_cell_metrics(store, sweep_id, key, cell.to_dict(), version=METRICS_VERSION)
    return total


def compute_all_missing(store: Any, *, progress: Progress | None = None) -> dict[int, int]:
    """compute_missing for every sweep that lacks metrics; returns {sweep_id: generations scored}."""
    results = {}
    for sweep in store_core.list_sweeps(store):
        results[int(sweep["id"])] = compute_missing(store, int(sweep["id"]), progress=progress)
    return results


def compute_metrics_if_available(store: Any, sweep_id: int) -> int:
    """Score the sweep's new generations; a scoring failure is a warning, not an error.

    For callers that have just stored rows (a finished sweep, an ingested job, saved live samples):
    the rows are kept whatever happens to their scores, which ``ft-hallu metrics`` can compute later.
    """
    try:
        return int(compute_missing(store, sweep_id))
    except Exception as exc:  # scoring must never lose a finished sweep
        print(f"warning: metrics for sweep {sweep_id} failed: {exc}", file=sys.stderr)
        return 0
