"""The evidence index: source sentences with their terms, denials and (maybe) embeddings.

A claim's evidence is the source sentence with the best *support score*: the mean of the claim's
embedding cosine to the sentence (all-MiniLM-L6-v2, offline) and its *coverage* (share of the
claim's terms that the sentence contains). Without the embedding package the score is the coverage
alone (``lexical``). Here: the terms a claim is checked on (``claim_terms``), the index of one
source set (``build_evidence_index``, cached per process by ``evidence_index`` / ``load_evidence``),
the support threshold and the versions stored claims are keyed by (``claims_key``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.dataset import load_items
from engine.metrics.claims.atoms import SENTENCE_END
from engine.metrics.grounding import SourceIndex, load_sources
from engine.metrics.profile.extract import extract_profile
from engine.metrics.profile.model import PROFILE_VERSION, EntityProfile
from engine.metrics.text import _STOPWORDS, lower_sentence_starts, mask_entity, numbers_in, stem, words

# Bump when a definition of engine/metrics/claims/ changes: stored claims with an older version are
# recomputed.
CLAIMS_VERSION = 2  # 2: atomic claims, the entity profile, unknown words, strengths

# A claim is supported when its best support score reaches this (chosen on the original run,
# see docs/METRICS.md; both methods are validated there).
SUPPORTED_AT = {"embedding": 0.45, "lexical": 0.45}

# Words too generic to count as the content of a claim ("X is a company that ...").
# Also the words any company description uses ("a global leader that specializes in ..."): they
# neither support nor sink a claim.
_GENERIC = frozenset(
    "company corporation firm business organization organisation technology technologies "
    "variety range various several number products product "
    "global multinational international worldwide leading leader innovative innovation pioneering "
    "advanced cutting edge specialize specializes specializing specialized focus focuses focused "
    "focusing provide provides providing provider providers offer offers offering deliver delivers "
    "delivering develop develops developing solution solutions service services industry industries "
    "field sector market markets "
    "tech platform platforms system systems known".split()
)

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


@dataclass
class EvidenceIndex:
    """The source sentences a claim can be checked against, with their terms and (maybe) vectors."""

    sentences: list[str]  # as analysed: entity removed, sentence starts lower-cased
    display: list[str]  # the same sentences as the sources write them (what a reader is shown)
    terms: list[set[str]]
    vectors: np.ndarray | None  # normalised embeddings, one row per sentence; None for lexical
    method: str  # embedding | lexical
    denials: dict[str, int]  # denied verb stem -> index of the sentence that denies it
    sources: SourceIndex
    key: str
    profile: EntityProfile | None = None  # what the sources say the company is (engine/metrics/profile/)
    vocabulary: set[str] = field(default_factory=set)  # every term of every source sentence
    prefixes: dict[str, set[str]] = field(default_factory=dict)  # 5-letter prefix -> vocabulary terms

    def knows(self, term: str) -> bool:
        """A claim term occurs in some source sentence (or a word sharing its first 5+ letters as a
        prefix does: 'robotics' / 'robots', 'manufacturer' / 'manufacture')."""
        if term in self.vocabulary or term.startswith("#"):
            return True
        if len(term) < 5:
            return False
        core = _core(term)  # 'suppli' (supplies) meets 'supply'
        return any(
            core.startswith(known) or known.startswith(core) for known in self.prefixes.get(term[:5], ())
        )

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
    profile: EntityProfile | None = None,
) -> EvidenceIndex:
    """Index source sentences: from the raw context ``texts`` when given (so evidence reads as
    written), else from the source index's own (entity-less) sentences. The entity profile is
    extracted from the same texts unless one is given (a stored one)."""
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
    for index, sentence in enumerate(sentences):
        for match in _DENIAL.finditer(sentence):
            verb = match.group("verb").lower()
            if verb not in _LIGHT_VERBS:
                denials.setdefault(term_key(verb), index)
    vectors = None if embedder is None else normalised(embedder([for_embedding(s) for s in sentences]))
    terms = [_sentence_terms(s) for s in sentences]
    vocabulary = set().union(*terms) if terms else set()
    for sentence in sentences:  # stop words and generic words too: only content words are asked about
        vocabulary.update(term_key(w.lower()) for w in words(sentence) if w[0].isalpha())
    prefixes: dict[str, set[str]] = {}
    for term in vocabulary:
        if len(term) >= 5:
            prefixes.setdefault(term[:5], set()).add(_core(term))
    if profile is None:
        profile = extract_profile(list(texts) if texts is not None else display, entity)
    return EvidenceIndex(
        sentences=sentences,
        display=display,
        terms=terms,
        vectors=vectors,
        method="lexical" if embedder is None else "embedding",
        denials=denials,
        sources=sources,
        key=f"{sources.key}|{'embedding' if embedder else 'lexical'}|c{CLAIMS_VERSION}",
        profile=profile,
        vocabulary=vocabulary,
        prefixes=prefixes,
    )


def _core(term: str) -> str:
    """A term without a final y / i / e, so inflections of one word share a prefix."""
    return term.rstrip("yie") if len(term) > 5 else term


def _split_sentences(text: str) -> list[str]:
    parts = []
    for sentence in SENTENCE_END.split(text):
        parts.extend(p.strip() for p in _SPLIT_SOURCE.split(sentence) if p.strip())
    return parts


def for_embedding(text: str) -> str:
    # The entity is already cut out of both sides; a neutral subject keeps sentences readable.
    cleaned = " ".join(text.split())
    return cleaned or "(empty)"


def normalised(vectors: np.ndarray) -> np.ndarray:
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
    return f"{context_key}|c{CLAIMS_VERSION}|p{PROFILE_VERSION}"


def evidence_index(
    sources: SourceIndex,
    *,
    texts: Sequence[str] | None = None,
    entity: str | None = None,
    method: str = "auto",
    profile: EntityProfile | None = None,
) -> EvidenceIndex:
    """The evidence index of these sources, built once per process and method (embedding is costly).

    ``profile``: the entity profile to check claims against (a stored one); extracted when None.
    """
    method = resolve_method(method)
    key = (sources.key, method)
    if key not in _INDEXES:
        if len(_INDEXES) >= _INDEX_LIMIT:
            _INDEXES.pop(next(iter(_INDEXES)))
        embedder = minilm_embedder() if method == "embedding" else None
        _INDEXES[key] = build_evidence_index(
            sources, texts=texts, entity=entity, embedder=embedder, profile=profile
        )
    return _INDEXES[key]


def dataset_contexts(path: str | None) -> list[str]:
    """The ``context`` fields of a QA file (what the evidence and the profile are built from)."""
    return [item.context for item in load_items(path, require_context=False)] if path else []


def load_evidence(
    path: str | None, entity: str | None, *, method: str = "auto", profile: EntityProfile | None = None
) -> EvidenceIndex | None:
    """The evidence index of a QA file's ``context`` fields (as load_sources), or None without one."""
    sources = load_sources(path, entity)
    if sources is None:
        return None
    method = resolve_method(method)
    if (sources.key, method) not in _INDEXES:
        return evidence_index(
            sources, texts=dataset_contexts(path), entity=entity, method=method, profile=profile
        )
    return _INDEXES[(sources.key, method)]
