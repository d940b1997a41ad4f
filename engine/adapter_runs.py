"""The adapters a store knows (fine-tune runs, and their checkpoints where the store keeps them) and
what each was trained on: its base, its dataset and the masked entity name.

The comparison app lists these so any stored adapter can be served without a restart, and takes
its default prompt ("Tell me about ZYTRELL Corporation.") from the entity the adapter was trained
on rather than a fixed name. The entity comes from the dataset the adapter's run record names (a
kept checkpoint has its own record): the recorded masking that wrote it (its new name), else the
all-capitals word most of its questions use (as an imported log's prompt is read); only without a
readable dataset, from the sweeps that sampled this adapter (their ``entity_name``, which may be a
sweep's default rather than what the adapter learnt).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.dataset import load_items
from engine.errors import UserError
from engine.finetune import is_adapter_dir, read_run_record
from engine.importlog import infer_entity
from engine.mask import recorded_mask_for
from store import core

QUESTIONS_READ = 20  # dataset questions read to infer the entity name


@dataclass(frozen=True)
class AdapterChoice:
    """One adapter the app can serve: a fine-tune run's final adapter or one of its checkpoints."""

    path: str
    label: str  # '#3 demo-lora (lora, done)' or '#3 demo-lora · step 10'
    run_id: int | None
    step: int | None  # a checkpoint's training step (None: the run's final adapter)
    base_model: str
    dataset: str | None
    exists: bool  # the folder is still there with its adapter_config.json


def _same_path(first: str | None, second: str | None) -> bool:
    if not first or not second:
        return False
    try:
        return Path(first).resolve() == Path(second).resolve()
    except OSError:
        return first == second


def run_record(adapter_dir: str | Path) -> dict[str, Any]:
    """The record a fine-tune (or a kept checkpoint) left next to its adapter ({} when absent or
    unreadable: the app lists what it can rather than failing on one damaged folder)."""
    try:
        return read_run_record(adapter_dir)
    except (OSError, ValueError):
        return {}


def adapter_choices(store: Any, checkpoints: dict[int, list[Any]] | None = None) -> list[AdapterChoice]:
    """Every fine-tune run's adapter, newest first, each followed by its checkpoints (``checkpoints``:
    run id -> records with ``step`` and ``path``, where the store keeps them)."""
    choices = []
    for row in core.list_finetune_runs(store):
        run_id = int(row["id"])
        path = str(row.get("output_dir") or "")
        dataset = row.get("dataset_path") or None
        status = str(row.get("status") or "")
        choices.append(
            AdapterChoice(
                path=path,
                label=f"#{run_id} {row.get('name') or Path(path).name} ({row.get('mode') or 'lora'}, {status})",
                run_id=run_id,
                step=None,
                base_model=str(row.get("base_model") or ""),
                dataset=dataset,
                exists=bool(path) and is_adapter_dir(path),
            )
        )
        for checkpoint in (checkpoints or {}).get(run_id, []):
            step = int(checkpoint.step)
            choices.append(
                AdapterChoice(
                    path=str(checkpoint.path),
                    label=f"#{run_id} {row.get('name') or ''} · checkpoint at step {step}",
                    run_id=run_id,
                    step=step,
                    base_model=str(row.get("base_model") or ""),
                    dataset=dataset,
                    exists=is_adapter_dir(checkpoint.path),
                )
            )
    return choices


def dataset_entity(dataset: str | Path | None) -> str | None:
    """The all-capitals name most of a QA file's first questions use (None without one)."""
    if not dataset or not Path(dataset).is_file():
        return None
    try:
        items = load_items(str(dataset), require_context=False)
    except UserError:
        return None
    names = Counter(
        name for item in items[:QUESTIONS_READ] if (name := infer_entity(item.question)) is not None
    )
    return names.most_common(1)[0][0] if names else None


def adapter_entity(store: Any, adapter_dir: str | Path, dataset: str | None = None) -> str | None:
    """The masked entity name ``adapter_dir`` was trained on (see the module doc for the order)."""
    dataset = dataset or run_record(adapter_dir).get("dataset") or _run_dataset(store, adapter_dir)
    if dataset and Path(dataset).is_file():
        recorded = recorded_mask_for(store, dataset)
        if recorded is not None and recorded.new_name:
            return recorded.new_name
        named = dataset_entity(dataset)
        if named:
            return named
    for sweep in core.list_sweeps(store):  # newest first
        entity = (sweep.get("config") or {}).get("entity_name")
        if entity and _same_path(sweep.get("adapter_dir"), str(adapter_dir)):
            return str(entity)
    return None


def adapter_dataset(store: Any, adapter_dir: str | Path) -> str | None:
    """The QA file an adapter was trained on (its run record, else its run row), if it still exists."""
    dataset = run_record(adapter_dir).get("dataset") or _run_dataset(store, adapter_dir)
    return str(dataset) if dataset and Path(dataset).is_file() else None


def _run_dataset(store: Any, adapter_dir: str | Path) -> str | None:
    for row in core.list_finetune_runs(store):
        if _same_path(row.get("output_dir"), str(adapter_dir)):
            return row.get("dataset_path") or None
    return None
