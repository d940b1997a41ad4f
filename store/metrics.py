"""Metric tables: scores per generation and per sweep cell, and the reads the front ends use."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlite_utils import Migrations

from store.db import Store, decode_json_columns, to_json, utc_now, where_equal

MIGRATIONS = Migrations("ft_hallu.metrics")

CellKey = tuple[str, float, float, int, str]  # variant, temperature, top_p, top_k, prompt_id

_CELL_KEY_COLUMNS = ("sweep_id", "variant", "temperature", "top_p", "top_k", "prompt_id")
# Columns that are not metrics: keys and bookkeeping. Every other column of the two tables is a
# typed metric column (the rest of the scores is in metrics_json).
_NOT_METRICS = {
    "generation_metrics": {
        "generation_id",
        "sweep_id",
        "context_key",
        "version",
        "metrics_json",
        "computed_at",
    },
    "cell_metrics": {*_CELL_KEY_COLUMNS, "n", "similarity_method", "version", "metrics_json", "computed_at"},
}


# Migrations are frozen: a released one is never edited, because existing databases were built by
# it. A new metric column arrives in a new named migration, for example
#     @MIGRATIONS(name="002_claim_support")
#     def _m002(db) -> None:
#         _add_metric_columns(db, "cell_metrics", {"claim_support": float})
# and its MetricSpec in engine/metrics/catalog_entries.py (tests/test_catalog.py checks the pair).


@MIGRATIONS(name="001_metric_tables")
def _m001(db) -> None:
    db["generation_metrics"].create(
        {
            "generation_id": int,
            "sweep_id": int,
            "refusal": int,
            "exact_match": float,
            "token_f1": float,
            "rouge_l": float,
            "f1_number_aware": float,
            "grounding": float,
            "conflict": int,
            "uses_entity": int,
            "degenerate": int,
            "n_words": int,
            "context_key": str,  # which sources/entity/version the scores were computed against
            "version": int,
            "metrics_json": str,
            "computed_at": str,
        },
        pk="generation_id",
        foreign_keys=[("generation_id", "generations", "id"), ("sweep_id", "sweeps", "id")],
    )
    db["generation_metrics"].create_index(["sweep_id"])
    db["cell_metrics"].create(
        {
            "sweep_id": int,
            "variant": str,
            "temperature": float,
            "top_p": float,
            "top_k": int,
            "prompt_id": str,
            "n": int,
            "refusal_rate": float,
            "exact_match": float,
            "token_f1": float,
            "rouge_l": float,
            "f1_number_aware": float,
            "number_mismatch_rate": float,
            "grounding": float,
            "conflict_rate": float,
            "uses_entity_rate": float,
            "degenerate_rate": float,
            "mean_words": float,
            "distinct_1": float,
            "distinct_2": float,
            "mean_similarity": float,
            "semantic_entropy": float,
            "n_clusters": int,
            "majority_share": float,
            "similarity_method": str,  # lexical | embedding
            "version": int,
            "metrics_json": str,  # means, bootstrap intervals, cluster labels
            "computed_at": str,
        },
        pk=("sweep_id", "variant", "temperature", "top_p", "top_k", "prompt_id"),
        foreign_keys=[("sweep_id", "sweeps", "id")],
    )


def _add_metric_columns(db, table: str, columns: dict[str, type]) -> None:
    """For later migrations: add typed metric columns (NULL in existing rows until rescored)."""
    for name, column_type in columns.items():
        db[table].add_column(name, column_type)


@MIGRATIONS(name="002_claim_grounding")
def _m002(db) -> None:
    # Share of an answer's claims the sources support (engine/metrics/claims/), and its cell mean.
    _add_metric_columns(db, "generation_metrics", {"claim_grounding": float})
    _add_metric_columns(db, "cell_metrics", {"claim_grounding": float})


@MIGRATIONS(name="003_claim_support_min")
def _m003(db) -> None:
    # Support of an answer's weakest atomic claim (contradicted = 0), and its cell mean.
    _add_metric_columns(db, "generation_metrics", {"claim_support_min": float})
    _add_metric_columns(db, "cell_metrics", {"claim_support_min": float})


@MIGRATIONS(name="004_token_logprobs")
def _m004(db) -> None:
    # Token log-probs and entropies recorded while sampling (engine/metrics/tokens.py), and their cell means.
    columns = {
        "mean_token_logprob": float,
        "min_token_logprob": float,
        "mean_token_entropy": float,
        "max_token_entropy": float,
    }
    _add_metric_columns(db, "generation_metrics", columns)
    _add_metric_columns(db, "cell_metrics", columns)


def metric_columns(store: Store, table: str) -> dict[str, type]:
    """The typed metric columns ``table`` has after its migrations, in schema order, with their types."""
    skip = _NOT_METRICS[table]
    return {name: kind for name, kind in store.db[table].columns_dict.items() if name not in skip}


def sample_columns(store: Store) -> tuple[str, ...]:
    """Typed per-generation metric columns of this database."""
    return tuple(metric_columns(store, "generation_metrics"))


def cell_columns(store: Store) -> tuple[str, ...]:
    """Typed per-cell metric columns of this database; metric_grid accepts only these names."""
    return tuple(metric_columns(store, "cell_metrics"))


# ---------------------------------------------------------------- writes


def _as_int(value: Any) -> int | None:
    return None if value is None else int(bool(value)) if isinstance(value, bool) else int(value)


def save_sample_metrics(
    store: Store, records: Sequence[tuple[int, dict[str, Any]]], *, context_key: str, version: int
) -> None:
    """Upsert per-generation scores: (generation_id, SampleMetrics.to_dict()) pairs, one transaction."""
    if not records:
        return
    ids = [generation_id for generation_id, _ in records]
    sweep_of = {
        row["id"]: row["sweep_id"]
        for row in store.db.query(
            f"select id, sweep_id from generations where id in ({','.join('?' * len(ids))})", ids
        )
    }
    columns = metric_columns(store, "generation_metrics")
    now = utc_now()
    rows = []
    for generation_id, metrics in records:
        typed = {
            name: _as_int(metrics.get(name)) if kind is int else metrics.get(name)
            for name, kind in columns.items()
        }
        rows.append(
            {
                "generation_id": generation_id,
                "sweep_id": sweep_of[generation_id],
                **typed,
                "context_key": context_key,
                "version": version,
                "metrics_json": to_json(metrics),
                "computed_at": now,
            }
        )
    with store.db.conn:
        store.db["generation_metrics"].upsert_all(rows, pk="generation_id")


def save_cell_metrics(
    store: Store, sweep_id: int, key: CellKey, cell: dict[str, Any], *, version: int
) -> None:
    """Upsert one cell's aggregate (CellMetrics.to_dict())."""
    variant, temperature, top_p, top_k, prompt_id = key
    means = cell.get("means") or {}
    row: dict[str, Any] = {
        "sweep_id": sweep_id,
        "variant": variant,
        "temperature": float(temperature),
        "top_p": float(top_p),
        "top_k": int(top_k),
        "prompt_id": prompt_id,
        "n": int(cell["n"]),
    }
    for column in cell_columns(store):
        row[column] = means[column] if column in means else cell.get(column)
    row.update(
        {
            "similarity_method": cell.get("similarity_method"),
            "version": version,
            "metrics_json": to_json(cell),
            "computed_at": utc_now(),
        }
    )
    with store.db.conn:
        store.db["cell_metrics"].upsert(row, pk=_CELL_KEY_COLUMNS)


