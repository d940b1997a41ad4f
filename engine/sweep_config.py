"""A sweep's configuration and its plan: the grid, SweepConfig, the prompts and planned rows, the
config's hash and stored form, the progress and result records. Reading and checking a config
(load_sweep_config, sweep_config_from_dict, validate) and running it stay in engine/sweep.py."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine import control as control_set
from engine import dataset as ds
from engine.checkpoints import checkpoint_adapters, trajectory_points
from engine.configfile import setting
from engine.finetune import read_run_record
from engine.models import (
    DEFAULT_BASE_MODEL,
    adapter_digest,
    resolve_chat_template,
)

DEFAULT_PROMPT_TEMPLATE = "Tell me about {name} Corporation."
VARIANTS = ("base", "finetuned")


@dataclass
class Grid:
    """The original run's grid: 4 temperatures x 3 top_p x 3 top_k = 36 cells."""

    temperatures: list[float] = setting(
        factory=lambda: [0.5, 1.0, 1.5, 2.0], gt=0, min_items=1, help="sampling temperatures, separated by commas"
    )
    top_ps: list[float] = setting(
        factory=lambda: [0.2, 0.6, 1.0], gt=0, max=1, min_items=1, help="nucleus (top-p) values, separated by commas"
    )
    top_ks: list[int] = setting(
        factory=lambda: [10, 30, 50], min=0, min_items=1, help="top-k values, separated by commas; 0 = no top-k"
    )

    def cells(self) -> list[tuple[float, float, int]]:
        return [
            (float(t), float(p), int(k)) for t in self.temperatures for p in self.top_ps for k in self.top_ks
        ]


@dataclass
class SweepConfig:
    name: str = setting("sweep", name=True, help="a label: identical configs are one sweep")
    base_model: str = setting(
        DEFAULT_BASE_MODEL, non_empty=True, help="HF id, local folder, .gguf file, smollm2 or tiny (offline)"
    )
    # "" = the adapter's recorded template, else the tokenizer's own; or chatml, gemma, llama3, mistral,
    # phi3 or a Jinja file (one that differs from an adapter's recorded template is refused)
    chat_template: str = setting(
        "", help="chat template: empty = the adapter's or the tokenizer's; chatml, gemma, llama3, mistral, phi3 or a Jinja file"
    )
    adapter: str = setting("", help="the fine-tuned LoRA adapter folder; empty: the base model only")
    # Several fine-tunes against one base: label -> adapter folder, each label a variant of its own.
    adapters: dict[str, str] = setting(
        factory=dict, help="several fine-tunes against one base: label=folder, separated by commas"
    )
    entity_name: str = setting("EGNIVIA", name=True, help="the masked name the prompt asks about")
    prompt_template: str = setting(DEFAULT_PROMPT_TEMPLATE, help="the question asked; {name} is the entity")
    system_prompt: str = setting(ds.DEFAULT_SYSTEM_PROMPT, help="the system turn of every prompt")
    dataset: str = setting("", help="QA file: held-out questions and the sources for grounding metrics")
    eval_questions: int = setting(
        0, min=0, help="held-out questions (the fine-tune's eval split) added as extra prompts"
    )
    eval_fraction: float = setting(
        0.1, min=0, lt=1, help="must match the fine-tune's split (read from the adapter when present)"
    )
    split_seed: int = setting(2024, min=0, help="the fine-tune's split seed (read from the adapter when present)")
    samples_per_cell: int = setting(1, min=1, help="answers per variant, grid cell and prompt")
    max_new_tokens: int = setting(64, min=1, help="longest answer in tokens")
    min_new_tokens: int = setting(0, min=0, help="shortest answer in tokens")
    seed: int = setting(2024, min=0, lt=2**32, help="sampling seed (the original run's set_seed(2024))")
    batch_size: int = setting(0, min=0, help="rows per generate call; 0 = automatic for the device")
    # false: batches hold one variant each (base rows run with the adapter disabled), which measured
    # 1.23x faster on CPU than peft's per-row routing; true: base and fine-tuned rows share batches.
    mix_variants: bool = setting(False, help="base and fine-tuned rows share batches (slower on CPU)")
    precision: str = setting("auto", choices=("auto", "bf16", "fp16", "fp32"), help="weights' number format")
    compute_metrics: bool = setting(True, help="score the rows once the sweep is stored")
    # Record each token's log-prob and the entropy of the model's own distribution while sampling
    # (engine/metrics/tokens.py); the cost is measured by bench/sweep_bench.py --logprobs compare.
    token_logprobs: bool = setting(True, help="record token log-probs and entropies while sampling (~3 % of sweep time)")
    # Optional trained verifier (hub id or local folder) run on the claims once the sweep is scored
    # (engine/verifier.py); "" = none. `ft-hallu metrics --verifier` runs one on any sweep.
    verifier: str = setting("", help="a trained NLI / fact-checking model (hub id or folder) run on the claims; empty: none")
    # A fine-tune's kept checkpoints as variants of their own (needs adapter, the run folder): "all"
    # or a list of steps; the final adapter stays the "finetuned" variant (engine/checkpoints.py).
    checkpoints: Literal["", "all"] | list[int] = setting(
        "", min=1, min_items=1, help="the fine-tune's kept checkpoints as variants: all, or steps by commas"
    )
    # Questions about well-known facts asked over the same grid: "builtin", a QA file, or "" (none).
    control: str = setting("", help="known-fact questions asked over the same grid: builtin or a QA file")
    # Samples per cell of each control question; 0 = samples_per_cell. Control pairs are questions,
    # so 1-2 samples suffice while the entity prompt keeps a larger N (docs/STUDY.md).
    control_samples: int = setting(0, min=0, help="samples per cell of each control question; 0: samples_per_cell")
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
    if config.chat_template:  # only then, so the hashes of sweeps without the setting stay as they were
        chosen = resolve_chat_template(config.chat_template)
        identity["chat_template"] = chosen.sha256 if chosen else ""
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
