"""Checking claims: each atomic claim's evidence and decision (supported, unsupported, contradicted).

Decisions, in order:

* **contradicted** when a rule finds a source statement the claim goes against: a figure or name
  conflict (the term-level rules of engine/metrics/grounding.py, applied to the claim); a
  **negation** (the claim asserts a verb the sources deny of the entity, "manufactures" against
  "we do not manufacture semiconductors"); or a rule of the **entity profile**
  (engine/metrics/profile/): a **status** the profile rules out (a start-up founded decades ago;
  private or non-profit while listed), a **role** the sources give another party (customers,
  suppliers, competitors), or a **place** (headquartered elsewhere);
* **unsupported / unknown** when a content word of the claim occurs in no source sentence at all
  (an invented product, object or place: "floor systems", "remote workers", "China");
* **supported** when the best support score reaches the method's threshold;
* **unsupported** otherwise.

Each claim gets a *strength*: its support score when supported, 0 when contradicted, and below the
threshold when unsupported (the support, capped at the threshold, times the share of its words the
sources know). What an answer's scores make of the strengths is engine/metrics/claims/scores.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from engine.metrics.claims.atoms import atomic_claims
from engine.metrics.claims.evidence import (
    Embedder,
    EvidenceIndex,
    claim_terms,
    for_embedding,
    minilm_embedder,
    normalised,
    term_key,
)
from engine.metrics.grounding import grounding
from engine.metrics.profile.checks import check_profile, confirm_profile
from engine.metrics.text import _SPECIAL_TOKEN_RE, lower_sentence_starts, mask_entity, numbers_in, words

TOP_EVIDENCE = 3  # source sentences kept per claim (the best one is "the evidence")


@dataclass
class Claim:
    text: str
    start: int  # span in the answer with special tokens removed (what the report marks)
    end: int
    decision: str  # supported | unsupported | contradicted
    rule: str  # support | number | name | negation | status | role | place | unknown | none
    score: float  # best support score (0..1)
    evidence: str | None  # the best source sentence, or what the claim contradicts
    similarity: float | None = None  # embedding cosine of claim and evidence (None: lexical)
    coverage: float = 0.0
    candidates: list[dict[str, Any]] = field(default_factory=list)  # top sentences and scores
    unsupported: list[str] = field(default_factory=list)  # the claim's words the evidence lacks
    source_says: str | None = None  # for a contradiction: the source's figure/name/denial
    strength: float = 0.0  # what the answer's weakest-claim score takes: see the module docstring
    segments: list[list[int]] = field(default_factory=list)  # answer spans the claim's text is made of
    clause: int = 0  # which clause of the answer the atomic claim comes from
    unknown: list[str] = field(default_factory=list)  # the claim's words no source sentence has

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_claims(
    text: str,
    index: EvidenceIndex,
    *,
    entity: str | None = None,
    embedder: Embedder | None = None,
) -> list[Claim]:
    """Every claim of an answer with its evidence and decision (special tokens removed first).

    ``embedder`` embeds the claims; needed when the index is an embedding index (defaults to
    all-MiniLM-L6-v2).
    """
    return check_many([text], index, entity=entity, embedder=embedder)[0]


def check_many(
    texts: Sequence[str],
    index: EvidenceIndex,
    *,
    entity: str | None = None,
    embedder: Embedder | None = None,
) -> list[list[Claim]]:
    """check_claims for several answers, embedding all their claims in one call (scoring a batch).

    A claim text met before in the batch is decided once (sweeps repeat answers: the SmolLM2 demo's
    144 answers hold 344 atomic claims, 227 distinct).
    """
    per_text = [
        atomic_claims(
            _SPECIAL_TOKEN_RE.sub(" ", text).strip(), entity=entity, phrase_text=index.sources.phrase_text
        )
        for text in texts
    ]
    flat = [(n, atom, mask_entity(atom.text, entity)) for n, atoms in enumerate(per_text) for atom in atoms]
    distinct = list(dict.fromkeys((atom.text, masked) for _, atom, masked in flat))
    similarities: np.ndarray | None = None
    if index.method == "embedding" and distinct:
        embed = embedder or minilm_embedder()
        vectors = normalised(embed([for_embedding(masked) for _, masked in distinct]))
        similarities = vectors @ index.vectors.T  # type: ignore[union-attr]
    decided: dict[tuple[str, str], Claim] = {}
    for position, (atom_text, masked) in enumerate(distinct):
        row = None if similarities is None else similarities[position]
        decided[(atom_text, masked)] = _decide(atom_text, 0, 0, masked, index, row)
    results: list[list[Claim]] = [[] for _ in texts]
    for n, atom, masked in flat:
        claim = replace(
            decided[(atom.text, masked)],
            start=atom.start,
            end=atom.end,
            segments=atom.segments,
            clause=atom.clause,
        )
        claim.candidates = [dict(c) for c in claim.candidates]
        claim.unsupported, claim.unknown = list(claim.unsupported), list(claim.unknown)
        results[n].append(claim)
    return results


def _support(
    index: EvidenceIndex, terms: set[str], similarity: np.ndarray | None
) -> list[tuple[float, int, float]]:
    """(support score, sentence index, coverage) for every source sentence, best first."""
    coverage = np.array(
        [len(terms & sentence_terms) / len(terms) if terms else 0.0 for sentence_terms in index.terms]
    )
    score = coverage if similarity is None else 0.5 * np.clip(similarity, 0.0, 1.0) + 0.5 * coverage
    order = np.argsort(-score, kind="mergesort")[:TOP_EVIDENCE]
    return [(float(score[i]), int(i), float(coverage[i])) for i in order]


def _decide(
    claim_text: str, start: int, end: int, masked: str, index: EvidenceIndex, similarity: np.ndarray | None
) -> Claim:
    term_pairs = claim_terms(masked)
    # Support is about what the claim says the company does it *to*: the common verbs ("designs",
    # "sells") weigh nothing, so "designs GPUs for gaming" is matched on GPUs and gaming. The
    # negation and role rules still read the verbs.
    terms = {term for term, _ in term_pairs if term not in _COMMON_VERBS}
    ranked = _support(index, terms, similarity)
    best_score, best_index, best_coverage = ranked[0] if ranked else (0.0, -1, 0.0)
    candidates = [
        {
            "sentence": index.display[i],
            "score": round(score, 4),
            "coverage": round(coverage, 4),
            **({"similarity": round(float(similarity[i]), 4)} if similarity is not None else {}),
        }
        for score, i, coverage in ranked
    ]
    evidence = index.display[best_index] if best_index >= 0 else None
    claim = Claim(
        text=claim_text,
        start=start,
        end=end,
        decision="unsupported",
        rule="none",
        score=round(best_score, 4),
        evidence=evidence,
        similarity=None if similarity is None or best_index < 0 else round(float(similarity[best_index]), 4),
        coverage=round(best_coverage, 4),
        candidates=candidates,
        unsupported=_missing_words(term_pairs, index.terms[best_index] if best_index >= 0 else set()),
    )
    on_topic = best_index if best_score >= index.threshold else None
    contradiction = _contradiction(masked, index, term_pairs, on_topic)
    if contradiction is not None:
        rule, source_sentence, source_says, culprit = contradiction
        claim.decision, claim.rule = "contradicted", rule
        claim.evidence, claim.source_says = source_sentence, source_says
        if culprit:
            inside = {w.lower() for w in words(culprit)}
            claim.unsupported = [culprit] + [
                w for w in claim.unsupported if w != culprit and w.lower() not in inside
            ]
    elif (confirmed := confirm_profile(lower_sentence_starts(masked), index.profile)) is not None:
        # A status or place the profile states ("is listed on Nasdaq", "headquartered in Boise").
        claim.decision, claim.rule = "supported", "profile"
        claim.evidence, claim.source_says, claim.unsupported = confirmed.sentence, confirmed.source_says, []
        claim.score = round(max(best_score, index.threshold), 4)
    elif not terms:
        claim.rule = "vague"  # nothing to check ("is a company"): left out of the answer's scores
    else:
        unknown = _unknown_words(term_pairs, index)
        claim.unknown = unknown
        if unknown:
            claim.decision, claim.rule = "unsupported", "unknown"
            claim.unsupported = unknown + [w for w in claim.unsupported if w not in unknown]
        elif best_score >= index.threshold:
            claim.decision, claim.rule = "supported", "support"
    claim.strength = round(_strength(claim, term_pairs, index.threshold), 4)
    return claim


# Verbs any company description uses: a source set that never says "builds" has not denied it.
_COMMON_VERBS = frozenset(
    term_key(w)
    for w in """design designs designed designing make makes making build builds building sell sells
    selling sold offer offers offering provide provides providing develop develops developing produce
    produces producing operate operates operating run runs running deliver delivers delivering supply
    supplies supplying distribute distributes distributing create creates creating own owns serve
    serves serving focus focuses specialize specializes specialise specialises enable enables help
    helps use uses support supports manufacture manufactures manufacturing work works""".split()
)


def _unknown_words(term_pairs: Sequence[tuple[str, str]], index: EvidenceIndex) -> list[str]:
    """The claim's words (not figures, not common company verbs) no source sentence has, as written."""
    seen: dict[str, None] = {}
    for term, surface in term_pairs:
        if term in _COMMON_VERBS:
            continue
        if not term.startswith("#") and not index.knows(term):
            seen.setdefault(surface, None)
    return list(seen)


