"""Claims of each answer with their evidence and decision, and the optional judge's cache and verdicts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlite_utils import Migrations

from store.db import Store, from_json, to_json, utc_now

MIGRATIONS = Migrations("ft_hallu.claims")

CLAIM_DECISIONS = ("supported", "unsupported", "contradicted")
_CELL_KEY = ("sweep_id", "variant", "temperature", "top_p", "top_k", "prompt_id", "model")


@MIGRATIONS(name="001_claims_table")
def _m001(db) -> None:
    db["claims"].create(
        {
            "generation_id": int,
            "claim_index": int,
            "sweep_id": int,
            "text": str,  # the claim as it reads in the answer
            "start": int,  # character span of the claim in the answer (special tokens removed)
            "end": int,
            "decision": str,  # supported | unsupported | contradicted
            "rule": str,  # what decided it: support | number | name | negation | status | none
            "score": float,  # support score of the best evidence (0..1)
            "evidence": str,  # the best-matching source sentence
            "evidence_json": str,  # the top source sentences with their scores
            "unsupported_json": str,  # the claim's words the evidence does not contain
            "context_key": str,
            "version": int,
            "computed_at": str,
        },
        pk=("generation_id", "claim_index"),
        foreign_keys=[("generation_id", "generations", "id"), ("sweep_id", "sweeps", "id")],
    )
    db["claims"].create_index(["sweep_id"])
    # One row per scored generation, also for answers with no claim (refusals): what resume checks.
    db["claim_summaries"].create(
        {
            "generation_id": int,
            "sweep_id": int,
            "n_claims": int,
            "n_supported": int,
            "n_contradicted": int,
            "claim_grounding": float,  # share of supported claims; NULL when there is no claim
            "method": str,  # embedding | lexical (how evidence was retrieved)
            "context_key": str,
            "version": int,
            "computed_at": str,
        },
        pk="generation_id",
        foreign_keys=[("generation_id", "generations", "id"), ("sweep_id", "sweeps", "id")],
    )
    db["claim_summaries"].create_index(["sweep_id"])


@MIGRATIONS(name="002_judge_tables")
def _m002(db) -> None:
    # One row per question ever asked of a judge: the cache that makes judge runs resumable.
    db["judge_cache"].create(
        {
            "key": str,  # sha256 of (kind, text, evidence digest, model, prompt version)
            "kind": str,  # claim | entailment
            "model": str,
            "prompt_version": int,
            "label": str,  # claim: supported | contradicted | not_in_sources; entailment: yes | no
            "status": str,  # ok | refused
            "reply": str,  # the judge's reply, shortened
            "prompt_tokens": int,
            "completion_tokens": int,
            "created_at": str,
        },
        pk="key",
    )
    db["claim_judgements"].create(
        {
            "generation_id": int,
            "claim_index": int,
            "model": str,
            "label": str,  # as judge_cache.label, or NULL when the judge refused
            "status": str,
            "cache_key": str,
            "created_at": str,
        },
        pk=("generation_id", "claim_index", "model"),
        foreign_keys=[("generation_id", "generations", "id")],
    )
    db["judge_cells"].create(
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


@MIGRATIONS(name="003_atomic_claims")
def _m003(db) -> None:
    # Atomic claims (claims.py CLAIMS_VERSION 2): the answer spans a claim is made of, the clause it
    # comes from, its strength (contradicted 0), what a contradicting source says, its unknown
    # words; per answer the weakest claim's strength.
    for name, kind in (
        ("clause", int),
        ("strength", float),
        ("source_says", str),
        ("segments_json", str),
        ("unknown_json", str),
    ):
        db["claims"].add_column(name, kind)
    db["claim_summaries"].add_column("claim_support_min", float)


# ---------------------------------------------------------------- claims


def replace_claims(
    store: Store,
    records: Sequence[tuple[int, Sequence[dict[str, Any]]]],
    *,
    context_key: str,
    version: int,
    method: str,
) -> None:
    """Store each generation's claims (Claim.to_dict() rows) and summary, replacing older ones, in one transaction."""
    if not records:
        return
    ids = [generation_id for generation_id, _ in records]
    placeholders = ",".join("?" * len(ids))
    sweep_of = {
        int(row["id"]): int(row["sweep_id"])
        for row in store.db.query(f"select id, sweep_id from generations where id in ({placeholders})", ids)
    }
    now = utc_now()
    rows = []
    summaries = []
    for generation_id, claims in records:
        counted = [c for c in claims if c.get("rule") != "vague"] or list(claims)  # as claims.py counts
        decisions = [claim["decision"] for claim in counted]
        summaries.append(
            {
                "generation_id": generation_id,
                "sweep_id": sweep_of[generation_id],
                "n_claims": len(claims),
                "n_supported": decisions.count("supported"),
                "n_contradicted": decisions.count("contradicted"),
                "claim_grounding": decisions.count("supported") / len(counted) if counted else None,
                "claim_support_min": min(float(c.get("strength") or 0.0) for c in counted) if counted else None,
                "method": method,
                "context_key": context_key,
                "version": version,
                "computed_at": now,
            }
        )
        for index, claim in enumerate(claims):
            rows.append(
                {
                    "generation_id": generation_id,
                    "claim_index": index,
                    "sweep_id": sweep_of[generation_id],
                    "text": claim["text"],
                    "start": claim.get("start"),
                    "end": claim.get("end"),
                    "decision": claim["decision"],
                    "rule": claim.get("rule"),
                    "score": claim.get("score"),
                    "evidence": claim.get("evidence"),
                    "evidence_json": to_json(claim.get("candidates") or []),
                    "unsupported_json": to_json(claim.get("unsupported") or []),
                    "clause": claim.get("clause"),
                    "strength": claim.get("strength"),
                    "source_says": claim.get("source_says"),
                    "segments_json": to_json(claim.get("segments") or []),
                    "unknown_json": to_json(claim.get("unknown") or []),
                    "context_key": context_key,
                    "version": version,
                    "computed_at": now,
                }
            )
    with store.db.conn:
        store.db.execute(f"delete from claims where generation_id in ({placeholders})", ids)
        if rows:
            store.db["claims"].insert_all(rows)
        store.db["claim_summaries"].upsert_all(summaries, pk="generation_id")


