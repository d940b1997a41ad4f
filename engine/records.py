"""The records the Workspace hands to front ends: sweeps, cells, a cell's samples (with labels),
summaries, maskings, fine-tune runs; and why a stored cell shows no value.

Plain frozen dataclasses built from store rows, so front ends never see a row dict. They live
here, apart from the operations in engine/workspace.py, which re-exports every one of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from engine import study
from engine.grid import CellInfo
from engine.metrics import catalog

# The stored per-cell metrics, in the catalogue's display order.
CELL_METRICS: tuple[str, ...] = tuple(spec.name for spec in catalog.CELL_METRICS if spec.stored)


class CellKey(NamedTuple):
    """One grid cell of one variant and prompt (a tuple, so it also keys store queries)."""

    variant: str
    temperature: float
    top_p: float
    top_k: int
    prompt_id: str

    @classmethod
    def of(cls, row: dict[str, Any]) -> CellKey:
        return cls(
            str(row["variant"]),
            float(row["temperature"]),
            float(row["top_p"]),
            int(row["top_k"]),
            str(row["prompt_id"]),
        )


@dataclass(frozen=True)
class SweepInfo:
    id: int
    name: str
    source: str  # engine | import-log | adhoc
    status: str
    base_model: str
    adapter_dir: str | None
    generation_count: int
    expected_rows: int | None
    created_at: str
    finished_at: str | None
    config: dict[str, Any] = field(repr=False)
    error: str | None = None  # why a failed or interrupted sweep stopped

    @property
    def variants(self) -> tuple[str, ...]:
        return tuple(self.config.get("variants") or ())

    @property
    def has_trajectory(self) -> bool:
        """A checkpoint sweep: its variants carry their training step and losses (``Workspace.trajectory``)."""
        return bool(self.config.get("trajectory"))

    @classmethod
    def of(cls, row: dict[str, Any], generation_count: int) -> SweepInfo:
        return cls(
            id=int(row["id"]),
            name=str(row.get("name") or ""),
            source=str(row.get("source") or ""),
            status=str(row.get("status") or ""),
            base_model=str(row.get("base_model") or ""),
            adapter_dir=row.get("adapter_dir"),
            generation_count=generation_count,
            expected_rows=row.get("expected_rows"),
            created_at=str(row.get("created_at") or ""),
            finished_at=row.get("finished_at"),
            config=row.get("config") or {},
            error=row.get("error"),
        )


@dataclass(frozen=True)
class Cell:
    """A cell's stored generations (``n``) and, once scored, its aggregate."""

    key: CellKey
    n: int
    mean_new_tokens: float | None
    scored: bool
    means: dict[str, float | None]  # cell metric -> value (None until scored or when undefined)
    details: dict[str, Any] = field(repr=False)  # intervals, cluster labels, similarity method

    def value(self, metric: str) -> float | None:
        return self.means.get(metric)


@dataclass(frozen=True)
class Sample:
    generation_id: int
    variant: str
    prompt_id: str
    sample_index: int
    seed: int | None
    text: str
    new_tokens: int | None
    metrics: dict[str, Any]  # per-sample scores ({} until scored)
    label: str | None = None  # the labeller's current label (None: not labelled)


@dataclass(frozen=True)
class SampleRow:
    """One sample index of a cell with every variant's text: they share seeds, so they pair."""

    prompt_id: str
    sample_index: int
    by_variant: dict[str, Sample]

    def get(self, variant: str) -> Sample | None:
        return self.by_variant.get(variant)


@dataclass(frozen=True)
class CellSamples:
    sweep_id: int
    temperature: float
    top_p: float
    top_k: int
    prompt_id: str | None  # None: every prompt of the cell
    prompt: str | None
    reference: str | None
    variants: tuple[str, ...]
    rows: list[SampleRow]

    def side(self, variant: str) -> list[Sample]:
        return [sample for row in self.rows if (sample := row.get(variant)) is not None]

    def labels(self) -> dict[int, str]:
        """Generation id -> label, for the labelled samples."""
        return {s.generation_id: s.label for row in self.rows for s in row.by_variant.values() if s.label}


