"""Model folders ft-hallu builds (offline tiny models, dequantised GGUF files): their record file,
cached file digests, and writing a folder in one rename."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine.files import atomic_folder, file_sha256

MODEL_RECORD = "ft-hallu-model.json"  # written next to models ft-hallu builds (offline, dequantised)

_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """SHA-256 of a file, remembered per (path, size, mtime) for this process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_sha256(path)
    return _DIGESTS[key]


def save_model_folder(target: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(staging_folder)`` and put the folder in place of ``target`` in one rename."""
    with atomic_folder(target) as staging:
        write(staging)
    return target
