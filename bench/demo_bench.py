"""How long ``ft-hallu demo`` takes, step by step, and what it shows.

Runs the demo (SmolLM2 by default, ``--model tiny`` for the random model) in a fresh data folder,
then prints wall and CPU seconds of the whole run and of the fine-tune and the sweep, the load
average before and after (the machine is shared: CPU seconds divided by the cores used says more
than wall time on a busy machine), the eval loss before and after fine-tuning, and the ZYTRELL
table of docs/DEMO.md (also as Markdown).

    .venv/bin/python bench/demo_bench.py                     # SmolLM2, as `make demo`
    .venv/bin/python bench/demo_bench.py --model tiny
    .venv/bin/python bench/demo_bench.py --table DB [--sweep N]   # only the table, from a store
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def print_tables(db: str, sweep_id: int | None) -> None:
    from engine.demo import business_table, format_markdown_table, format_side_by_side, side_by_side
    from store import core, open_db

    if sweep_id is None:
        sweep_id = max(row["id"] for row in core.list_sweeps(open_db(db)))
    rows = business_table(db, sweep_id)
    print(f"sweep {sweep_id} of {db}:\n")
    print(format_markdown_table(rows))
    print()
    print(format_side_by_side(side_by_side(db, sweep_id)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2", choices=("smollm2", "tiny"))
    parser.add_argument("--samples", type=int, default=None)
    parser.add_argument("--home", help="data folder (default: a fresh temporary one)")
    parser.add_argument("--table", metavar="DB", help="only print the table from this store")
    parser.add_argument("--sweep", type=int, help="with --table: the sweep id (default: the latest)")
    args = parser.parse_args()
    if args.table:
        print_tables(args.table, args.sweep)
        return 0

    home = Path(args.home or tempfile.mkdtemp(prefix="ft-hallu-demo-bench-"))
    os.environ["FT_HALLU_HOME"] = str(home)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from engine.demo import format_table, run_demo

    load_before = os.getloadavg()
    wall0, cpu0 = time.perf_counter(), cpu_seconds()
    marks: dict[str, tuple[float, float]] = {}

    def say(message: str) -> None:
        for step in ("[2/4]", "[3/4]", "[4/4]"):
            if message.startswith(step):
                marks[step] = (time.perf_counter(), cpu_seconds())
        print(message, file=sys.stderr, flush=True)

    result = run_demo(model=args.model, samples_per_cell=args.samples, say=say)
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    load_after = os.getloadavg()

    def span(start: str, end: str) -> str:
        (w1, c1), (w2, c2) = marks[start], marks[end]
        return f"{w2 - w1:.0f} s wall, {c2 - c1:.0f} CPU-s"

    print(f"model {args.model}, data folder {home}, torch threads {__import__('torch').get_num_threads()}")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1-minute)")
    print(f"whole demo: {wall:.0f} s wall, {cpu:.0f} CPU-s (CPU-s / wall = {cpu / wall:.2f} cores used)")
    print(f"  model set-up + fine-tune: {span('[2/4]', '[3/4]')}")
    print(f"  sweep + scoring: {span('[3/4]', '[4/4]')}")
    print(f"eval loss {result.eval_loss_before:.3f} -> {result.eval_loss_after:.3f}")
    print()
    print(format_table(result.summary))
    print()
    print_tables(result.db_path, result.sweep_id)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
