"""Supervised fine-tuning with trl's SFTTrainer: LoRA (default), QLoRA (CUDA only) or full-parameter.

Settings come from a TOML file (see ``configs/finetune.example.toml``); every field has a default and
the comments there record what the original hand-run used.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import dataset as ds
from engine.configfile import read_toml
from engine.errors import UserError
from engine.models import (
    DeviceInfo,
    device_info,
    load_tokenizer,
    resolve_attn_implementation,
    resolve_model_path,
)

MODES = ("lora", "qlora", "full")


@dataclass
class FinetuneConfig:
    name: str = "finetune"
    base_model: str = "microsoft/Phi-3.5-mini-instruct"  # or a local folder, or "tiny" (offline)
    dataset: str = ""  # QA file (JSON array or JSONL of question/answer/context)
    output_dir: str = ""  # default: <data folder>/runs/<name>
    overwrite: bool = False
    mode: str = "lora"  # the original run was "full"
    # LoRA
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"
    # optimisation (original: 3 epochs, batch 7 x accumulation 4, lr 1e-4 linear, paged_adamw_32bit)
    epochs: float = 3.0
    max_steps: int = -1
    per_device_batch_size: int = 7
    gradient_accumulation_steps: int = 4
    learning_rate: float = 1e-4
    lr_scheduler: str = "linear"
    warmup_ratio: float = 0.0
    optim: str = "auto"  # auto = paged_adamw_32bit on CUDA (as the original), adamw_torch on CPU
    gradient_checkpointing: bool = True
    precision: str = "auto"  # auto = bf16 on a GPU that has it, else fp32 (the original loaded fp32)
    attn_implementation: str = "auto"  # or flash_attention_2 (CUDA + flash-attn only)
    # data
    eval_fraction: float = 0.1  # original: first 90% train / last 10% eval (leaky on duplicated files)
    include_context: bool = True  # original: context as the system turn
    assistant_only_loss: bool = True  # original: loss on all tokens
    max_length: int = 1024
    padding_free: bool = False
    packing: bool = False
    seed: int = 2024
    logging_steps: int = 10

    def resolved_output_dir(self) -> Path:
        if self.output_dir:
            return Path(self.output_dir).expanduser().resolve()
        from engine.paths import data_dir

        return data_dir() / "runs" / self.name


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> FinetuneConfig:
    """Read a fine-tune TOML (top-level keys or a [finetune] table); unknown keys are errors."""
    config_path = Path(path)
    values = read_toml(config_path, table="finetune")
    config = config_from_dict(values, where=str(config_path))
    if overrides:
        config = config_from_dict({**dataclasses.asdict(config), **overrides}, where=str(config_path))
    # Relative paths in a config file are relative to that file, so a job can run from anywhere.
    base = config_path.resolve().parent
    if config.dataset and not Path(config.dataset).is_absolute():
        config.dataset = str((base / config.dataset).resolve())
    if config.output_dir and not Path(config.output_dir).is_absolute():
        config.output_dir = str((base / config.output_dir).resolve())
    if (base / config.base_model).exists() and config.base_model.startswith("."):
        config.base_model = str((base / config.base_model).resolve())
    return config


def config_from_dict(values: dict[str, Any], *, where: str = "config") -> FinetuneConfig:
    known = {f.name: f for f in dataclasses.fields(FinetuneConfig)}
    for key in values:
        if key not in known:
            raise UserError(f"{where}: unknown field '{key}' (known: {', '.join(sorted(known))})")
    defaults = FinetuneConfig()
    for key, value in values.items():
        expected = type(getattr(defaults, key))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            continue
        if key == "target_modules":
            if not (
                isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
            ):
                raise UserError(f"{where}: field 'target_modules' must be a string or a list of strings")
            continue
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise UserError(f"{where}: field '{key}' must be {expected.__name__}, got {type(value).__name__}")
    config = FinetuneConfig(**values)
    if config.mode not in MODES:
        raise UserError(f"{where}: field 'mode' must be one of {', '.join(MODES)}, got {config.mode!r}")
    if not config.dataset:
        raise UserError(f"{where}: field 'dataset' is required (a QA JSON/JSONL file)")
    return config


def config_to_toml(config: FinetuneConfig) -> str:
    """A TOML rendering of a config (used by launchers and the TUI form)."""
    lines = ["[finetune]"]
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        lines.append(f"{item.name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


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


ProgressFn = Callable[[str], None]


def _optim_name(config: FinetuneConfig, device: DeviceInfo) -> str:
    if config.optim != "auto":
        if config.optim.startswith("paged_") and device.device != "cuda":
            print(f"note: optim={config.optim} needs CUDA; using adamw_torch on CPU", file=sys.stderr)
            return "adamw_torch"
        return config.optim
    return "paged_adamw_32bit" if device.device == "cuda" else "adamw_torch"


def _precision_flags(config: FinetuneConfig, device: DeviceInfo) -> dict[str, bool]:
    precision = config.precision
    if precision == "auto":
        precision = "bf16" if device.bf16 else "fp32"
    if precision in ("bf16", "fp16") and device.device != "cuda":
        print(f"note: precision={precision} needs a CUDA GPU; training in fp32 on CPU", file=sys.stderr)
        precision = "fp32"
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def _build_datasets(config: FinetuneConfig):
    from datasets import Dataset

    items = ds.load_items(config.dataset)
    split = ds.split_items(items, eval_fraction=config.eval_fraction, seed=config.seed)
    if not split.train:
        raise UserError(f"{config.dataset}: no training rows after the split")

    def rows(part: list[ds.QAItem]) -> list[dict[str, Any]]:
        return [{"messages": ds.to_messages(item, include_context=config.include_context)} for item in part]

    train = Dataset.from_list(rows(split.train))
    evaluation = Dataset.from_list(rows(split.eval)) if split.eval else None
    return train, evaluation


def run_finetune(
    config: FinetuneConfig,
    *,
    db_path: str | Path | None = None,
    progress: ProgressFn | None = None,
) -> FinetuneResult:
    """Train, evaluate before/after, save adapter (or full model) atomically, record the run."""
    import torch
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    say = progress or (lambda message: print(message, file=sys.stderr, flush=True))
    device = device_info()
    if config.mode == "qlora" and device.device != "cuda":
        raise UserError(
            'mode = "qlora" loads the model in 4-bit NF4 with bitsandbytes, which needs a CUDA GPU; '
            'this machine has none. Use mode = "lora" here, or launch the job on a GPU node.'
        )
    output_dir = config.resolved_output_dir()
    if output_dir.exists() and any(output_dir.iterdir()) and not config.overwrite:
        raise UserError(f"{output_dir}: output folder exists and is not empty (set overwrite = true)")

    store = None
    run_id = None
    if db_path is not None:
        from store import core, open_db

        store = open_db(db_path)
        run_id = core.start_finetune_run(
            store,
            name=config.name,
            mode=config.mode,
            base_model=config.base_model,
            dataset_path=config.dataset,
            output_dir=str(output_dir),
            config=dataclasses.asdict(config),
        )
    try:
        result = _train(
            config,
            device,
            output_dir,
            say,
            torch,
            AutoModelForCausalLM,
            TrainerCallback,
            SFTConfig,
            SFTTrainer,
        )
    except BaseException as exc:
        if store is not None and run_id is not None:
            from store import core

            core.finish_finetune_run(
                store,
                run_id,
                status="failed",
                error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            )
        raise
    result.run_id = run_id
    if store is not None and run_id is not None:
        from store import core

        core.finish_finetune_run(
            store,
            run_id,
            status="completed",
            train_loss=result.train_loss,
            eval_loss_before=result.eval_loss_before,
            eval_loss_after=result.eval_loss_after,
            train_seconds=result.train_seconds,
            result=dataclasses.asdict(result),
        )
    return result


def _train(
    config, device, output_dir, say, torch, AutoModelForCausalLM, TrainerCallback, SFTConfig, SFTTrainer
):
    model_path = resolve_model_path(config.base_model)
    tokenizer = load_tokenizer(model_path)
    tokenizer.padding_side = "right"  # training pads on the right; generation uses left
    train_data, eval_data = _build_datasets(config)
    say(
        f"data: {len(train_data)} train rows, {0 if eval_data is None else len(eval_data)} eval rows "
        f"(grouped split, no eval question in train)"
    )

    flags = _precision_flags(config, device)
    load_kwargs: dict[str, Any] = {
        "dtype": torch.bfloat16 if flags["bf16"] else torch.float16 if flags["fp16"] else torch.float32,
        "attn_implementation": resolve_attn_implementation(config.attn_implementation, device),
    }
    peft_config = None
    if config.mode in ("lora", "qlora"):
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=config.target_modules,
            task_type="CAUSAL_LM",
        )
    if config.mode == "qlora":
        from transformers import BitsAndBytesConfig

        load_kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if device.bf16 else torch.float16,
        )
        load_kwargs["device_map"] = {"": 0}
    say(f"loading {config.base_model} ({config.mode}, {device.device})")
    model = AutoModelForCausalLM.from_pretrained(model_path, **load_kwargs)
    if config.mode == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.gradient_checkpointing
        )

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    args = SFTConfig(
        output_dir=str(staging / "checkpoints"),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_batch_size,
        per_device_eval_batch_size=config.per_device_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,  # a float in [0, 1) is a ratio in transformers 5
        optim=_optim_name(config, device),
        gradient_checkpointing=config.gradient_checkpointing,
        bf16=flags["bf16"],
        fp16=flags["fp16"],
        # trl refuses padding-free batches with a max_length unless packing enforces it.
        max_length=None if (config.padding_free and not config.packing) else config.max_length,
        assistant_only_loss=config.assistant_only_loss,
        packing=config.packing,
        padding_free=config.padding_free,
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=config.logging_steps,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=device.device == "cpu",
        dataloader_pin_memory=device.device == "cuda",
    )

    class _Progress(TrainerCallback):
        def on_log(self, _args, state, _control, logs=None, **_kwargs):
            if logs and "loss" in logs:
                say(f"step {state.global_step}/{state.max_steps} loss {logs['loss']:.4f}")

    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_data,
        eval_dataset=eval_data,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[_Progress()],
    )
    # Our callback reports progress; transformers' printer would dump raw log dicts on stdout too.
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in trainer.model.parameters())
    say(f"trainable parameters: {trainable:,} of {total:,}")
    before = trainer.evaluate()["eval_loss"] if eval_data is not None else None
    started = time.perf_counter()
    train_output = trainer.train()
    seconds = time.perf_counter() - started
    after = trainer.evaluate()["eval_loss"] if eval_data is not None else None
    losses = [float(entry["loss"]) for entry in trainer.state.log_history if "loss" in entry]
    # Training turns the KV cache off (gradient checkpointing); generation needs it back on.
    trainer.model.config.use_cache = True
    try:
        trainer.model.generation_config.use_cache = True
    except AttributeError:
        pass
    try:
        shutil.rmtree(staging / "checkpoints", ignore_errors=True)
        trainer.save_model(str(staging))
        tokenizer.padding_side = "left"
        tokenizer.save_pretrained(str(staging))
        record = {
            "base_model": config.base_model,
            "mode": config.mode,
            "dataset": config.dataset,
            "config": dataclasses.asdict(config),
            "eval_loss_before": before,
            "eval_loss_after": after,
        }
        (staging / "ft-hallu-run.json").write_text(json.dumps(record, indent=2))
        if output_dir.exists():
            shutil.rmtree(output_dir)
        os.replace(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    say(f"saved {'adapter' if config.mode != 'full' else 'model'} to {output_dir}")
    return FinetuneResult(
        output_dir=str(output_dir),
        mode=config.mode,
        train_loss=float(train_output.training_loss),
        eval_loss_before=before,
        eval_loss_after=after,
        train_seconds=seconds,
        train_rows=len(train_data),
        eval_rows=0 if eval_data is None else len(eval_data),
        trainable_params=trainable,
        total_params=total,
        loss_history=losses,
    )


def read_run_record(output_dir: str | Path) -> dict[str, Any]:
    """The record a fine-tune leaves next to its adapter: base model name, mode, config, losses."""
    path = Path(output_dir) / "ft-hallu-run.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def is_adapter_dir(path: str | Path) -> bool:
    return (Path(path) / "adapter_config.json").exists()
