"""Claim-level grounding: split an answer into claims, find each claim's evidence, decide its support.

A claim is a sentence, or a coordinated clause of one ("...; ..." / "..., but ..."). Its evidence
is the source sentence with the best *support score*: the mean of the claim's embedding cosine to
the sentence (all-MiniLM-L6-v2, offline) and its *coverage* (share of the claim's terms that the
sentence contains). Without the embedding package the score is the coverage alone (``lexical``).

Decisions, in order:

* **contradicted** when a rule finds a source statement the claim goes against: a figure or name
  conflict (the term-level rules of engine/metrics/grounding.py, applied to the claim); a
  **negation** (the claim asserts a verb the sources deny of the entity, "manufactures" against
  "we do not manufacture semiconductors"); or a **status** conflict (the claim calls a listed
  company private: "privately held" against sources about its common stock);
* **supported** when the best support score reaches the method's threshold;
* **unsupported** otherwise.

The answer's claim grounding is the share of supported claims. Definitions, limits and the
validation on the original run are in docs/METRICS.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from engine.dataset import load_items
from engine.metrics.grounding import SourceIndex, grounding, load_sources
from engine.metrics.text import (
    _SPECIAL_TOKEN_RE,
    _STOPWORDS,
    lower_sentence_starts,
    mask_entity,
    numbers_in,
    stem,
    words,
)

# Bump when a definition below changes: stored claims with an older version are recomputed.
CLAIMS_VERSION = 1

# A claim is supported when its best support score reaches this (chosen on the original run,
# see docs/METRICS.md; both methods are validated there).
SUPPORTED_AT = {"embedding": 0.45, "lexical": 0.45}
TOP_EVIDENCE = 3  # source sentences kept per claim (the best one is "the evidence")

# Words too generic to count as the content of a claim ("X is a company that ...").
_GENERIC = frozenset(
    "company corporation firm business organization organisation technology technologies "
    "variety range various several number products product".split()
)

# ------------------------------------------------------------------ claims


@dataclass
class Claim:
    text: str
    start: int  # span in the answer with special tokens removed (what the report marks)
    end: int
    decision: str  # supported | unsupported | contradicted
    rule: str  # support | number | name | negation | status | none
    score: float  # best support score (0..1)
    evidence: str | None  # the best source sentence, or what the claim contradicts
    similarity: float | None = None  # embedding cosine of claim and evidence (None: lexical)
    coverage: float = 0.0
    candidates: list[dict[str, Any]] = field(default_factory=list)  # top sentences and scores
    unsupported: list[str] = field(default_factory=list)  # the claim's words the evidence lacks
    source_says: str | None = None  # for a contradiction: the source's figure/name/denial

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_CLAUSE_BREAK = re.compile(
    r";\s+"
    r"|,\s+(?:but|while|whereas|although|yet)\s+(?!not limited\b)"
    r"|\s+(?:but|whereas|although)\s+(?!not limited\b)"
    r"|,?\s+while\s+(?=still\b|also\b|it\b|they\b|the\b)"
    r"|,\s+and\s+(?=(?:it|they|we|he|she|this|its|their|the company)\b)",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|\n+")
_MIN_CLAIM_WORDS = 3


def split_claims(text: str) -> list[tuple[str, int, int]]:
    """(claim, start, end) spans: sentences, then coordinated clauses of 3+ words each."""
    spans: list[tuple[int, int]] = []
    position = 0
    for match in [*_SENTENCE_END.finditer(text), None]:
        end = match.start() if match else len(text)
        spans.extend(_clauses(text, position, end))
        position = match.end() if match else len(text)
    claims = []
    for start, end in spans:
        piece = text[start:end]
        lead = len(piece) - len(piece.lstrip())
        piece = piece.strip()
        if piece and len(words(piece)) >= 1:
            claims.append((piece, start + lead, start + lead + len(piece)))
    return claims


def _clauses(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Split one sentence at clause breaks, keeping a part that would be under 3 words with its neighbour."""
    cuts = [start]
    for match in _CLAUSE_BREAK.finditer(text, start, end):
        left = text[cuts[-1] : match.start()]
        right = text[match.end() : end]
        if len(words(left)) >= _MIN_CLAIM_WORDS and len(words(right)) >= _MIN_CLAIM_WORDS:
            cuts.extend([match.start(), match.end()])
    cuts.append(end)
    return [(cuts[i], cuts[i + 1]) for i in range(0, len(cuts), 2)]


