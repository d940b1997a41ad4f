"""Text primitives shared by every metric: tokens, normalisation, stems, entity masking, numbers, names."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

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
