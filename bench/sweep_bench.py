"""Sweep speed: the original one-sample-per-call loop against the engine's batched per-row sweep.

In ONE run, on the same model, prompt and number of new tokens (min_new_tokens = max_new_tokens):

(a) the original style: the base model loaded on its own, a loop over the 36 grid cells calling
    ``generate`` once per sample (transformers' own sampler); then a separately loaded fine-tuned
    model (base + LoRA adapter), the same loop;
(b) the engine: ``run_sweep`` over every row of both variants with one loaded model (per-row
    sampling, base and adapter rows side by side in each batch, rows written to SQLite per batch).

Prints samples/s for each and the ratio (b)/(a).  ``--logprobs compare`` also times the engine
sweep with the token log-prob/entropy recording off and on (order on, off, off, on, ... so a drift
in the machine's load hits both sides) and prints the ratio on/off: the recording's cost.  ``--baseline-cells N`` times the baseline on N
evenly spread cells and scales to all 36 (a call's cost does not depend on its cell: it always makes
the same number of tokens).  Wall-clock rates depend on whatever else runs on the machine; the
process's CPU time is printed too (with ``--threads 1`` it measures the work itself, not the load).

    .venv/bin/python bench/sweep_bench.py                      # medium on CPU, 8 samples per cell
    .venv/bin/python bench/sweep_bench.py --baseline-cells 4   # quicker baseline, scaled
    .venv/bin/python bench/sweep_bench.py --device cuda --model phi3.5-mini-random --samples 10
    .venv/bin/python bench/sweep_bench.py ... --json figures.json   # the figures as JSON as well
    .venv/bin/python bench/sweep_bench.py --skip-baseline --logprobs compare   # the log-prob cost

``bench/gpu_check.py`` calls ``run_bench`` for its sweep section.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

H100_BANDWIDTH = 3.35e12  # bytes/s, H100 SXM HBM3
H200_BANDWIDTH = 4.8e12  # bytes/s, H200 HBM3e


class BenchError(RuntimeError):
    """The bench cannot run as asked (for example --device cuda without a GPU)."""


@dataclass
class Phase:
    name: str
    samples: int  # samples this phase stands for (after scaling)
    seconds: float  # wall time for those samples (scaled where the baseline was subsampled)
    timed_calls: int
    cpu_seconds: float  # this process's CPU time for those samples (scaled the same way)

    @property
    def rate(self) -> float:
        return self.samples / self.seconds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="medium", help="offline model name or path (default: medium)")
    parser.add_argument("--samples", type=int, default=8, help="samples per grid cell (default: 8)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument(
        "--baseline-cells",
        type=int,
        default=36,
        help="time the sequential baseline on this many evenly spread cells and scale to 36",
    )
    parser.add_argument(
        "--baseline-samples",
        type=int,
        default=0,
        help="samples per timed baseline cell (0 = --samples); the rest is scaled like the cells",
    )
    parser.add_argument(
        "--batch-size", type=int, default=0, help="rows per generate call (0 = engine default)"
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument(
        "--bandwidth",
        type=float,
        default=H100_BANDWIDTH,
        help="GPU memory bandwidth in bytes/s for the roofline bound (default: H100 3.35e12)",
    )
    parser.add_argument(
        "--adapter", default="", help="a LoRA adapter folder (default: a random one made here)"
    )
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--skip-baseline", action="store_true", help="time only the engine")
    parser.add_argument(
        "--logprobs",
        choices=("on", "off", "compare"),
        default="on",
        help="record token log-probs and entropies in the engine sweep (default on, as the engine); "
        "compare: time it off and on and print the ratio",
    )
    parser.add_argument(
        "--repeats", type=int, default=2, help="with --logprobs compare: engine runs per side (default 2)"
    )
    parser.add_argument("--json", default="", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if not 1 <= args.baseline_cells <= 36:
        parser.error("--baseline-cells must be between 1 and 36")
    if not 0 <= args.baseline_samples <= args.samples:
        parser.error("--baseline-samples must be between 0 and --samples")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def make_random_adapter(model_path: str, out_dir: Path, r: int, device: str = "cpu") -> Path:
    """A LoRA adapter with random (non-zero) A and B on all linear layers: it changes every output."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    # On a GPU, build it there in bf16: a 3.8 B model in fp32 on the host would take longer than the sweep.
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(device)
    torch.manual_seed(1234)
    config = LoraConfig(
        r=r, lora_alpha=2 * r, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM"
    )
    peft_model = get_peft_model(model, config)
    with torch.no_grad():  # peft's random init of B is large for a random base; keep outputs sane
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.mul_(0.1)
    peft_model.save_pretrained(out_dir)
    return out_dir


