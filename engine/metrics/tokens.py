"""White-box signals of one answer: its tokens' log-probabilities and the entropy of each next-token
distribution, summarised per answer.

The sampler (engine/sampling.py) records, at every decoding step, the log-probability of the token
it chose and the entropy of the model's own next-token distribution: the softmax of the raw logits
(temperature 1, no top-k, no top-p), whatever the row's sampling settings were. Only the tokens of
the answer count: the stop token that ends it and the padding after it are left out, so an answer
that stops at once has no value. Low log-probabilities and high entropies mean the model was unsure
of what it wrote; "naive token entropy" of this kind is the baseline of Farquhar et al. (2024),
AUROC 0.69 averaged over their 30 task x model pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

# The per-answer values, in the order the catalogue lists them (SampleMetrics fields of these names).
TOKEN_METRICS = ("mean_token_logprob", "min_token_logprob", "mean_token_entropy", "max_token_entropy")


@dataclass(frozen=True)
class TokenStats:
    """One answer's token signals: log-probs (nats, <= 0) and entropies (nats, >= 0)."""

    mean_token_logprob: float
    min_token_logprob: float
    mean_token_entropy: float
    max_token_entropy: float
    scored_tokens: int  # tokens the means run over

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def token_stats(logprobs: Sequence[float], entropies: Sequence[float]) -> TokenStats | None:
    """Mean and minimum log-prob, mean and maximum entropy over an answer's tokens; None for no token."""
    if len(logprobs) != len(entropies):
        raise ValueError("one entropy per token log-prob")
    if not logprobs:
        return None
    return TokenStats(
        mean_token_logprob=math.fsum(logprobs) / len(logprobs),
        min_token_logprob=min(logprobs),
        mean_token_entropy=math.fsum(entropies) / len(entropies),
        max_token_entropy=max(entropies),
        scored_tokens=len(logprobs),
    )


def stats_from_extra(extra: dict[str, Any] | None) -> dict[str, float | None]:
    """The four per-answer values stored with a generation (its ``extra["token_stats"]``); None each
    for generations sampled without them (imported logs, older sweeps, ``token_logprobs = false``)."""
    stored = (extra or {}).get("token_stats") or {}
    return {name: _number(stored.get(name)) for name in TOKEN_METRICS}


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
