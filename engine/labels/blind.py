"""Blind labelling: a labeller's seeded pass over a sweep that shows no variant, setting or score."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from engine.errors import UserError
from engine.labels.samples import check_labeller, label_sample, require_sweep, set_label
from store import labels as store_labels

# The order of a blind session when no seed is given (and none was recorded for the labeller).
DEFAULT_BLIND_SEED = 2024
# What a blind labeller never sees: BlindItem carries none of it, so no front end can show it.
BLIND_HIDDEN = (
    "variant",
    "temperature, top_p, top_k",
    "seed and sample index",
    "generation id",
    "every score, claim decision and marked word",
    "other labellers' labels",
)


def blind_order(generation_ids: Iterable[int], seed: int) -> list[int]:
    """The generations in the seeded blind order.

    Each id's place is given by sha256 of (seed, id), so the order depends on the seed only, and a
    generation added to the sweep later slots in without moving the others (a resumed session keeps
    its order).
    """
    return sorted(generation_ids, key=lambda gid: hashlib.sha256(f"{seed}:{gid}".encode()).digest())


@dataclass(frozen=True)
class BlindSession:
    """A labeller's blind pass over a sweep: the seed of its order and how much is left."""

    sweep_id: int
    who: str
    seed: int
    total: int  # generations in the sweep
    left: int  # not labelled by this labeller yet
    previous_seed: int | None = None  # the seed recorded before, when this one replaced it


@dataclass(frozen=True)
class BlindItem:
    """One answer as a blind labeller sees it: the prompt, the answer and plain source sentences.

    It holds no variant, sampling setting, seed, sample index, generation id, score, claim decision
    or other labeller's label (``BLIND_HIDDEN``): front ends render all of it and nothing else.
    ``sources`` are the source sentences retrieved for the answer's claims, every candidate of every
    claim whatever its score, in alphabetical order (not by score), so neither their order nor their
    selection says how the answer scored.
    """

    position: int  # 1-based place in the seeded order of the whole sweep (what labelling refers to)
    total: int
    left: int  # not labelled by this labeller yet (this one included when it is unlabelled)
    prompt: str
    text: str
    sources: tuple[str, ...]
    label: str | None = None  # this labeller's own current label (with relabel)
    note: str | None = None


def check_seed(value: object, *, where: str = "--seed") -> int:
    """A blind-order seed: a whole number (text from a form is parsed); UserError otherwise."""
    if isinstance(value, bool):
        raise UserError(f"{where}: {value!r} is not a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        raise UserError(f"{where}: {text!r} is not a whole number") from None


def start_blind(store: Any, sweep_id: int, *, who: str, seed: int | None = None) -> BlindSession:
    """Open (or resume) a labeller's blind session and record its seed.

    Without ``seed`` the one recorded for this labeller and sweep is used (else DEFAULT_BLIND_SEED),
    so running the same command again continues in the same order.
    """
    require_sweep(store, sweep_id)
    labeller = check_labeller(who)
    recorded = store_labels.blind_seed(store, sweep_id, who=labeller)
    chosen = (
        check_seed(seed) if seed is not None else (recorded if recorded is not None else DEFAULT_BLIND_SEED)
    )
    if recorded != chosen:
        store_labels.record_blind_seed(store, sweep_id, who=labeller, seed=chosen)
    ids = store_labels.sweep_generation_ids(store, sweep_id)
    done = store_labels.labelled_generation_ids(store, sweep_id, who=labeller)
    return BlindSession(
        sweep_id=sweep_id,
        who=labeller,
        seed=chosen,
        total=len(ids),
        left=len([gid for gid in ids if gid not in done]),
        previous_seed=recorded if recorded is not None and recorded != chosen else None,
    )


def next_blind(
    store: Any,
    sweep_id: int,
    *,
    who: str,
    seed: int,
    after: int = 0,
    relabel: bool = False,
) -> BlindItem | None:
    """The first item after position ``after`` that this labeller has not labelled (any, with
    ``relabel``); None at the end of the order. Skipped items come back in the next pass."""
    labeller = check_labeller(who)
    order = blind_order(store_labels.sweep_generation_ids(store, sweep_id), check_seed(seed))
    done = store_labels.labelled_generation_ids(store, sweep_id, who=labeller)
    left = len([gid for gid in order if gid not in done])
    for position, generation_id in enumerate(order, start=1):
        if position <= after or (generation_id in done and not relabel):
            continue
        return _blind_item(store, generation_id, position, len(order), left, labeller)
    return None


def label_blind(
    store: Any,
    sweep_id: int,
    *,
    who: str,
    seed: int,
    position: int,
    label: str,
    note: str | None = None,
) -> None:
    """Save a label on the item at ``position`` of the labeller's blind order."""
    order = blind_order(store_labels.sweep_generation_ids(store, sweep_id), check_seed(seed))
    if isinstance(position, bool) or not isinstance(position, int) or not 1 <= position <= len(order):
        raise UserError(f"position {position!r}: the blind order of sweep {sweep_id} has {len(order)} items")
    set_label(store, order[position - 1], label, who=check_labeller(who), note=note)


def _blind_item(store: Any, generation_id: int, position: int, total: int, left: int, who: str) -> BlindItem:
    sample = label_sample(store, generation_id, who=who)
    sentences: set[str] = set()
    for claim in sample.claims:
        candidates = [c.get("sentence") for c in claim.get("candidates") or [] if isinstance(c, dict)]
        sentences.update(s for s in candidates or [claim.get("evidence")] if s)
    return BlindItem(
        position=position,
        total=total,
        left=left,
        prompt=sample.prompt,
        text=sample.text,
        sources=tuple(sorted(sentences, key=str.casefold)),
        label=sample.label,
        note=sample.note,
    )
