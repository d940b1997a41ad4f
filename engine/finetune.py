"""Supervised fine-tuning with trl's SFTTrainer: LoRA (default), QLoRA (CUDA only) or full-parameter.

Settings come from a TOML file (see ``configs/finetune.example.toml``); every field has a default and
the comments there record what the original hand-run used.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine import checkpoints as keeping
from engine import dataset as ds
from engine import parallel
from engine.configfile import validate_instance
from engine.errors import UserError
from engine.files import first_existing_parent, remove_leftovers, replace_folder, staging_folder
from engine.finetune_config import (
    LR_SCHEDULERS,
    MODES,
    FinetuneConfig,
    FinetuneResult,
    config_from_dict,
    load_config,
)
from engine.liveness import recorded
from engine.modelfiles import check_model_files, loading, saving
from engine.models import (
    RUN_RECORD,
    ChatTemplateUse,
    DeviceInfo,
    base_identity,
    chat_tokenizer,
    check_chat_template,
    device_info,
    end_of_turn_token,
    grow_embeddings,
    render_chat,
    resolve_attn_implementation,
    resolve_model_path,
)

ProgressFn = Callable[[str], None]

# The line a fine-tune prints at each logging step; ``step_progress`` reads the latest back from a log.
STEP_LINE = "step {step}/{total} loss {loss:.4f}"
_STEP_RE = re.compile(r"^step (\d+)/(\d+) loss (\S+)$", re.MULTILINE)


def step_progress(log: str) -> tuple[int, int, float] | None:
    """(step, total steps, loss) of the last step line in a fine-tune's log, or None before the first."""
    found = _STEP_RE.findall(log)
    if not found:
        return None
    step, total, loss = found[-1]
    try:
        return int(step), int(total), float(loss)
    except ValueError:
        return None


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

    device = device_info()
    parallel.check_device(config, device.device)
    if config.mode == "qlora" and device.device != "cuda":
        raise UserError(
            'mode = "qlora" loads the model in 4-bit NF4 with bitsandbytes, which needs a CUDA GPU; '
            'this machine has none. Use mode = "lora" here, or launch the job on a GPU node.'
        )
    # Only now the trainer stack (trl, peft, transformers: seconds to import): a refusal above is quick.
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    say = progress or (lambda message: print(message, file=sys.stderr, flush=True))
    if not rank.is_main:
        say = lambda _message: None  # noqa: E731 - rank 0 reports; the others would repeat every line
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
    # The tokenizer alone (no weights): a base model without a chat template stops here, in seconds.
    check_chat_template(config.base_model, config.chat_template)
    split = ds.split_items(ds.load_items(config.dataset), eval_fraction=config.eval_fraction, seed=config.seed)
    if not split.train:
        raise UserError(f"{config.dataset}: no training rows after the split")
    return output_dir