# ------------------------------------------------------------------ terms and the evidence index


# Words, hyphenated words and letter-digit tokens ("3D", "H100"); plain figures go through numbers_in.
_TERM_RE = re.compile(r"[A-Za-z][A-Za-z0-9&'\-]*|\d+[A-Za-z][A-Za-z0-9]*")


def term_key(word: str) -> str:
    """A word's stem with a trailing 'e' dropped, so 'manufacture' and 'manufactures' meet."""
    stemmed = stem(word)
    return stemmed[:-1] if len(stemmed) > 4 and stemmed.endswith("e") else stemmed


def claim_terms(text: str) -> list[tuple[str, str]]:
    """(term, surface) pairs a claim is checked on: stems of content words and names, and figures.

    Expects the entity already masked. Stop words and generic words ("company") are left out.
    """
    prepared = lower_sentence_starts(text)
    terms: list[tuple[str, str]] = []
    number_spans = []
    for fact in numbers_in(prepared):
        end = fact.start + len(fact.surface)
        if end < len(prepared) and prepared[end].isalpha():
            continue  # "3D" is a name, not the figure 3
        terms.append((f"#{fact.value}", fact.surface))
        number_spans.append((fact.start, fact.start + len(fact.surface)))
    for match in _TERM_RE.finditer(prepared):
        if any(a <= match.start() < b for a, b in number_spans):
            continue
        word = match.group(0)
        for part in word.split("-") if not word[0].isdigit() else [word]:
            lowered = part.lower()
            if lowered in _STOPWORDS or lowered in _GENERIC or (len(part) < 3 and not part.isupper()):
                continue
            terms.append((term_key(lowered), part if part == word or len(part) >= 3 else word))
    return terms


def _sentence_terms(sentence: str) -> set[str]:
    return {term for term, _ in claim_terms(sentence)}


_SPLIT_SOURCE = re.compile(r"(?<=[a-z0-9%)][.!?])\s+")

# The sources deny a verb of the entity itself: "we do not manufacture", "the company does not sell".
_DENIAL = re.compile(
    r"(?:^|\b(?:we|it|the company)\s+|^\s*)(?:do|does|did)\s+not\s+(?P<verb>[a-z]+)", re.IGNORECASE
)
# Verbs too light or too hedged to read a denial of as a statement about the business.
_LIGHT_VERBS = frozenset(
    "be have do make take get give use know believe expect intend anticipate plan need want see "
    "think guarantee control own recognize recognise consider record include become contain "
    "grant achieve".split()
)

# A claim that the company is private, and source wording only a listed company uses.
_PRIVATE_CLAIM = re.compile(
    r"\bprivate(?:ly)?[- ](?:held|owned)\b|\bprivate (?:company|firm|corporation)\b"
    r"|\bnot publicly (?:traded|listed|held)\b|\bunlisted\b",
    re.IGNORECASE,
)
_LISTED_SOURCE = re.compile(
    r"\b(?:common stock|stockholders?|shareholders?|share repurchase|publicly traded|nasdaq|nyse"
    r"|stock exchange|proxy statement)\b",
    re.IGNORECASE,
)


@dataclass
class EvidenceIndex:
    """The source sentences a claim can be checked against, with their terms and (maybe) vectors."""

    sentences: list[str]  # as analysed: entity removed, sentence starts lower-cased
    display: list[str]  # the same sentences as the sources write them (what a reader is shown)
    terms: list[set[str]]
    vectors: np.ndarray | None  # normalised embeddings, one row per sentence; None for lexical
    method: str  # embedding | lexical
    denials: dict[str, int]  # denied verb stem -> index of the sentence that denies it
    listed: int | None  # index of a sentence only a listed company would write, if any
    sources: SourceIndex
    key: str

    @property
    def threshold(self) -> float:
        return SUPPORTED_AT[self.method]


Embedder = Callable[[Sequence[str]], np.ndarray]


