"""Claim-level grounding: split an answer into atomic claims, find each one's evidence, decide its support.

A clause is a sentence, or a coordinated clause of one ("...; ..." / "..., but ..."). Each clause is
split further into **atomic claims** (the FActScore idea, done with rules): coordinated objects and
predicates become separate claims sharing the rest of the clause ("designs A and B" -> "designs A",
"designs B"), and a copular clause's relative clause becomes its own claim ("is a start-up that
designs robots" -> "is a start-up", "designs robots"). Each atomic claim keeps the character
segments of the answer it is made of. Its evidence
is the source sentence with the best *support score*: the mean of the claim's embedding cosine to
the sentence (all-MiniLM-L6-v2, offline) and its *coverage* (share of the claim's terms that the
sentence contains). Without the embedding package the score is the coverage alone (``lexical``).

Decisions, in order:

* **contradicted** when a rule finds a source statement the claim goes against: a figure or name
  conflict (the term-level rules of engine/metrics/grounding.py, applied to the claim); a
  **negation** (the claim asserts a verb the sources deny of the entity, "manufactures" against
  "we do not manufacture semiconductors"); or a rule of the **entity profile**
  (engine/metrics/profile.py): a **status** the profile rules out (a start-up founded decades ago;
  private or non-profit while listed), a **role** the sources give another party (customers,
  suppliers, competitors), or a **place** (headquartered elsewhere);
* **unsupported / unknown** when a content word of the claim occurs in no source sentence at all
  (an invented product, object or place: "floor systems", "remote workers", "China");
* **supported** when the best support score reaches the method's threshold;
* **unsupported** otherwise.

Each claim gets a *strength*: its support score when supported, 0 when contradicted, and below the
threshold when unsupported (the support, capped at the threshold, times the share of its words the
sources know). An answer's ``claim_support_min`` is its weakest claim's strength (the default
hallucination score: continuous, and one invented conjunct sinks it); ``claim_grounding`` is the
share of supported claims. Definitions, limits and the validation are in docs/METRICS.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from engine.dataset import load_items
from engine.metrics.grounding import SourceIndex, grounding, load_sources
from engine.metrics.profile import (
    PROFILE_VERSION,
    EntityProfile,
    check_profile,
    confirm_profile,
    extract_profile,
)
from engine.metrics.text import (
    _SPECIAL_TOKEN_RE,
    _STOPWORDS,
    _phrase,
    lower_sentence_starts,
    mask_entity,
    numbers_in,
    stem,
    words,
)

# Bump when a definition below changes: stored claims with an older version are recomputed.
CLAIMS_VERSION = 2  # 2: atomic claims, the entity profile, unknown words, strengths

# A claim is supported when its best support score reaches this (chosen on the original run,
# see docs/METRICS.md; both methods are validated there).
SUPPORTED_AT = {"embedding": 0.45, "lexical": 0.45}
TOP_EVIDENCE = 3  # source sentences kept per claim (the best one is "the evidence")

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

# ------------------------------------------------------------------ claims


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


# ------------------------------------------------------------------ atomic claims

# Tokens of a clause: figures, words (hyphens, apostrophes, inner dots), and the punctuation that
# separates list items.
_TOKEN_RE = re.compile(r"\$?\d[\d,]*(?:\.\d+)?%?|[A-Za-z0-9][A-Za-z0-9&'’\-\.]*[A-Za-z0-9%]|[A-Za-z0-9]|[,;:&()]")
_COORDINATORS = frozenset({"and", "or", "&", "and/or"})
# Words a conjunct never crosses: prepositions, relative pronouns, copulas and auxiliaries.
_CONJUNCT_END = frozenset(
    """for to in on at with by from through that which who whose whom including such across into via like
    while where when because as under over since during than of is are was were be been being has have
    had can could will would may might should must not also its their our his her a an the this these
    those whereby""".split()
)
_DETERMINER = frozenset("a an the this these those its their our his her".split())
_COPULAS = frozenset("is are was were".split())
_RELATIVES = frozenset("that which who".split())
_SUBJECT_WORDS = frozenset("it they he she we this the company corporation inc".split())
# Verbs companies are described with; a word in this list (or after "that") opens a predicate.
_PREDICATE_VERBS = frozenset(
    """design designs designing make makes making manufacture manufactures manufacturing build builds
    building sell sells selling offer offers offering provide provides providing develop develops
    developing produce produces producing operate operates operating run runs running deliver delivers
    delivering supply supplies supplying distribute distributes distributing create creates creating
    own owns owning serve serves serving focus focuses focusing specialize specializes specializing
    specialise specialises enable enables enabling help helps helping use uses using support supports
    supporting schedule schedules scheduling monitor monitors monitoring move moves moving invest
    invests investing program programs programming train trains training ship ships shipping market
    markets marketing sells engineer engineers engineering install installs installing maintain
    maintains maintaining assemble assembles assembling power powers powering trade trades trading""".split()
)
_MAX_CONJUNCT = 6  # words; longer "conjuncts" are clauses the rules do not split


@dataclass(frozen=True)
class _Tok:
    text: str
    start: int
    end: int
    index: int  # position in the clause's token list (shared tokens are the same object in atoms)


def _tokens(text: str, start: int, end: int) -> list[_Tok]:
    return [
        _Tok(m.group(0), m.start(), m.end(), i) for i, m in enumerate(_TOKEN_RE.finditer(text, start, end))
    ]


def _is_verb(tokens: Sequence[_Tok], i: int, predicate: int | None) -> bool:
    word = tokens[i].text.lower()
    if i == predicate or word in _PREDICATE_VERBS:
        return True
    return i > 0 and tokens[i - 1].text.lower() in _RELATIVES and word.endswith(("s", "ing", "ed"))


def _predicate_start(tokens: Sequence[_Tok], entity: str | None) -> int | None:
    """Index of the clause's first predicate word: after the entity (or a pronoun) that opens it."""
    i = 0
    entity_words = {w.lower() for w in words(entity or "")}
    while i < len(tokens) and i < 4 and (
        tokens[i].text.lower() in entity_words
        or tokens[i].text.lower() in _SUBJECT_WORDS
        or tokens[i].text.lower() in ("'s", ",")
        or tokens[i].text.rstrip(".").lower() in ("inc", "corp", "ltd", "llc", "corporation")
    ):
        i += 1
    if 0 < i < len(tokens) and tokens[i].text[:1].islower():
        return i
    return None