def generations_missing_claims(store: Store, sweep_id: int, *, context_key: str) -> list[int]:
    """Generations of a sweep whose claims are absent or were computed against another context key."""
    sql = """
        select g.id from generations g
        left join claim_summaries s on s.generation_id = g.id
        where g.sweep_id = ? and (s.generation_id is null or s.context_key is not ?)
        order by g.id
    """
    return [int(row["id"]) for row in store.db.query(sql, [sweep_id, context_key])]


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    decoded = dict(row)
    decoded["candidates"] = from_json(decoded.pop("evidence_json", None), [])
    decoded["unsupported"] = from_json(decoded.pop("unsupported_json", None), [])
    decoded["segments"] = from_json(decoded.pop("segments_json", None), [])
    decoded["unknown"] = from_json(decoded.pop("unknown_json", None), [])
    return decoded


def generation_claims(store: Store, generation_id: int) -> list[dict[str, Any]]:
    rows = store.db["claims"].rows_where("generation_id = ?", [generation_id], order_by="claim_index")
    return [_decode(row) for row in rows]


def sweep_claims(
    store: Store, sweep_id: int, *, generation_ids: Iterable[int] | None = None
) -> list[dict[str, Any]]:
    """A sweep's claims (optionally of some generations) in generation and claim order."""
    where, params = "sweep_id = ?", [sweep_id]
    if generation_ids is not None:
        ids = list(generation_ids)
        where += f" and generation_id in ({','.join('?' * len(ids))})" if ids else " and 0"
        params.extend(ids)
    rows = store.db["claims"].rows_where(where, params, order_by="generation_id, claim_index")
    return [_decode(row) for row in rows]


