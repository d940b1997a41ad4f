"""Human labels of generations: the ground truth that calibrates every score."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Migrations

from store.db import Store, utc_now

MIGRATIONS = Migrations("ft_hallu.labels")

LABEL_VALUES = ("faithful", "hallucinated", "refusal", "unclear")


@MIGRATIONS(name="001_labels_table")
def _m001(db) -> None:
    db["labels"].create(
        {
            "id": int,
            "generation_id": int,
            "label": str,  # faithful | hallucinated | refusal | unclear
            "note": str,
            "who": str,  # the labeller's name; one current label per (generation, who)
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("generation_id", "generations", "id")],
    )
    db["labels"].create_index(["generation_id", "who"], unique=True)


@MIGRATIONS(name="002_blind_sessions")
def _m002(db) -> None:
    # The seed of each labeller's blind order per sweep: a resumed session shows the same order.
    db["blind_sessions"].create(
        {"sweep_id": int, "who": str, "seed": int, "updated_at": str},
        pk=("sweep_id", "who"),
        foreign_keys=[("sweep_id", "sweeps", "id")],
    )


@dataclass(frozen=True)
class Label:
    generation_id: int
    label: str
    who: str
    note: str | None = None


def check_label(value: str) -> str:
    """The label in canonical form; ValueError naming the allowed values otherwise."""
    label = (value or "").strip().lower()
    if label not in LABEL_VALUES:
        raise ValueError(f"label {value!r} is not one of {', '.join(LABEL_VALUES)}")
    return label


def save_labels(store: Store, labels: Sequence[Label]) -> int:
    """Insert or replace (per generation and labeller) in one transaction; returns how many were written."""
    if not labels:
        return 0
    now = utc_now()
    rows = [
        {
            "generation_id": int(item.generation_id),
            "label": check_label(item.label),
            "note": (item.note or None),
            "who": item.who,
            "created_at": now,
        }
        for item in labels
    ]
    ids = sorted({row["generation_id"] for row in rows})
    known = {
        int(row["id"])
        for row in store.db.query(f"select id from generations where id in ({','.join('?' * len(ids))})", ids)
    }
    missing = [i for i in ids if i not in known]
    if missing:
        raise ValueError(f"no generation with id {missing[0]}")
    with store.db.conn:
        for row in rows:
            store.db.execute(
                "insert into labels (generation_id, label, note, who, created_at) values (?, ?, ?, ?, ?) "
                "on conflict(generation_id, who) do update set label = excluded.label, "
                "note = excluded.note, created_at = excluded.created_at",
                [row["generation_id"], row["label"], row["note"], row["who"], row["created_at"]],
            )
    return len(rows)


def save_label(store: Store, generation_id: int, label: str, *, who: str, note: str | None = None) -> None:
    save_labels(store, [Label(generation_id, label, who, note)])


def delete_label(store: Store, generation_id: int, *, who: str) -> None:
    with store.db.conn:
        store.db.execute("delete from labels where generation_id = ? and who = ?", [generation_id, who])


_KEY_COLUMNS = "g.variant, g.temperature, g.top_p, g.top_k, g.prompt_id, g.sample_index"


def sweep_labels(store: Store, sweep_id: int, *, who: str | None = None) -> list[dict[str, Any]]:
    """A sweep's labels with their generation's grid key, in grid order.

    With several labellers and ``who`` unset, every labeller's row is returned.
    """
    sql = f"""
        select l.generation_id, l.label, l.note, l.who, l.created_at, {_KEY_COLUMNS}
        from labels l join generations g on g.id = l.generation_id
        where g.sweep_id = ? {"and l.who = ?" if who is not None else ""}
        order by {_KEY_COLUMNS}, l.who
    """
    params: list[Any] = [sweep_id] + ([who] if who is not None else [])
    return list(store.db.query(sql, params))


def label_of(store: Store, generation_id: int, *, who: str | None = None) -> dict[str, Any] | None:
    """The newest label of one generation (by ``who`` when given), or None."""
    sql = "select * from labels where generation_id = ?" + (" and who = ?" if who is not None else "")
    params: list[Any] = [generation_id] + ([who] if who is not None else [])
    rows = list(store.db.query(sql + " order by created_at desc, id desc limit 1", params))
    return rows[0] if rows else None


def current_labels(store: Store, generation_ids: Sequence[int], *, who: str) -> dict[int, str]:
    """This labeller's label of each of ``generation_ids`` that has one (a few queries, not one per id)."""
    ids = sorted({int(i) for i in generation_ids})
    found: dict[int, str] = {}
    for start in range(0, len(ids), 500):  # well under SQLite's bound-parameter limit
        part = ids[start : start + 500]
        sql = f"select generation_id, label from labels where who = ? and generation_id in ({','.join('?' * len(part))})"
        found.update(
            {int(row["generation_id"]): str(row["label"]) for row in store.db.query(sql, [who, *part])}
        )
    return found


def unlabeled_generation_ids(store: Store, sweep_id: int, *, who: str) -> list[int]:
    """Generations of a sweep this labeller has not labelled yet, in grid order (what resume continues)."""
    sql = f"""
        select g.id from generations g
        left join labels l on l.generation_id = g.id and l.who = ?
        where g.sweep_id = ? and l.id is null
        order by {_KEY_COLUMNS}
    """
    return [int(row["id"]) for row in store.db.query(sql, [who, sweep_id])]


def label_counts(store: Store, sweep_id: int) -> dict[str, int]:
    sql = """
        select l.label, count(*) as n from labels l join generations g on g.id = l.generation_id
        where g.sweep_id = ? group by l.label
    """
    counts = {value: 0 for value in LABEL_VALUES}
    counts.update({row["label"]: int(row["n"]) for row in store.db.query(sql, [sweep_id])})
    return counts


def sweep_generation_ids(store: Store, sweep_id: int) -> list[int]:
    """Every generation id of a sweep (ascending)."""
    sql = "select id from generations where sweep_id = ? order by id"
    return [int(row["id"]) for row in store.db.query(sql, [sweep_id])]


def labelled_generation_ids(store: Store, sweep_id: int, *, who: str) -> set[int]:
    """Generations of a sweep this labeller has labelled."""
    sql = """
        select l.generation_id from labels l join generations g on g.id = l.generation_id
        where g.sweep_id = ? and l.who = ?
    """
    return {int(row["generation_id"]) for row in store.db.query(sql, [sweep_id, who])}


def labellers(store: Store, sweep_id: int) -> list[str]:
    """Who labelled anything in this sweep, sorted."""
    sql = """
        select distinct l.who from labels l join generations g on g.id = l.generation_id
        where g.sweep_id = ? order by l.who
    """
    return [row["who"] for row in store.db.query(sql, [sweep_id])]


def blind_seed(store: Store, sweep_id: int, *, who: str) -> int | None:
    """The seed of this labeller's blind order for the sweep, or None (never labelled blind)."""
    rows = list(
        store.db.query("select seed from blind_sessions where sweep_id = ? and who = ?", [sweep_id, who])
    )
    return int(rows[0]["seed"]) if rows else None


def record_blind_seed(store: Store, sweep_id: int, *, who: str, seed: int) -> None:
    with store.db.conn:
        store.db.execute(
            "insert into blind_sessions (sweep_id, who, seed, updated_at) values (?, ?, ?, ?) "
            "on conflict(sweep_id, who) do update set seed = excluded.seed, updated_at = excluded.updated_at",
            [sweep_id, who, int(seed), utc_now()],
        )
