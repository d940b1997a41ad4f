"""The boundary between ft-hallu and the model libraries: files checked before loading, errors after.

transformers, peft, safetensors and torch report a broken model folder in their own ways: a
``ValueError`` about slow tokenizers for an empty folder, a ``SafetensorError`` about a header length
for a truncated adapter, a ``RuntimeError`` from torch's writer on a full disk. ft-hallu checks what
it can read cheaply before any store row or model load (:func:`check_model_files`,
:func:`check_adapter_files`: a model folder has a config, a tokenizer and weights whose safetensors
headers promise no more bytes than the file holds), and turns whatever a library still raises while
loading or saving into one line naming the path (:func:`loading`, :func:`saving`).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.files import is_disk_full

# Any of these makes a tokenizer transformers can load without a download.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "spiece.model", "vocab.json", "vocab.txt")
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "model*.bin")
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
_HEADER_LIMIT = 100 * 1024 * 1024  # safetensors refuses headers above 100 MB too


def is_local(name_or_path: str) -> bool:
    """A name that means a path on this machine (rather than a hub id or an offline model name)."""
    return name_or_path.startswith((".", "/", "~")) or Path(name_or_path).expanduser().exists()


def check_safetensors(path: Path) -> None:
    """Read a safetensors file's header (not its tensors); refuse a truncated or foreign file."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise UserError(f"{path}: truncated ({size} bytes): not a safetensors file")
            (length,) = struct.unpack("<Q", head)
            if length > min(size - 8, _HEADER_LIMIT):
                raise UserError(f"{path}: truncated or not a safetensors file (header of {length} bytes, file {size})")
            header = json.loads(handle.read(length).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"{path}: not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise UserError(f"{path}: not a safetensors file (its header is not a table)")
    ends = [
        int(entry["data_offsets"][1])
        for key, entry in header.items()
        if key != "__metadata__" and isinstance(entry, dict) and len(entry.get("data_offsets") or ()) == 2
    ]
    needed = 8 + length + max(ends, default=0)
    if needed > size:
        raise UserError(f"{path}: truncated: holds {size} bytes, its header promises {needed}")


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: invalid JSON in the {what}: {exc.msg}") from None
    if not isinstance(value, dict):
        raise UserError(f"{path}: the {what} must be a JSON object")
    return value


def check_model_files(name_or_path: str, *, what: str = "base_model") -> None:
    """Refuse a local model folder transformers cannot load, naming what is missing or broken.

    Hub ids and the offline names ('tiny', 'smollm2') are left to the loader; a ``.gguf`` file is
    read by its own reader.
    """
    if not is_local(name_or_path) or name_or_path.lower().endswith(".gguf"):
        return
    folder = Path(name_or_path).expanduser()
    label = f"{what} {name_or_path}"
    if not folder.exists():
        raise UserError(f"{label}: no such folder")
    if not folder.is_dir():
        raise UserError(f"{label}: is a file, expected a model folder (config.json, tokenizer, weights)")
    if not (folder / "config.json").is_file():
        listed = sorted(p.name for p in folder.iterdir())[:5]
        holds = f"it holds {', '.join(listed)}" if listed else "it is empty"
        raise UserError(f"{label}: not a model folder: no config.json ({holds})")
    config = _read_json(folder / "config.json", "model config")
    if "model_type" not in config and "architectures" not in config:
        raise UserError(f"{folder / 'config.json'}: not a transformers model config (no model_type)")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise UserError(f"{label}: no tokenizer (one of {', '.join(TOKENIZER_FILES)})")
    weights = sorted({path for pattern in WEIGHT_PATTERNS for path in folder.glob(pattern)})
    if not weights:
        raise UserError(f"{label}: no weights (model.safetensors or pytorch_model.bin)")
    for path in weights:
        if path.suffix == ".safetensors":
            check_safetensors(path)


def check_adapter_files(folder: str | Path) -> None:
    """Refuse an adapter folder whose config or weights cannot be read (before any model loads)."""
    folder = Path(folder)
    config = folder / "adapter_config.json"
    if not config.is_file():
        raise UserError(f"{folder}: not a PEFT adapter folder (no adapter_config.json)")
    _read_json(config, "adapter config")
    weights = [folder / name for name in ADAPTER_WEIGHTS if (folder / name).is_file()]
    if not weights:
        raise UserError(f"{folder}: the adapter has no weights ({' or '.join(ADAPTER_WEIGHTS)})")
    for path in weights:
        if path.suffix == ".safetensors":
            check_safetensors(path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


@contextmanager
def loading(what: str, path: str | Path) -> Iterator[None]:
    """Turn a library's error while loading ``what`` from ``path`` into one line naming the path."""
    try:
        yield
    except UserError:
        raise
    except MemoryError:
        raise UserError(f"{path}: not enough memory to load the {what}") from None
    except Exception as exc:  # noqa: BLE001 - transformers, peft, safetensors, torch: one line each
        raise UserError(f"{path}: cannot load the {what}: {_first_line(exc)}") from exc


@contextmanager
def saving(what: str, path: str | Path) -> Iterator[None]:
    """Turn an error while writing ``what`` to ``path`` into one line naming the path (disk full said so)."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch, safetensors, tokenizers each raise their own
        if is_disk_full(exc):
            raise UserError(f"{path}: disk full while saving the {what}; nothing was kept") from exc
        raise UserError(f"{path}: cannot save the {what}: {_first_line(exc)}") from exc


def check_fits_context(loaded: Any, prompt_tokens: int, max_new_tokens: int, *, what: str = "prompt") -> None:
    """Refuse a prompt the model cannot hold with its answer, naming both lengths."""
    context = context_length(loaded.model.config)
    if context is not None and prompt_tokens + max_new_tokens > context:
        raise UserError(
            f"{what}: {prompt_tokens} tokens + max_new_tokens {max_new_tokens} exceed the model's context "
            f"of {context} tokens; shorten it or lower max_new_tokens"
        )


def context_length(config: Any) -> int | None:
    """The longest sequence the model was built for (None when its config does not say)."""
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
