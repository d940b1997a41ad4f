"""The GPU check's CPU dry run (bench/gpu_check.sh -> bench/gpu_check.py --dry-run), so the script
waiting for a GPU machine cannot rot: every section runs or says why not, figures land as JSON, the
log is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("environment", "models", "flash_attention", "sweep", "finetune", "qlora", "ddp", "demo")


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory, tiny_model_dir, ft_home) -> tuple[dict, Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("gpu-check-out")
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_WHEELS": "", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("OUT", None)
    proc = subprocess.run(
        ["bash", "bench/gpu_check.sh", "--dry-run", "--out", str(out), "--home", str(ft_home)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    report_path = out / "gpu_check.json"
    assert report_path.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(report_path.read_text()), out, proc


def test_every_section_has_figures_or_a_skip_reason(dry_run):
    report, _out, proc = dry_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert report["dry_run"] is True
    assert tuple(report["sections"]) == SECTIONS
    for name, section in report["sections"].items():
        assert section["status"] in ("ok", "skipped"), (name, section)
        if section["status"] == "ok":
            assert section["figures"], name
        else:
            assert section["reason"].strip(), name
        assert 0 <= section["seconds"] <= section["budget_s"] + 5, (name, section)
    assert {row["goal"] for row in report["goals"]} >= {
        "sweep ratio engine/original (wall)",
        "fine-tune tokens/s engine/original",
    }


def test_benchmarks_measured_both_sides(dry_run):
    sections = dry_run[0]["sections"]
    sweep = sections["sweep"]["figures"]
    plan = dry_run[0]["plan"]
    assert sweep["engine"]["rows"] == 2 * 36 * plan["sweep_samples"]
    assert sweep["baseline_base"]["timed_calls"] == plan["baseline_cells"] * plan["baseline_samples"]
    assert sweep["ratio_wall"] > 0 and sweep["engine"]["decode_step_ms"] > 0
    finetune = sections["finetune"]["figures"]
    assert finetune["original"]["settings"]["mode"] == "full"
    assert finetune["engine"]["settings"]["padding_free"] is True
    for side in ("original", "engine"):
        assert finetune[side]["tokens_per_second"] > 0 and finetune[side]["peak_rss_mb"] > 0
    # Both trained on the same sequences, so the same real tokens.
    assert finetune["original"]["real_tokens"] == finetune["engine"]["real_tokens"]


def test_cuda_only_paths_say_why_with_the_engines_message(dry_run):
    sections = dry_run[0]["sections"]
    qlora = sections["qlora"]
    assert qlora["status"] == "skipped"
    assert qlora["reason"].startswith("needs CUDA") and "4-bit NF4" in qlora["reason"]
    flash = sections["flash_attention"]
    assert flash["status"] == "skipped" and flash["reason"].startswith("needs CUDA")
    assert "flash_attention_2 needs a CUDA GPU" in flash["figures"]["note"]
    # The fallback really loaded sdpa and generated with it.
    assert flash["figures"]["resolved"] == flash["figures"]["loaded_attn_implementation"] == "sdpa"
    assert flash["figures"]["generated_tokens"] == 4
    assert sections["demo"]["figures"]["entry_point"] == "engine.demo.run_demo"


def test_ddp_section_is_skipped_without_gpus_but_its_code_ran_on_cpu(dry_run):
    ddp = dry_run[0]["sections"]["ddp"]
    assert ddp["status"] == "skipped" and ddp["reason"].startswith("needs 2 or more GPUs; this machine has 0")
    figures = ddp["figures"]
    assert figures["processes"] == 2 and figures["tokens"] > 0
    # Both sides through `job launch --local`: one process, then DDP over two, the same effective batch.
    assert (figures["one"]["world_size"], figures["ddp"]["world_size"]) == (1, 2)
    assert figures["one"]["effective_batch_size"] == figures["ddp"]["effective_batch_size"] == 8
    assert figures["one"]["tokens_per_second"] > 0 and figures["ddp"]["tokens_per_second"] > 0
    goal = next(row for row in dry_run[0]["goals"] if row["goal"].startswith("DDP tokens/s"))
    assert goal["value"] is None  # CPU stand-in figures are not a GPU goal


def test_gpu_path_modules_import_no_front_end(dry_run):
    imports = dry_run[0]["sections"]["environment"]["figures"]["import_time"]
    assert set(imports["pulled_by_module"]) >= {"engine.models", "engine.sampling", "engine.finetune"}
    assert imports["front_ends_imported"] == []


def test_log_holds_every_section(dry_run):
    _report, out, _proc = dry_run
    log = (out / "gpu_check.log").read_text()
    for name in SECTIONS:
        assert f"===== {name}:" in log, name
    assert "ratio (b)/(a)" in log and "ratio engine/original" in log


def test_a_section_over_its_budget_is_killed_and_recorded(tmp_path, tiny_model_dir, ft_home):
    out = tmp_path / "out"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, "bench/gpu_check.py", "--dry-run", "--out", str(out), "--home", str(ft_home)]
        + ["--only", "models", "finetune", "--budget", "3"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr  # a timed-out section fails the run
    report = json.loads((out / "gpu_check.json").read_text())
    assert list(report["sections"]) == ["models", "finetune"]
    finetune = report["sections"]["finetune"]
    assert finetune["status"] == "timeout" and "budget of 3 s" in finetune["error"]
    assert finetune["seconds"] < 30  # killed, not waited for
    assert report["sections"]["models"]["status"] == "ok"  # the tiny model is built: quick