@dataclass(frozen=True)
class VariantSummary:
    variant: str
    prompt_id: str
    cells: int
    samples: int
    means: dict[str, float | None]


@dataclass(frozen=True)
class MaskUndo:
    mask_id: int
    message: str


@dataclass(frozen=True)
class MaskRecord:
    id: int
    status: str
    entity: str
    new_name: str
    source_path: str | None
    output_path: str
    rows: int | None
    edits_applied: int | None
    created_at: str
    leaks: dict[str, Any]


@dataclass(frozen=True)
class FinetuneRun:
    id: int
    name: str
    mode: str
    base_model: str
    dataset_path: str
    output_dir: str
    status: str
    train_loss: float | None
    eval_loss_before: float | None
    eval_loss_after: float | None
    train_seconds: float | None
    loss_history: list[float]
    started_at: str
    finished_at: str | None
    error: str | None


@dataclass(frozen=True)
class FinetuneCheckpoint:
    """An adapter a fine-tune kept during training (a sweep variant ``label``)."""

    run_id: int
    label: str  # step-<N>
    step: int
    epoch: float | None
    train_loss: float | None
    eval_loss: float | None
    path: str


@dataclass(frozen=True)
class Trajectory:
    """A sweep's variants in training order with their losses and metrics, and the best trade-off step."""

    points: list[study.TrajectoryPoint]
    best: study.BestStep | None  # None for a sweep without checkpoints


def missing_reason(metric: str, cells: Sequence[Cell]) -> catalog.MissingReason:
    """Why stored cells have no value for ``metric`` (shown instead of a blank); the catalogue says
    what each metric requires."""
    if not all(cell.scored for cell in cells):
        return catalog.NOT_SCORED
    refused = all(cell.value("refusal_rate") == 1 for cell in cells)
    return catalog.why_missing(metric, every_answer_refused=refused)


def grid_cell_info(
    grid: dict[str, Any], cells: Sequence[Cell]
) -> dict[str, dict[int, list[list[CellInfo | None]]]]:
    """Per cell of ``store.metrics.metric_grid``'s dict: samples, interval (one prompt) and why it has
    no value, from the stored ``cells`` (several prompts at one setting share a grid cell).

    A metric undefined at one sample is blanked in ``grid`` too: stored as 0 or 1, it says nothing.
    """
    metric = str(grid["metric"])
    grouped: dict[tuple[str, int, float, float], list[Cell]] = {}
    for cell in cells:
        key = (cell.key.variant, cell.key.top_k, cell.key.temperature, cell.key.top_p)
        grouped.setdefault(key, []).append(cell)
    temperatures, top_ps = list(grid["temperatures"]), list(grid["top_ps"])
    info: dict[str, dict[int, list[list[CellInfo | None]]]] = {
        v: {k: [[None] * len(top_ps) for _ in temperatures] for k in grid["top_ks"]} for v in grid["variants"]
    }
    for (variant, top_k, temperature, top_p), members in grouped.items():
        if variant not in info or top_k not in info[variant]:
            continue
        i, j = temperatures.index(temperature), top_ps.index(top_p)
        values = grid["values"][variant][top_k]
        undefined = catalog.undefined_at(metric, max(c.n for c in members))
        if undefined:
            values[i][j] = None
        interval = None
        if len(members) == 1:
            found = (members[0].details.get("intervals") or {}).get(metric)
            interval = (float(found[0]), float(found[1])) if found else None
        reason = None
        if undefined:
            reason = catalog.UNDEFINED_AT_ONE
        elif values[i][j] is None:
            reason = missing_reason(metric, members)
        info[variant][top_k][i][j] = CellInfo(sum(c.n for c in members), interval, reason)
    return info
