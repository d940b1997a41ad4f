"""Loading: the tokenizer alone first (with the chat template the run uses), then one base model in
memory (natively, no trust_remote_code), optionally 4-bit, with an optional LoRA adapter named
``default`` on top.

The tokenizer is read before any weights (a GGUF file's from its metadata, before the file is
dequantised), so a model without a chat template and without a ``chat_template`` setting stops
with one line in seconds instead of after the weights load.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.modelfiles import is_local, loading
from engine.models.adapters import check_adapter_matches_base
from engine.models.chat import (
    end_of_turn_token,
    generation_config_of,
    ready_for_generation,
    render_chat,
    stop_token_ids,
)
from engine.models.device import DeviceInfo, device_info, resolve_attn_implementation, resolve_dtype
from engine.models.gguf import gguf_cache_dir, gguf_source
from engine.models.names import resolve_model_path
from engine.models.templates import (
    ChatTemplate,
    ChatTemplateUse,
    apply_chat_template_choice,
    effective_chat_template,
    missing_template_error,
)


@dataclass
class LoadedModel:
    """One base model in memory, optionally with a LoRA adapter named ``default`` on top."""

    model: Any
    tokenizer: Any
    base_name: str
    adapter_dir: str | None
    device: DeviceInfo
    stop_ids: list[int]
    chat_template: ChatTemplateUse | None = None

    @property
    def has_adapter(self) -> bool:
        return self.adapter_dir is not None


def _tokenizer_location(name_or_path: str) -> tuple[str, dict[str, str]]:
    """Where the tokenizer is read from without touching weights: a folder (or hub id), or a GGUF
    file's metadata when its dequantised copy does not exist yet."""
    gguf = gguf_source(name_or_path)
    if gguf is not None:
        cached = gguf_cache_dir(gguf)
        if (cached / "config.json").exists():
            return str(cached), {}
        return str(gguf.parent), {"gguf_file": gguf.name}
    return resolve_model_path(name_or_path), {}  # offline names are built (small); nothing is dequantised


_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
)
_TOKENIZERS: dict[tuple, Any] = {}


def _stamp(location: str, extra: dict[str, str]) -> tuple:
    """What identifies the tokenizer files' current contents (sizes and times), for the cache key."""
    folder = Path(location)
    names = [extra["gguf_file"]] if "gguf_file" in extra else list(_TOKENIZER_FILES)
    stamps = []
    for name in names:
        try:
            stat = (folder / name).stat()
        except OSError:
            continue
        stamps.append((name, stat.st_size, stat.st_mtime_ns))
    return tuple(stamps)


def load_base_tokenizer(name_or_path: str):
    """The base model's tokenizer alone, as it ships (no template applied, no pad chosen).

    No weights are read; a GGUF file's tokenizer comes from its metadata (transformers reads the
    tokenizer arrays, not the tensors). Read once per process; each caller gets its own copy.
    """
    from transformers import AutoTokenizer

    location, extra = _tokenizer_location(name_or_path)
    key = (location, tuple(sorted(extra.items())), _stamp(location, extra))
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = AutoTokenizer.from_pretrained(location, **extra)
    return copy.deepcopy(_TOKENIZERS[key])


def _template_text(tokenizer) -> str | None:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # several named templates: the default one is used
        template = template.get("default")
    return template if isinstance(template, str) and template.strip() else None


def _probe_renders(tokenizer, chosen: ChatTemplate, field: str) -> None:
    """A chosen template must render a system/user/assistant exchange and close the answer with a
    special token (else generation could not stop where the turn ends)."""
    probe = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": "a"},
    ]
    name = chosen.setting or "recorded by the adapter"
    try:
        render_chat(tokenizer, probe, add_generation_prompt=False)
        render_chat(tokenizer, probe[:2], add_generation_prompt=True)
    except Exception as exc:  # noqa: BLE001 - jinja2's and transformers' errors alike: one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{field} {name}: cannot render a chat: {first}") from None
    # An adapter's recorded template was checked when it was chosen (or was its tokenizer's own).
    if chosen.source != "adapter" and end_of_turn_token(tokenizer) is None:
        raise UserError(
            f"{field} {name}: no special token closes the assistant's turn, so generation could not stop "
            "there; end each turn with one (e.g. <|im_end|>) or with eos_token"
        )


