"""Live samples from the comparison app, kept as rows of an ad-hoc sweep (one per model pair).

A live request is one prompt at one setting; its samples become generations of the cell
(variant, T, p, k, prompt id) so they sit in the Sweeps views next to engine sweeps. The prompt id
is readable (the prompt's first words) with a short digest of what else shapes the answer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import dataset as ds
from engine import scoring
from store import core
from store.db import Store

ADHOC_SOURCE = "adhoc"
PROMPT_ID_WORDS = 40  # characters of the prompt kept in its id


@dataclass(frozen=True)
class LiveModel:
    """Which models answered: the identity of the ad-hoc sweep the samples are stored in."""

    base_model: str
    adapter_dir: str | None
    entity_name: str
    dataset: str | None
    variants: tuple[str, ...]


@dataclass(frozen=True)
class LiveSample:
    variant: str
    seed: int
    text: str


@dataclass
class LiveBatch:
    """What one live request produced: one prompt, one sampling setting, N samples per variant."""

    prompt: str
    system_prompt: str
    temperature: float
    top_p: float
    top_k: int
    max_new_tokens: int
    samples: list[LiveSample] = field(default_factory=list)
    stopped: bool = False


@dataclass(frozen=True)
class SavedLive:
    sweep_id: int
    prompt_id: str
    written: int  # 0 when every sample was already stored


def live_prompt_id(batch: LiveBatch) -> str:
    """Samples group into one cell when they asked the same thing with the same token budget."""
    identity = json.dumps([batch.system_prompt, batch.prompt, batch.max_new_tokens])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:6]
    words = " ".join(batch.prompt.split())
    if len(words) > PROMPT_ID_WORDS:
        words = words[: PROMPT_ID_WORDS - 1].rstrip() + "…"
    return f"live: {words} [{digest}]"


def _adapter_digest(adapter: str | None) -> str | None:
    if not adapter:
        return None
    weights = sorted(Path(adapter).glob("adapter_model.*"))
    return ds.file_sha256(weights[0]) if weights else None


def adhoc_sweep(store: Store, model: LiveModel) -> int:
    """This model pair's ad-hoc sweep (created on first save); a retrained adapter is a new pair."""
    identity = {
        "kind": "gradio-live",
        "base_model": model.base_model,
        "adapter": model.adapter_dir,
        "adapter_weights": _adapter_digest(model.adapter_dir),
    }
    adapter_name = Path(model.adapter_dir).name if model.adapter_dir else "no adapter"
    return core.get_or_create_sweep(
        store,
        name=f"live: {model.base_model} + {adapter_name}",
        source=ADHOC_SOURCE,
        base_model=model.base_model,
        adapter_dir=model.adapter_dir,
        config_hash=hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest(),
        config={
            **identity,
            "entity_name": model.entity_name,
            "dataset_path": model.dataset,
            "variants": list(model.variants),
        },
        expected_rows=0,
    )


def save_live(store: Store, model: LiveModel, batch: LiveBatch) -> SavedLive:
    """Append the batch's samples not stored yet (same seed and text) to the ad-hoc sweep, then score."""
    sweep_id = adhoc_sweep(store, model)
    prompt_id = live_prompt_id(batch)
    records: list[dict[str, Any]] = []
    for sample in batch.samples:
        existing = core.iter_generations(
            store,
            sweep_id,
            variant=sample.variant,
            temperature=batch.temperature,
            top_p=batch.top_p,
            top_k=batch.top_k,
            prompt_id=prompt_id,
        )
        if any(r.get("seed") == sample.seed and r.get("text") == sample.text for r in existing):
            continue
        taken = {int(r["sample_index"]) for r in existing} | {
            int(r["sample_index"]) for r in records if r["variant"] == sample.variant
        }
        records.append(
            {
                "variant": sample.variant,
                "temperature": batch.temperature,
                "top_p": batch.top_p,
                "top_k": batch.top_k,
                "prompt_id": prompt_id,
                "prompt": batch.prompt,
                "sample_index": max(taken, default=-1) + 1,
                "seed": sample.seed,
                "text": sample.text,
                "extra": {
                    "system_prompt": batch.system_prompt,
                    "max_new_tokens": batch.max_new_tokens,
                    "stopped": batch.stopped,
                    "from": "gradio",
                },
            }
        )
    written = core.add_generations(store, sweep_id, records)
    core.set_sweep_status(store, sweep_id, "completed")
    if written:
        scoring.compute_metrics_if_available(store, sweep_id)
    return SavedLive(sweep_id=sweep_id, prompt_id=prompt_id, written=written)
