"""A fine-tune over several processes: its settings' checks, which rank this process is, and the
Trainer arguments for DDP, FSDP and DeepSpeed ZeRO.

ft-hallu does not schedule processes itself: ``torchrun`` starts one process per GPU (one torchrun
per node, started by ``srun`` under Slurm; :mod:`engine.jobs.torchrun` writes those commands) and
sets ``RANK``/``LOCAL_RANK``/``WORLD_SIZE``. transformers' Trainer (through accelerate) sees them and
wraps the model in DDP, FSDP or DeepSpeed; this module only decides the arguments and tells
:mod:`engine.finetune` which process is rank 0, the only one that writes files or a store row.

What works where (docs/LAUNCH.md, "Fine-tunes over several GPUs", says the same):

- ``ddp``: every mode. On CPU it runs with the gloo backend (the tests do); QLoRA puts each
  process's 4-bit model on its own GPU.
- ``fsdp``: LoRA and full fine-tunes, on GPUs. accelerate 1.16 turns FSDP on only for GPU (and
  other accelerator) processes: on CPU it would silently run plain DDP, so it is refused there.
  QLoRA with FSDP is refused: the recipe peft 0.21 documents (``bnb_4bit_quant_storage``,
  ``use_orig_params = false``) is FSDP version 1, which transformers 5 deprecates.
- ``deepspeed``: needs the ``deepspeed`` package and GPUs; ZeRO stage 1-3, optional CPU offload.
  QLoRA is refused with it for the same reason as with FSDP.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from typing import Any, Protocol

from engine.errors import UserError

STRATEGIES = ("none", "ddp", "fsdp", "deepspeed")
# FSDP2's two strategies (transformers 5 maps them to reshard_after_forward True / False).
FSDP_SHARDING = ("full_shard", "shard_grad_op")
ZERO_STAGES = (1, 2, 3)
AUTO = "auto"

_CLASS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class DistributedSettings(Protocol):
    """The fine-tune config's fields this module reads (engine.finetune.FinetuneConfig has them)."""

    mode: str
    distributed: str
    processes_per_node: int
    nodes: int
    fsdp_sharding: str
    fsdp_layer_classes: str | list[str]
    zero_stage: int
    cpu_offload: bool
    gradient_checkpointing: bool
    save_checkpoints: object


# ------------------------------------------------------------------ which process this is


