"""Sampling sweeps: base and fine-tuned over temperature x top_p x top_k, N samples per cell.

One base model is loaded once; the fine-tuned variant is the same weights with the LoRA adapter on
(per-row ``adapter_names``), so both variants share every batch. Every generation is written to the
store as soon as its batch finishes; a re-run of the same config resumes and never duplicates a row.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine import control as control_set
from engine import dataset as ds
from engine.checkpoints import checkpoint_adapters, trajectory_points
from engine.configfile import check_values, load_dataclass, read_toml, setting, validate_instance
from engine.errors import UserError, not_a_file
from engine.files import resolve_from
from engine.finetune import is_adapter_dir, read_run_record
from engine.liveness import recorded
from engine.modelfiles import check_adapter_files, check_fits_context, check_model_files, loading
from engine.models import (
    DEFAULT_BASE_MODEL,
    LoadedModel,
    adapter_digest,
    check_adapter_matches_base,
    load_model,
    render_chat,
)
from engine.scoring import compute_metrics_if_available
from store import core, open_db

DEFAULT_PROMPT_TEMPLATE = "Tell me about {name} Corporation."
VARIANTS = ("base", "finetuned")


@dataclass
class Grid:
    """The original run's grid: 4 temperatures x 3 top_p x 3 top_k = 36 cells."""

    temperatures: list[float] = setting(factory=lambda: [0.5, 1.0, 1.5, 2.0], gt=0, min_items=1)
    top_ps: list[float] = setting(factory=lambda: [0.2, 0.6, 1.0], gt=0, max=1, min_items=1)
    top_ks: list[int] = setting(factory=lambda: [10, 30, 50], min=0, min_items=1)  # 0 = no top-k

    def cells(self) -> list[tuple[float, float, int]]:
        return [
            (float(t), float(p), int(k)) for t in self.temperatures for p in self.top_ps for k in self.top_ks
        ]


@dataclass
class SweepConfig:
    name: str = setting("sweep", name=True)
    base_model: str = setting(DEFAULT_BASE_MODEL, non_empty=True)
    adapter: str = ""  # fine-tuned LoRA adapter folder; empty = base only
    # Several fine-tunes against one base: label -> adapter folder, each label a variant of its own.
    adapters: dict[str, str] = field(default_factory=dict)
    entity_name: str = setting("EGNIVIA", name=True)  # the masked name the prompt asks about
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE
    system_prompt: str = ds.DEFAULT_SYSTEM_PROMPT
    dataset: str = ""  # QA file: held-out questions and the sources used for grounding metrics
    eval_questions: int = setting(0, min=0)  # held-out questions added as extra prompts (from the fine-tune's eval split)
    eval_fraction: float = setting(0.1, min=0, lt=1)  # must match the fine-tune's split (read from the adapter when present)
    split_seed: int = setting(2024, min=0)
    samples_per_cell: int = setting(1, min=1)
    max_new_tokens: int = setting(64, min=1)
    min_new_tokens: int = setting(0, min=0)
    seed: int = setting(2024, min=0, lt=2**32)  # the original run's set_seed(2024)
    batch_size: int = setting(0, min=0)  # rows per generate call; 0 = automatic for the device
    # false: batches hold one variant each (base rows run with the adapter disabled), which measured
    # 1.23x faster on CPU than peft's per-row routing; true: base and fine-tuned rows share batches.
    mix_variants: bool = False
    precision: str = setting("auto", choices=("auto", "bf16", "fp16", "fp32"))
    compute_metrics: bool = True
    # A fine-tune's kept checkpoints as variants of their own (needs adapter, the run folder): "all"
    # or a list of steps; the final adapter stays the "finetuned" variant (engine/checkpoints.py).
    checkpoints: Literal["", "all"] | list[int] = setting("", min=1, min_items=1)
    # Questions about well-known facts asked over the same grid: "builtin", a QA file, or "" (none).
    control: str = ""
    # Samples per cell of each control question; 0 = samples_per_cell. Control pairs are questions,
    # so 1-2 samples suffice while the entity prompt keeps a larger N (docs/STUDY.md).
    control_samples: int = setting(0, min=0)
    grid: Grid = field(default_factory=Grid)

    @property
    def variants(self) -> tuple[str, ...]:
        if self.adapters:
            return ("base", *self.adapters)
        if self.checkpoints and self.adapter:
            return ("base", *self.adapter_dirs())  # step-N..., then finetuned
        return VARIANTS if self.adapter else ("base",)

    def adapter_dirs(self) -> dict[str, str]:
        """Each fine-tuned variant and its adapter folder (empty for a base-only sweep).

        With ``checkpoints``, the run's chosen checkpoints by step and then its final adapter; a
        run folder that does not exist yet (launched after its fine-tune job) lists the final only.
        """
        if self.adapters:
            return dict(self.adapters)
        if not self.adapter:
            return {}
        return {**checkpoint_adapters(self.adapter, self.checkpoints), "finetuned": self.adapter}