def spread_cells(cells: list, count: int) -> list:
    """``count`` cells evenly spread over the grid (a mix of temperatures, top-p and top-k)."""
    step = len(cells) / count
    return [cells[int(i * step)] for i in range(count)]


def sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def time_baseline(
    loaded, variant: str, prompt: str, cells: list, args, seed: int
) -> tuple[float, float, int]:
    from engine.sampling import generate_reference, row_seed

    # One untimed call first: the first generate pays one-off costs (kernels, caches).
    generate_reference(
        loaded,
        prompt,
        variant=variant,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        seed=1,
        max_new_tokens=args.max_new_tokens,
        min_new_tokens=args.max_new_tokens,
    )
    sync(args.device)
    calls = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    for temperature, top_p, top_k in cells:
        for sample in range(args.baseline_samples or args.samples):
            result = generate_reference(
                loaded,
                prompt,
                variant=variant,
                temperature=temperature,
                top_p=top_p,
                top_k=top_k,
                seed=row_seed(seed, temperature, top_p, top_k, sample),
                max_new_tokens=args.max_new_tokens,
                min_new_tokens=args.max_new_tokens,
            )
            assert result.new_tokens == args.max_new_tokens, result.new_tokens
            calls += 1
    sync(args.device)
    return time.perf_counter() - started, time.process_time() - cpu_started, calls


def _row(name: str, samples: int, wall: float, cpu: float) -> str:
    return (
        f"  {name:<34} {samples:>5} samples {wall:>8.1f} s {samples / wall:>8.2f} /s "
        f"{cpu:>8.1f} s {samples / cpu:>8.2f} /s"
    )


def weight_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def time_engine(config, loaded, db_path: Path, args) -> tuple[float, float, list[int], Any]:
    """One engine sweep into a fresh store: (wall seconds, CPU seconds, rows done per call, result)."""
    from engine.sweep import run_sweep

    batches: list[int] = []
    sync(args.device)
    started, cpu_started = time.perf_counter(), time.process_time()
    result = run_sweep(config, db_path=db_path, loaded=loaded, progress=lambda p: batches.append(p.done))
    sync(args.device)
    return time.perf_counter() - started, time.process_time() - cpu_started, batches, result


def check_stored(db_path: Path, sweep_id: int, args, *, recorded: bool) -> None:
    """Every row made all its tokens, and carries token statistics exactly when they were recorded."""
    from store import core, open_db

    store = open_db(db_path)
    stored = core.iter_generations(store, sweep_id)
    store.close()
    assert all(r["new_tokens"] == args.max_new_tokens for r in stored), "a row stopped early"
    assert all(("token_stats" in (r.get("extra") or {})) == recorded for r in stored), "token stats"


def compare_logprobs(config, loaded, work: Path, args, *, first_on: tuple[float, float]) -> dict:
    """Engine sweeps with token log-prob recording off and on, alternating (the (b) run is the first
    'on'): the ratio of mean wall and CPU time on/off is the recording's cost."""
    import dataclasses

    times: dict[bool, list[tuple[float, float]]] = {True: [first_on], False: []}
    # on (the (b) run), off, off, on, on, off, ...: each side sees early and late load alike.
    order = [False, False, True] + [run % 4 in (0, 3) for run in range(max(0, 2 * args.repeats - 4))]
    order = order[: 2 * args.repeats - 1]
    for index, recorded in enumerate(order):
        side = dataclasses.replace(config, token_logprobs=recorded)
        db = work / f"logprobs-{index}.db"
        seconds, cpu, _batches, result = time_engine(side, loaded, db, args)
        check_stored(db, result.sweep_id, args, recorded=recorded)
        times[recorded].append((seconds, cpu))
        print(f"logprobs {'on ' if recorded else 'off'}: {seconds:.1f} s wall, {cpu:.1f} s CPU", flush=True)
    mean = {side: [sum(t[i] for t in runs) / len(runs) for i in (0, 1)] for side, runs in times.items()}
    ratio_wall, ratio_cpu = mean[True][0] / mean[False][0], mean[True][1] / mean[False][1]
    load = os.getloadavg()
    print(
        f"ratio logprobs on/off: {ratio_wall:.3f} wall ({(ratio_wall - 1) * 100:+.1f} %), "
        f"{ratio_cpu:.3f} CPU time ({(ratio_cpu - 1) * 100:+.1f} %); means of {len(times[True])} on and "
        f"{len(times[False])} off runs; load average now {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    return {
        "runs_on": times[True],
        "runs_off": times[False],
        "ratio_wall": ratio_wall,
        "ratio_cpu": ratio_cpu,
        "load_average_end": load[0],
    }


