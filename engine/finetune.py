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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine import checkpoints as keeping
from engine import dataset as ds
from engine import parallel
from engine.configfile import check_values, load_dataclass, read_toml, setting, validate_instance
from engine.errors import UserError
from engine.files import first_existing_parent, remove_leftovers, replace_folder, resolve_from, staging_folder
from engine.liveness import recorded
from engine.modelfiles import check_model_files, loading, saving
from engine.models import (
    DeviceInfo,
    base_identity,
    device_info,
    end_of_turn_token,
    load_tokenizer,
    render_chat,
    resolve_attn_implementation,
    resolve_model_path,
)

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
    name: str = setting("finetune", name=True)
    base_model: str = setting("microsoft/Phi-3.5-mini-instruct", non_empty=True)  # or a local folder, or "tiny" (offline)
    dataset: str = setting("", required=True)  # QA file (JSON array or JSONL of question/answer/context)
    output_dir: str = ""  # default: <data folder>/runs/<name>
    overwrite: bool = False
    mode: str = setting("lora", choices=MODES)  # the original run was "full"
    # LoRA
    lora_r: int = setting(16, min=1)
    lora_alpha: int = setting(32, min=1)
    lora_dropout: float = setting(0.05, min=0, lt=1)
    target_modules: str | list[str] = "all-linear"
    # optimisation (original: 3 epochs, batch 7 x accumulation 4, lr 1e-4 linear, paged_adamw_32bit)
    epochs: float = setting(3.0, gt=0)
    max_steps: int = setting(-1, min=-1)  # -1 or 0: train for `epochs`
    per_device_batch_size: int = setting(7, min=1)
    gradient_accumulation_steps: int = setting(4, min=1)
    learning_rate: float = setting(1e-4, gt=0)
    lr_scheduler: str = setting("linear", choices=LR_SCHEDULERS)
    warmup_ratio: float = setting(0.0, min=0, lt=1)
    optim: str = "auto"  # auto = paged_adamw_32bit on CUDA (as the original), adamw_torch on CPU
    gradient_checkpointing: bool = True
    precision: str = setting("auto", choices=("auto", "bf16", "fp16", "fp32"))  # auto = bf16 on a GPU that has it, else fp32 (the original loaded fp32)
    attn_implementation: str = setting("auto", choices=("auto", "eager", "sdpa", "flash_attention_2"))  # or flash_attention_2 (CUDA + flash-attn only)
    # data
    eval_fraction: float = setting(0.1, min=0, lt=1)  # original: first 90% train / last 10% eval (leaky on duplicated files)
    include_context: bool = True  # original: context as the system turn
    assistant_only_loss: bool = True  # original: loss on all tokens
    max_length: int = setting(1024, min=1)
    padding_free: bool = False
    packing: bool = False
    seed: int = setting(2024, min=0, lt=2**32)
    logging_steps: int = setting(10, min=1)
    # LoRA adapters kept during training, each a sweep variant (engine/checkpoints.py): "none",
    # "epoch", every N optimizer steps, or a list of steps. Each runs an eval (the eval split's loss).
    save_checkpoints: Literal["none", "epoch"] | int | list[int] = setting("none", min=1, min_items=1)
    # several processes (engine/parallel.py; docs/LAUNCH.md, "Fine-tunes over several GPUs"):
    # `ft-hallu job launch` starts torchrun, one process per GPU, on `nodes` nodes (> 1 needs Slurm)
    distributed: str = setting("none", choices=parallel.STRATEGIES)
    processes_per_node: int = setting(0, min=0)  # 0: the cluster's gpus, or this machine's GPUs; else 1
    nodes: int = setting(1, min=1)
    fsdp_sharding: str = setting("full_shard", choices=parallel.FSDP_SHARDING)
    fsdp_layer_classes: str | list[str] = "auto"  # FSDP wraps each; auto: the model's decoder layer class
    zero_stage: int = setting(3, choices=parallel.ZERO_STAGES)  # deepspeed only
    cpu_offload: bool = False  # fsdp / deepspeed: parameters (and optimizer states) wait in CPU memory

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


def _common_prefix_length(a: list[int], b: list[int]) -> int:
    length = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        length += 1
    return length


def training_example(tokenizer, messages: list[dict[str, str]], *, assistant_only: bool) -> dict[str, list[int]]:
    """Token ids and labels for one conversation whose last turn is the assistant's answer.

    The text is the chat template's rendering up to and including the token that closes the
    assistant turn (found by rendering, see ``end_of_turn_token``), so the model learns to stop.
    With ``assistant_only`` every token before the answer (system and user turns, the assistant
    header) has label -100: the prompt is exactly what sampling sends (the generation prompt),
    whatever the template, with or without ``{% generation %}`` markers.
    """
    prompt_text = render_chat(tokenizer, messages[:-1], add_generation_prompt=True)
    full_text = render_chat(tokenizer, messages, add_generation_prompt=False)
    answer = messages[-1]["content"].strip()  # templates may trim it (Llama 3's does)
    found = full_text.rfind(answer)
    answer_end = found + len(answer) if found >= 0 else len(prompt_text)
    closer = end_of_turn_token(tokenizer) or tokenizer.eos_token
    closed_at = full_text.find(closer, answer_end) if closer else -1
    text = full_text[: closed_at + len(closer)] if closed_at >= 0 else full_text
    input_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not assistant_only:
        return {"input_ids": input_ids, "labels": list(input_ids)}
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    # Where the prompt alone tokenises differently at its end, the answer starts where they diverge.
    start = _common_prefix_length(prompt_ids, input_ids)
    return {"input_ids": input_ids, "labels": [-100] * start + input_ids[start:]}