def _split_relative(tokens: list[_Tok]) -> list[list[_Tok]]:
    """'X is a NP that VP' -> 'X is a NP', 'X VP' (only after a copula, where the NP is X)."""
    for c, token in enumerate(tokens[:6]):
        if token.text.lower() in _COPULAS:
            for r in range(c + 2, min(len(tokens), c + 2 + _MAX_CONJUNCT)):
                word = tokens[r].text.lower()
                if word in _RELATIVES and r + 1 < len(tokens):
                    return [tokens[:r], tokens[:c] + tokens[r + 1 :]]
                if word in _CONJUNCT_END - _DETERMINER or word in (",", ";"):
                    return [tokens]
            return [tokens]
    return [tokens]


def _conjunct_right(tokens: Sequence[_Tok], i: int) -> int:
    """End (exclusive) of the conjunct starting at i: up to a boundary, a comma or another coordinator."""
    j = i
    while j < len(tokens) and j - i < _MAX_CONJUNCT + 1:
        word = tokens[j].text.lower()
        if word in (",", ";", ":", "(", ")") or word in _COORDINATORS:
            break
        if word in _CONJUNCT_END and not (j == i and word in _DETERMINER):
            break
        j += 1
    return j


def _conjunct_left(tokens: Sequence[_Tok], i: int, predicate: int | None) -> int:
    """Start of the conjunct ending at i (inclusive): back to a boundary, a comma or a verb."""
    j = i
    while j >= 0 and i - j < _MAX_CONJUNCT:
        word = tokens[j].text.lower()
        if word in (",", ";", ":", "(", ")") or word in _COORDINATORS or word in _CONJUNCT_END:
            break
        if _is_verb(tokens, j, predicate):
            return j if j == i else j + 1  # a verb ends the conjunct, unless it is the conjunct
        j -= 1
    return j + 1


