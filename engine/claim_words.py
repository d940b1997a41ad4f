"""A checked claim in plain words: what its decision, rule, strength and evidence mean.

The claims engine (engine/metrics/claims.py) stores each atomic claim with a ``decision``
(supported / unsupported / contradicted), the ``rule`` that decided it, a ``strength`` (what the
answer's weakest-claim support takes) and its best evidence sentence. Front ends show those codes
to people who never read the module, so the words are written once here: the Gradio app's inline
claims, the TUI's sample pane and the report all read :func:`describe_claim`.

"headquartered in New York City" against the source "headquartered in Tacoma" is decided
``contradicted`` by the ``place`` rule and reads "contradicted: the sources say headquarters:
Tacoma, Washington".

Plain data only (no markup): each front end escapes and lays it out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.metrics import catalog

# What each decision says, without the rule (the rule adds why).
DECISION_WORDS = {
    "supported": "supported by the sources",
    "contradicted": "contradicted by the sources",
    "unsupported": "not in the sources",
}

# Why the rule decided it, in one clause each (engine/metrics/claims.py, engine/metrics/profile.py).
RULE_WORDS = {
    "support": "a source sentence contains most of what the claim says",
    "profile": "the entity profile states this place or status",
    "number": "a figure differs from the one the sources give",
    "name": "a name differs from the one the sources give",
    "negation": "the sources deny it of the entity",
    "status": "the sources rule out this status (listed, private, start-up, size)",
    "role": "the sources give this role to another party (a customer, supplier or competitor)",
    "place": "the sources place the entity elsewhere",
    "unknown": "it uses words no source sentence has",
    "none": "no source sentence covers enough of it",
    "vague": "nothing specific to check (left out of the answer's scores)",
}

# What the parts of a claim's line mean: shown once, as a legend.
LEGEND = (
    ("decision", "supported, contradicted (a source says otherwise) or not in the sources"),
    (
        "rule",
        "which check decided it: " + "; ".join(f"{rule} = {words}" for rule, words in RULE_WORDS.items()),
    ),
    (
        "strength",
        "0 to 1: how well the sources back the claim (0 = contradicted); a claim is supported from "
        "{at} up, and an answer's weakest-claim support is its lowest strength",
    ),
    ("evidence", "the source sentence that backs the claim best, or the one it contradicts"),
)


@dataclass(frozen=True)
class ClaimWords:
    """One claim as a person reads it."""

    text: str  # the atomic claim, as the answer says it
    decision: str  # supported | unsupported | contradicted | vague (the code, for colours)
    verdict: str  # "supported by the sources", "contradicted: the sources say Tacoma, Washington"
    rule: str  # the rule's code
    why: str  # the rule in words
    strength: float | None
    evidence: str | None  # the best source sentence (or the one contradicted)
    missing: tuple[str, ...]  # the claim's words the evidence lacks (for an unsupported claim)

    @property
    def strength_text(self) -> str:
        return "–" if self.strength is None else f"{self.strength:.2f}"


def supported_at() -> float | None:
    """The strength from which a claim counts as supported (the main score's ``flags_below``)."""
    return catalog.main_score().flags_below


def legend() -> tuple[tuple[str, str], ...]:
    """(part, meaning) for the parts of a claim's line, the threshold filled in."""
    at = supported_at()
    shown = "the threshold" if at is None else f"{at:g}"
    return tuple((part, meaning.replace("{at}", shown)) for part, meaning in LEGEND)


def _field(claim: Any, name: str) -> Any:
    return claim.get(name) if isinstance(claim, Mapping) else getattr(claim, name, None)


def describe_claim(claim: Mapping[str, Any] | Any) -> ClaimWords:
    """A stored claim row (or a ``claims.Claim``) in plain words."""
    decision = str(_field(claim, "decision") or "unsupported")
    rule = str(_field(claim, "rule") or "none")
    says = _field(claim, "source_says")
    if rule == "vague":
        verdict = "too vague to check"
        decision = "vague"
    elif decision == "contradicted":
        verdict = f"contradicted: the sources say {says}" if says else DECISION_WORDS["contradicted"]
    else:
        verdict = DECISION_WORDS.get(decision, decision)
    unknown = list(_field(claim, "unknown") or [])
    if decision == "unsupported" and unknown:
        verdict += f" (never mentioned: {', '.join(unknown[:4])})"
    strength = _field(claim, "strength")
    missing: Sequence[str] = () if decision == "supported" else (_field(claim, "unsupported") or [])
    return ClaimWords(
        text=str(_field(claim, "text") or ""),
        decision=decision,
        verdict=verdict,
        rule=rule,
        why=RULE_WORDS.get(rule, rule),
        strength=None if strength is None else float(strength),
        evidence=_field(claim, "evidence") or None,
        missing=tuple(str(word) for word in missing),
    )
