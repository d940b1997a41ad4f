"""An answer's claim scores and its claims' unsupported words marked for a reader.

An answer's ``claim_support_min`` is its weakest atomic claim's strength (the default hallucination
score: continuous, and one invented conjunct sinks it); ``claim_grounding`` is the share of
supported claims. Vague claims ("is a company") count only when the answer says nothing else.
Definitions, limits and the validation are in docs/METRICS.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from engine.metrics.claims.check import Claim
from engine.metrics.text import _SPECIAL_TOKEN_RE


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
