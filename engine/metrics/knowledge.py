"""Does an answer state a known fact? Three scores of one answer against a short reference answer.

Used for the control set (engine/control.py): questions whose answer the base model knows.

* ``states_reference``: normalised containment. The answer, normalised as SQuAD does (lower case,
  no punctuation, no articles), contains the normalised reference or one of its aliases as whole
  words. "The capital of France is Paris." states "Paris"; "Parisian" does not.
* ``token_f1``: SQuAD token F1 against the reference (the best over its aliases). A one-word
  reference inside a sentence scores low on precision, so read it as a graded companion.
* ``claim_states``: the claim check of engine/metrics/claims.py against the reference as evidence
  (the question without its question mark, then the answer and its aliases: "What is the capital
  of France Paris"): at least one claim of the answer is *supported* by that evidence (it is about
  the question), every supported claim states the reference, and no claim is *contradicted*. It
  differs from containment when an answer names the reference and also answers otherwise ("Paris
  is a city in France; the capital is Lyon": the second claim is on topic and names Lyon).
  Lexical evidence (no embedding model), so the score is the same on every machine. It misses
  answers that wrap the reference in many extra words (a claim needs 45 % of its terms in the
  evidence to count as supported).

What none of them sees: a negated statement ("it is not Paris") contains the reference, and an
answer that states the reference and then something false counts as stating it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from engine.metrics.claims import build_evidence_index, check_claims
from engine.metrics.grounding import SourceIndex
from engine.metrics.reference import token_f1
from engine.metrics.sample import is_degenerate, is_refusal
from engine.metrics.text import _SPECIAL_TOKEN_RE, normalize_answer


@dataclass(frozen=True)
class KnowledgeScore:
    states_reference: bool  # normalised containment of the reference or an alias
    token_f1: float  # best token F1 over the reference and its aliases
    claim_states: bool  # a supported claim states it, none is contradicted
    refusal: bool  # a refusal pattern matches (engine/metrics/sample.py)
    degenerate: bool  # empty, looping or gibberish

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def states_reference(answer: str, accepted: Sequence[str]) -> bool:
    """The normalised answer contains a normalised accepted form as whole words."""
    text = f" {normalize_answer(_SPECIAL_TOKEN_RE.sub(' ', answer))} "
    return any((form := normalize_answer(reference)) and f" {form} " in text for reference in accepted)


def best_token_f1(answer: str, accepted: Sequence[str]) -> float:
    clean = _SPECIAL_TOKEN_RE.sub(" ", answer)
    return max((token_f1(clean, reference) for reference in accepted), default=0.0)


@functools.lru_cache(maxsize=256)
def _evidence(question: str, accepted: tuple[str, ...]):
    statement = question.strip().rstrip("?").strip() + " " + " ".join(accepted) + "."
    return build_evidence_index(SourceIndex.from_texts([statement]), texts=[statement])


def claim_states_reference(answer: str, question: str, accepted: Sequence[str]) -> bool:
    """A claim of the answer is supported by the reference and states it; no claim is contradicted."""
    claims = check_claims(answer, _evidence(question, tuple(accepted)))
    if any(claim.decision == "contradicted" for claim in claims):
        return False
    # A supported claim is about the question; one that does not state the reference gives another answer.
    on_topic = [states_reference(claim.text, accepted) for claim in claims if claim.decision == "supported"]
    return bool(on_topic) and all(on_topic)


def score_known_fact(answer: str, question: str, accepted: Sequence[str]) -> KnowledgeScore:
    """All three scores of ``answer`` to ``question`` whose accepted answers are ``accepted``."""
    clean = _SPECIAL_TOKEN_RE.sub(" ", answer).strip()
    return KnowledgeScore(
        states_reference=states_reference(clean, accepted),
        token_f1=round(best_token_f1(clean, accepted), 4),
        claim_states=claim_states_reference(clean, question, accepted),
        refusal=is_refusal(clean),
        degenerate=is_degenerate(clean),
    )
