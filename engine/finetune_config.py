"""A fine-tune's settings and outcome: FinetuneConfig (modes, schedulers, every field's default and
check), reading it from a TOML file or a dict, and the FinetuneResult a run returns. Training is
engine/finetune.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine import parallel
from engine.configfile import check_values, load_dataclass, read_toml, setting
from engine.files import resolve_from
from engine.models import template_setting_from

MODES = ("lora", "qlora", "full")
# transformers' SchedulerType values (5.24), so a typo is refused before torch loads; a test keeps
# this list in step with the installed transformers.
LR_SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
    "cosine_with_min_lr",
    "cosine_warmup_with_min_lr",
    "warmup_stable_decay",
    "greedy",
)


@dataclass
class FinetuneConfig:
    name: str = setting("finetune", name=True, help="run name: the job's name and runs/<name>")
    base_model: str = setting(
        "microsoft/Phi-3.5-mini-instruct",
        non_empty=True,
        help="HF id, local folder, .gguf file, smollm2 (installed demo model) or tiny (offline)",
    )
    # "" = the tokenizer's own; a base model without one needs chatml, gemma, llama3, mistral, phi3 or a Jinja file
    chat_template: str = setting(
        "", help="chat template for a model without one: chatml, gemma, llama3, mistral, phi3 or a Jinja file"
    )
    dataset: str = setting(
        "", required=True, help="QA file: JSON array or JSONL of question/answer/context"
    )
    output_dir: str = setting("", help="where the adapter goes; empty: <data folder>/runs/<name>")
    overwrite: bool = setting(False, help="replace a finished run already in output_dir")
    mode: str = setting(
        "lora", choices=MODES, help="LoRA adapter, QLoRA (4-bit, CUDA only) or all weights; the original was full"
    )
    # LoRA
    lora_r: int = setting(16, min=1, help="LoRA rank")
    lora_alpha: int = setting(32, min=1, help="LoRA scaling (alpha / r multiplies the update)")
    lora_dropout: float = setting(0.05, min=0, lt=1, help="dropout on the LoRA layers")
    target_modules: str | list[str] = setting(
        "all-linear", help="layers that get adapters: all-linear or names separated by commas"
    )
    # optimisation (original: 3 epochs, batch 7 x accumulation 4, lr 1e-4 linear, paged_adamw_32bit)
    epochs: float = setting(3.0, gt=0, help="passes over the training rows (the original: 3)")
    max_steps: int = setting(-1, min=-1, help="stop after this many optimiser steps; -1 or 0: train for epochs")
    per_device_batch_size: int = setting(7, min=1, help="rows per step on each device (the original: 7)")
    gradient_accumulation_steps: int = setting(
        4, min=1, help="batches summed per optimiser step (the original: 4)"
    )
    learning_rate: float = setting(1e-4, gt=0, help="peak learning rate (the original: 1e-4)")
    lr_scheduler: str = setting("linear", choices=LR_SCHEDULERS, help="learning-rate schedule")
    warmup_ratio: float = setting(0.0, min=0, lt=1, help="share of the steps spent warming up")
    optim: str = setting(
        "auto", help="optimizer; auto = paged_adamw_32bit on CUDA (as the original), adamw_torch on CPU"
    )
    gradient_checkpointing: bool = setting(True, help="recompute activations: less memory, slower steps")
    precision: str = setting(
        "auto",
        choices=("auto", "bf16", "fp16", "fp32"),
        help="auto = bf16 on a GPU that has it, else fp32 (the original loaded fp32)",
    )
    attn_implementation: str = setting(
        "auto",
        choices=("auto", "eager", "sdpa", "flash_attention_2"),
        help="attention kernel; flash_attention_2 needs CUDA and flash-attn",
    )
    # data
    eval_fraction: float = setting(
        0.1, min=0, lt=1, help="held-out share, split by question (the original's last 10% leaked)"
    )
    include_context: bool = setting(True, help="give the context as the system turn (as the original)")
    assistant_only_loss: bool = setting(True, help="loss on the answer only (the original: on all tokens)")
    max_length: int = setting(1024, min=1, help="longest training example in tokens")
    padding_free: bool = setting(False, help="batches without padding (flash attention)")
    packing: bool = setting(False, help="pack several examples into one sequence")
    seed: int = setting(2024, min=0, lt=2**32, help="seed of the split, the data order and the weights")
    logging_steps: int = setting(10, min=1, help="log the loss every N steps (the job log shows them)")
    # LoRA adapters kept during training, each a sweep variant (engine/checkpoints.py): "none",
    # "epoch", every N optimizer steps, or a list of steps. Each runs an eval (the eval split's loss).
    save_checkpoints: Literal["none", "epoch"] | int | list[int] = setting(
        "none", min=1, min_items=1, help="adapters kept as sweep variants: none, epoch, every N steps or a list"
    )
    # several processes (engine/parallel.py; docs/LAUNCH.md, "Fine-tunes over several GPUs"):
    # `ft-hallu job launch` starts torchrun, one process per GPU, on `nodes` nodes (> 1 needs Slurm)
    distributed: str = setting(
        "none", choices=parallel.STRATEGIES, help="several processes: torchrun with DDP, FSDP or DeepSpeed"
    )
    processes_per_node: int = setting(
        0, min=0, help="processes per node; 0: the cluster's GPUs, or this machine's, else 1"
    )
    nodes: int = setting(1, min=1, help="nodes of a distributed run (more than 1 needs Slurm)")
    fsdp_sharding: str = setting("full_shard", choices=parallel.FSDP_SHARDING, help="how FSDP shards")
    fsdp_layer_classes: str | list[str] = setting(
        "auto", help="layer classes FSDP wraps; auto: the model's decoder layer class"
    )
    zero_stage: int = setting(3, choices=parallel.ZERO_STAGES, help="DeepSpeed ZeRO stage")
    cpu_offload: bool = setting(False, help="FSDP / DeepSpeed: parameters wait in CPU memory")

    def resolved_output_dir(self) -> Path:
        if self.output_dir:
            return Path(self.output_dir).expanduser().resolve()
        from engine.paths import data_dir

        return data_dir() / "runs" / self.name


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> FinetuneConfig:
    """Read a fine-tune TOML (top-level keys or a [finetune] table); unknown keys are errors."""
    config_path = Path(path)
    values = read_toml(config_path, table="finetune")
    # Overrides come from the command line: checked on their own so a message names the option.
    labels = {key: "--" + key.replace("_", "-") for key in overrides or {}}
    values.update(check_values(FinetuneConfig, overrides or {}, source="command line", labels=labels))
    config = config_from_dict(values, where=str(config_path))
    parallel.check_settings(config, source=str(config_path))  # settings that cannot run together
    # Relative paths in a config file are relative to that file, so a job can run from anywhere.
    base = config_path.resolve().parent
    config.dataset = resolve_from(config.dataset, base)
    config.output_dir = resolve_from(config.output_dir, base)
    config.chat_template = template_setting_from(config.chat_template, base)
    if (base / config.base_model).exists() and config.base_model.startswith("."):
        config.base_model = str((base / config.base_model).resolve())
    return config


def config_from_dict(values: dict[str, Any], *, where: str = "config") -> FinetuneConfig:
    """A checked config from a dict (a TOML table or a form): types, ranges, unknown fields."""
    return load_dataclass(FinetuneConfig, values, source=where)


@dataclass
class FinetuneResult:
    output_dir: str
    mode: str
    train_loss: float | None
    eval_loss_before: float | None
    eval_loss_after: float | None
    train_seconds: float
    train_rows: int
    eval_rows: int
    trainable_params: int
    total_params: int
    loss_history: list[float] = field(default_factory=list)
    run_id: int | None = None
    steps: int | None = None  # optimizer steps done
    # engine.checkpoints.CheckpointRecord.to_dict() of each kept adapter (path relative to output_dir)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    distributed: str = "none"
    world_size: int = 1  # processes that trained together
    effective_batch_size: int = 0  # per-device batch x world_size x gradient accumulation
