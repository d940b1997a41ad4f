"""Per-generation scores: refusal, degenerate text, entity use, and score_sample which combines them."""

from __future__ import annotations

import re
import string
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.metrics.grounding import SourceIndex, grounding
from engine.metrics.reference import exact_match, number_mismatch, rouge_l, token_f1
from engine.metrics.text import _SPECIAL_TOKEN_RE, words

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
    claim_grounding: float | None = None  # share of supported claims; set by engine/scoring.py
    claim_support_min: float | None = None  # weakest atomic claim's strength; set by engine/scoring.py
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
