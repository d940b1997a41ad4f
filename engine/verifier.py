"""An optional trained verifier: a sequence-classification NLI or fact-checking model (off unless asked for).

Any model ``AutoModelForSequenceClassification`` loads whose config names its labels: an MNLI
cross-encoder (entailment / neutral / contradiction, in any order and case) or a binary fact
checker (supported / consistent / "1" against unsupported / hallucinated / "0", MiniCheck's
RoBERTa and DeBERTa checkpoints). A model with custom code that brings HHEM-2.1-open's
``predict(pairs)`` interface (the probability that the hypothesis is consistent with the premise)
runs through that method when ``trust_remote_code`` is allowed. A model whose labels cannot be read
is refused with one line naming them, before anything is written.

Two uses, both on a scored sweep:

* **claims**: premise = the claim's evidence sentences (as stored with the claim by
  engine/metrics/claims/), hypothesis = the claim. Per answer: the entailment probability of
  its weakest claim (``verifier_claim_grounding``, continuous, so it ranks) and the share of its
  claims whose most likely label is entailment (``verifier_entailed_share``);
* **semantic entropy** of each cell with clusters by bidirectional entailment (Farquhar et al.
  2024), as the judge does: two samples share a cluster when each entails the other.

Every scored (premise, hypothesis) pair is cached in the store under (premise, hypothesis, model,
model digest, ``VERIFIER_VERSION``) batch by batch, so a killed run resumes and a rerun makes no
model call. Nothing offline changes when no verifier is used: its numbers live in their own tables
(store/verifier.py) and are shown as "verifier: NAME".
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.configfile import setting, validate_instance
from engine.errors import UserError
from engine.judge import cluster_by_entailment, entailment_cell
from engine.models.device import device_info
from engine.models.folders import file_digest
from engine.verifier_labels import LabelMap, label_map
from store import claims as store_claims
from store import metrics as store_metrics
from store import verifier as store_verifier

# Bump when the premise/hypothesis wording or the decision below changes: cached verdicts are not reused.
VERIFIER_VERSION = 1

Progress = Callable[[int, int], None]


@dataclass
class VerifierSettings:
    """Which verifier model, and how to run it. ``model``: a hub id or a local folder."""

    model: str = setting("", non_empty=True)
    batch_size: int = setting(16, min=1)
    max_length: int = setting(512, min=8)  # tokens of premise + hypothesis (the premise is cut first)
    device: str = setting("auto", choices=("auto", "cpu", "cuda"))
    # Run the model folder's own code (HHEM-2.1-open needs it); off: only transformers' classes load.
    trust_remote_code: bool = False

    def validate(self) -> None:
        validate_instance(self, source="verifier")


# ---------------------------------------------------------------- the model


@dataclass(frozen=True)
class Verdict:
    label: str  # entailment | contradiction | neutral | not_entailment (the most likely output)
    p_entailment: float
    p_contradiction: float | None  # None for a binary model
    cached: bool

    @property
    def entailed(self) -> bool:
        return self.label == "entailment"


def pair_key(premise: str, hypothesis: str, model: str, digest: str) -> str:
    parts = (premise, hypothesis, model, digest, str(VERIFIER_VERSION))
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def model_digest(path: str, config: Any) -> str:
    """What identifies the weights: sha256 of a local folder's weight files, else the hub commit."""
    folder = Path(path).expanduser()
    if folder.is_dir():
        files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".json"))
        combined = "\x1f".join(f"{p.name}:{file_digest(p)}" for p in files)
        return hashlib.sha256(combined.encode()).hexdigest()
    return str(getattr(config, "_commit_hash", None) or f"hub:{path}")


def load_config(settings: VerifierSettings) -> tuple[Any, LabelMap | None]:
    """The model's config and label map, without its weights (None: the model brings ``predict``);
    UserError for a model that cannot be found or whose labels cannot be read."""
    from transformers import AutoConfig

    settings.validate()
    try:
        config = AutoConfig.from_pretrained(settings.model, trust_remote_code=settings.trust_remote_code)
    except (OSError, ValueError) as exc:
        hint = "; --trust-remote-code runs it" if "custom code" in str(exc) else ""
        raise UserError(
            f"verifier {settings.model}: cannot load its config ({_first_line(exc)}){hint}"
        ) from None
    if settings.trust_remote_code and getattr(config, "auto_map", None):
        return config, None  # custom code: its labels are read once the model is loaded
    return config, label_map(config.id2label, model=settings.model)