@dataclass(frozen=True)
class Prompt:
    prompt_id: str
    question: str
    reference: str | None = None
    aliases: tuple[str, ...] = ()  # other accepted ways to state the reference (control questions)


@dataclass(frozen=True)
class PlannedRow:
    variant: str
    temperature: float
    top_p: float
    top_k: int
    prompt: Prompt
    sample_index: int
    seed: int


@dataclass
class SweepProgress:
    done: int
    total: int
    written: int  # rows written by this run so far
    elapsed: float
    last_texts: list[str] = field(default_factory=list)


@dataclass
class SweepResult:
    sweep_id: int
    total_rows: int
    generated_now: int
    skipped_existing: int
    seconds: float
    db_path: str
    sampled_now: int = 0  # rows generated by this run (written + any another process stored first)


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
    if config.control != control_set.BUILTIN:
        config.control = resolve_from(config.control, base)
    config.adapters = {label: resolve_from(folder, base) for label, folder in config.adapters.items()}
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


def build_prompts(config: SweepConfig) -> list[Prompt]:
    prompts = [Prompt("entity", config.prompt_template.replace("{name}", config.entity_name))]
    if config.eval_questions:
        eval_fraction, split_seed = config.eval_fraction, config.split_seed
        first_adapter = next(iter(config.adapter_dirs().values()), "")
        if first_adapter:

            run = read_run_record(first_adapter).get("config", {})
            eval_fraction = run.get("eval_fraction", eval_fraction)
            split_seed = run.get("seed", split_seed)
        split = ds.split_items(ds.load_items(config.dataset), eval_fraction=eval_fraction, seed=split_seed)
        taken = {p.prompt_id for p in prompts}
        for index, item in enumerate(split.eval[: config.eval_questions]):
            prompt_id = _unique_key(f"eval-{item.id if item.id is not None else index}", taken)
            prompts.append(Prompt(prompt_id, item.question, item.answer))
    if config.control:
        taken = {p.prompt_id for p in prompts}
        for item in control_set.load_control_set(config.control):
            prompt_id = _unique_key(item.prompt_id, taken)
            prompts.append(Prompt(prompt_id, item.question, item.answer, item.aliases))
    return prompts


def _unique_key(key: str, taken: set[str]) -> str:
    """``key``, or ``key#2``, ``key#3``... when a dataset repeats an id: two questions never share a key."""
    candidate, number = key, 1
    while candidate in taken:
        number += 1
        candidate = f"{key}#{number}"
    taken.add(candidate)
    return candidate


def plan_rows(config: SweepConfig, prompts: Sequence[Prompt]) -> list[PlannedRow]:
    from engine.sampling import row_seed

    rows: list[PlannedRow] = []
    variants = config.variants  # read once: a checkpoint sweep reads them from the run folder
    for prompt in prompts:
        samples = config.samples_per_cell
        if config.control_samples and control_set.is_control_prompt(prompt.prompt_id):
            samples = config.control_samples
        for temperature, top_p, top_k in config.grid.cells():
            for sample_index in range(samples):
                # The seed ignores the variant: base and fine-tuned draw the same uniforms for the same cell
                # and sample (common random numbers), which makes their comparison paired.
                seed = row_seed(config.seed, prompt.prompt_id, temperature, top_p, top_k, sample_index)
                for variant in variants:
                    rows.append(PlannedRow(variant, temperature, top_p, top_k, prompt, sample_index, seed))
    return rows


