"""Loading: one base model in memory (natively, no trust_remote_code), optionally 4-bit, with an
optional LoRA adapter named ``default`` on top."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import UserError
from engine.models.adapters import check_adapter_matches_base
from engine.models.chat import load_tokenizer, stop_token_ids
from engine.models.device import DeviceInfo, device_info, resolve_attn_implementation, resolve_dtype
from engine.models.names import resolve_model_path


@dataclass
class LoadedModel:
    """One base model in memory, optionally with a LoRA adapter named ``default`` on top."""

    model: Any
    tokenizer: Any
    base_name: str
    adapter_dir: str | None
    device: DeviceInfo
    stop_ids: list[int]

    @property
    def has_adapter(self) -> bool:
        return self.adapter_dir is not None


def load_model(
    name_or_path: str,
    *,
    adapter_dir: str | None = None,
    precision: str = "auto",
    attn_implementation: str = "auto",
    load_in_4bit: bool = False,
) -> LoadedModel:
    """Load the base model once (natively, no trust_remote_code) and optionally attach an adapter."""
    import torch
    from transformers import AutoModelForCausalLM

    device = device_info()
    if adapter_dir is not None:
        check_adapter_matches_base(name_or_path, adapter_dir)
    path = resolve_model_path(name_or_path)
    tokenizer = load_tokenizer(path)
    kwargs: dict[str, Any] = {
        "dtype": resolve_dtype(precision, device),
        "attn_implementation": resolve_attn_implementation(attn_implementation, device),
    }
    if load_in_4bit:
        if device.device != "cuda":
            raise UserError("4-bit loading (QLoRA) needs a CUDA GPU with bitsandbytes; none found")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
        )
        kwargs["device_map"] = {"": 0}
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise UserError(f"cannot load model {name_or_path!r}: {str(exc).splitlines()[0]}") from None
    if not load_in_4bit:
        model.to(device.device)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir, adapter_name="default")
    model.eval()
    model.config.use_cache = True
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        base_name=name_or_path,
        adapter_dir=adapter_dir,
        device=device,
        stop_ids=stop_token_ids(tokenizer, model.generation_config),
    )


def swap_adapter(loaded: LoadedModel, adapter_dir: str | None) -> LoadedModel:
    """The same base weights serving another LoRA adapter as ``default`` (None: the base alone),
    without loading the base again; ``loaded`` itself is left as it was if the new one fails to load.

    The old adapter's layers are removed (peft ``unload``, not merged), so memory holds one adapter.
    """
    from peft import PeftModel

    if adapter_dir is not None:
        check_adapter_matches_base(loaded.base_name, adapter_dir)
    model = loaded.model
    previous = loaded.adapter_dir
    base = model.unload() if isinstance(model, PeftModel) else model
    try:
        served = (
            PeftModel.from_pretrained(base, adapter_dir, adapter_name="default") if adapter_dir else base
        )
    except (OSError, ValueError, RuntimeError) as exc:
        if previous is not None:  # put the adapter that was served back
            loaded.model = PeftModel.from_pretrained(base, previous, adapter_name="default")
            loaded.model.eval()
        raise UserError(f"adapter {adapter_dir}: cannot be loaded ({str(exc).splitlines()[0]})") from None
    served.eval()
    return LoadedModel(
        model=served,
        tokenizer=loaded.tokenizer,
        base_name=loaded.base_name,
        adapter_dir=adapter_dir,
        device=loaded.device,
        stop_ids=loaded.stop_ids,
    )
