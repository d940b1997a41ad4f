"""The optional trained verifier: its cache of (premise, hypothesis) verdicts, its verdict on each
stored claim, and its semantic entropy per cell (engine/verifier.py fills them)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlite_utils import Migrations

from store.claims import cluster_cells, save_cluster_cell
from store.db import Store, utc_now

MIGRATIONS = Migrations("ft_hallu.verifier")

_CELL_KEY = ("sweep_id", "variant", "temperature", "top_p", "top_k", "prompt_id", "model")


@MIGRATIONS(name="001_verifier_tables")
def _m001(db) -> None:
    # One row per (premise, hypothesis) pair a verifier model ever scored: reruns make no model call.
    db["verifier_cache"].create(
        {
            "key": str,  # sha256 of (premise, hypothesis, model, model digest, verifier version)
            "model": str,
            "model_digest": str,  # weights' sha256 (local folder) or the hub commit
            "version": int,
            "label": str,  # the model's most likely label, mapped: entailment | neutral | contradiction
            "p_entailment": float,
            "p_contradiction": float,  # NULL for a binary model
            "created_at": str,
        },
        pk="key",
    )
    db["verifier_claims"].create(
        {
            "generation_id": int,
            "claim_index": int,
            "sweep_id": int,
            "model": str,
            "label": str,
            "p_entailment": float,
            "p_contradiction": float,
            "cache_key": str,
            "created_at": str,
        },
        pk=("generation_id", "claim_index", "model"),
        foreign_keys=[("generation_id", "generations", "id"), ("sweep_id", "sweeps", "id")],
    )
    db["verifier_claims"].create_index(["sweep_id", "model"])
    db["verifier_cells"].create(
        {
            "sweep_id": int,
            "variant": str,
            "temperature": float,
            "top_p": float,
            "top_k": int,
            "prompt_id": str,
            "model": str,
            "n": int,
            "semantic_entropy": float,
            "n_clusters": int,
            "cluster_labels_json": str,
            "computed_at": str,
        },
        pk=_CELL_KEY,
        foreign_keys=[("sweep_id", "sweeps", "id")],
    )


# ---------------------------------------------------------------- the cache


def cached_verdicts(store: Store, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    wanted = list(dict.fromkeys(keys))
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), 500):
        part = wanted[start : start + 500]
        sql = f"select * from verifier_cache where key in ({','.join('?' * len(part))})"
        found.update({row["key"]: row for row in store.db.query(sql, part)})
    return found


def cache_verdicts(store: Store, rows: Sequence[dict[str, Any]]) -> None:
    """Store one batch of scored pairs in one transaction (a killed run keeps every finished batch)."""
    if not rows:
        return
    now = utc_now()
    with store.db.conn:
        store.db["verifier_cache"].upsert_all([{**row, "created_at": now} for row in rows], pk="key")


def cache_size(store: Store, model: str | None = None) -> int:
    sql, params = "select count(*) as n from verifier_cache", []
    if model is not None:
        sql += " where model = ?"
        params.append(model)
    return int(next(iter(store.db.query(sql, params)))["n"])


# ---------------------------------------------------------------- verdicts on claims and cells


def replace_claim_verdicts(store: Store, sweep_id: int, model: str, rows: Sequence[dict[str, Any]]) -> None:
    """A model's verdicts on a sweep's claims, replacing its earlier ones in one transaction (the
    claims may have been recomputed since; the cache keeps every scored pair)."""
    now = utc_now()
    with store.db.conn:
        store.db.execute("delete from verifier_claims where sweep_id = ? and model = ?", [sweep_id, model])
        if rows:
            store.db["verifier_claims"].insert_all([{**row, "created_at": now} for row in rows])


def sweep_claim_verdicts(store: Store, sweep_id: int, *, model: str | None = None) -> list[dict[str, Any]]:
    where, params = "sweep_id = ?", [sweep_id]
    if model is not None:
        where += " and model = ?"
        params.append(model)
    rows = store.db["verifier_claims"].rows_where(where, params, order_by="generation_id, claim_index, model")
    return [dict(row) for row in rows]


def verifier_models(store: Store, sweep_id: int) -> list[str]:
    """Verifier models that have verdicts for this sweep (claims or cells)."""
    sql = """
        select distinct model from verifier_claims where sweep_id = ?
        union select distinct model from verifier_cells where sweep_id = ?
        order by 1
    """
    return [row["model"] for row in store.db.query(sql, [sweep_id, sweep_id])]


def save_verifier_cell(store: Store, row: dict[str, Any]) -> None:
    save_cluster_cell(store, "verifier_cells", row)


def verifier_cells(store: Store, sweep_id: int, *, model: str | None = None) -> list[dict[str, Any]]:
    return cluster_cells(
        store, "verifier_cells", sweep_id, model=model, order_by="model, variant, prompt_id, temperature, top_p, top_k"
    )
