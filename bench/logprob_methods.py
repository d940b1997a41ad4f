"""Two ways to get token log-probs and entropies out of one batched ``generate`` call, timed in one run.

(off)        the engine's ``generate_rows`` with ``record_logprobs=False``;
(processor)  the engine's way: the per-row logits processor reads the raw logits at every step
             (one ``exp`` over the vocabulary into reused buffers) before it samples;
(returned)   ``generate`` keeps every step's raw logits (``output_logits=True``), and one vectorised
             ``log_softmax`` + ``gather`` + entropy over the stacked [steps, rows, vocab] tensor runs
             after the call.

Same rows (one prompt, the 36 grid cells, ``--rows`` rows, ``--max-new-tokens`` tokens each), each
variant timed ``--repeats`` times in rotating order (so a change in the machine's load hits every
variant alike); prints the median wall and CPU seconds per call and their ratios to (off), and
checks that both ways give the same values.

    .venv/bin/python bench/logprob_methods.py                  # medium on CPU, 192 rows x 64 tokens
    .venv/bin/python bench/logprob_methods.py --threads 1 --repeats 5 --skip-returned
    .venv/bin/python bench/logprob_methods.py --threads 1 --processor-only   # the processor alone, per step
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="medium", help="offline model name or path (default: medium)")
    parser.add_argument("--rows", type=int, default=192, help="rows per call (default: the CPU batch cap)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument(
        "--processor-only",
        action="store_true",
        help="time only the logits processor on random logits [rows, 32064]: CPU ms per step, off vs on",
    )
    parser.add_argument(
        "--skip-returned", action="store_true", help="time only off and processor (returned logits: ~5 GB)"
    )
    return parser.parse_args(argv)


def returned_logits_stats(loaded, rows, max_new_tokens: int):
    """(logprobs, entropies) [rows, steps] from the raw logits generate returns (output_logits)."""
    import torch
    from transformers import LogitsProcessorList

    from engine.sampling import PerRowSampler

    tokenizer = loaded.tokenizer
    encoded = tokenizer(
        [r.prompt_text for r in rows], return_tensors="pt", padding=True, add_special_tokens=False
    )
    sampler = PerRowSampler(rows, max_new_tokens, "cpu", record_logprobs=False, stop_ids=loaded.stop_ids)
    with torch.inference_mode():
        out = loaded.model.generate(
            **encoded,
            logits_processor=LogitsProcessorList([sampler]),
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            num_beams=1,
            max_new_tokens=max_new_tokens,
            min_new_tokens=max_new_tokens,
            eos_token_id=loaded.stop_ids,
            pad_token_id=tokenizer.pad_token_id,
            return_dict_in_generate=True,
            output_logits=True,
        )
        logits = torch.stack(out.logits, dim=1).float()  # [rows, steps, vocab]
        chosen = out.sequences[:, encoded["input_ids"].shape[1] :]
        log_probs = torch.log_softmax(logits, dim=-1)
        picked = log_probs.gather(2, chosen.unsqueeze(-1)).squeeze(-1)
        entropy = -(log_probs.exp() * log_probs).nansum(dim=-1)
    return picked, entropy, chosen


def processor_only(rows_count: int, repeats: int, vocab: int = 32064, steps: int = 10) -> None:
    """CPU time of one ``PerRowSampler`` step with and without recording, on random logits."""
    import torch

    from engine.sampling import PerRowSampler, RowSpec
    from engine.sweep import Grid

    cells = Grid().cells()
    rows = [RowSpec("p", "base", *cells[i % len(cells)], i) for i in range(rows_count)]
    logits = torch.randn(rows_count, vocab, generator=torch.Generator().manual_seed(0)) * 3.0
    per_step: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for record in (False, True):
            sampler = PerRowSampler(rows, steps, "cpu", record_logprobs=record)
            copies = [logits.clone() for _ in range(steps)]  # the processor writes into its input
            started = time.process_time()
            for scores in copies:
                sampler(None, scores)
            per_step[record].append((time.process_time() - started) / steps * 1e3)
    off, on = statistics.median(per_step[False]), statistics.median(per_step[True])
    print(
        f"processor, {rows_count} rows x {vocab}: {off:.1f} ms CPU per step without recording, "
        f"{on:.1f} ms with it (+{on - off:.1f} ms; medians of {repeats})"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.processor_only:
        processor_only(args.rows, max(args.repeats, 3))
        return 0
    from engine.models import load_model
    from engine.sampling import RowSpec, generate_rows, row_seed
    from engine.sweep import Grid, SweepConfig, chat_prompt

    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}; load {load[0]:.2f}")
    loaded = load_model(args.model)
    config = SweepConfig()
    prompt = chat_prompt(
        loaded.tokenizer, config.system_prompt, config.prompt_template.replace("{name}", config.entity_name)
    )
    cells = Grid().cells()
    rows = [
        RowSpec(prompt, "base", *cells[i % len(cells)], row_seed("methods", i)) for i in range(args.rows)
    ]
    tokens = args.max_new_tokens

    def off():
        return generate_rows(loaded, rows, max_new_tokens=tokens, min_new_tokens=tokens, record_logprobs=False)

    def processor():
        return generate_rows(loaded, rows, max_new_tokens=tokens, min_new_tokens=tokens)

    def returned():
        return returned_logits_stats(loaded, rows, tokens)

    variants = {"off": off, "processor": processor}
    if not args.skip_returned:
        variants["returned"] = returned
    generate_rows(loaded, rows[:4], max_new_tokens=4)  # one-off costs
    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for repeat in range(args.repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:  # rotate the order
            started, cpu_started = time.perf_counter(), time.process_time()
            variants[name]()
            wall[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - cpu_started)
            print(f"  {name:<10} {wall[name][-1]:7.2f} s wall {cpu[name][-1]:7.2f} s CPU", flush=True)
    if not args.skip_returned:
        # Both ways give the same values where they drew the same tokens. The engine shares the
        # prompt's KV cache and plain generate does not, so logits differ in the last bits and a
        # row whose uniform lands on a boundary can draw another token from there on.
        recorded = processor()
        picked, entropy, chosen = returned()
        same = [i for i, r in enumerate(recorded) if r.token_ids == chosen[i].tolist()]
        assert len(same) >= 0.9 * len(rows), f"only {len(same)} of {len(rows)} rows drew the same tokens"
        for i in same:
            assert torch.allclose(torch.tensor(recorded[i].token_logprobs), picked[i], atol=1e-3)
            assert torch.allclose(torch.tensor(recorded[i].token_entropies), entropy[i], atol=1e-3)
        print(f"same values on the {len(same)} of {len(rows)} rows that drew the same tokens")
    base_wall, base_cpu = statistics.median(wall["off"]), statistics.median(cpu["off"])
    print(f"{args.rows} rows x {tokens} tokens, model {args.model}; median of {args.repeats} calls each:")
    for name in names:
        mid_wall, mid_cpu = statistics.median(wall[name]), statistics.median(cpu[name])
        print(
            f"  {name:<10} {mid_wall:7.2f} s wall (x{mid_wall / base_wall:.3f})  "
            f"{mid_cpu:7.2f} s CPU (x{mid_cpu / base_cpu:.3f})"
        )
    end = os.getloadavg()
    print(f"load average at end: {end[0]:.2f} {end[1]:.2f} {end[2]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