def _build_datasets(config: FinetuneConfig, tokenizer):
    """Pre-tokenised train/eval sets (input_ids + labels), so trl trains on our mask as it is."""
    from datasets import Dataset

    items = ds.load_items(config.dataset)
    split = ds.split_items(items, eval_fraction=config.eval_fraction, seed=config.seed)
    if not split.train:
        raise UserError(f"{config.dataset}: no training rows after the split")

    def rows(part: list[ds.QAItem]) -> list[dict[str, Any]]:
        return [
            training_example(
                tokenizer,
                ds.to_messages(item, include_context=config.include_context),
                assistant_only=config.assistant_only_loss,
            )
            for item in part
        ]

    train = Dataset.from_list(rows(split.train))
    evaluation = Dataset.from_list(rows(split.eval)) if split.eval else None
    return train, evaluation


def run_finetune(
    config: FinetuneConfig,
    *,
    db_path: str | Path | None = None,
    progress: ProgressFn | None = None,
) -> FinetuneResult:
    """Train, evaluate before/after, save adapter (or full model) atomically, record the run.

    Under torchrun (``config.distributed`` set, launched by ``ft-hallu job launch``) every rank runs
    this; only rank 0 removes leftovers, writes the store row, the adapter and its run record.
    """
    output_dir = check_inputs(config)  # every input checked before torch loads, a store row or a staging folder
    rank = parallel.current_rank()
    if config.distributed != "none" and not rank.launched:
        raise UserError(
            f'distributed = "{config.distributed}" trains in one process per GPU: launch it with '
            "`ft-hallu job launch --config FILE --local` (torchrun on this machine) or through Slurm"
        )
    import torch
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    say = progress or (lambda message: print(message, file=sys.stderr, flush=True))
    if not rank.is_main:
        say = lambda _message: None  # noqa: E731 - rank 0 reports; the others would repeat every line
    device = device_info()
    parallel.check_device(config, device.device)
    if config.mode == "qlora" and device.device != "cuda":
        raise UserError(
            'mode = "qlora" loads the model in 4-bit NF4 with bitsandbytes, which needs a CUDA GPU; '
            'this machine has none. Use mode = "lora" here, or launch the job on a GPU node.'
        )
    for leftover in remove_leftovers(output_dir) if rank.is_main else []:
        say(f"removed {leftover}: left by an interrupted fine-tune")

    store = None
    run_id = None
    if db_path is not None and rank.is_main:
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

    def mark(status: str, reason: str) -> None:
        if store is not None and run_id is not None:
            from store import core

            core.finish_finetune_run(store, run_id, status=status, error=reason)

    try:
        with recorded(mark):
            result = _train(
                config,
                rank,
                device,
                output_dir,
                say,
                torch,
                AutoModelForCausalLM,
                TrainerCallback,
                SFTConfig,
                SFTTrainer,
            )
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
                if result.checkpoints:
                    from store import checkpoints as checkpoint_store

                    checkpoint_store.add_checkpoints(store, run_id, result.checkpoints, output_dir=result.output_dir)
    except BaseException:
        # _train removes its staging folder on the way out; this catches one it could not (a failed rmtree).
        remove_leftovers(output_dir, including_pid=os.getpid())
        raise
    finally:
        if store is not None:
            store.close()
    return result


def check_inputs(config: FinetuneConfig) -> Path:
    """Check what can be checked without loading a model; returns the output folder."""
    validate_instance(config, source="fine-tune config")
    parallel.check_settings(config)
    output_dir = config.resolved_output_dir()
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"{output_dir}: output_dir is a file, expected a folder")
    if output_dir.exists() and any(output_dir.iterdir()) and not config.overwrite:
        raise UserError(f"{output_dir}: output folder exists and is not empty (set overwrite = true)")
    parent = first_existing_parent(output_dir)
    if not parent.is_dir():
        raise UserError(f"{output_dir}: cannot create the output folder, {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{output_dir}: cannot create the output folder, {parent} is not writable")
    check_model_files(config.base_model)
    if config.mode == "full" and keeping.wants_checkpoints(config.save_checkpoints):
        raise UserError(
            'save_checkpoints keeps LoRA adapters; mode = "full" has none (set save_checkpoints = "none")'
        )
    split = ds.split_items(ds.load_items(config.dataset), eval_fraction=config.eval_fraction, seed=config.seed)
    if not split.train:
        raise UserError(f"{config.dataset}: no training rows after the split")
    return output_dir


