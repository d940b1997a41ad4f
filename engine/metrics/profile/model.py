"""The entity profile's data: ``ProfileFact`` (one thing the sources say, with its sentence) and
``EntityProfile`` (the facts of one source set), stored as dicts and keyed by ``profile_key``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.metrics.profile.phrases import phrase_keys, split_noun_phrase

# Bump when an extraction rule changes: stored profiles with an older version are rebuilt.
PROFILE_VERSION = 2  # 2: suppliers named by what the company buys from them


@dataclass
class ProfileFact:
    """One thing the sources say, with the sentence that says it (as written)."""

    kind: str  # founded | headquarters | employees | listing | ownership | type | product | party | place
    value: str  # a year, a place, a count, a noun phrase
    sentence: str
    role: str = ""  # parties: customer | supplier | competitor | partner; products: product | segment
    detail: str = ""  # what happens: a supplier's goods, the activity at a place, a product's verb

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EntityProfile:
    """Attribute facts, other parties with their roles and places, extracted from one source set."""

    entity: str | None
    key: str  # digest of the sources + entity + PROFILE_VERSION: what the store keys it by
    facts: list[ProfileFact] = field(default_factory=list)
    latest_year: int | None = None  # the latest year the sources mention (the profile's "now")
    version: int = PROFILE_VERSION

    def of_kind(self, kind: str, role: str | None = None) -> list[ProfileFact]:
        return [f for f in self.facts if f.kind == kind and (role is None or f.role == role)]

    def first(self, kind: str) -> ProfileFact | None:
        found = self.of_kind(kind)
        return found[0] if found else None

    @property
    def founded(self) -> int | None:
        fact = self.first("founded")
        return int(fact.value) if fact else None

    @property
    def employees(self) -> int | None:
        fact = self.first("employees")
        return int(fact.value.replace(",", "")) if fact else None

    @property
    def listed(self) -> ProfileFact | None:
        return self.first("listing")

    def ownership(self, value: str) -> ProfileFact | None:
        return next((f for f in self.of_kind("ownership") if f.value == value), None)

    @functools.cached_property
    def own_keys(self) -> frozenset[str]:
        """Term keys of what the company itself offers (products, segments): never another's role."""
        keys: set[str] = set()
        for fact in [*self.of_kind("product"), *self.of_kind("type")]:
            keys.update(phrase_keys(fact.value))
        return frozenset(keys)

    @functools.cached_property
    def party_phrases(self) -> tuple[tuple[ProfileFact, str, frozenset[str]], ...]:
        """Each party with its noun phrase's (head key, modifier keys), computed once."""
        return tuple((f, *split_noun_phrase(f.value)) for f in self.of_kind("party"))  # type: ignore[misc]

    def summary(self) -> list[tuple[str, str, str]]:
        """(what, value, source sentence) rows for a reader: attributes, parties, places."""
        rows = []
        order = (
            "type",
            "founded",
            "headquarters",
            "employees",
            "listing",
            "ownership",
            "product",
            "party",
            "place",
        )
        for kind in order:
            for fact in self.of_kind(kind):
                what = kind if kind not in ("party", "product") else f"{kind}: {fact.role}"
                value = fact.value + (f" ({fact.detail})" if fact.detail else "")
                rows.append((what, value, fact.sentence))
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "key": self.key,
            "version": self.version,
            "latest_year": self.latest_year,
            "facts": [f.to_dict() for f in self.facts],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EntityProfile:
        return cls(
            entity=data.get("entity"),
            key=str(data["key"]),
            facts=[ProfileFact(**fact) for fact in data.get("facts") or []],
            latest_year=data.get("latest_year"),
            version=int(data.get("version") or 0),
        )


def profile_key(texts: Iterable[str], entity: str | None) -> str:
    """sha256 of the distinct source texts, the entity name and the extractor version."""
    unique = list(dict.fromkeys(t.strip() for t in texts if t and t.strip()))
    payload = "\n".join(unique) + f"\n--entity={(entity or '').lower()}\n--v{PROFILE_VERSION}"
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:24]