def _strength(claim: Claim, term_pairs: Sequence[tuple[str, str]], threshold: float) -> float:
    """Supported: the support score; contradicted: 0; unsupported: below the threshold, lower still
    for each of its words no source has."""
    if claim.decision == "contradicted":
        return 0.0
    if claim.decision == "supported":
        return claim.score
    checked = {term for term, _ in term_pairs}
    unknown = {term for term, surface in term_pairs if surface in claim.unknown}
    known_share = 1.0 - len(unknown) / len(checked) if checked else 0.0
    # Just under the threshold at most: an unsupported claim never outranks a supported one.
    return min(claim.score, threshold - 1e-4) * known_share


def _missing_words(term_pairs: Sequence[tuple[str, str]], evidence_terms: set[str]) -> list[str]:
    seen: dict[str, None] = {}
    for term, surface in term_pairs:
        if term not in evidence_terms:
            seen.setdefault(surface, None)
    return list(seen)


def _contradiction(
    masked: str, index: EvidenceIndex, term_pairs: Sequence[tuple[str, str]], on_topic: int | None
) -> tuple[str, str, str, str | None] | None:
    """(rule, source sentence, what the source says, the claim's offending word) or None.

    ``on_topic`` is the evidence sentence the claim matched well enough to be about the same thing.
    """
    figures = grounding(masked, index.sources)
    if figures.conflicts:
        first = figures.conflicts[0]
        rule = "number" if any(ch.isdigit() for ch in first["claim"]) else "name"
        return rule, first["source"], first["source_says"], first["claim"]
    if on_topic is not None:
        stated = numbers_in(index.sentences[on_topic])
        for fact in numbers_in(lower_sentence_starts(masked)):
            if index.sources.has_number(fact) or (fact.kind == "plain" and not fact.has_unit):
                continue
            others = [f.surface for f in stated if f.kind == fact.kind and f.value != fact.value]
            if others:
                return "number", index.display[on_topic], others[0], fact.surface
    prepared = lower_sentence_starts(masked)
    finding = check_profile(prepared, index.profile)
    if finding is not None:
        return finding.rule, finding.sentence, finding.source_says, finding.culprit
    tokens = [w.lower() for w in words(prepared)]
    for term, surface in term_pairs:
        denied = index.denials.get(term)
        if denied is None or _negated_in_claim(tokens, surface.lower()) or _as_noun(tokens, surface.lower()):
            continue
        return "negation", index.display[denied], f"does not {surface.lower()}", surface
    return None


_NOUN_BEFORE = frozenset("for of in on the a an its their our his her with into".split())


def _as_noun(tokens: Sequence[str], word: str) -> bool:
    """The word is used as a noun, not asserted as a verb ("chips for manufacturing")."""
    return any(token == word and i > 0 and tokens[i - 1] in _NOUN_BEFORE for i, token in enumerate(tokens))


def _negated_in_claim(tokens: Sequence[str], word: str) -> bool:
    """The claim itself negates the word ("does not manufacture"): then it agrees with a denial."""
    for i, token in enumerate(tokens):
        if token == word and any(t in ("not", "never", "n't", "no") for t in tokens[max(0, i - 3) : i]):
            return True
    return False


def answer_claims(
    texts: Sequence[str], *, refusals: Sequence[bool], index: EvidenceIndex | None, entity: str | None = None
) -> list[list[Claim]]:
    """The claims checked for stored answers: none for a refusal (no claim made) or without sources."""
    if index is None:
        return [[] for _ in texts]
    checked = [text for text, refusal in zip(texts, refusals, strict=True) if not refusal]
    found = iter(check_many(checked, index, entity=entity))
    return [[] if refusal else next(found) for refusal in refusals]