def _train(
    config, rank, device, output_dir, say, torch, AutoModelForCausalLM, TrainerCallback, SFTConfig, SFTTrainer
):
    with loading("tokenizer", config.base_model):  # before any weights (and before a GGUF is dequantised)
        tokenizer, template = chat_tokenizer(config.base_model, chat_template=config.chat_template)
    model_path = resolve_model_path(config.base_model)
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
    rows_before = grow_embeddings(model, len(tokenizer))
    rows_after = _embedding_rows(model)
    if rows_before is not None:
        say(f"embeddings grown from {rows_before} to {len(tokenizer)} rows for {_token_list(template)}")
    token_ids = _template_token_ids(tokenizer, template)
    if peft_config is not None and token_ids:
        # The rows of the template's special tokens are trained and saved with the adapter (a few
        # rows, not the whole embedding matrix): a base model never saw them close a turn.
        peft_config.trainable_token_indices = _token_layers(model, token_ids)
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
                say(STEP_LINE.format(step=state.global_step, total=state.max_steps, loss=logs["loss"]))

    run_record = {
        "base_model": config.base_model,
        "base": base_identity(config.base_model),
        "mode": config.mode,
        "dataset": config.dataset,
        "config": dataclasses.asdict(config),
        "chat_template": {
            **template.record(),
            "tokens_trained": token_ids if config.mode != "full" else "all",
            "embedding_rows": {"before": rows_before or rows_after, "after": rows_after},
        },
    }
    # The template's rows are in the adapter (trainable tokens); the grown embedding matrices are
    # rebuilt the same way on load, so they are not saved whole (checkpoints alike).
    adapter_save = {"save_embedding_layers": False} if token_ids and config.mode != "full" else {}
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
            save_options=adapter_save,
        )
        callbacks.append(keeper)
        say(f"keeping a checkpoint {keeping.describe(config.save_checkpoints)}")
    trainer_class = SFTTrainer if not _wraps_output_layer(peft_config) else _output_rows_trainer(SFTTrainer)
    trainer = trainer_class(
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
            if adapter_save:
                trainer.model.save_pretrained(str(staging), **adapter_save)
            else:
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
            (staging / RUN_RECORD).write_text(json.dumps(record, indent=2))
            replace_folder(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    say(f"saved {what} to {output_dir}")
    return result


def _token_list(template: ChatTemplateUse) -> str:
    return ", ".join(token for token, _ in template.tokens_added) or "no new token"


def _template_token_ids(tokenizer, template: ChatTemplateUse) -> list[int]:
    """Ids of the special tokens a chosen template writes (added or already in the vocabulary) and
    of the token ending its turns (Mistral's is EOS): rows a base model never used that way."""
    if not template.explicit:
        return []
    tokens = [*template.template.special_tokens, *(token for token, _ in template.tokens_added)]
    if template.end_of_turn:
        tokens.append(template.end_of_turn)
    return sorted({int(tokenizer.convert_tokens_to_ids(token)) for token in tokens})


def _token_layers(model, token_ids: list[int]) -> list[int] | dict[str, list[int]]:
    """peft's ``trainable_token_indices``: the input embedding rows, and the output rows too when
    the output layer is not tied to the input (the end-of-turn row is what makes the model stop)."""
    output = model.get_output_embeddings()
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    if output is None or getattr(config, "tie_word_embeddings", False):
        return token_ids
    names = {id(module): name for name, module in model.named_modules()}
    return {names[id(model.get_input_embeddings())]: token_ids, names[id(output)]: token_ids}


def _wraps_output_layer(peft_config) -> bool:
    return isinstance(getattr(peft_config, "trainable_token_indices", None), dict)


def _output_rows_trainer(SFTTrainer):
    """SFTTrainer whose loss goes through the output layer's forward.

    trl 1.16 computes the loss from ``lm_head.weight`` directly (its fused LM head), which skips
    peft's trainable-token rows on the output layer: the end-of-turn row would never learn and the
    model never stop. transformers' own loss (full logits, the model's forward) trains them.
    """
    from transformers import Trainer

    class OutputRowsTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs["use_cache"] = False
            return Trainer.compute_loss(
                self, model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )

    return OutputRowsTrainer


def _embedding_rows(model) -> int:
    return int(model.get_input_embeddings().weight.shape[0])


def read_run_record(output_dir: str | Path) -> dict[str, Any]:
    """The record a fine-tune leaves next to its adapter: base model name, mode, config, losses."""
    path = Path(output_dir) / RUN_RECORD
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def is_adapter_dir(path: str | Path) -> bool:
    return (Path(path) / "adapter_config.json").exists()


__all__ = [
    "LR_SCHEDULERS",
    "MODES",
    "STEP_LINE",
    "FinetuneConfig",
    "FinetuneResult",
    "ProgressFn",
    "check_inputs",
    "config_from_dict",
    "is_adapter_dir",
    "load_config",
    "read_run_record",
    "run_finetune",
    "step_progress",
    "training_example",
]