def claim_summaries(store: Store, sweep_id: int) -> dict[int, dict[str, Any]]:
    """generation id -> its claim summary (claim_grounding, counts, method)."""
    rows = store.db["claim_summaries"].rows_where("sweep_id = ?", [sweep_id])
    return {int(row["generation_id"]): dict(row) for row in rows}


# ---------------------------------------------------------------- the judge


def cached_judgements(store: Store, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    wanted = list(dict.fromkeys(keys))
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), 500):
        part = wanted[start : start + 500]
        sql = f"select * from judge_cache where key in ({','.join('?' * len(part))})"
        found.update({row["key"]: row for row in store.db.query(sql, part)})
    return found


def cache_judgement(store: Store, row: dict[str, Any]) -> None:
    """Store one answered judge question at once (a killed run keeps everything asked so far)."""
    record = {**row, "created_at": utc_now()}
    with store.db.conn:
        store.db["judge_cache"].upsert(record, pk="key")


def judge_token_totals(store: Store, model: str | None = None) -> dict[str, int]:
    sql = "select count(*) as questions, coalesce(sum(prompt_tokens), 0) as prompt_tokens, "
    sql += "coalesce(sum(completion_tokens), 0) as completion_tokens from judge_cache"
    params: list[Any] = []
    if model is not None:
        sql += " where model = ?"
        params.append(model)
    row = next(iter(store.db.query(sql, params)))
    return {key: int(row[key]) for key in ("questions", "prompt_tokens", "completion_tokens")}


def save_claim_judgements(store: Store, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    now = utc_now()
    with store.db.conn:
        store.db["claim_judgements"].upsert_all(
            [{**row, "created_at": now} for row in rows], pk=("generation_id", "claim_index", "model")
        )


def sweep_claim_judgements(store: Store, sweep_id: int, *, model: str | None = None) -> list[dict[str, Any]]:
    sql = """
        select j.* from claim_judgements j join generations g on g.id = j.generation_id
        where g.sweep_id = ? {model} order by j.generation_id, j.claim_index, j.model
    """
    params: list[Any] = [sweep_id]
    if model is not None:
        params.append(model)
    return list(store.db.query(sql.format(model="and j.model = ?" if model is not None else ""), params))


def judge_models(store: Store, sweep_id: int) -> list[str]:
    """Judge models that have verdicts for this sweep (claims or cells)."""
    sql = """
        select distinct j.model from claim_judgements j join generations g on g.id = j.generation_id
        where g.sweep_id = ?
        union select distinct model from judge_cells where sweep_id = ?
        order by 1
    """
    return [row["model"] for row in store.db.query(sql, [sweep_id, sweep_id])]


def save_cluster_cell(store: Store, table: str, row: dict[str, Any]) -> None:
    """Store one cell clustered by entailment (``judge_cells`` or ``verifier_cells``): its labels as JSON."""
    record = dict(row)
    record["cluster_labels_json"] = to_json(record.pop("cluster_labels", []))
    record["computed_at"] = utc_now()
    with store.db.conn:
        store.db[table].upsert(record, pk=_CELL_KEY)


def cluster_cells(
    store: Store, table: str, sweep_id: int, *, model: str | None, order_by: str
) -> list[dict[str, Any]]:
    """A sweep's cells of ``table`` (of one model, or all), their cluster labels decoded."""
    where, params = "sweep_id = ?", [sweep_id]
    if model is not None:
        where += " and model = ?"
        params.append(model)
    decoded = []
    for row in store.db[table].rows_where(where, params, order_by=order_by):
        item = dict(row)
        item["cluster_labels"] = from_json(item.pop("cluster_labels_json"), [])
        decoded.append(item)
    return decoded


def save_judge_cell(store: Store, row: dict[str, Any]) -> None:
    save_cluster_cell(store, "judge_cells", row)


def judge_cells(store: Store, sweep_id: int, *, model: str | None = None) -> list[dict[str, Any]]:
    return cluster_cells(store, "judge_cells", sweep_id, model=model, order_by="variant, temperature, top_p, top_k")
