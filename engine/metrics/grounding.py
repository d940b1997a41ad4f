"""Grounding in the entity's source contexts: a source index, supported terms and contradictions."""

from __future__ import annotations

import functools
import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.dataset import load_items
from engine.metrics.text import (
    _SENTENCE_RE,
    _STOPWORDS,
    NumberFact,
    _norm_tokens,
    _phrase,
    content_words,
    lower_sentence_starts,
    mask_entity,
    names_in,
    numbers_in,
    stem,
    words,
)

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
    items = load_items(path, require_context=False)
    return SourceIndex.from_texts([item.context for item in items], entity=entity)


def load_sources(path: str | Path | None, entity: str | None) -> SourceIndex | None:
    """The source index of a QA file's ``context`` fields (cached per file version), or None.

    None also when the contexts hold no sentence (every ``context`` empty): there is nothing to
    ground an answer in, so the source scores are NULL (shown as "n/a: no source contexts"), never
    a score against an empty source.
    """
    if not path:
        return None
    file_path = Path(path)
    if not file_path.exists():
        return None
    sources = _load_sources_cached(str(file_path.resolve()), file_path.stat().st_mtime_ns, entity)
    return sources if sources.sentences else None


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