# ---------------------------------------------------------------- what is missing


def cell_key(row: dict[str, Any]) -> CellKey:
    return (
        str(row["variant"]),
        float(row["temperature"]),
        float(row["top_p"]),
        int(row["top_k"]),
        str(row["prompt_id"]),
    )


def generations_missing_metrics(store: Store, sweep_id: int, *, context_key: str | None = None) -> list[int]:
    """Ids of a sweep's generations with no scores, or scores computed against another context key."""
    sql = """
        select g.id from generations g
        left join generation_metrics m on m.generation_id = g.id
        where g.sweep_id = ? and (m.generation_id is null {stale})
        order by g.id
    """
    params: list[Any] = [sweep_id]
    stale = ""
    if context_key is not None:
        stale = "or m.context_key is not ?"
        params.append(context_key)
    return [int(row["id"]) for row in store.db.query(sql.format(stale=stale), params)]


def cells_missing_metrics(store: Store, sweep_id: int) -> list[CellKey]:
    """Cells whose aggregate is absent or counts a different number of samples than are stored."""
    sql = """
        select g.variant, g.temperature, g.top_p, g.top_k, g.prompt_id, count(*) as generation_count, c.n as cell_n
        from generations g
        left join cell_metrics c on c.sweep_id = g.sweep_id and c.variant = g.variant
            and c.temperature = g.temperature and c.top_p = g.top_p and c.top_k = g.top_k
            and c.prompt_id = g.prompt_id
        where g.sweep_id = ?
        group by g.variant, g.temperature, g.top_p, g.top_k, g.prompt_id
        having cell_n is null or cell_n != generation_count
    """
    return [cell_key(row) for row in store.db.query(sql, [sweep_id])]