@dataclass(frozen=True)
class Rank:
    """This process's place in the run (torchrun's RANK, LOCAL_RANK, WORLD_SIZE; 0, 0, 1 alone)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    launched: bool = False  # started by torchrun (or another launcher that sets WORLD_SIZE)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current_rank(environ: dict[str, str] | None = None) -> Rank:
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        return Rank()

    def number(name: str) -> int:
        value = env.get(name, "0")
        return int(value) if value.isdigit() else 0

    return Rank(number("RANK"), number("LOCAL_RANK"), max(1, number("WORLD_SIZE")), True)


def effective_batch(per_device: int, world_size: int, accumulation: int, gpus_per_process: int = 1) -> int:
    """Sequences per optimizer step: per-device batch x processes x accumulation steps (x the GPUs
    one process drives itself: the Trainer uses DataParallel when one process sees several)."""
    return per_device * world_size * max(1, gpus_per_process) * accumulation


def describe_batch(per_device: int, world_size: int, accumulation: int, gpus_per_process: int = 1) -> str:
    processes = "process" if world_size == 1 else "processes"
    steps = "step" if accumulation == 1 else "steps"
    shared = f" x {gpus_per_process} GPUs each (DataParallel)" if gpus_per_process > 1 else ""
    total = effective_batch(per_device, world_size, accumulation, gpus_per_process)
    return (
        f"effective batch {total} = {per_device} per device x {world_size} {processes}{shared}"
        f" x {accumulation} accumulation {steps}"
    )


# ------------------------------------------------------------------ checks before launch


def check_settings(config: DistributedSettings, *, source: str = "fine-tune config") -> None:
    """What can be refused before anything is launched, written or loaded (one line per problem)."""
    strategy = config.distributed
    if strategy == "none":
        for name in ("processes_per_node", "nodes"):
            if getattr(config, name) > 1:
                raise UserError(
                    f'{source}: {name} = {getattr(config, name)} needs distributed = "ddp", "fsdp" or '
                    '"deepspeed" (with distributed = "none" one process trains)'
                )
    if config.cpu_offload and strategy not in ("fsdp", "deepspeed"):
        raise UserError(f'{source}: cpu_offload = true needs distributed = "fsdp" or "deepspeed"')
    if strategy in ("fsdp", "deepspeed") and config.mode == "qlora":
        raise UserError(
            f'{source}: mode = "qlora" with distributed = "{strategy}" is not supported: peft documents '
            "FSDP/ZeRO-3 QLoRA only for FSDP version 1, which transformers 5 deprecates; use "
            'distributed = "ddp" (each GPU holds the 4-bit model) or mode = "lora"'
        )
    if strategy in ("fsdp", "deepspeed") and config.save_checkpoints not in ("none", [], None):
        raise UserError(
            f'{source}: save_checkpoints with distributed = "{strategy}" is not supported yet: a sharded '
            'adapter must be gathered from every rank to be saved; use distributed = "ddp", or '
            'save_checkpoints = "none"'
        )
    if strategy == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        raise UserError(
            f'{source}: distributed = "deepspeed" needs the deepspeed package, which is not installed '
            '(pip install deepspeed where the job runs), or use distributed = "fsdp"'
        )
    classes = layer_class_setting(config.fsdp_layer_classes)
    for name in classes:
        if not _CLASS_NAME.match(name):
            raise UserError(f"{source}: fsdp_layer_classes: {name!r} is not a Python class name")


def check_device(config: DistributedSettings, device: str) -> None:
    """At run time: sharding needs GPUs (accelerate would quietly fall back to DDP on CPU)."""
    if config.distributed in ("fsdp", "deepspeed") and device != "cuda":
        raise UserError(
            f'distributed = "{config.distributed}" shards the model over GPUs and this machine has none '
            '(accelerate 1.16 enables it only on GPUs); use distributed = "ddp" on CPU'
        )


def layer_class_setting(value: str | list[str]) -> list[str]:
    """The class names a user wrote ([] for "auto", which means: ask the model)."""
    if isinstance(value, str):
        if value.strip() in ("", AUTO):
            return []
        return [part.strip() for part in value.split(",") if part.strip()]
    return list(value)


# ------------------------------------------------------------------ the Trainer's arguments


def decoder_layer_classes(model_config: Any) -> list[str]:
    """The model's repeated block class names (FSDP wraps each one), from its architecture.

    transformers models declare the modules that must stay on one device as ``_no_split_modules``
    (``Phi3DecoderLayer``, ``LlamaDecoderLayer``, ...); the causal-LM class is looked up from the
    config, so no weights are loaded and no name list is kept here.
    """
    from transformers import AutoModelForCausalLM

    try:
        model_class = AutoModelForCausalLM._model_mapping[type(model_config)]
    except KeyError:
        return []
    return sorted(getattr(model_class, "_no_split_modules", None) or [])


def trainer_arguments(config: DistributedSettings, layer_classes: list[str]) -> dict[str, Any]:
    """SFTConfig keyword arguments for the strategy (an empty dict for none and ddp).

    Activation checkpointing is the config's ``gradient_checkpointing``: under FSDP it becomes FSDP's
    own (transformers warns that the Trainer's adds a redundant all-gather), elsewhere the Trainer's.
    """
    if config.distributed == "fsdp":
        fsdp_config: dict[str, Any] = {
            "version": 2,
            "reshard_after_forward": config.fsdp_sharding == "full_shard",
            "cpu_offload": config.cpu_offload,
            "activation_checkpointing": config.gradient_checkpointing,
            "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            # One adapter / model folder that from_pretrained reads, written by rank 0.
            "state_dict_type": "FULL_STATE_DICT",
        }
        if layer_classes:
            fsdp_config["transformer_layer_cls_to_wrap"] = list(layer_classes)
        return {"fsdp": True, "fsdp_config": fsdp_config, "gradient_checkpointing": False}
    if config.distributed == "deepspeed":
        return {"deepspeed": deepspeed_config(config.zero_stage, config.cpu_offload)}
    return {}


def deepspeed_config(stage: int, cpu_offload: bool) -> dict[str, Any]:
    """A ZeRO config; "auto" values are filled in from the Trainer's own arguments."""
    zero: dict[str, Any] = {"stage": stage, "overlap_comm": True, "contiguous_gradients": True}
    if cpu_offload:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
        if stage == 3:
            zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    if stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True  # one full adapter / model on save
    return {
        "zero_optimization": zero,
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "train_batch_size": "auto",
        "gradient_clipping": "auto",
    }