def build_evidence_index(
    sources: SourceIndex,
    *,
    texts: Sequence[str] | None = None,
    entity: str | None = None,
    embedder: Embedder | None = None,
) -> EvidenceIndex:
    """Index source sentences: from the raw context ``texts`` when given (so evidence reads as
    written), else from the source index's own (entity-less) sentences."""
    pairs: dict[str, str] = {}  # analysed sentence -> as written
    if texts is not None:
        for text in dict.fromkeys(t.strip() for t in texts if t and t.strip()):
            for sentence in _split_sentences(text):
                analysed = lower_sentence_starts(mask_entity(sentence, entity)).strip()
                if analysed:
                    pairs.setdefault(analysed, sentence)
    else:
        for sentence in _split_sentences("\n".join(sources.sentences)):
            pairs.setdefault(sentence, sentence[:1].upper() + sentence[1:])
    sentences, display = list(pairs), list(pairs.values())
    denials: dict[str, int] = {}
    listed = None
    for index, sentence in enumerate(sentences):
        for match in _DENIAL.finditer(sentence):
            verb = match.group("verb").lower()
            if verb not in _LIGHT_VERBS:
                denials.setdefault(term_key(verb), index)
        if listed is None and _LISTED_SOURCE.search(sentence):
            listed = index
    vectors = None if embedder is None else _normalised(embedder([_for_embedding(s) for s in sentences]))
    return EvidenceIndex(
        sentences=sentences,
        display=display,
        terms=[_sentence_terms(s) for s in sentences],
        vectors=vectors,
        method="lexical" if embedder is None else "embedding",
        denials=denials,
        listed=listed,
        sources=sources,
        key=f"{sources.key}|{'embedding' if embedder else 'lexical'}|c{CLAIMS_VERSION}",
    )


def _split_sentences(text: str) -> list[str]:
    parts = []
    for sentence in _SENTENCE_END.split(text):
        parts.extend(p.strip() for p in _SPLIT_SOURCE.split(sentence) if p.strip())
    return parts


def _for_embedding(text: str) -> str:
    # The entity is already cut out of both sides; a neutral subject keeps sentences readable.
    cleaned = " ".join(text.split())
    return cleaned or "(empty)"


def _normalised(vectors: np.ndarray) -> np.ndarray:
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2:  # no sentence to embed: an empty (0, d) matrix, not a 1-d array
        return matrix.reshape(len(matrix), -1)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


def minilm_embedder() -> Embedder:
    """all-MiniLM-L6-v2 from the offline package (loaded once per process, with the cell metrics)."""
    from engine.metrics.cell import _embedding_model

    model = _embedding_model()

    def embed(texts: Sequence[str]) -> np.ndarray:
        return np.asarray(model.encode(list(texts), normalize_embeddings=True, show_progress_bar=False))

    return embed


_INDEXES: dict[tuple[str, str], EvidenceIndex] = {}
_INDEX_LIMIT = 4


def resolve_method(method: str = "auto") -> str:
    """'embedding' or 'lexical': what 'auto' means here (the embedding package, unless switched off)."""
    from engine.metrics.cell import embeddings_available

    if method == "auto":
        method = "embedding" if embeddings_available() else "lexical"
    if method not in SUPPORTED_AT:
        raise ValueError(f"unknown evidence method {method!r}")
    return method


def claims_key(context_key: str) -> str:
    """What stored claims were computed against: the metrics context and the claims version.

    Not the evidence method: like a cell's similarity method, claims keep the method they were
    computed with (stored with them) until their sources or definitions change.
    """
    return f"{context_key}|c{CLAIMS_VERSION}"


def evidence_index(
    sources: SourceIndex,
    *,
    texts: Sequence[str] | None = None,
    entity: str | None = None,
    method: str = "auto",
) -> EvidenceIndex:
    """The evidence index of these sources, built once per process and method (embedding is costly)."""
    method = resolve_method(method)
    key = (sources.key, method)
    if key not in _INDEXES:
        if len(_INDEXES) >= _INDEX_LIMIT:
            _INDEXES.pop(next(iter(_INDEXES)))
        embedder = minilm_embedder() if method == "embedding" else None
        _INDEXES[key] = build_evidence_index(sources, texts=texts, entity=entity, embedder=embedder)
    return _INDEXES[key]