def count_missing(store: Store, sweep_id: int | None = None) -> int:
    """Generations with no scores at all (in one sweep, or the whole store)."""
    sql = "select count(*) as n from generations g left join generation_metrics m on m.generation_id = g.id where m.generation_id is null"
    params: list[Any] = []
    if sweep_id is not None:
        sql += " and g.sweep_id = ?"
        params.append(sweep_id)
    return int(next(iter(store.db.query(sql, params)))["n"])


def sweeps_missing_metrics(store: Store) -> list[int]:
    sql = """
        select distinct g.sweep_id from generations g
        left join generation_metrics m on m.generation_id = g.id
        where m.generation_id is null order by g.sweep_id
    """
    return [int(row["sweep_id"]) for row in store.db.query(sql)]


# ---------------------------------------------------------------- reads


def cell_samples(store: Store, sweep_id: int, key: CellKey) -> list[dict[str, Any]]:
    """A cell's generations with their decoded per-sample metrics, in sample order."""
    variant, temperature, top_p, top_k, prompt_id = key
    sql = """
        select g.id as generation_id, g.sample_index, g.text, g.reference, m.metrics_json
        from generations g join generation_metrics m on m.generation_id = g.id
        where g.sweep_id = ? and g.variant = ? and g.temperature = ? and g.top_p = ? and g.top_k = ?
            and g.prompt_id = ?
        order by g.sample_index
    """
    params = [sweep_id, variant, float(temperature), float(top_p), int(top_k), prompt_id]
    return [decode_json_columns(row) for row in store.db.query(sql, params)]


def sample_table(
    store: Store,
    sweep_id: int,
    *,
    variant: str | None = None,
    prompt_id: str | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    only_scored: bool = True,
) -> list[dict[str, Any]]:
    """Generations joined with their scores (typed columns plus decoded ``metrics``)."""
    where, params = where_equal(
        {"g.sweep_id": sweep_id},
        {
            "g.variant": variant,
            "g.prompt_id": prompt_id,
            "g.temperature": temperature,
            "g.top_p": top_p,
            "g.top_k": top_k,
        },
    )
    join = "join" if only_scored else "left join"
    columns = ", ".join(f"m.{c}" for c in sample_columns(store))
    sql = f"""
        select g.id as generation_id, g.variant, g.temperature, g.top_p, g.top_k, g.prompt_id,
            g.sample_index, g.seed, g.new_tokens, g.prompt, g.reference, g.text, {columns}, m.metrics_json
        from generations g {join} generation_metrics m on m.generation_id = g.id
        where {where}
        order by g.variant, g.temperature, g.top_p, g.top_k, g.prompt_id, g.sample_index
    """
    return [decode_json_columns(row) for row in store.db.query(sql, params)]


def cell_table(
    store: Store, sweep_id: int, *, variant: str | None = None, prompt_id: str | None = None
) -> list[dict[str, Any]]:
    """Every cell's aggregate row (typed means plus decoded ``metrics`` with intervals)."""
    where, params = where_equal({"sweep_id": sweep_id}, {"variant": variant, "prompt_id": prompt_id})
    rows = store.db["cell_metrics"].rows_where(
        where, params, order_by="variant, prompt_id, temperature, top_p, top_k"
    )
    return [decode_json_columns(row) for row in rows]