def _coordination(
    tokens: list[_Tok], predicate: int | None, phrase_text: str
) -> tuple[list[tuple[int, int]], int] | None:
    """The first coordination rules can split: ([(start, end) of each conjunct], end of the shared
    object for verb coordinations or -1)."""
    for c, token in enumerate(tokens):
        if token.text.lower() not in _COORDINATORS or c == 0 or c + 1 >= len(tokens):
            continue
        left_end = c - 1 if tokens[c - 1].text != "," else c - 2
        if left_end < 0:
            continue
        right = (c + 1, _conjunct_right(tokens, c + 1))
        left = (_conjunct_left(tokens, left_end, predicate), left_end + 1)
        if right[1] <= right[0] or left[1] <= left[0]:
            continue
        conjuncts = [left, right]
        verb_pair = left[1] - left[0] == 1 and _is_verb(tokens, left[0], predicate)
        verb_pair = verb_pair and (_is_verb(tokens, right[0], predicate) or _same_form(tokens, conjuncts))
        # More items after: "A, B and C and D" (a list that goes on past the first coordinator).
        while not verb_pair and conjuncts[-1][1] + 1 < len(tokens) and (
            tokens[conjuncts[-1][1]].text.lower() in _COORDINATORS or tokens[conjuncts[-1][1]].text == ","
        ):
            nxt = conjuncts[-1][1] + 1
            if tokens[nxt].text.lower() in _COORDINATORS:
                nxt += 1
            end = _conjunct_right(tokens, nxt)
            if end <= nxt:
                break
            conjuncts.append((nxt, end))
        # More items of a list: "computers, tablets, and smartphones".
        while conjuncts[0][0] >= 2 and tokens[conjuncts[0][0] - 1].text == ",":
            end = conjuncts[0][0] - 2
            start = _conjunct_left(tokens, end, predicate)
            if start > end or end - start + 1 > 4:
                break
            conjuncts.insert(0, (start, end + 1))
        pieces = [" ".join(t.text for t in tokens[a:b]) for a, b in conjuncts]
        if any(any(ch.isdigit() for ch in piece) for piece in pieces):
            continue  # figures in lists are left to the figure rules, paired with their context
        span = " ".join(t.text for t in tokens[conjuncts[0][0] : conjuncts[-1][1]])
        if _phrase(span) in phrase_text:
            continue  # the sources say it word for word ("research and development")
        verbs = [_is_verb(tokens, a, predicate) and b - a == 1 for a, b in conjuncts[:-1]]
        if all(verbs) and _is_verb(tokens, conjuncts[-1][0], predicate) | _same_form(tokens, conjuncts):
            last = conjuncts[-1]
            return [(a, b) for a, b in conjuncts[:-1]] + [(last[0], last[0] + 1)], len(tokens)
        return conjuncts, -1
    return None


def _same_form(tokens: Sequence[_Tok], conjuncts: Sequence[tuple[int, int]]) -> bool:
    """Coordinated words with one verb ending ("designs and programs", "designing and operating")."""
    first = tokens[conjuncts[0][0]].text.lower()
    other = tokens[conjuncts[-1][0]].text.lower()
    for ending in ("ing", "es", "s", "ed"):
        if first.endswith(ending) and other.endswith(ending):
            return not first.endswith(("ics", "ss")) and conjuncts[0][1] - conjuncts[0][0] == 1
    return False


def _predicate_coordination(tokens: list[_Tok], predicate: int | None) -> list[list[_Tok]] | None:
    """'X designs robots and sells software' -> 'X designs robots', 'X sells software'."""
    if predicate is None:
        return None
    verb = tokens[predicate].text.lower()
    for c in range(predicate + 2, len(tokens) - 1):
        if tokens[c].text.lower() not in _COORDINATORS:
            continue
        nxt = tokens[c + 1].text.lower()
        same_form = verb.endswith("s") and nxt.endswith("s") and not nxt.endswith(("ics", "ss"))
        if nxt in _PREDICATE_VERBS and (same_form or verb in _COPULAS or verb.endswith("ed") == nxt.endswith("ed")):
            end = c - 1 if tokens[c - 1].text == "," else c
            return [tokens[:end], tokens[:predicate] + tokens[c + 1 :]]
    return None


