"""Entity profiles: what a source set says about the company, extracted once and kept by key.

The key is a digest of the source texts, the entity name and the extractor's version
(engine.metrics.profile.profile_key), so a profile is rebuilt only when one of them changes.
"""

from __future__ import annotations

from typing import Any

from sqlite_utils import Migrations

from store.db import Store, from_json, to_json, utc_now

MIGRATIONS = Migrations("ft_hallu.profiles")


@MIGRATIONS(name="001_entity_profiles")
def _m001(db) -> None:
    db["entity_profiles"].create(
        {
            "key": str,  # sha256 of sources + entity + extractor version
            "entity": str,
            "version": int,  # engine.metrics.profile.PROFILE_VERSION
            "n_facts": int,
            "profile_json": str,  # EntityProfile.to_dict(): facts with their source sentences
            "created_at": str,
        },
        pk="key",
    )


def get_profile(store: Store, key: str) -> dict[str, Any] | None:
    """The stored profile (EntityProfile.to_dict()) with this key, or None."""
    rows = list(store.db.query("select profile_json from entity_profiles where key = ?", [key]))
    return from_json(rows[0]["profile_json"], None) if rows else None


def save_profile(store: Store, profile: dict[str, Any]) -> None:
    """Store a profile (EntityProfile.to_dict()) under its own key, replacing an older copy."""
    row = {
        "key": profile["key"],
        "entity": profile.get("entity"),
        "version": int(profile.get("version") or 0),
        "n_facts": len(profile.get("facts") or []),
        "profile_json": to_json(profile),
        "created_at": utc_now(),
    }
    with store.db.conn:
        store.db["entity_profiles"].upsert(row, pk="key")


def list_profiles(store: Store) -> list[dict[str, Any]]:
    """Every stored profile's key, entity, version and fact count (newest first)."""
    sql = "select key, entity, version, n_facts, created_at from entity_profiles order by created_at desc"
    return list(store.db.query(sql))
