"""Live samples from the comparison app: their settings, their scores, and their rows in an ad-hoc
sweep (one per model pair).

A live request is one prompt at one setting (:class:`LiveSettings`); what it produced is a
:class:`LiveBatch`, which the app keeps between requests as plain state (``to_state``) so "Save"
can store it. :func:`score_live` scores a batch with engine.metrics as a sweep cell is scored, and
says why a value is missing with the catalogue's reasons. Saved samples become generations of the
cell (variant, T, p, k, prompt id) so they sit in the Sweeps views next to engine sweeps. The
prompt id is readable (the prompt's first words) with a short digest of what else shapes the answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine import metrics as engine_metrics
from engine import scoring
from engine.metrics import catalog
from engine.metrics import claims as claim_metrics
from engine.metrics.tokens import stats_from_extra
from engine.models import adapter_digest
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
    chat_template: str = ""  # SHA-256 of a chat template chosen for the model (not the tokenizer's own)


@dataclass(frozen=True)
class LiveSettings:
    """One live request's sampling settings (same on both sides except, optionally, the seed)."""

    temperature: float
    top_p: float
    top_k: int
    max_new_tokens: int
    seed: int
    finetuned_seed: int


@dataclass(frozen=True)
class LiveSample:
    variant: str
    seed: int
    text: str
    # The sampler's token log-prob/entropy summary (TokenStats.to_dict()), when it recorded one.
    token_stats: dict[str, Any] | None = None


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

    @classmethod
    def of(
        cls, prompt: str, system_prompt: str, settings: LiveSettings, samples: Sequence[LiveSample] = ()
    ) -> LiveBatch:
        return cls(
            prompt=prompt,
            system_prompt=system_prompt,
            temperature=settings.temperature,
            top_p=settings.top_p,
            top_k=settings.top_k,
            max_new_tokens=settings.max_new_tokens,
            samples=list(samples),
        )

    def side(self, variant: str) -> list[LiveSample]:
        return [sample for sample in self.samples if sample.variant == variant]

    def to_state(self) -> dict[str, Any]:
        """Plain JSON-able data (the app keeps it in the browser session until "Save")."""
        state = asdict(self)
        state["samples"] = [[s.variant, s.seed, s.text] for s in self.samples]
        state["token_stats"] = [s.token_stats for s in self.samples]
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LiveBatch:
        return cls(
            prompt=str(state["prompt"]),
            system_prompt=str(state["system_prompt"]),
            temperature=float(state["temperature"]),
            top_p=float(state["top_p"]),
            top_k=int(state["top_k"]),
            max_new_tokens=int(state["max_new_tokens"]),
            samples=[
                LiveSample(str(v), int(s), str(t), dict(stats) if stats else None)
                for (v, s, t), stats in zip(state["samples"], _token_stats(state), strict=True)
            ],
            stopped=bool(state.get("stopped")),
        )


def _token_stats(state: dict[str, Any]) -> list[dict[str, Any] | None]:
    """Each sample's token log-prob summary from a kept state (None each in a state without them)."""
    stats = state.get("token_stats") or []
    return list(stats) if len(stats) == len(state["samples"]) else [None] * len(state["samples"])


@dataclass(frozen=True)
class ScoredLiveSample:
    index: int  # the sample's position on its side (its seed is the request's seed + index)
    seed: int
    text: str
    metrics: dict[str, Any]  # SampleMetrics.to_dict(), with claim_grounding / claim_support_min
    claims: tuple[dict[str, Any], ...] = ()  # its atomic claims as the claims engine decided them


@dataclass(frozen=True)
class LiveScores:
    """A batch scored per variant: each sample's metrics and the cell metrics over the side."""

    samples: dict[str, list[ScoredLiveSample]]
    cells: dict[str, dict[str, Any]]  # variant -> cell metric -> value (None when missing)
    has_sources: bool  # the app was started with a dataset whose contexts ground the answers

    def value(self, variant: str, metric: str) -> Any:
        return self.cells[variant].get(metric)

    def missing(self, variant: str, metric: str) -> catalog.MissingReason | None:
        """Why the side's cell metric has no value (None: it has one)."""
        if catalog.undefined_at(metric, len(self.samples[variant])):
            return catalog.UNDEFINED_AT_ONE
        if self.value(variant, metric) is not None:
            return None
        refused = self.has_sources and self.value(variant, "refusal_rate") == 1
        return catalog.why_missing(metric, every_answer_refused=refused, no_sources=catalog.NO_LIVE_SOURCES)


def score_live(batch: LiveBatch, variants: Sequence[str], *, entity: str, dataset: str | None) -> LiveScores:
    """Score each side's samples and its cell as a stored sweep's are (``dataset``: the QA file whose
    contexts are the sources; None scores without them): per sample its metrics and its atomic
    claims with their decisions (engine/metrics/claims/), which give the main score."""
    sources = engine_metrics.load_sources(dataset, entity)
    evidence = claim_metrics.load_evidence(dataset, entity) if sources is not None else None
    samples: dict[str, list[ScoredLiveSample]] = {}
    cells: dict[str, dict[str, Any]] = {}
    for variant in variants:
        side = batch.side(variant)
        scored = [engine_metrics.score_sample(sample.text, sources=sources, entity=entity) for sample in side]
        claims = claim_metrics.answer_claims(
            [sample.text for sample in side],
            refusals=[s.refusal for s in scored],
            index=evidence,
            entity=entity,
        )
        for metrics, found in zip(scored, claims, strict=True):
            if evidence is not None:
                metrics.claim_grounding = claim_metrics.claim_grounding(found)
                metrics.claim_support_min = claim_metrics.claim_support_min(found)
        as_dicts = [
            # token stats recorded while sampling, as engine/scoring.py takes them from a stored generation
            {**metrics.to_dict(), **stats_from_extra({"token_stats": sample.token_stats})}
            for metrics, sample in zip(scored, side, strict=True)
        ]
        cell = engine_metrics.score_cell([s.text for s in side], as_dicts, entity=entity)
        cells[variant] = {**cell.means, **cell.to_dict()}
        samples[variant] = [
            ScoredLiveSample(index, sample.seed, sample.text, metrics, tuple(c.to_dict() for c in found))
            for index, (sample, metrics, found) in enumerate(zip(side, as_dicts, claims, strict=True))
        ]
    return LiveScores(samples, cells, has_sources=sources is not None)


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


def adhoc_sweep(store: Store, model: LiveModel) -> int:
    """This model pair's ad-hoc sweep (created on first save); a retrained adapter is a new pair."""
    identity = {
        "kind": "gradio-live",
        "base_model": model.base_model,
        "adapter": model.adapter_dir,
        "adapter_weights": adapter_digest(model.adapter_dir),
    }
    if model.chat_template:  # only then, so ad-hoc sweeps of models with their own template keep their hash
        identity["chat_template"] = model.chat_template
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
                    **({"token_stats": sample.token_stats} if sample.token_stats else {}),
                },
            }
        )
    written = core.add_generations(store, sweep_id, records)
    core.set_sweep_status(store, sweep_id, "completed")
    if written:
        scoring.compute_metrics_if_available(store, sweep_id)
    return SavedLive(sweep_id=sweep_id, prompt_id=prompt_id, written=written)