def check_verifier(settings: VerifierSettings) -> None:
    """What can be checked before a run starts: the settings, the config and its labels."""
    load_config(settings)


class Verifier:
    """A loaded verifier scoring (premise, hypothesis) pairs in batches, through the store's cache.

    ``forward_calls`` and ``pairs_scored`` count the model's batches and pairs (a fully cached run
    leaves both at 0).
    """

    def __init__(self, store: Any, settings: VerifierSettings):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        config, labels = load_config(settings)  # before the weights: a bad model fails fast
        self._store = store
        self.settings = settings
        self.name = settings.model
        remote = settings.trust_remote_code
        try:
            with _quiet_transformers():
                model = AutoModelForSequenceClassification.from_pretrained(
                    settings.model, config=config, trust_remote_code=remote
                )
        except (OSError, ValueError) as exc:
            raise UserError(
                f"verifier {settings.model}: not a sequence-classification model ({_first_line(exc)})"
            ) from None
        # HHEM-2.1-open's interface: predict(pairs) -> probability of "consistent"; it brings its tokenizer.
        self._predict = (
            getattr(model, "predict", None) if remote and callable(getattr(model, "predict", None)) else None
        )
        self.labels = (
            LabelMap(("not_entailment", "entailment"), ("inconsistent", "consistent"))
            if self._predict is not None
            else labels or label_map(config.id2label, model=settings.model)
        )
        self.tokenizer = None
        if self._predict is None:
            try:
                self.tokenizer = AutoTokenizer.from_pretrained(settings.model, trust_remote_code=remote)
            except (OSError, ValueError) as exc:
                raise UserError(
                    f"verifier {settings.model}: cannot load its tokenizer ({_first_line(exc)})"
                ) from None
        device = device_info().device if settings.device == "auto" else settings.device
        if device == "cuda" and not torch.cuda.is_available():
            raise UserError("verifier: device = cuda but no CUDA GPU is visible")
        self.device = device
        self.model = model.to(device).eval()
        self.digest = model_digest(settings.model, config)
        self.forward_calls = 0
        self.pairs_scored = 0

    def _max_length(self) -> int:
        """``max_length``, or less when the tokenizer knows a smaller limit (512 for BERT-likes)."""
        limit = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(limit, int) and 0 < limit < 10**6:  # tokenizers without a limit give a huge number
            return min(self.settings.max_length, limit)
        return self.settings.max_length

    def _forward(self, pairs: Sequence[tuple[str, str]]) -> list[list[float]]:
        """Class probabilities of each pair, in the model's output order (one model call)."""
        import torch

        self.forward_calls += 1
        self.pairs_scored += len(pairs)
        with torch.inference_mode():
            if self._predict is not None:
                consistent = torch.as_tensor(self._predict(list(pairs))).float().reshape(-1).cpu()
                return [[1.0 - float(p), float(p)] for p in consistent]
            assert self.tokenizer is not None
            encoded = self.tokenizer(
                [premise for premise, _ in pairs],
                [hypothesis for _, hypothesis in pairs],
                padding=True,
                truncation="longest_first",
                max_length=self._max_length(),
                return_tensors="pt",
            ).to(self.device)
            logits = self.model(**encoded).logits.float()
            return torch.softmax(logits, dim=-1).cpu().tolist()

    def _verdict(self, probs: Sequence[float], cached: bool = False) -> Verdict:
        labels = self.labels
        best = max(range(len(probs)), key=lambda i: probs[i])
        contradiction = labels.contradiction
        return Verdict(
            label=labels.roles[best],
            p_entailment=float(probs[labels.entailment]),
            p_contradiction=None if contradiction is None else float(probs[contradiction]),
            cached=cached,
        )

    def score_pairs(
        self, pairs: Sequence[tuple[str, str]], *, progress: Progress | None = None
    ) -> list[Verdict]:
        """One verdict per (premise, hypothesis) pair: cached ones read back, the rest run in batches
        of ``batch_size`` (identical pairs once), each batch cached as soon as it is scored."""
        keys = [pair_key(p, h, self.name, self.digest) for p, h in pairs]
        known = {
            key: Verdict(row["label"], row["p_entailment"], row["p_contradiction"], True)
            for key, row in store_verifier.cached_verdicts(self._store, keys).items()
        }
        todo = list(dict.fromkeys(key for key in keys if key not in known))
        pair_of = dict(zip(keys, pairs, strict=True))
        size = self.settings.batch_size
        for start in range(0, len(todo), size):
            chunk = todo[start : start + size]
            scored = [self._verdict(probs) for probs in self._forward([pair_of[k] for k in chunk])]
            known.update(zip(chunk, scored, strict=True))
            store_verifier.cache_verdicts(
                self._store,
                [
                    {
                        "key": key,
                        "model": self.name,
                        "model_digest": self.digest,
                        "version": VERIFIER_VERSION,
                        "label": verdict.label,
                        "p_entailment": verdict.p_entailment,
                        "p_contradiction": verdict.p_contradiction,
                    }
                    for key, verdict in zip(chunk, scored, strict=True)
                ],
            )
            if progress:
                progress(min(start + size, len(todo)), len(todo))
        fresh = set(todo)
        return [known[key] if key not in fresh else _not_cached(known[key]) for key in keys]


