"""Sampling sweeps: base and fine-tuned over temperature x top_p x top_k, N samples per cell.

One base model is loaded once; the fine-tuned variant is the same weights with the LoRA adapter on
(per-row ``adapter_names``), so both variants share every batch. Every generation is written to the
store as soon as its batch finishes; a re-run of the same config resumes and never duplicates a row.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import control as control_set
from engine import verifier as engine_verifier
from engine.configfile import check_values, load_dataclass, read_toml, validate_instance
from engine.errors import UserError, not_a_file
from engine.files import resolve_from
from engine.finetune import is_adapter_dir
from engine.liveness import recorded
from engine.metrics.tokens import TokenStats
from engine.modelfiles import check_adapter_files, check_fits_context, check_model_files, loading
from engine.models import (
    LoadedModel,
    check_adapter_matches_base,
    check_chat_template,
    load_model,
    render_chat,
    template_setting_from,
)
from engine.scoring import compute_metrics_if_available
from engine.sweep_config import (
    DEFAULT_PROMPT_TEMPLATE,
    VARIANTS,
    Grid,
    PlannedRow,
    Prompt,
    SweepConfig,
    SweepProgress,
    SweepResult,
    build_prompts,
    config_hash,
    plan_rows,
    stored_config,
)
from store import core, open_db


def load_sweep_config(
    path: str | Path,
    overrides: dict[str, Any] | None = None,
    override_labels: dict[str, str] | None = None,
) -> SweepConfig:
    config_path = Path(path)
    values = read_toml(config_path, table="sweep")
    # Command-line overrides are checked on their own, so a message names the option, not the file.
    values.update(check_values(SweepConfig, overrides or {}, source="command line", labels=override_labels))
    config = sweep_config_from_dict(values, where=str(config_path))
    base = config_path.resolve().parent
    for name in ("adapter", "dataset"):
        setattr(config, name, resolve_from(getattr(config, name), base))
    if config.verifier and Path(resolve_from(config.verifier, base)).exists():
        config.verifier = resolve_from(config.verifier, base)  # a folder next to the config, not a hub id
    if config.control != control_set.BUILTIN:
        config.control = resolve_from(config.control, base)
    config.adapters = {label: resolve_from(folder, base) for label, folder in config.adapters.items()}
    config.chat_template = template_setting_from(config.chat_template, base)
    return config


def sweep_config_from_dict(values: dict[str, Any], *, where: str = "config") -> SweepConfig:
    config = load_dataclass(SweepConfig, values, source=where)  # types, ranges, unknown fields
    validate(config, where=where)
    return config


def validate(config: SweepConfig, *, where: str = "config") -> None:
    validate_instance(config, source=where)  # the typed checks of engine.configfile, for any config
    if config.eval_questions and not config.dataset:
        raise UserError(f"{where}: eval_questions needs 'dataset' (the QA file the model was tuned on)")
    if "{name}" not in config.prompt_template and config.prompt_template.count("{") > 0:
        raise UserError(f"{where}: prompt_template may only use the {{name}} placeholder")
    _validate_adapters(config, where)
    if config.checkpoints and not config.adapter:
        raise UserError(f"{where}: checkpoints needs 'adapter' (the fine-tune run folder that kept them)")
    if config.control_samples and not config.control:
        raise UserError(f"{where}: control_samples needs 'control' (\"builtin\" or a QA file)")
    if config.control_samples > config.samples_per_cell:
        raise UserError(
            f"{where}: control_samples = {config.control_samples} exceeds samples_per_cell = "
            f"{config.samples_per_cell} (a shard takes whole cell x sample units)"
        )
    if config.checkpoints and config.mix_variants:
        raise UserError(f"{where}: mix_variants = true works with one adapter only, not with checkpoints")


_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def _validate_adapters(config: SweepConfig, where: str) -> None:
    if not isinstance(config.adapters, dict):
        raise UserError(f'{where}: adapters must be a table of label = "adapter folder"')
    if config.adapters and config.adapter:
        raise UserError(f"{where}: set either adapter (one fine-tune) or adapters (several), not both")
    for label, folder in config.adapters.items():
        if label == "base" or not label or not set(label) <= _LABEL_CHARS:
            raise UserError(
                f"{where}: adapters.{label}: a label may only hold letters, digits and _ . - (not 'base')"
            )
        if not isinstance(folder, str) or not folder:
            raise UserError(f"{where}: adapters.{label}: must be an adapter folder path")
    if len(config.adapters) > 1 and config.mix_variants:
        # peft's per-row routing knows one adapter name; several adapters run one variant per batch.
        raise UserError(f"{where}: mix_variants = true works with one adapter only")


def chat_prompt(tokenizer, system_prompt: str, question: str) -> str:
    messages = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": question})
    return render_chat(tokenizer, messages, add_generation_prompt=True)  # merges a refused system turn


def check_inputs(config: SweepConfig) -> None:
    """Everything that can be checked without loading a model; run before any store row exists."""

    validate(config)
    check_model_files(config.base_model)  # config, tokenizer, intact weights: no library traceback later
    for folder in config.adapter_dirs().values():
        if not Path(folder).exists():
            raise UserError(f"adapter folder {folder} does not exist")
        if not is_adapter_dir(folder):
            raise UserError(
                f"{folder}: not a LoRA adapter (a full fine-tune cannot share the base weights); "
                "sweep it as its own base_model instead"
            )
        check_adapter_files(folder)
        with loading("adapter", folder):
            check_adapter_matches_base(config.base_model, folder)  # its recorded base and shapes, no weights
    # The tokenizer alone: no template (and no setting, no adapter record) stops here, before weights.
    check_chat_template(config.base_model, config.chat_template, list(config.adapter_dirs().values()))
    if config.dataset and not Path(config.dataset).is_file():
        raise not_a_file(config.dataset, "dataset")
    if config.verifier:
        engine_verifier.check_verifier(engine_verifier.VerifierSettings(model=config.verifier))
    if config.control:
        control_set.load_control_set(config.control)  # a missing file or a bad line, before any row


def load_for_sweep(config: SweepConfig) -> LoadedModel:
    """One base model in memory; the adapter(s) (if any) attached on top of it."""
    check_inputs(config)
    folders = config.adapter_dirs()
    first = next(iter(folders.values()), None)
    with loading("model", config.base_model if first is None else f"{config.base_model} + adapter {first}"):
        loaded = load_model(
            config.base_model, adapter_dir=first, precision=config.precision, chat_template=config.chat_template
        )
    for label, folder in list(folders.items())[1:]:
        with loading("adapter", folder):
            loaded.model.load_adapter(folder, adapter_name=label)  # the first one is peft's "default"
    return loaded


def named_adapters(config: SweepConfig) -> dict[str, str]:
    """The adapters loaded under names of their own, one active at a time: ``[sweep.adapters]``, or a
    run's checkpoints with its final adapter. Empty for one plain adapter (peft's per-row routing)."""
    if config.adapters:
        return dict(config.adapters)
    return config.adapter_dirs() if config.checkpoints else {}


def _activate_variant(named: dict[str, str], loaded: LoadedModel, variant: str) -> str:
    """Make ``variant``'s adapter the active one; returns the variant name sampling understands."""
    if variant == "base" or not named:
        return variant
    first = next(iter(named))
    loaded.model.set_adapter("default" if variant == first else variant)
    return "finetuned"


