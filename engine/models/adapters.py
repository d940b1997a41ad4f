"""Adapter identity: which base an adapter belongs to (refused before any weights load when it does
not fit) and the digest of its weights (a retrained adapter in the same folder is another model)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.files import file_sha256
from engine.models.folders import file_digest
from engine.models.gguf import gguf_cache_dir, gguf_source
from engine.models.names import resolve_model_path

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


def adapter_digest(adapter: str | Path | None) -> str | None:
    """SHA-256 of the adapter's weights file; None without an adapter (or weights) in the folder."""
    if not adapter:
        return None
    weights = sorted(Path(adapter).glob("adapter_model.*"))
    return file_sha256(weights[0]) if weights else None