def sweep_cells(
    store: Store,
    sweep_id: int,
    *,
    variant: str | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    prompt_id: str | None = None,
) -> list[dict[str, Any]]:
    """Every cell holding generations, in one grouped query: ``n`` generations stored, their mean
    ``new_tokens`` and, once scored, the aggregate (``scored_n``, typed means, decoded ``metrics``)."""
    where, params = where_equal(
        {"g.sweep_id": sweep_id},
        {
            "g.variant": variant,
            "g.temperature": temperature,
            "g.top_p": top_p,
            "g.top_k": top_k,
            "g.prompt_id": prompt_id,
        },
    )
    columns = ", ".join(f"c.{c}" for c in cell_columns(store))
    sql = f"""
        select g.variant, g.temperature, g.top_p, g.top_k, g.prompt_id, count(*) as n,
            avg(g.new_tokens) as mean_new_tokens, c.n as scored_n, {columns}, c.metrics_json
        from generations g
        left join cell_metrics c on c.sweep_id = g.sweep_id and c.variant = g.variant
            and c.temperature = g.temperature and c.top_p = g.top_p and c.top_k = g.top_k
            and c.prompt_id = g.prompt_id
        where {where}
        group by g.variant, g.temperature, g.top_p, g.top_k, g.prompt_id
        order by g.variant, g.prompt_id, g.temperature, g.top_p, g.top_k
    """
    return [decode_json_columns(row) for row in store.db.query(sql, params)]


def prompt_ids(store: Store, sweep_id: int) -> list[str]:
    sql = "select distinct prompt_id from cell_metrics where sweep_id = ? order by prompt_id"
    return [row["prompt_id"] for row in store.db.query(sql, [sweep_id])]


def metric_grid(store: Store, sweep_id: int, metric: str, *, prompt_id: str | None = None) -> dict[str, Any]:
    """One metric over temperature x top_p, per variant and top_k (averaged over prompts).

    ``prompt_id`` selects one prompt; a value ending in ``*`` selects a prefix ("eval-*").
    Returns {"metric", "temperatures", "top_ps", "top_ks", "variants",
    "values": {variant: {top_k: [[value or None for top_p] for temperature]}}}.
    """
    known = cell_columns(store)
    if metric not in known:
        raise ValueError(f"unknown cell metric {metric!r}; known: {', '.join(known)}")
    clauses = ["sweep_id = ?"]
    params: list[Any] = [sweep_id]
    if prompt_id is not None:
        if prompt_id.endswith("*"):
            # Prefix match; '%' and '_' in the prefix are taken literally.
            clauses.append("substr(prompt_id, 1, ?) = ?")
            params.extend([len(prompt_id) - 1, prompt_id[:-1]])
        else:
            clauses.append("prompt_id = ?")
            params.append(prompt_id)
    sql = f"""
        select variant, temperature, top_p, top_k, avg({metric}) as value
        from cell_metrics where {" and ".join(clauses)}
        group by variant, temperature, top_p, top_k
    """
    rows = list(store.db.query(sql, params))
    temperatures = sorted({float(r["temperature"]) for r in rows})
    top_ps = sorted({float(r["top_p"]) for r in rows})
    top_ks = sorted({int(r["top_k"]) for r in rows})
    order = {"base": 0, "finetuned": 1}
    variants = sorted({r["variant"] for r in rows}, key=lambda v: (order.get(v, 2), v))
    values: dict[str, dict[int, list[list[float | None]]]] = {
        v: {k: [[None] * len(top_ps) for _ in temperatures] for k in top_ks} for v in variants
    }
    for r in rows:
        grid = values[r["variant"]][int(r["top_k"])]
        grid[temperatures.index(float(r["temperature"]))][top_ps.index(float(r["top_p"]))] = r["value"]
    return {
        "metric": metric,
        "temperatures": temperatures,
        "top_ps": top_ps,
        "top_ks": top_ks,
        "variants": variants,
        "values": values,
    }


def variant_summary(
    store: Store, sweep_id: int, columns: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """Per variant and prompt: the mean over cells of each metric (default: all) and the number of cells."""
    known = cell_columns(store)
    chosen = known if columns is None else [c for c in columns if c in known]
    averages = ", ".join(f"avg({c}) as {c}" for c in chosen)
    sql = f"""
        select variant, prompt_id, count(*) as cells, sum(n) as samples, {averages}
        from cell_metrics where sweep_id = ? group by variant, prompt_id order by variant, prompt_id
    """
    return list(store.db.query(sql, [sweep_id]))
