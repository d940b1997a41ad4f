"""Calibration of the scores against human labels: AUROC, AUPRC, bootstrap intervals, best threshold.

The math is pure numpy (no sklearn). ``calibrate_sweep`` gathers a sweep's labelled generations and
their scores from the store. Which label counts as positive depends on what a score detects: the
hallucination scores separate *hallucinated* from *faithful* answers (refusals and unclear ones are
left out: they make no claim to check), the refusal detector separates *refusal* from the rest.

Modules, bottom up: ``measures`` (the pure math), ``scores`` (``ScoreSpec``, ``SCORES``, one score
against labels, the table lines) and ``stored`` (a stored sweep's rows, ``calibrate_sweep``, the
report's table). The public names are re-exported here: ``from engine import calibrate;
calibrate.auroc(...)`` keeps working.
"""

from __future__ import annotations

from engine.calibrate.measures import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    Threshold,
    auprc,
    auroc,
    best_threshold,
    bootstrap_interval,
)
from engine.calibrate.scores import (
    MIN_LABELS,
    NOT_ENOUGH,
    SCORES,
    CalibrationResult,
    ScoreSpec,
    calibrate_rows,
    calibrate_score,
    format_results,
    target_of,
    with_interval,
)
from engine.calibrate.stored import SweepCalibration, calibrate_sweep, report_section, sweep_score_rows

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "MIN_LABELS",
    "NOT_ENOUGH",
    "SCORES",
    "CalibrationResult",
    "ScoreSpec",
    "SweepCalibration",
    "Threshold",
    "auprc",
    "auroc",
    "best_threshold",
    "bootstrap_interval",
    "calibrate_rows",
    "calibrate_score",
    "calibrate_sweep",
    "format_results",
    "report_section",
    "sweep_score_rows",
    "target_of",
    "with_interval",
]
