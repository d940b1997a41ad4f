"""Claim-level grounding: split an answer into atomic claims, find each one's evidence, decide its support.

An answer is split into clauses and atomic claims (``atoms``); each claim's evidence is the source
sentence with the best support score (embedding cosine and term coverage) in the source set's
evidence index (``evidence``); a rule may find it contradicted (a figure, a name, a negation, the
entity profile of engine/metrics/profile/), a content word no source has leaves it unsupported,
and the support score decides the rest (``check``); the answer's scores are its weakest claim's
strength and its share of supported claims (``scores``). Definitions, limits and the validation
are in docs/METRICS.md.

Modules, bottom up: ``atoms`` (clauses and atomic claims), ``evidence`` (claim terms, the evidence
index, the threshold and versions), ``check`` (``Claim``, decisions, strengths) and ``scores``
(``claim_support_min``, ``claim_grounding``, marked words). The public names are re-exported here,
so ``from engine.metrics import claims; claims.check_claims(...)`` works.
"""

from __future__ import annotations

from engine.metrics.claims.atoms import AtomicSpan, atomic_claims, split_claims
from engine.metrics.claims.check import TOP_EVIDENCE, Claim, answer_claims, check_claims, check_many
from engine.metrics.claims.evidence import (
    CLAIMS_VERSION,
    SUPPORTED_AT,
    Embedder,
    EvidenceIndex,
    build_evidence_index,
    claim_terms,
    claims_key,
    dataset_contexts,
    evidence_index,
    load_evidence,
    minilm_embedder,
    resolve_method,
    term_key,
)
from engine.metrics.claims.scores import claim_grounding, claim_support_min, marked_answer, marked_claim

__all__ = [
    "CLAIMS_VERSION",
    "SUPPORTED_AT",
    "TOP_EVIDENCE",
    "AtomicSpan",
    "Claim",
    "Embedder",
    "EvidenceIndex",
    "answer_claims",
    "atomic_claims",
    "build_evidence_index",
    "check_claims",
    "check_many",
    "claim_grounding",
    "claim_support_min",
    "claim_terms",
    "claims_key",
    "dataset_contexts",
    "evidence_index",
    "load_evidence",
    "marked_answer",
    "marked_claim",
    "minilm_embedder",
    "resolve_method",
    "split_claims",
    "term_key",
]
