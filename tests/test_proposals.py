"""Defaults from what is present: which base model (and adapter) a new form proposes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine import proposals
from engine.models import DEFAULT_BASE_MODEL, smollm2_gguf_path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("FT_HALLU_HOME", str(folder))
    return folder


def test_online_proposes_the_default(home: Path) -> None:
    assert proposals.propose_base_model(online=True).base_model == DEFAULT_BASE_MODEL
    assert proposals.propose_sweep_models(online=True).is_default


def test_offline_with_only_the_demo_model_proposes_it(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert proposals.hub_offline() and not proposals.is_online()
    found = proposals.propose_base_model()
    if smollm2_gguf_path() is not None:
        assert (found.base_model, found.adapter) == ("smollm2", "")
        assert "offline" in found.why and "SmolLM2" in found.why
    else:  # without the wheel nothing local is there: the default, and why it will not load
        assert found.base_model == DEFAULT_BASE_MODEL and "needs the hub" in found.why


def test_offline_proposes_the_latest_finished_run_and_its_adapter(
    home: Path, tiny_adapter_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    runs = home / "runs"
    shutil.copytree(tiny_adapter_dir, runs / "demo-run")
    (runs / "half-written").mkdir()  # no adapter_config.json: not a finished run
    (runs / "foreign").mkdir()
    (runs / "foreign" / "adapter_config.json").write_text("{}")  # no ft-hallu record: skipped
    assert [path.name for path, _base in proposals.finished_adapters()] == ["demo-run"]
    base = proposals.propose_base_model()
    assert base.base_model == "tiny" and "latest finished fine-tune" in base.why
    sweep = proposals.propose_sweep_models(online=True)  # an adapter is proposed online too
    assert (sweep.base_model, sweep.adapter) == ("tiny", str(runs / "demo-run"))
    assert json.loads((runs / "demo-run" / "ft-hallu-run.json").read_text())["base_model"] == "tiny"
