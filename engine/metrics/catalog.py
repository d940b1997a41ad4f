"""Which metrics exist, how the front ends label them and which direction is better."""

from __future__ import annotations

# Bump when a definition changes: stored rows with an older version are recomputed.
METRICS_VERSION = 1

# Per-sample values averaged per cell: cell column name -> sample metrics key.
CELL_MEANS: dict[str, str] = {
    "refusal_rate": "refusal",
    "exact_match": "exact_match",
    "token_f1": "token_f1",
    "rouge_l": "rouge_l",
    "f1_number_aware": "f1_number_aware",
    "number_mismatch_rate": "number_mismatch",
    "grounding": "grounding",
    "conflict_rate": "conflict",
    "uses_entity_rate": "uses_entity",
    "degenerate_rate": "degenerate",
    "mean_words": "n_words",
}

# The few per-cell scores front ends show first (tables, pickers, the demo's summary).
SUMMARY_METRICS = (
    "refusal_rate",
    "grounding",
    "conflict_rate",
    "semantic_entropy",
    "majority_share",
    "token_f1",
)

# What the front ends show: cell column -> (label, which direction is better).
METRIC_LABELS: dict[str, tuple[str, str]] = {
    "refusal_rate": ("refusal / don't-know rate", "context"),
    "grounding": ("grounding in sources", "higher"),
    "conflict_rate": ("number/name conflict rate", "lower"),
    "semantic_entropy": ("semantic entropy (nats)", "lower"),
    "majority_share": ("majority-answer share", "higher"),
    "token_f1": ("token F1 vs reference", "higher"),
    "f1_number_aware": ("number-aware F1 vs reference", "higher"),
    "exact_match": ("exact match vs reference", "higher"),
    "rouge_l": ("ROUGE-L vs reference", "higher"),
    "number_mismatch_rate": ("wrong-figure rate vs reference", "lower"),
    "uses_entity_rate": ("uses the entity name", "context"),
    "degenerate_rate": ("degenerate-text rate", "lower"),
    "distinct_1": ("distinct-1", "context"),
    "distinct_2": ("distinct-2", "context"),
    "mean_similarity": ("mean pairwise similarity", "context"),
    "mean_words": ("mean length (words)", "context"),
}
