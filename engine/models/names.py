"""What a base model name stands for: a GGUF file, an offline tiny model, a local folder or a hub id,
mapped to something ``from_pretrained`` loads (built or dequantised once)."""

from __future__ import annotations

import sys
from pathlib import Path

from engine.errors import UserError
from engine.models.gguf import dequantise_gguf, gguf_source
from engine.models.tiny import OFFLINE_MODELS, build_offline_model
from engine.paths import models_dir

DEFAULT_BASE_MODEL = "microsoft/Phi-3.5-mini-instruct"


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