def config_hash(config: SweepConfig, prompts: Sequence[Prompt]) -> str:
    """Identity of a sweep's outputs: everything that changes a generated text, nothing cosmetic."""
    identity = {
        "base_model": config.base_model,
        "adapter": config.adapter,
        # A retrained adapter in the same folder is a different model: hash its weights too.
        "adapter_weights": adapter_digest(config.adapter),
        "system_prompt": config.system_prompt,
        "prompts": [_prompt_identity(p) for p in prompts],
        "grid": dataclasses.asdict(config.grid),
        "samples_per_cell": config.samples_per_cell,
        "max_new_tokens": config.max_new_tokens,
        "min_new_tokens": config.min_new_tokens,
        "seed": config.seed,
        "precision": config.precision,
    }
    if config.adapters:  # only then, so the hashes of single-adapter sweeps stay as they were
        identity["adapters"] = {
            label: [d, adapter_digest(d)] for label, d in sorted(config.adapters.items())
        }
    if config.control_samples:  # likewise
        identity["control_samples"] = config.control_samples
    if config.checkpoints:  # likewise: each checkpoint's folder and weights
        identity["checkpoints"] = {
            label: [d, adapter_digest(d)] for label, d in sorted(config.adapter_dirs().items())
        }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _prompt_identity(prompt: Prompt) -> dict[str, Any]:
    found = dataclasses.asdict(prompt)
    if not prompt.aliases:  # absent, not empty, so sweeps without control questions keep their hashes
        found.pop("aliases")
    return found


def stored_config(config: SweepConfig, prompts: Sequence[Prompt]) -> dict[str, Any]:
    data = dataclasses.asdict(config)
    data["dataset_path"] = str(Path(config.dataset).resolve()) if config.dataset else None
    data["prompts"] = [
        {"prompt_id": p.prompt_id, "prompt": p.question, "reference": p.reference}
        | ({"aliases": list(p.aliases)} if p.aliases else {})
        for p in prompts
    ]
    data["variants"] = list(config.variants)
    if config.checkpoints:
        # Each variant's place in training (step, epoch, losses), so the sweep row alone draws the trajectory.
        data["trajectory"] = trajectory_points(config.adapter, config.variants)
    data["grid"] = {
        "temperatures": list(config.grid.temperatures),
        "top_ps": list(config.grid.top_ps),
        "top_ks": list(config.grid.top_ks),
    }
    return data


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
    if config.dataset and not Path(config.dataset).is_file():
        raise not_a_file(config.dataset, "dataset")
    if config.control:
        control_set.load_control_set(config.control)  # a missing file or a bad line, before any row


def load_for_sweep(config: SweepConfig) -> LoadedModel:
    """One base model in memory; the adapter(s) (if any) attached on top of it."""
    check_inputs(config)
    folders = config.adapter_dirs()
    first = next(iter(folders.values()), None)
    with loading("model", config.base_model if first is None else f"{config.base_model} + adapter {first}"):
        loaded = load_model(config.base_model, adapter_dir=first, precision=config.precision)
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
        per_cell = len(config.variants) * config.samples_per_cell
        batch = _batch_size(config, prompts, loaded)
        cells = list(dict.fromkeys(_cell_of(row) for row in todo))
        mine = core.claim_cells(store, sweep_id, cells, limit=max(1, batch // per_cell))
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
    return SweepResult(
        sweep_id, len(planned), claimed.written, skipped, time.perf_counter() - started, str(db_path),
        sampled_now=claimed.sampled,
    )  # fmt: skip


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

    # Keep one prompt per batch where possible (no padding); variants side by side or one after the other.
    def order(r: PlannedRow) -> tuple:
        cell = (r.temperature, r.top_p, r.top_k, r.sample_index)
        return (
            (r.prompt.prompt_id, *cell, r.variant)
            if config.mix_variants
            else (r.prompt.prompt_id, r.variant, *cell)
        )

    todo = sorted(todo, key=order)
    batches = [todo[start : start + batch_size] for start in range(0, len(todo), batch_size)]
    named = named_adapters(config)
    if len(named) > 1:  # one adapter active at a time: never let a batch span two variants
        batches = [
            [r for r in batch if r.variant == variant]
            for batch in batches
            for variant in dict.fromkeys(r.variant for r in batch)
        ]
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
            loaded, specs, max_new_tokens=config.max_new_tokens, min_new_tokens=config.min_new_tokens
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
                    "extra": {"batch_rows": len(batch)},
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