def load_evidence(path: str | None, entity: str | None, *, method: str = "auto") -> EvidenceIndex | None:
    """The evidence index of a QA file's ``context`` fields (as load_sources), or None without one."""
    sources = load_sources(path, entity)
    if sources is None:
        return None
    method = resolve_method(method)
    if (sources.key, method) not in _INDEXES:
        texts = [item.context for item in load_items(path, require_context=False)]
        return evidence_index(sources, texts=texts, entity=entity, method=method)
    return _INDEXES[(sources.key, method)]


# ------------------------------------------------------------------ checking claims


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
    """check_claims for several answers, embedding all their claims in one call (scoring a batch)."""
    per_text = [split_claims(_SPECIAL_TOKEN_RE.sub(" ", text).strip()) for text in texts]
    flat = [(n, span, mask_entity(span[0], entity)) for n, spans in enumerate(per_text) for span in spans]
    similarities: np.ndarray | None = None
    if index.method == "embedding" and flat:
        embed = embedder or minilm_embedder()
        vectors = _normalised(embed([_for_embedding(masked) for _, _, masked in flat]))
        similarities = vectors @ index.vectors.T  # type: ignore[union-attr]
    results: list[list[Claim]] = [[] for _ in texts]
    for position, (n, (claim_text, start, end), masked) in enumerate(flat):
        row = None if similarities is None else similarities[position]
        results[n].append(_decide(claim_text, start, end, masked, index, row))
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
    terms = {term for term, _ in term_pairs}
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
    elif best_score >= index.threshold:
        claim.decision, claim.rule = "supported", "support"
    return claim


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
    if _PRIVATE_CLAIM.search(prepared) and index.listed is not None:
        said = _LISTED_SOURCE.search(index.sentences[index.listed])
        culprit = _PRIVATE_CLAIM.search(prepared)
        return (
            "status",
            index.display[index.listed],
            f"a listed company ({said.group(0) if said else 'shares'})",
            culprit.group(0) if culprit else None,
        )
    tokens = [w.lower() for w in words(prepared)]
    for term, surface in term_pairs:
        denied = index.denials.get(term)
        if denied is None or _negated_in_claim(tokens, surface.lower()):
            continue
        return "negation", index.display[denied], f"does not {surface.lower()}", surface
    return None


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


def claim_grounding(claims: Sequence[Claim | dict[str, Any]]) -> float | None:
    """Share of supported claims; None when the answer has no claim."""
    if not claims:
        return None
    decisions = [c.decision if isinstance(c, Claim) else c["decision"] for c in claims]
    return decisions.count("supported") / len(decisions)


def marked_answer(text: str, claims: Sequence[dict[str, Any]], *, mark: Callable[[str, str], str]) -> str:
    """The answer with each claim's unsupported words wrapped by ``mark(word, decision)``.

    Works on the answer with special tokens removed (the text the claim spans refer to).
    """
    clean = _SPECIAL_TOKEN_RE.sub(" ", text).strip()
    pieces: list[str] = []
    position = 0
    for claim in sorted(claims, key=lambda c: c["start"]):
        start, end = int(claim["start"]), int(claim["end"])
        pieces.append(clean[position:start])
        pieces.append(_mark_words(clean[start:end], claim.get("unsupported") or [], claim["decision"], mark))
        position = end
    pieces.append(clean[position:])
    return "".join(pieces)


def marked_claim(claim: dict[str, Any], *, mark: Callable[[str, str], str]) -> str:
    """One claim's text with its unsupported words wrapped by ``mark(word, decision)``."""
    return _mark_words(claim["text"], claim.get("unsupported") or [], claim["decision"], mark)


def _mark_words(span: str, unsupported: Sequence[str], decision: str, mark: Callable[[str, str], str]) -> str:
    if not unsupported:
        return span
    pattern = re.compile(
        "|".join(rf"(?<![\w$]){re.escape(w)}(?![\w])" for w in sorted(unsupported, key=len, reverse=True))
    )
    return pattern.sub(lambda m: mark(m.group(0), decision), span)