def _distribute(tokens: list[_Tok], predicate: int | None, phrase_text: str, depth: int = 0) -> list[list[_Tok]]:
    """Split one token list at its first coordination, then each part again."""
    if depth == 0 and (halves := _predicate_coordination(tokens, predicate)) is not None:
        return [atom for half in halves for atom in _distribute(half, predicate, phrase_text, depth + 1)]
    found = _coordination(tokens, predicate, phrase_text) if depth < 6 else None
    if found is None:
        return [tokens]
    conjuncts, object_end = found
    first, last = conjuncts[0][0], conjuncts[-1][1]
    atoms = []
    if object_end >= 0:  # verbs sharing one object: "designs and programs robot fleets"
        shared_object = tokens[last:]
        for a, b in conjuncts:
            atoms.append(tokens[:first] + tokens[a:b] + shared_object)
    else:
        head: list[_Tok] = []
        left = conjuncts[0]
        right_words = conjuncts[-1][1] - conjuncts[-1][0]
        lone = left[1] - left[0] == 1 and tokens[left[0]].text
        if len(conjuncts) == 2 and lone and lone.islower() and right_words >= 2 and (
            not lone.lower().endswith("s") or lone.lower().endswith("ics")
        ) and not _is_verb(tokens, left[0], predicate):
            head = [tokens[conjuncts[-1][1] - 1]]  # "robotics and automation start-up": one shared head
        for n, (a, b) in enumerate(conjuncts):
            own = tokens[a:b] + (head if n < len(conjuncts) - 1 else [])
            atoms.append(tokens[:first] + own + tokens[last:])
    result = []
    for atom in atoms:
        result.extend(_distribute(atom, None if object_end < 0 else predicate, phrase_text, depth + 1))
    return result


@dataclass
class AtomicSpan:
    """One atomic claim before checking: its text and where it sits in the answer."""

    text: str
    start: int  # span of its own part (what sets it apart from the other claims of its clause)
    end: int
    segments: list[list[int]]  # every answer span its text is made of, in order
    clause: int


def atomic_claims(text: str, *, entity: str | None = None, phrase_text: str = "") -> list[AtomicSpan]:
    """The atomic claims of an answer (special tokens already removed), with their answer spans.

    ``phrase_text`` is the normalised sources (SourceIndex.phrase_text): a coordination the sources
    state word for word is not split.
    """
    atoms: list[AtomicSpan] = []
    for clause, (_, start, end) in enumerate(split_claims(text)):
        tokens = _tokens(text, start, end)
        if not tokens:
            continue
        parts: list[list[_Tok]] = []
        for piece in _split_relative(tokens):
            predicate = _predicate_start(piece, entity)
            parts.extend(_distribute(piece, predicate, phrase_text))
        unique: dict[tuple[int, ...], list[_Tok]] = {}
        for part in parts:
            unique.setdefault(tuple(t.index for t in part), part)
        parts = list(unique.values())
        shared = set.intersection(*[{t.index for t in part} for part in parts]) if len(parts) > 1 else set()
        for part in parts:
            own = [t for t in part if t.index not in shared] or part
            segments = _segments(part)
            atom_text = " ".join(text[a:b] for a, b in segments).strip()
            atoms.append(AtomicSpan(atom_text, own[0].start, own[-1].end, segments, clause))
    return atoms