def _train(
    config, rank, device, output_dir, say, torch, AutoModelForCausalLM, TrainerCallback, SFTConfig, SFTTrainer
):
    model_path = resolve_model_path(config.base_model)
    with loading("tokenizer", model_path):
        tokenizer = load_tokenizer(model_path)
    tokenizer.padding_side = "right"  # training pads on the right; generation uses left
    train_data, eval_data = _build_datasets(config, tokenizer)
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
        load_kwargs["device_map"] = {"": rank.local_rank}  # each process its own GPU
    say(f"loading {config.base_model} ({config.mode}, {device.device})")
    with loading("model", model_path):
        model = AutoModelForCausalLM.from_pretrained(model_path, **load_kwargs)
    if config.mode == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.gradient_checkpointing
        )

    layer_classes: list[str] = []
    if config.distributed == "fsdp":
        layer_classes = parallel.layer_class_setting(config.fsdp_layer_classes)
        layer_classes = layer_classes or parallel.decoder_layer_classes(model.config)
        say(f"FSDP wraps each {', '.join(layer_classes) or '(no layer class found: the whole model)'}")
    # Only rank 0 writes: the other ranks' output path is never created (the Trainer saves on rank 0).
    staging = staging_folder(output_dir) if rank.is_main else output_dir.with_name(f".{output_dir.name}.rank")
    trainer_dir = staging / ".trainer"  # the Trainer's own folder (it saves nothing there: save_strategy no)
    args = SFTConfig(
        output_dir=str(trainer_dir),
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
        # The datasets carry their own labels (see training_example): trl uses them as they are.
        assistant_only_loss=False,
        completion_only_loss=False,
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
        **parallel.trainer_arguments(config, layer_classes),
    )

    class _Progress(TrainerCallback):
        def on_log(self, _args, state, _control, logs=None, **_kwargs):
            if logs and "loss" in logs and state.is_world_process_zero:
                say(f"step {state.global_step}/{state.max_steps} loss {logs['loss']:.4f}")

    run_record = {
        "base_model": config.base_model,
        "base": base_identity(config.base_model),
        "mode": config.mode,
        "dataset": config.dataset,
        "config": dataclasses.asdict(config),
    }
    callbacks: list[Any] = [_Progress()]
    keeper = None
    if keeping.wants_checkpoints(config.save_checkpoints):
        keeper = keeping.checkpoint_callback(
            config.save_checkpoints,
            run_folder=staging,
            run_record=run_record,
            has_eval=eval_data is not None,
            say=say,
            writes=rank.is_main,
        )
        callbacks.append(keeper)
        say(f"keeping a checkpoint {keeping.describe(config.save_checkpoints)}")
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_data,
        eval_dataset=eval_data,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
    )
    # Our callback reports progress; transformers' printer would dump raw log dicts on stdout too.
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in trainer.model.parameters())
    say(f"trainable parameters: {trainable:,} of {total:,}")
    world_size = args.world_size
    sizes = (config.per_device_batch_size, world_size, config.gradient_accumulation_steps, args.n_gpu)
    batch = parallel.effective_batch(*sizes)
    say(parallel.describe_batch(*sizes) + (f" ({config.distributed})" if config.distributed != "none" else ""))
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
    kept = [record.to_dict() for record in keeper.kept] if keeper is not None else []
    if keeper is not None and keeper.unreached:
        say(f"note: training ended at step {trainer.state.global_step}; no checkpoint at step(s) {keeper.unreached}")
    what = "adapter" if config.mode != "full" else "model"
    result = FinetuneResult(
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
        steps=trainer.state.global_step,
        checkpoints=kept,
        distributed=config.distributed,
        world_size=world_size,
        effective_batch_size=batch,
    )
    if not rank.is_main:
        trainer.save_model(str(staging))  # FSDP and ZeRO-3 gather the weights for rank 0 from every rank
        return result
    try:
        shutil.rmtree(trainer_dir, ignore_errors=True)
        with saving(what, output_dir):  # a full disk is one line naming the folder, not torch's traceback
            trainer.save_model(str(staging))
            tokenizer.padding_side = "left"
            tokenizer.save_pretrained(str(staging))
        record = {
            **run_record,
            "eval_loss_before": before,
            "eval_loss_after": after,
            "steps": trainer.state.global_step,
            "epoch": None if trainer.state.epoch is None else round(float(trainer.state.epoch), 4),
            # measured like a checkpoint's train loss (the last log), so the trajectory compares
            "train_loss": keeper.last_train_loss if keeper is not None else (losses[-1] if losses else None),
            "checkpoints": kept,
            "distributed": config.distributed,
            "world_size": world_size,
            "effective_batch_size": batch,
        }
        with saving(what, output_dir):
            (staging / "ft-hallu-run.json").write_text(json.dumps(record, indent=2))
            replace_folder(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    say(f"saved {what} to {output_dir}")
    return result


def read_run_record(output_dir: str | Path) -> dict[str, Any]:
    """The record a fine-tune leaves next to its adapter: base model name, mode, config, losses."""
    path = Path(output_dir) / "ft-hallu-run.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def is_adapter_dir(path: str | Path) -> bool:
    return (Path(path) / "adapter_config.json").exists()
