"""Fine-tune speed and memory: the original run's settings against the engine's default.

In one run, on the same data and model (``medium`` on CPU by default), each configuration trains for
``--steps`` optimiser steps in its own child process (so peak memory is its own):

* original: full-parameter, fp32, batch 7 x accumulation 4, padded batches, loss on all tokens;
* engine:   LoRA (r=16, all linear layers), bf16 where the device supports it, padding-free batches
            (trl flattens each batch into one sequence; transformers' sdpa path turns the position_ids
            into a block-diagonal mask, so no flash-attn is needed), loss on the assistant's tokens.

Both see the same sequences (same seed, batch and accumulation), so "tokens/s" counts the real
(non-padding) tokens of those sequences per second of ``trainer.train()``.  Peak memory is the
child's peak RSS on CPU (``resource.getrusage``; the RSS after imports and model load is shown too)
and ``torch.cuda.max_memory_allocated`` on a GPU.

    .venv/bin/python bench/finetune_bench.py                  # medium, CPU, 2 steps each
    .venv/bin/python bench/finetune_bench.py --device cuda --model phi3.5-mini-random
    .venv/bin/python bench/finetune_bench.py ... --json figures.json   # the figures as JSON as well

``bench/gpu_check.py`` calls ``run_bench`` for its fine-tune section.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def settings(name: str) -> dict:
    common = {"per_device_batch_size": 7, "gradient_accumulation_steps": 4, "gradient_checkpointing": True}
    if name == "original":
        return {
            **common,
            "mode": "full",
            "precision": "fp32",
            "padding_free": False,
            "packing": False,
            "assistant_only_loss": False,
        }
    # The engine's defaults (FinetuneConfig) plus padding-free batches. run_finetune lifts max_length for
    # padding-free batches without packing (trl cannot truncate a flattened batch); the sample set's rows
    # are far below 1024 tokens, so both configurations train on identical sequences.
    return {
        **common,
        "mode": "lora",
        "precision": "auto",
        "padding_free": True,
        "packing": False,
        "assistant_only_loss": True,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="medium")
    parser.add_argument("--dataset", default="", help="QA file (default: the bundled sample set)")
    parser.add_argument("--steps", type=int, default=2, help="optimiser steps per configuration")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--json", default="", help="also write the figures to this JSON file")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def real_tokens_seen(config, sequences: int) -> int:
    """Real tokens of the first ``sequences`` training rows the trainer draws (the data cycles)."""
    from engine.finetune import _build_datasets
    from engine.models import load_tokenizer, resolve_model_path

    tokenizer = load_tokenizer(resolve_model_path(config.base_model))
    train, _ = _build_datasets(config, tokenizer)  # the pre-tokenised rows the trainer gets
    lengths = [min(len(ids), config.max_length or 10**9) for ids in train["input_ids"]]
    # Every epoch covers each row once, whatever the shuffle; only the last partial epoch is averaged.
    full, rest = divmod(sequences, len(lengths))
    return full * sum(lengths) + round(rest * sum(lengths) / len(lengths))


class BenchError(RuntimeError):
    """One configuration failed; the message holds the end of its output."""


def optimizer_for(device: str) -> str:
    """The engine's default optimiser, unless it cannot run here.

    ``optim = "auto"`` is paged_adamw_32bit on CUDA (as the original run), which is bitsandbytes'. A GPU
    machine without bitsandbytes would fail both configurations, so both use adamw_torch there instead
    (the same for both sides, so the ratio stays fair).
    """
    if device == "cuda" and importlib.util.find_spec("bitsandbytes") is None:
        return "adamw_torch"
    return "auto"


def child(spec: dict) -> dict:
    import torch

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])

    from engine.finetune import FinetuneConfig, run_finetune
    from engine.models import device_info

    config = FinetuneConfig(
        name=spec["name"],
        base_model=spec["model"],
        dataset=spec["dataset"],
        output_dir=spec["output_dir"],
        max_steps=spec["steps"],
        eval_fraction=0.0,
        logging_steps=1,
        seed=2024,
        optim=spec.get("optim", "auto"),
        **settings(spec["name"]),
    )
    rss_before = rss_mb()
    result = run_finetune(
        config, progress=lambda message: print(f"  [{spec['name']}] {message}", file=sys.stderr)
    )
    sequences = spec["steps"] * config.per_device_batch_size * config.gradient_accumulation_steps
    tokens = real_tokens_seen(config, sequences)
    report = {
        "name": spec["name"],
        "settings": settings(spec["name"]),
        "optim": config.optim,
        # precision "auto" trains in bf16 exactly when this is true (a CUDA GPU with bf16).
        "device": device_info().device,
        "device_bf16": device_info().bf16,
        "train_seconds": result.train_seconds,
        "sequences": sequences,
        "real_tokens": tokens,
        "tokens_per_second": tokens / result.train_seconds,
        "trainable_params": result.trainable_params,
        "total_params": result.total_params,
        "rss_after_imports_mb": rss_before,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "loss_history": result.loss_history,
    }
    if torch.cuda.is_available():
        report["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return report


def run_bench(args: argparse.Namespace) -> dict:
    """Train both configurations (each in a child process), print them, and return every figure."""
    from engine.dataset import sample_dataset_path

    env = dict(os.environ)
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    dataset = args.dataset or str(sample_dataset_path())
    work = Path(tempfile.mkdtemp(prefix="finetune-bench-"))
    load = os.getloadavg()
    print(
        f"machine: {os.cpu_count()} CPUs, device {args.device}, load average at start "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(f"model {args.model}, data {dataset}, {args.steps} optimiser steps each (batch 7 x accumulation 4)")
    optim = optimizer_for(args.device)
    if optim != "auto":
        print(
            "note: bitsandbytes is not installed, so both configurations use adamw_torch, not paged_adamw_32bit"
        )
    reports = []
    for name in ("original", "engine"):
        spec = {
            "name": name,
            "model": args.model,
            "dataset": dataset,
            "output_dir": str(work / name),
            "steps": args.steps,
            "threads": args.threads,
            "optim": optim,
        }
        proc = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(spec)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            print(proc.stderr[-4000:], file=sys.stderr)
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise BenchError(f"the {name} configuration failed (exit {proc.returncode}): {last}")
        report = json.loads(lines[-1][len("RESULT ") :])
        notes = [line for line in proc.stderr.splitlines() if "note:" in line or "padding" in line.lower()]
        reports.append(report)
        print(f"{name}: {report['settings']}")
        for note in notes[:5]:
            print(f"  {note.strip()}")
        memory = (
            f"peak GPU {report['peak_gpu_mb']:.0f} MB"
            if "peak_gpu_mb" in report
            else f"peak RSS {report['peak_rss_mb']:.0f} MB (before training, after imports: {report['rss_after_imports_mb']:.0f} MB)"
        )
        print(
            f"  {report['sequences']} sequences, {report['real_tokens']} real tokens in {report['train_seconds']:.1f} s "
            f"= {report['tokens_per_second']:.0f} tokens/s; {memory}; trainable "
            f"{report['trainable_params']:,} of {report['total_params']:,}; losses {report['loss_history']}",
            flush=True,
        )
    original, engine = reports
    key = "peak_gpu_mb" if "peak_gpu_mb" in original else "peak_rss_mb"
    speed = engine["tokens_per_second"] / original["tokens_per_second"]
    memory = engine[key] / original[key]
    print(f"ratio engine/original: tokens/s {speed:.2f}x, peak memory {memory:.2f}x ({key})")
    load_end = os.getloadavg()
    print(
        f"load average at end: {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f} "
        "(cores shared with other processes)"
    )
    return {
        "model": args.model,
        "device": args.device,
        "steps": args.steps,
        "original": original,
        "engine": engine,
        "memory_key": key,
        "ratio_tokens_per_second": speed,
        "ratio_peak_memory": memory,
        "load_average_start": load[0],
        "load_average_end": load_end[0],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        print("RESULT " + json.dumps(child(spec)), flush=True)
        return 0
    try:
        figures = run_bench(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