def _not_cached(verdict: Verdict) -> Verdict:
    return Verdict(verdict.label, verdict.p_entailment, verdict.p_contradiction, False)


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No weight-loading bars or library warnings on the console (ft-hallu prints its own lines)."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


# ---------------------------------------------------------------- a sweep


@dataclass
class VerifierRun:
    """What one verifier run did: pairs asked, found in the cache and run through the model."""

    model: str
    pairs: int = 0
    cached: int = 0
    scored: int = 0  # pairs the model ran on
    forward_calls: int = 0
    claims_verified: int = 0
    cells: int = 0
    skipped_claims: int = 0  # claims with no evidence sentence (a sweep without sources)
    failures: list[str] = field(default_factory=list)

    def add(self, verdicts: Sequence[Verdict]) -> None:
        self.pairs += len(verdicts)
        self.cached += sum(v.cached for v in verdicts)

    def summary(self) -> str:
        return (
            f"verifier: {self.model}: {self.claims_verified} claim(s), {self.cells} cell(s); "
            f"{self.pairs} pair(s), {self.cached} from the cache, {self.scored} run in "
            f"{self.forward_calls} batch(es)"
            + (f"; {self.skipped_claims} claim(s) without evidence skipped" if self.skipped_claims else "")
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def claim_premise(claim: Mapping[str, Any]) -> str:
    """The premise for a stored claim: its evidence sentences (best first), joined."""
    sentences = [c.get("sentence") for c in claim.get("candidates") or [] if c.get("sentence")]
    if not sentences and claim.get("evidence"):
        sentences = [claim["evidence"]]
    return " ".join(str(s).strip() for s in sentences)


def verify_claims(
    store: Any, sweep_id: int, verifier: Verifier, *, progress: Progress | None = None
) -> VerifierRun:
    """The verifier's verdict on every stored claim of a sweep against its evidence; replaces the
    model's earlier verdicts of this sweep (claims may have been recomputed since)."""
    run = VerifierRun(verifier.name)
    before = (verifier.forward_calls, verifier.pairs_scored)
    claims = store_claims.sweep_claims(store, sweep_id)
    usable = [(claim, premise) for claim in claims if (premise := claim_premise(claim))]
    run.skipped_claims = len(claims) - len(usable)
    verdicts = verifier.score_pairs(
        [(premise, claim["text"]) for claim, premise in usable], progress=progress
    )
    run.add(verdicts)
    rows = [
        {
            "generation_id": claim["generation_id"],
            "claim_index": claim["claim_index"],
            "sweep_id": sweep_id,
            "model": verifier.name,
            "label": verdict.label,
            "p_entailment": verdict.p_entailment,
            "p_contradiction": verdict.p_contradiction,
            "cache_key": pair_key(premise, claim["text"], verifier.name, verifier.digest),
        }
        for (claim, premise), verdict in zip(usable, verdicts, strict=True)
    ]
    store_verifier.replace_claim_verdicts(store, sweep_id, verifier.name, rows)
    run.claims_verified = len(rows)
    run.forward_calls = verifier.forward_calls - before[0]
    run.scored = verifier.pairs_scored - before[1]
    return run


def _same_text(first: str, second: str) -> bool:
    return " ".join(first.split()) == " ".join(second.split())


def verify_entropy(
    store: Any, sweep_id: int, verifier: Verifier, *, progress: Progress | None = None
) -> VerifierRun:
    """Semantic entropy of every cell by bidirectional entailment under the verifier; one
    verifier_cells row per cell. Every ordered pair of distinct answers in a cell is scored in one
    batched pass (refusals share a cluster and identical texts are not asked, as with the judge)."""
    run = VerifierRun(verifier.name)
    before = (verifier.forward_calls, verifier.pairs_scored)
    cells = []
    wanted: list[tuple[str, str]] = []
    for cell in store_metrics.cell_table(store, sweep_id):
        key = store_metrics.cell_key(cell)
        samples = store_metrics.cell_samples(store, sweep_id, key)
        if not samples:
            continue
        texts = [s["text"] or "" for s in samples]
        refusals = [bool((s.get("metrics") or {}).get("refusal")) for s in samples]
        cells.append((key, texts, refusals))
        for i, first in enumerate(texts):
            for j, second in enumerate(texts):
                if i != j and not refusals[i] and not refusals[j] and not _same_text(first, second):
                    wanted.append((second, first))  # premise = sample j, hypothesis = sample i
    verdicts = verifier.score_pairs(wanted, progress=progress)
    run.add(verdicts)
    entailed = {pair: verdict.entailed for pair, verdict in zip(wanted, verdicts, strict=True)}
    for key, texts, refusals in cells:
        labels = cluster_by_entailment(
            texts, refusals, lambda i, j, texts=texts: entailed.get((texts[j], texts[i]), False)
        )
        store_verifier.save_verifier_cell(store, entailment_cell(sweep_id, key, verifier.name, labels))
        run.cells += 1
    run.forward_calls = verifier.forward_calls - before[0]
    run.scored = verifier.pairs_scored - before[1]
    return run


def verify_sweep(
    store: Any,
    sweep_id: int,
    verifier: Verifier,
    *,
    claims: bool = True,
    entropy: bool = True,
    progress: Progress | None = None,
) -> VerifierRun:
    """Run a loaded verifier over a scored sweep (claims, entropy or both); resumable through the cache."""
    from store import core as store_core

    if not store_core.get_sweep(store, sweep_id):
        raise UserError(f"sweep {sweep_id}: no such sweep")
    total = VerifierRun(verifier.name)
    parts = []
    if claims:
        parts.append(verify_claims(store, sweep_id, verifier, progress=progress))
    if entropy:
        parts.append(verify_entropy(store, sweep_id, verifier, progress=progress))
    for part in parts:
        for name in (
            "pairs",
            "cached",
            "scored",
            "forward_calls",
            "claims_verified",
            "cells",
            "skipped_claims",
        ):
            setattr(total, name, getattr(total, name) + getattr(part, name))
    return total


# ---------------------------------------------------------------- reading the verdicts


def answer_scores(store: Any, sweep_id: int, model: str) -> dict[int, dict[str, float]]:
    """generation id -> its verifier claim grounding (the weakest claim's entailment probability)
    and entailed share (claims whose most likely label is entailment); answers without verified
    claims (refusals) are absent."""
    grouped: dict[int, list[dict[str, Any]]] = {}
    for row in store_verifier.sweep_claim_verdicts(store, sweep_id, model=model):
        grouped.setdefault(int(row["generation_id"]), []).append(row)
    return {
        generation_id: {
            "verifier_claim_grounding": min(float(r["p_entailment"]) for r in rows),
            "verifier_entailed_share": sum(r["label"] == "entailment" for r in rows) / len(rows),
        }
        for generation_id, rows in grouped.items()
    }


def report_sections(store: Any, sweep_id: int) -> list[tuple[str, list[str], list[list[str]]]]:
    """One table per verifier model that has run on the sweep: per cell, the mean verifier claim
    grounding of its answers and its semantic entropy by entailment; none when no verifier ran."""
    sections = []
    for model in store_verifier.verifier_models(store, sweep_id):
        scores = answer_scores(store, sweep_id, model)
        by_cell: dict[tuple, list[float]] = {}
        for sample in store_metrics.sample_table(store, sweep_id):
            score = scores.get(int(sample["generation_id"]))
            if score is not None:
                by_cell.setdefault(store_metrics.cell_key(sample), []).append(
                    score["verifier_claim_grounding"]
                )
        entropy = {
            store_metrics.cell_key(c): c for c in store_verifier.verifier_cells(store, sweep_id, model=model)
        }
        keys = sorted(set(by_cell) | set(entropy), key=lambda k: tuple(str(v) for v in k))
        rows = []
        for key in keys:
            variant, temperature, top_p, top_k, prompt_id = key
            grounding = by_cell.get(key)
            cell = entropy.get(key)
            rows.append(
                [
                    variant,
                    prompt_id,
                    f"T={temperature:g} p={top_p:g} k={top_k}",
                    f"{sum(grounding) / len(grounding):.3f}" if grounding else "–",
                    f"{cell['semantic_entropy']:.3f}" if cell else "–",
                    str(cell["n_clusters"]) if cell else "–",
                ]
            )
        title = (
            f"verifier: {model} — weakest-claim entailment per answer (cell mean) and semantic entropy "
            "by bidirectional entailment (optional)"
        )
        headers = ["variant", "prompt", "cell", "claim grounding", "semantic entropy", "clusters"]
        sections.append((title, headers, rows))
    return sections


def verify_if_requested(store: Any, sweep_id: int, model: str) -> None:
    """Run the sweep's verifier on its claims; a verifier failure is a warning (the sweep is kept)."""
    try:
        loaded = Verifier(store, VerifierSettings(model=model))
        print(verify_sweep(store, sweep_id, loaded).summary(), file=sys.stderr)
    except Exception as exc:  # the generations are stored; `ft-hallu metrics --verifier` can run it again
        print(f"warning: verifier for sweep {sweep_id} failed: {exc}", file=sys.stderr)


# (store path, sweep, model) this process has run or tried: a verifier that fails warns once, not on
# every look at the jobs (Gradio settles them every 30 s).
_TRIED_JOB_SWEEPS: set[tuple[str, int, str]] = set()


def verify_job_sweeps(store: Any) -> list[int]:
    """Run the verifier a job's sweep config names, once its rows are in and scored; returns the sweeps.

    A job runs no verifier on its node (it opens no store, and the claims are scored at ingest), so
    the login node does, here: completed sweeps read in from jobs (source ``*-job``), scored
    (``compute_metrics``), whose verifier has no verdict on them yet.
    """
    from store import core as store_core

    verified = []
    for sweep in store_core.list_sweeps(store):
        config = sweep.get("config") or {}
        model = str(config.get("verifier") or "")
        sweep_id = int(sweep["id"])
        key = (str(getattr(store, "path", "")), sweep_id, model)
        if (
            not model
            or sweep.get("status") != "completed"
            or not str(sweep.get("source") or "").endswith("-job")
            or not config.get("compute_metrics", True)
            or key in _TRIED_JOB_SWEEPS
            or model in store_verifier.verifier_models(store, sweep_id)
        ):
            continue
        _TRIED_JOB_SWEEPS.add(key)
        verify_if_requested(store, sweep_id, model)
        verified.append(sweep_id)
    return verified