def apply_chat_template(
    tokenizer, name_or_path: str, chosen: ChatTemplate | None, *, field: str = "chat_template"
) -> ChatTemplateUse:
    """Give a freshly loaded base tokenizer the run's template (adding its missing special tokens);
    without a choice the tokenizer's own template is kept, and a tokenizer without one is refused."""
    before = len(tokenizer)
    if chosen is None:
        own = _template_text(tokenizer)
        if own is None:
            raise missing_template_error(name_or_path, field)
        return ChatTemplateUse(ChatTemplate("", "tokenizer", own), end_of_turn_token(tokenizer), (), before)
    added = apply_chat_template_choice(tokenizer, chosen)
    _probe_renders(tokenizer, chosen, field)
    return ChatTemplateUse(chosen, end_of_turn_token(tokenizer), tuple(added), before)


def chat_tokenizer(
    name_or_path: str,
    *,
    chat_template: str = "",
    adapter_dirs: list[str] | tuple[str, ...] = (),
    field: str = "chat_template",
) -> tuple[Any, ChatTemplateUse]:
    """The tokenizer a run uses, before any weights load: the base's, with the chat template the
    setting names (else the adapter's recorded one, else its own), left-padded, pad not a stop token."""
    chosen = effective_chat_template(chat_template, adapter_dirs, field=field)
    tokenizer = load_base_tokenizer(name_or_path)
    use = apply_chat_template(tokenizer, name_or_path, chosen, field=field)
    location, extra = _tokenizer_location(name_or_path)
    ready_for_generation(tokenizer, None if extra else generation_config_of(location))
    return tokenizer, use


def check_chat_template(
    name_or_path: str,
    chat_template: str = "",
    adapter_dirs: list[str] | tuple[str, ...] = (),
    *,
    field: str = "chat_template",
) -> None:
    """Refuse, before a store row or any weights, a run whose chat template cannot work: an unknown
    name, a bad Jinja file, one that conflicts with an adapter's record, or none at all.

    A local folder's or GGUF file's tokenizer is read (not the weights), once per process; the
    offline models always carry a template, and a hub id is checked by ``chat_tokenizer`` when it
    is loaded (this check stays offline and fast).
    """
    chosen = effective_chat_template(chat_template, adapter_dirs, field=field)
    if not is_local(name_or_path) and gguf_source(name_or_path) is None:
        return  # offline models carry a template; a hub id is checked when loaded, still before its weights
    with loading("tokenizer", name_or_path):
        tokenizer = load_base_tokenizer(name_or_path)
    apply_chat_template(tokenizer, name_or_path, chosen, field=field)


def grow_embeddings(model, size: int) -> int | None:
    """Give the model rows for tokens the chat template added (``size`` = the tokenizer's length).

    New rows start as the mean of the existing rows (input and output side), so they are the same
    on every load; a fine-tune then trains them. Returns the rows there were before, or None when
    the model already had enough (real models often pad their vocabulary).
    """
    import torch

    rows = int(model.get_input_embeddings().weight.shape[0])
    if size <= rows:
        return None
    model.resize_token_embeddings(size, mean_resizing=False)
    layers = {
        id(layer): layer
        for layer in (model.get_input_embeddings(), model.get_output_embeddings())
        if layer is not None
    }
    with torch.no_grad():
        for layer in layers.values():
            layer.weight[rows:] = layer.weight[:rows].mean(dim=0, keepdim=True)
    return rows


def load_model(
    name_or_path: str,
    *,
    adapter_dir: str | None = None,
    precision: str = "auto",
    attn_implementation: str = "auto",
    load_in_4bit: bool = False,
    chat_template: str = "",
    template_field: str = "chat_template",
) -> LoadedModel:
    """Load the base model once (natively, no trust_remote_code) and optionally attach an adapter.

    The tokenizer comes first (``chat_tokenizer``): a model without a chat template and without a
    ``chat_template`` setting (or an adapter that records one) is refused before any weights load.
    """
    import torch
    from transformers import AutoModelForCausalLM

    device = device_info()
    if adapter_dir is not None:
        check_adapter_matches_base(name_or_path, adapter_dir)
    tokenizer, template = chat_tokenizer(
        name_or_path,
        chat_template=chat_template,
        adapter_dirs=[adapter_dir] if adapter_dir else [],
        field=template_field,
    )
    path = resolve_model_path(name_or_path)  # a GGUF file is dequantised only now
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
    grow_embeddings(
        model, len(tokenizer)
    )  # rows for the tokens the template added (the adapter trained them)
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
        chat_template=template,
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