def run_bench(args: argparse.Namespace) -> dict:
    """Run both sides, print the table, and return every figure (seconds, rates, ratio, bounds)."""
    if args.device == "cpu":
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # the engine picks CUDA whenever it sees one
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise BenchError("--device cuda but no CUDA GPU is visible")

    from engine.models import load_model, resolve_model_path
    from engine.sampling import RowSpec, generate_rows
    from engine.sweep import Grid, SweepConfig, chat_prompt

    load_start = os.getloadavg()
    print(
        f"machine: {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, device {args.device}"
        + (f" ({torch.cuda.get_device_name(0)})" if args.device == "cuda" else "")
    )
    print(f"load average at start: {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}")
    model_path = resolve_model_path(args.model)
    work = Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    adapter = (
        Path(args.adapter)
        if args.adapter
        else make_random_adapter(model_path, work / "adapter", args.lora_r, args.device)
    )
    figures: dict = {
        "model": args.model,
        "device": args.device,
        "device_name": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
        "samples_per_cell": args.samples,
        "cells": 36,
        "variants": 2,
        "max_new_tokens": args.max_new_tokens,
        "load_average_start": load_start[0],
    }

    config = SweepConfig(
        name="bench",
        base_model=args.model,
        adapter=str(adapter),
        samples_per_cell=args.samples,
        max_new_tokens=args.max_new_tokens,
        min_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        compute_metrics=False,
        token_logprobs=args.logprobs != "off",
    )
    cells = Grid().cells()
    timed_cells = spread_cells(cells, args.baseline_cells)
    per_variant = len(cells) * args.samples
    phases: list[Phase] = []

    if not args.skip_baseline:
        # (a) base alone, then a separately loaded fine-tuned model, one sample per generate call.
        for variant in ("base", "finetuned"):
            loaded = load_model(args.model, adapter_dir=str(adapter) if variant == "finetuned" else None)
            prompt = chat_prompt(
                loaded.tokenizer,
                config.system_prompt,
                config.prompt_template.replace("{name}", config.entity_name),
            )
            seconds, cpu, calls = time_baseline(loaded, variant, prompt, timed_cells, args, config.seed)
            scale = per_variant / calls
            phases.append(
                Phase(f"(a) sequential {variant}", per_variant, seconds * scale, calls, cpu * scale)
            )
            figures[f"baseline_{variant}"] = {
                "timed_calls": calls,
                "timed_seconds": seconds,
                "seconds_per_call": seconds / calls,
                "scale": scale,
                "scaled_seconds": seconds * scale,
                "decode_step_ms": seconds / calls / args.max_new_tokens * 1e3,
            }
            note = (
                ""
                if calls == per_variant
                else f", scaled x{per_variant / calls:.2f} from {calls} timed calls"
            )
            print(
                f"(a) {variant}: {calls} calls in {seconds:.1f} s = {seconds / calls:.3f} s/call{note}",
                flush=True,
            )
            if variant == "base" and args.device == "cuda":
                step_bound = weight_bytes(loaded.model) / args.bandwidth
                figures["weight_bytes"] = weight_bytes(loaded.model)
                figures["bandwidth_bytes_per_s"] = args.bandwidth
                figures["bound_decode_step_ms"] = step_bound * 1e3
                print(
                    f"bandwidth bound: {weight_bytes(loaded.model) / 1e9:.2f} GB of weights / "
                    f"{args.bandwidth:.3g} B/s = {step_bound * 1e3:.2f} ms per decode step; one call of "
                    f"{args.max_new_tokens} tokens >= {step_bound * args.max_new_tokens:.3f} s"
                )
            del loaded
            if args.device == "cuda":
                torch.cuda.empty_cache()

    # (b) the engine: one model, both variants in shared batches, rows stored per batch.
    loaded = load_model(args.model, adapter_dir=str(adapter))
    prompt = chat_prompt(
        loaded.tokenizer, config.system_prompt, config.prompt_template.replace("{name}", config.entity_name)
    )
    warm = [RowSpec(prompt, v, 1.0, 1.0, 0, i) for i, v in enumerate(("base", "finetuned") * 2)]
    generate_rows(loaded, warm, max_new_tokens=4)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds, cpu, batches, result = time_engine(config, loaded, work / "bench.db", args)
    assert result.generated_now == 2 * per_variant, result
    phases.append(Phase("(b) engine sweep, both variants", 2 * per_variant, seconds, len(batches), cpu))
    figures["engine"] = {
        "rows": 2 * per_variant,
        "generate_calls": len(batches),
        "seconds": seconds,
        "cpu_seconds": cpu,
        "samples_per_second": 2 * per_variant / seconds,
        # Each call makes max_new_tokens steps for all its rows (plus one prefill): time per step.
        "decode_step_ms": seconds / (len(batches) * args.max_new_tokens) * 1e3,
    }
    print(f"(b) engine: {2 * per_variant} rows in {len(batches)} generate calls, {seconds:.1f} s", flush=True)
    if args.device == "cuda":
        step_bound = weight_bytes(loaded.model) / args.bandwidth
        bound = step_bound * args.max_new_tokens * len(batches)
        figures.update(
            weight_bytes=weight_bytes(loaded.model),
            bandwidth_bytes_per_s=args.bandwidth,
            bound_decode_step_ms=step_bound * 1e3,
            engine_bound_seconds=bound,
            engine_share_of_bound=bound / seconds,
            peak_gpu_gib=torch.cuda.max_memory_allocated() / 2**30,
        )
        print(
            f"bandwidth bound for (b): {len(batches)} calls x {args.max_new_tokens} steps x "
            f"{step_bound * 1e3:.2f} ms = {bound:.2f} s (measured {seconds:.2f} s, {bound / seconds:.0%} of the "
            f"bound's speed); peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"
        )
    check_stored(work / "bench.db", result.sweep_id, args, recorded=config.token_logprobs)
    if args.logprobs == "compare":
        figures["logprobs"] = compare_logprobs(config, loaded, work, args, first_on=(seconds, cpu))

    print()
    print(
        f"model {args.model}, {args.samples} samples/cell x 36 cells x 2 variants, "
        f"{args.max_new_tokens} new tokens each"
    )
    print(f"  {'':<34} {'':>5}         {'wall':>10} {'wall rate':>12} {'CPU time':>10} {'CPU rate':>12}")
    for phase in phases:
        print(_row(phase.name, phase.samples, phase.seconds, phase.cpu_seconds))
    if not args.skip_baseline:
        wall = sum(p.seconds for p in phases[:2])
        cpu = sum(p.cpu_seconds for p in phases[:2])
        scaled = "" if args.baseline_cells == 36 else f"  [scaled: {args.baseline_cells} of 36 cells timed]"
        print(_row("(a) sequential, both variants", 2 * per_variant, wall, cpu) + scaled)
        engine = phases[-1]
        figures["baseline_seconds"] = wall
        figures["ratio_wall"] = wall / engine.seconds
        figures["ratio_cpu"] = cpu / engine.cpu_seconds
        print(
            f"ratio (b)/(a): {wall / engine.seconds:.1f}x in wall-clock samples/s, "
            f"{cpu / engine.cpu_seconds:.1f}x in samples per CPU-second"
        )
        if args.threads != 1 and args.device == "cpu":
            print(
                "note: with several threads on shared cores, CPU time includes spin-waiting; use --threads 1 "
                "for a load-independent CPU-time ratio"
            )
    load_end = os.getloadavg()
    print(
        f"load average at end: {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f} "
        "(other processes share these cores: both sides of the ratio ran under it)"
    )
    figures["load_average_end"] = load_end[0]
    return figures


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        figures = run_bench(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
