"""What a labeller sees for one sample, and saving labels: the sample view, the queue, one label.

Front ends (the ``ft-hallu label`` command, the Gradio and TUI sample views) call these with a
store handle (``Workspace.handle()``). Labels live in store/labels.py.
"""

from __future__ import annotations

import getpass
import os
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from engine import scoring
from engine.errors import UserError
from store import claims as store_claims
from store import core as store_core
from store import labels as store_labels

LABEL_VALUES = store_labels.LABEL_VALUES
# One key per label in the terminal labeller (and the sample views' shortcuts).
LABEL_KEYS = {"f": "faithful", "h": "hallucinated", "r": "refusal", "u": "unclear"}
MAX_LABELLER_LENGTH = 64


def check_labeller(name: str, *, where: str = "--who") -> str:
    """A labeller's name, stripped; UserError when it is empty, too long or holds control characters."""
    who = (name or "").strip()
    if not who:
        raise UserError(f"{where}: the labeller's name is empty")
    if len(who) > MAX_LABELLER_LENGTH:
        raise UserError(f"{where}: the labeller's name is longer than {MAX_LABELLER_LENGTH} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in who):
        raise UserError(f"{where}: the labeller's name holds a control character")
    return who


def default_labeller() -> str:
    """Who is labelling: $FT_HALLU_LABELLER, else the login name."""
    name = os.environ.get("FT_HALLU_LABELLER", "").strip()
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return "anonymous"


@dataclass
class LabelSample:
    """One generation as a labeller sees it: the prompt, the answer, each claim with its evidence."""

    generation_id: int
    sweep_id: int
    variant: str
    temperature: float
    top_p: float
    top_k: int
    prompt_id: str
    sample_index: int
    prompt: str
    text: str
    claims: list[dict[str, Any]] = field(default_factory=list)
    label: str | None = None  # this labeller's current label
    note: str | None = None
    # The entity profile the claims were checked against: (fact, value, source sentence) rows.
    profile: list[tuple[str, str, str]] = field(default_factory=list)


def label_sample(store: Any, generation_id: int, *, who: str | None = None) -> LabelSample:
    """A generation with its claims and current label; UserError when there is no such generation."""
    rows = list(store.db.query("select * from generations where id = ?", [generation_id]))
    if not rows:
        raise UserError(f"generation {generation_id}: no such generation")
    row = rows[0]
    current = store_labels.label_of(store, generation_id, who=who)
    claims = store_claims.generation_claims(store, generation_id)
    profile: list[tuple[str, str, str]] = []
    if claims:
        config = (store_core.get_sweep(store, int(row["sweep_id"])) or {}).get("config") or {}
        found = scoring.entity_profile(store, config.get("dataset_path"), config.get("entity_name") or None)
        profile = found.summary() if found else []
    return LabelSample(
        generation_id=int(row["id"]),
        sweep_id=int(row["sweep_id"]),
        variant=row["variant"],
        temperature=float(row["temperature"]),
        top_p=float(row["top_p"]),
        top_k=int(row["top_k"]),
        prompt_id=row["prompt_id"],
        sample_index=int(row["sample_index"]),
        prompt=row["prompt"] or "",
        text=row["text"] or "",
        claims=claims,
        label=current["label"] if current else None,
        note=current["note"] if current else None,
        profile=profile,
    )


def labelling_queue(store: Any, sweep_id: int, *, who: str, relabel: bool = False) -> list[int]:
    """Generation ids left for this labeller, in grid order (all of them with ``relabel``)."""
    require_sweep(store, sweep_id)
    if relabel:
        return [int(row["id"]) for row in store_core.iter_generations(store, sweep_id)]
    return store_labels.unlabeled_generation_ids(store, sweep_id, who=who)


def set_label(store: Any, generation_id: int, label: str, *, who: str, note: str | None = None) -> None:
    """Save one label (replacing this labeller's earlier one); UserError for an unknown label."""
    try:
        store_labels.save_label(store, generation_id, label, who=who, note=note)
    except ValueError as exc:
        raise UserError(f"generation {generation_id}: {exc}") from None


def sweep_labels(store: Any, sweep_id: int, *, who: str | None = None) -> list[dict[str, Any]]:
    require_sweep(store, sweep_id)
    return store_labels.sweep_labels(store, sweep_id, who=who)


def require_sweep(store: Any, sweep_id: int) -> dict[str, Any]:
    sweep = store_core.get_sweep(store, sweep_id)
    if not sweep:
        raise UserError(f"sweep {sweep_id}: no such sweep")
    return sweep
