"""Cutting a sweep's planned rows into deterministic slices, one per Slurm array task.

The unit of a slice is one grid cell and sample index: every prompt and every variant of that unit
go to the same shard, so a base row and its fine-tuned twin (which share a seed) stay together and a
shard's batches keep one prompt each. Units are dealt round-robin in plan order, which spreads the
low and high temperatures over all shards. Because every row's text depends only on its own seed
and settings, the union of the shards is the unsharded sweep, text for text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from engine.errors import UserError

Unit = tuple[float, float, int, int]  # temperature, top_p, top_k, sample_index


class PlannedRow(Protocol):
    """What slicing reads of a planned row (engine.sweep.PlannedRow has it)."""

    @property
    def temperature(self) -> float: ...
    @property
    def top_p(self) -> float: ...
    @property
    def top_k(self) -> int: ...
    @property
    def sample_index(self) -> int: ...


class _Grid(Protocol):
    def cells(self) -> list[tuple[float, float, int]]: ...


class ShardedConfig(Protocol):
    """What the shard count is checked against (engine.sweep.SweepConfig has it)."""

    @property
    def grid(self) -> _Grid: ...
    @property
    def samples_per_cell(self) -> int: ...


Row = TypeVar("Row", bound=PlannedRow)


def unit_of(row: PlannedRow) -> Unit:
    return (row.temperature, row.top_p, row.top_k, row.sample_index)


def unit_count(config: ShardedConfig) -> int:
    """How many slices the sweep can be cut into at most."""
    return len(config.grid.cells()) * config.samples_per_cell


def check_shards(config: ShardedConfig, shards: int, where: str = "--shards") -> None:
    if not isinstance(shards, int) or isinstance(shards, bool) or shards < 1:
        raise UserError(f"{where}: must be a whole number >= 1")
    most = unit_count(config)
    if shards > most:
        raise UserError(
            f"{where}: {shards} shards but the sweep has only {most} cell x sample units "
            f"({len(config.grid.cells())} cells x {config.samples_per_cell} samples); use at most {most}"
        )


def shard_of_units(planned: Sequence[PlannedRow], shards: int) -> dict[Unit, int]:
    """Each unit's shard: the n-th distinct unit in plan order goes to shard n mod ``shards``."""
    assignment: dict[Unit, int] = {}
    for row in planned:
        unit = unit_of(row)
        if unit not in assignment:
            assignment[unit] = len(assignment) % shards
    return assignment


def shard_rows(planned: Sequence[Row], task: int, shards: int) -> list[Row]:
    """The rows array task ``task`` (0-based) of ``shards`` generates, in plan order."""
    if not 0 <= task < shards:
        raise UserError(f"shard {task}: out of range (this sweep has shards 0-{shards - 1})")
    assignment = shard_of_units(planned, shards)
    return [row for row in planned if assignment[unit_of(row)] == task]


def shard_sizes(planned: Sequence[PlannedRow], shards: int) -> list[int]:
    assignment = shard_of_units(planned, shards)
    sizes = [0] * shards
    for row in planned:
        sizes[assignment[unit_of(row)]] += 1
    return sizes