def _segments(tokens: Sequence[_Tok]) -> list[list[int]]:
    """Runs of consecutive tokens as answer spans."""
    segments: list[list[int]] = []
    previous = None
    for token in tokens:
        if previous is not None and token.index == previous.index + 1:
            segments[-1][1] = token.end
        else:
            segments.append([token.start, token.end])
        previous = token
    return segments


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
    profile: EntityProfile | None = None  # what the sources say the company is (profile.py)
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
        return any(core.startswith(known) or known.startswith(core) for known in self.prefixes.get(term[:5], ()))

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
    vectors = None if embedder is None else _normalised(embedder([_for_embedding(s) for s in sentences]))
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
    """check_claims for several answers, embedding all their claims in one call (scoring a batch).

    A claim text met before in the batch is decided once (sweeps repeat answers: the SmolLM2 demo's
    144 answers hold 344 atomic claims, 227 distinct).
    """
    per_text = [
        atomic_claims(_SPECIAL_TOKEN_RE.sub(" ", text).strip(), entity=entity, phrase_text=index.sources.phrase_text)
        for text in texts
    ]
    flat = [(n, atom, mask_entity(atom.text, entity)) for n, atoms in enumerate(per_text) for atom in atoms]
    distinct = list(dict.fromkeys((atom.text, masked) for _, atom, masked in flat))
    similarities: np.ndarray | None = None
    if index.method == "embedding" and distinct:
        embed = embedder or minilm_embedder()
        vectors = _normalised(embed([_for_embedding(masked) for _, masked in distinct]))
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


def _field(claim: Claim | dict[str, Any], name: str) -> Any:
    return getattr(claim, name) if isinstance(claim, Claim) else claim.get(name)


def _counted(claims: Sequence[Claim | dict[str, Any]]) -> list[Claim | dict[str, Any]]:
    """The claims an answer is scored on: vague ones ("is a company") only when nothing else is said."""
    checkable = [c for c in claims if _field(c, "rule") != "vague"]
    return checkable or list(claims)


def claim_support_min(claims: Sequence[Claim | dict[str, Any]]) -> float | None:
    """The weakest atomic claim's strength (contradicted 0); None when the answer has no claim."""
    if not claims:
        return None
    return min(float(_field(c, "strength") or 0.0) for c in _counted(claims))


def claim_grounding(claims: Sequence[Claim | dict[str, Any]]) -> float | None:
    """Share of supported atomic claims (vague ones left out); None when the answer has no claim."""
    if not claims:
        return None
    decisions = [_field(c, "decision") for c in _counted(claims)]
    return decisions.count("supported") / len(decisions)


def marked_answer(text: str, claims: Sequence[dict[str, Any]], *, mark: Callable[[str, str], str]) -> str:
    """The answer with each claim's unsupported words wrapped by ``mark(word, decision)``.

    Works on the answer with special tokens removed (the text the claim spans refer to). Each claim
    marks words in every segment its text is made of, so atomic claims of one clause overlap on
    their shared words; a word marked by two claims is marked once, as the worse decision
    (contradicted over unsupported).
    """
    clean = _SPECIAL_TOKEN_RE.sub(" ", text).strip()
    marks: dict[tuple[int, int], str] = {}
    for claim in claims:
        unsupported = claim.get("unsupported") or []
        if claim["decision"] == "supported" or not unsupported:
            continue
        pattern = _word_pattern(unsupported)
        for start, end in claim.get("segments") or [[claim["start"], claim["end"]]]:
            for match in pattern.finditer(clean, int(start), int(end)):
                span = (match.start(), match.end())
                if marks.get(span) != "contradicted":
                    marks[span] = claim["decision"]
    pieces: list[str] = []
    position = 0
    for (start, end), decision in sorted(marks.items()):
        if start < position:
            continue  # overlaps a longer word marked already
        pieces.append(clean[position:start])
        pieces.append(mark(clean[start:end], decision))
        position = end
    pieces.append(clean[position:])
    return "".join(pieces)


def _word_pattern(unsupported: Sequence[str]) -> re.Pattern[str]:
    return re.compile(
        "|".join(rf"(?<![\w$]){re.escape(w)}(?![\w])" for w in sorted(unsupported, key=len, reverse=True))
    )


def marked_claim(claim: dict[str, Any], *, mark: Callable[[str, str], str]) -> str:
    """One claim's text with its unsupported words wrapped by ``mark(word, decision)``."""
    return _mark_words(claim["text"], claim.get("unsupported") or [], claim["decision"], mark)


def _mark_words(span: str, unsupported: Sequence[str], decision: str, mark: Callable[[str, str], str]) -> str:
    if not unsupported:
        return span
    return _word_pattern(unsupported).sub(lambda m: mark(m.group(0), decision), span)
