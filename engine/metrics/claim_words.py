"""A stored claim's decision in plain words: what every front end prints next to a claim.

The checker (engine/metrics/claims/check.py) stores a decision (supported | unsupported | contradicted)
and the rule that decided it (support, number, name, negation, status, role, place, profile,
unknown, vague, none) with a support score. "unsupported (none 0.30)" says nothing to a reader;
:func:`claim_words` says what happened: "not supported: the closest source sentence shares too
little with it (support 0.30, 0.45 needed)". "headquartered in New York City" against the bundled
ZYTRELL set reads "contradicts the sources: the sources place it elsewhere (they say: headquarters:
Tacoma, Washington)". Pure: takes the claim dicts the store returns (or ``Claim.to_dict()``); no
markup, so each front end (the TUI's sample pane, the Gradio app's inline claims) escapes and lays it
out, and :func:`legend` says once what the parts of a claim's line mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.metrics.claims import SUPPORTED_AT

VERDICTS: dict[str, str] = {
    "supported": "supported",
    "contradicted": "contradicts the sources",
    "unsupported": "not supported",
}
# Why, by rule: {score} is the support score, {words} the words no source has, {says} what the
# sources say instead.
REASONS: dict[str, str] = {
    "support": "a source sentence says the same (support {score})",
    "profile": "the sources state this fact about the company",
    "number": "the sources give another figure{says}",
    "name": "the sources give another name{says}",
    "negation": "the sources deny it{says}",
    "status": "the sources rule out this status{says}",
    "role": "the sources give this role to another party{says}",
    "place": "the sources place it elsewhere{says}",
    "unknown": "no source sentence has the word(s) {words}",
    "vague": "nothing in it to check (not counted in the answer's scores)",
    "none": "the closest source sentence shares too little with it (support {score}{needed})",
}


@dataclass(frozen=True)
class ClaimWords:
    """One claim as a reader sees it: the verdict, why, and the source sentence it was checked against."""

    text: str  # the claim itself
    decision: str  # supported | unsupported | contradicted (the stored code)
    rule: str  # the stored rule that decided it
    verdict: str  # 'contradicts the sources'
    reason: str  # 'the sources place it elsewhere (they say: Tacoma)'
    evidence: str | None  # the best source sentence, or the one it contradicts
    strength: float | None  # what the answer's weakest-claim score takes from this claim
    missing: tuple[str, ...] = ()  # the claim's words the evidence lacks (not for a supported claim)

    @property
    def strength_text(self) -> str:
        return "–" if self.strength is None else f"{self.strength:.2f}"

    @property
    def evidence_label(self) -> str:
        """What the evidence sentence is to this claim: its support, what it goes against, or only
        the closest sentence there is."""
        return {"supported": "evidence", "contradicted": "contradicted by"}.get(self.decision, "closest source")

    @property
    def counted(self) -> bool:
        """Whether the claim counts in the answer's scores (vague claims do not)."""
        return self.rule != "vague"


# What the parts of a claim's line mean, shown once as a legend ({at}: the support threshold).
LEGEND: tuple[tuple[str, str], ...] = (
    ("verdict", "supported; contradicts the sources (a source says otherwise); or not supported"),
    ("why", "which check decided it and what it found (a contradiction names what the sources say)"),
    (
        "strength",
        "0 to 1: how well the sources back the claim (0 = contradicted); a claim is supported from "
        "{at} up, and an answer's weakest-claim support is its lowest strength",
    ),
    ("evidence", "the source sentence that backs the claim, the one it contradicts, or the closest there is"),
)


def legend() -> tuple[tuple[str, str], ...]:
    """(part, meaning) for the parts of a claim's line, the support threshold filled in."""
    thresholds = set(SUPPORTED_AT.values())
    at = f"{thresholds.pop():.2f}" if len(thresholds) == 1 else "the method's threshold"
    return tuple((part, meaning.replace("{at}", at)) for part, meaning in LEGEND)


def _needed() -> str:
    """', 0.45 needed' when every method supports a claim from the same score (they do today)."""
    thresholds = set(SUPPORTED_AT.values())
    return f", {thresholds.pop():.2f} needed" if len(thresholds) == 1 else ""


WORDS_LISTED = 6  # unknown words named in a reason; the rest are counted (a garbled answer has dozens)


def _listed(words: Sequence[str]) -> str:
    quoted = [f'"{word}"' for word in words[:WORDS_LISTED]]
    if len(words) > WORDS_LISTED:
        return ", ".join(quoted) + f" and {len(words) - WORDS_LISTED} more"
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def claim_words(claim: Mapping[str, Any]) -> ClaimWords:
    """A stored claim (``store.claims`` row dict, or ``Claim.to_dict()``) in plain words."""
    decision = str(claim.get("decision") or "unsupported")
    rule = str(claim.get("rule") or "none")
    score = claim.get("score")
    says = claim.get("source_says")
    words = list(claim.get("unknown") or claim.get("unsupported") or [])
    template = REASONS.get(rule)
    if template is None:  # a rule this module does not know yet: name it rather than guess
        reason = f"rule {rule}"
    else:
        reason = template.format(
            score="–" if score is None else f"{float(score):.2f}",
            needed=_needed(),
            words=_listed(words) if words else "(none listed)",
            says=f" (they say: {says})" if says else "",
        )
    strength = claim.get("strength")
    missing = () if decision == "supported" else tuple(str(w) for w in claim.get("unsupported") or [])
    return ClaimWords(
        text=str(claim.get("text") or ""),
        decision=decision,
        rule=rule,
        verdict=VERDICTS.get(decision, decision),
        reason=reason,
        evidence=claim.get("evidence") or None,
        strength=None if strength is None else float(strength),
        missing=missing,
    )
