"""A sweep's labels as CSV: export them, and import them all or nothing, each row checked first."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.files import write_atomic
from engine.labels.samples import check_labeller, default_labeller, require_sweep, sweep_labels
from store import core as store_core
from store import labels as store_labels

EXPORT_COLUMNS = (
    "generation_id",
    "variant",
    "temperature",
    "top_p",
    "top_k",
    "prompt_id",
    "sample_index",
    "label",
    "note",
    "who",
    "created_at",
)


def export_labels_csv(store: Any, sweep_id: int, path: str | Path, *, who: str | None = None) -> int:
    """Write a sweep's labels (one row per generation and labeller) atomically; returns the row count."""
    rows = sweep_labels(store, sweep_id, who=who)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    write_atomic(path, buffer.getvalue())
    return len(rows)


@dataclass(frozen=True)
class ImportResult:
    rows: int
    written: int


def import_labels_csv(
    store: Any,
    sweep_id: int,
    path: str | Path,
    *,
    who: str | None = None,
    variant: str | None = None,
) -> ImportResult:
    """Read labels from CSV and store them, all or nothing.

    A row names its generation by ``generation_id``, or by its grid position: ``temperature``,
    ``top_p``, ``top_k`` plus ``variant`` (or the ``variant`` argument), ``prompt_id`` (optional
    when the sweep has one prompt) and ``sample_index`` (default 0). ``note`` or ``reason`` is the
    note; ``who`` in the file overrides the argument. A row without ``who`` takes the ``who``
    argument; without one either, it is refused when other rows of the file name labellers (whose
    label would it be?), and is the default labeller's when none do. Every row is checked before
    anything is written; the first bad one raises UserError naming its file, line and field.
    """
    csv_path = Path(path)
    require_sweep(store, sweep_id)
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UserError(f"{csv_path}: cannot read ({exc.strerror or exc})") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in (reader.fieldnames or [])]
    if "label" not in header:
        raise UserError(f"{csv_path}:1: no 'label' column (header: {', '.join(header) or 'empty'})")
    by_position = _position_index(store, sweep_id)
    prompts = sorted({key[1] for key in by_position})
    known_ids = {generation_id for generation_id in by_position.values()}
    rows = [
        (line, {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None})
        for line, raw in enumerate(reader, start=2)
    ]
    rows = [(line, row) for line, row in rows if any(row.values())]
    named = sorted({row["who"] for _line, row in rows if row.get("who")})
    fallback = check_labeller(who) if who is not None else (None if named else default_labeller())
    labels: list[store_labels.Label] = []
    for line, row in rows:
        where = f"{csv_path}:{line}"
        try:
            label = store_labels.check_label(row.get("label", ""))
        except ValueError as exc:
            raise UserError(f"{where}: field 'label': {exc}") from None
        generation_id = _row_generation(row, where, by_position, known_ids, prompts, variant)
        note = row.get("note") or row.get("reason") or None
        if row.get("who"):
            labeller = check_labeller(row["who"], where=f"{where}: field 'who'")
        elif fallback is not None:
            labeller = fallback
        else:
            raise UserError(
                f"{where}: field 'who' is empty while other rows name labellers ({', '.join(named[:3])}"
                f"{', ...' if len(named) > 3 else ''}): fill it in, or give --who for rows without one"
            )
        labels.append(store_labels.Label(generation_id, label, labeller, note))
    written = store_labels.save_labels(store, labels)
    return ImportResult(rows=len(labels), written=written)


_Position = tuple[str, str, float, float, int, int]  # variant, prompt_id, temperature, top_p, top_k, sample


def _position_index(store: Any, sweep_id: int) -> dict[_Position, int]:
    index: dict[_Position, int] = {}
    for row in store_core.iter_generations(store, sweep_id):
        key = (
            row["variant"],
            row["prompt_id"],
            float(row["temperature"]),
            float(row["top_p"]),
            int(row["top_k"]),
            int(row["sample_index"]),
        )
        index[key] = int(row["id"])
    return index


def _number(row: dict[str, str], name: str, where: str, kind: type) -> Any:
    value = row.get(name, "")
    if value == "":
        raise UserError(f"{where}: field '{name}' is empty")
    try:
        number = kind(float(value)) if kind is int and "." in value else kind(value)
    except ValueError:
        raise UserError(f"{where}: field '{name}': {value!r} is not a number") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise UserError(f"{where}: field '{name}': {value!r} is not a finite number")
    return number


def _row_generation(
    row: dict[str, str],
    where: str,
    by_position: dict[_Position, int],
    known_ids: set[int],
    prompts: Sequence[str],
    variant: str | None,
) -> int:
    if row.get("generation_id"):
        generation_id = _number(row, "generation_id", where, int)
        if generation_id not in known_ids:
            raise UserError(
                f"{where}: field 'generation_id': {generation_id} is not a generation of this sweep"
            )
        return generation_id
    chosen_variant = row.get("variant") or variant
    if not chosen_variant:
        raise UserError(f"{where}: field 'variant' is empty (give it in the file or with --variant)")
    prompt_id = row.get("prompt_id") or (prompts[0] if len(prompts) == 1 else "")
    if not prompt_id:
        raise UserError(f"{where}: field 'prompt_id' is empty and the sweep has {len(prompts)} prompts")
    key = (
        chosen_variant,
        prompt_id,
        _number(row, "temperature", where, float),
        _number(row, "top_p", where, float),
        _number(row, "top_k", where, int),
        _number(row, "sample_index", where, int) if row.get("sample_index") else 0,
    )
    if key not in by_position:
        raise UserError(
            f"{where}: no generation at variant={key[0]} prompt={key[1]} T={key[2]:g} top_p={key[3]:g} "
            f"top_k={key[4]} sample={key[5]} in this sweep"
        )
    return by_position[key]
