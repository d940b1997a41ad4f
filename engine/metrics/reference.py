"""Reference-based scores: exact match, token F1, ROUGE-L and the wrong-figure check."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from engine.metrics.text import _norm_tokens, _number_values, normalize_answer

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