def run_sweep(
    config: SweepConfig,
    *,
    db_path: str | Path,
    loaded: LoadedModel | None = None,
    progress: Callable[[SweepProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SweepResult:
    """Run (or resume) a sweep; returns when every planned row is stored or ``should_stop()`` is true."""

    check_inputs(config)  # before the store row: a bad input must not leave a sweep 'running'
    prompts = build_prompts(config)
    planned = plan_rows(config, prompts)
    store = open_db(db_path)
    try:
        sweep_id = core.get_or_create_sweep(
            store,
            name=config.name,
            source="engine",
            base_model=config.base_model,
            adapter_dir=config.adapter or None,
            config_hash=config_hash(config, prompts),
            config=stored_config(config, prompts),
            expected_rows=len(planned),
        )

        def mark(status: str, reason: str) -> None:
            # Whatever stopped the sweep is kept on its row, so `sweeps` never shows it running for ever.
            core.set_sweep_status(store, sweep_id, status, error=reason)

        with recorded(mark):
            return _run_recorded(
                config, store, sweep_id, prompts, planned, db_path, loaded=loaded, progress=progress,
                should_stop=should_stop,
            )  # fmt: skip
    finally:
        store.close()  # this call opened it


@dataclass
class _Claimed:
    """What this process sampled of a sweep that other processes may be running too."""

    written: int = 0  # rows this process stored
    sampled: int = 0  # rows this process generated (more than written only if a row was stored twice)


def _todo(store, sweep_id: int, planned: list[PlannedRow]) -> list[PlannedRow]:
    done = core.done_keys(store, sweep_id)
    return [
        row
        for row in planned
        if core.GenerationKey(
            row.variant, row.temperature, row.top_p, row.top_k, row.prompt.prompt_id, row.sample_index
        )
        not in done
    ]


def _cell_of(row: PlannedRow) -> str:
    return core.cell_text(row.prompt.prompt_id, row.temperature, row.top_p, row.top_k)


# How often a process whose remaining cells are all leased to another process looks again.
WAIT_FOR_OTHERS_S = 0.5


def _run_recorded(
    config: SweepConfig,
    store,
    sweep_id: int,
    prompts: list[Prompt],
    planned: list[PlannedRow],
    db_path: str | Path,
    *,
    loaded: LoadedModel | None,
    progress: Callable[[SweepProgress], None] | None,
    should_stop: Callable[[], bool] | None,
) -> SweepResult:
    """Sample the rows the store lacks, a few cells at a time, each cell leased in the store first.

    Two processes on the same sweep lease disjoint cells (``store.core.claim_cells``); one that
    finds every remaining cell leased waits for them, and takes over the cells of a process that
    died. So no cell is sampled twice and the rows each reports as new add up to what is stored.
    """
    todo = _todo(store, sweep_id, planned)
    skipped = len(planned) - len(todo)
    started = time.perf_counter()
    claimed = _Claimed()

    def write(rows: list[dict[str, Any]]) -> int:
        claimed.sampled += len(rows)
        return core.add_generations(store, sweep_id, rows)

    def stopping() -> bool:
        return bool(should_stop and should_stop())

    while todo and not stopping():
        loaded = loaded or load_for_sweep(config)
        batch = _batch_size(config, prompts, loaded)
        rows_in_cell = Counter(_cell_of(row) for row in todo)
        cells = list(rows_in_cell)
        wanted = batch * _calls_per_batch(config)  # rows: a full batch for each generate call
        mine = core.claim_cells(store, sweep_id, cells, limit=cells_filling(cells, rows_in_cell, wanted))
        if not mine:
            time.sleep(WAIT_FOR_OTHERS_S)  # every remaining cell is being sampled by another process
            todo = _todo(store, sweep_id, planned)
            continue
        chosen = set(mine)
        # Read what is missing again now the lease is held: another process may have stored (and
        # released) one of these cells between our last read and the lease.
        todo = _todo(store, sweep_id, planned)
        rows = [row for row in todo if _cell_of(row) in chosen]
        if not rows:
            core.release_cells(store, sweep_id, mine)
            continue
        before = claimed.written

        def report(step: SweepProgress, before: int = before) -> None:
            if progress:
                progress(
                    dataclasses.replace(
                        step, written=before + step.written, elapsed=time.perf_counter() - started
                    )
                )

        try:
            claimed.written += generate_planned(
                config, prompts, rows, write, loaded=loaded,
                progress=report, should_stop=should_stop, already_done=len(planned) - len(todo),
                planned_total=len(planned),
            )  # fmt: skip
        finally:
            core.release_cells(store, sweep_id, mine)
        todo = _todo(store, sweep_id, planned)
        if any(_cell_of(row) in chosen for row in todo) and not stopping():
            break  # sampled, yet not stored: said below, never sampled again in a loop
    stored = core.count_generations(store, sweep_id)
    complete = stored >= len(planned)
    if not complete and not stopping():
        # Every planned row was attempted, yet some are missing: never report that as success.
        raise UserError(f"sweep {sweep_id}: only {stored} of {len(planned)} planned rows were stored")
    core.set_sweep_status(store, sweep_id, "completed" if complete else "interrupted")
    if complete and config.compute_metrics:
        compute_metrics_if_available(store, sweep_id)
        if config.verifier:
            engine_verifier.verify_if_requested(store, sweep_id, config.verifier)
    return SweepResult(
        sweep_id, len(planned), claimed.written, skipped, time.perf_counter() - started, str(db_path),
        sampled_now=claimed.sampled,
    )  # fmt: skip


def _calls_per_batch(config: SweepConfig) -> int:
    """How many ``generate`` calls one batch of rows becomes: one per variant when adapters are
    switched by name (checkpoints, ``[sweep.adapters]``), else one."""
    return len(config.variants) if len(named_adapters(config)) > 1 else 1


def cells_filling(cells: Sequence[str], rows_in_cell: Mapping[str, int], rows: int) -> int:
    """How many of ``cells``, in order, it takes to hold about ``rows`` rows (at least one).

    Cells hold different numbers of rows when control questions have fewer samples than the entity
    prompt (``control_samples``); counting cells of the entity's size instead leased a handful of
    control rows at a time, and a checkpoint sweep then ran them in calls of a few rows each
    (the tiny demo, one run on the loaded machine: its 196 control rows, in calls of 16, took 3.6x
    the time per row of its 152 entity and held-out rows).
    """
    total = 0
    for count, cell in enumerate(cells, 1):
        total += rows_in_cell[cell]
        if total >= rows:
            return count
    return max(1, len(cells))


def _batch_size(config: SweepConfig, prompts: Sequence[Prompt], loaded: LoadedModel) -> int:
    """Rows per generate call: the configured size, or what the device holds for the longest prompt."""
    from engine.sampling import auto_batch_size

    longest = max(_prompt_tokens(loaded, config, prompts).values())
    return config.batch_size or auto_batch_size(loaded, longest, config.max_new_tokens)


def _prompt_tokens(loaded: LoadedModel, config: SweepConfig, prompts: Sequence[Prompt]) -> dict[str, int]:
    """Each prompt's length in tokens, chat template included; refuses one the model cannot hold."""
    lengths = {
        p.prompt_id: len(
            loaded.tokenizer(chat_prompt(loaded.tokenizer, config.system_prompt, p.question), add_special_tokens=False)[
                "input_ids"
            ]
        )
        for p in prompts
    }
    for prompt_id, tokens in lengths.items():
        check_fits_context(loaded, tokens, config.max_new_tokens, what=f"prompt {prompt_id!r}")
    return lengths


def generate_planned(
    config: SweepConfig,
    prompts: Sequence[Prompt],
    todo: list[PlannedRow],
    write: Callable[[list[dict[str, Any]]], int],
    *,
    loaded: LoadedModel | None = None,
    progress: Callable[[SweepProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    already_done: int = 0,
    planned_total: int | None = None,
) -> int:
    """Generate ``todo`` batch by batch and hand each finished batch to ``write`` (store or results file).

    Returns what ``write`` reported as written. Texts depend only on each row's seed and settings, so
    any subset of a plan (a shard, a resumed remainder) gives the same text per row as the whole plan.
    """
    from engine.sampling import RowSpec, generate_rows

    if not todo:
        return 0
    total = planned_total if planned_total is not None else already_done + len(todo)
    started = time.perf_counter()
    written = 0
    loaded = loaded or load_for_sweep(config)
    prompt_texts = {
        p.prompt_id: chat_prompt(loaded.tokenizer, config.system_prompt, p.question) for p in prompts
    }
    batch_size = _batch_size(config, prompts, loaded)  # refuses a prompt longer than the model's context

    named = named_adapters(config)

    # Keep one prompt per batch where possible (no padding); variants side by side or one after the other.
    def order(r: PlannedRow) -> tuple:
        cell = (r.temperature, r.top_p, r.top_k, r.sample_index)
        return (
            (r.prompt.prompt_id, *cell, r.variant)
            if config.mix_variants
            else (r.prompt.prompt_id, r.variant, *cell)
        )

    todo = sorted(todo, key=order)
    if len(named) > 1:
        # One adapter active at a time: each variant's rows in batches of their own, every batch full
        # but the variant's last (cut first and split by variant after, a batch became a call per
        # variant holding a fraction of its rows).
        groups = [[r for r in todo if r.variant == v] for v in dict.fromkeys(r.variant for r in todo)]
    else:
        groups = [todo]
    batches = [group[start : start + batch_size] for group in groups for start in range(0, len(group), batch_size)]
    finished = 0
    for batch in batches:
        if should_stop and should_stop():
            break
        routed = _activate_variant(named, loaded, batch[0].variant) if named else None
        specs = [
            RowSpec(
                prompt_texts[r.prompt.prompt_id], routed or r.variant, r.temperature, r.top_p, r.top_k, r.seed
            )
            for r in batch
        ]
        batch_started = time.perf_counter()
        results = generate_rows(
            loaded,
            specs,
            max_new_tokens=config.max_new_tokens,
            min_new_tokens=config.min_new_tokens,
            record_logprobs=config.token_logprobs,
        )
        per_row_seconds = (time.perf_counter() - batch_started) / len(batch)
        written += write(
            [
                {
                    "variant": r.variant,
                    "temperature": r.temperature,
                    "top_p": r.top_p,
                    "top_k": r.top_k,
                    "prompt_id": r.prompt.prompt_id,
                    "prompt": r.prompt.question,
                    "reference": r.prompt.reference,
                    "sample_index": r.sample_index,
                    "seed": r.seed,
                    "text": result.text,
                    "new_tokens": result.new_tokens,
                    "seconds": per_row_seconds,
                    "extra": _extra(len(batch), result.token_stats),
                }
                for r, result in zip(batch, results, strict=True)
            ]
        )
        finished += len(batch)
        if progress:
            progress(
                SweepProgress(
                    already_done + finished,
                    total,
                    written,
                    time.perf_counter() - started,
                    [x.text for x in results[:2]],
                )
            )
    return written


def _extra(batch_rows: int, stats: TokenStats | None) -> dict[str, Any]:
    """A generation's ``extra``: its batch size and, when recorded, its token log-prob signals."""
    extra: dict[str, Any] = {"batch_rows": batch_rows}
    if stats is not None:
        extra["token_stats"] = stats.to_dict()
    return extra


__all__ = [
    "DEFAULT_PROMPT_TEMPLATE",
    "VARIANTS",
    "WAIT_FOR_OTHERS_S",
    "Grid",
    "PlannedRow",
    "Prompt",
    "SweepConfig",
    "SweepProgress",
    "SweepResult",
    "build_prompts",
    "cells_filling",
    "chat_prompt",
    "check_inputs",
    "config_hash",
    "generate_planned",
    "load_for_sweep",
    "load_sweep_config",
    "named_adapters",
    "plan_rows",
    "run_sweep",
    "stored_config",
    "sweep_config_from_dict",
    "validate",
]
