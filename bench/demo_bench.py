"""How long ``ft-hallu demo`` takes, step by step, and what it shows.

Runs the demo (SmolLM2 by default, ``--model tiny`` for the random model) in a fresh data folder,
then prints wall and CPU seconds of the whole run and of the fine-tune, the sweep (with its
scoring) and the study (trajectory, knowledge kept), the load average before and after (the
machine is shared: CPU seconds divided by the cores used says more than wall time on a busy
machine), the eval loss before and after fine-tuning, the ZYTRELL table of docs/DEMO.md (also as
Markdown), the trajectory and the knowledge kept.

On a busy machine an absolute time says little; ``--compare REV`` runs the demo of another revision
(exported with ``git archive`` into a temporary folder, e.g. the demo before the study) and this
tree's demo one after the other in one run, each in a fresh process and data folder, and prints the
ratio new / old of wall and CPU seconds (``--rounds N`` alternates them N times).

    .venv/bin/python bench/demo_bench.py                     # SmolLM2, as `make demo`
    .venv/bin/python bench/demo_bench.py --model tiny
    .venv/bin/python bench/demo_bench.py --compare 051e8fc   # ratio to the demo of that revision
    .venv/bin/python bench/demo_bench.py --table DB [--sweep N]   # only the table, from a store
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def print_tables(db: str, sweep_id: int | None, *, study: bool = False) -> None:
    from engine.demo import (
        business_table,
        format_knowledge,
        format_markdown_table,
        format_side_by_side,
        format_trajectory,
        side_by_side,
        study_of,
    )
    from store import core, open_db

    if sweep_id is None:
        sweep_id = max(row["id"] for row in core.list_sweeps(open_db(db)))
    rows = business_table(db, sweep_id)
    print(f"sweep {sweep_id} of {db}:\n")
    print(format_markdown_table(rows))
    print()
    print(format_side_by_side(side_by_side(db, sweep_id)))
    if study:
        points, best, knowledge = study_of(db, sweep_id)
        print()
        print(format_trajectory(points, best))
        print()
        print(format_knowledge(knowledge))


# Run in a child process from the root of a source tree (this one or an exported revision): the
# demo with step marks, then one JSON line of seconds. Only names every revision's demo has.
CHILD = """
import json, os, resource, sys, time
sys.path.insert(0, os.getcwd())
from engine.demo import run_demo
marks = {}
def say(message):
    for step in ("[2/4]", "[3/4]", "[4/4]"):
        if message.startswith(step):
            marks[step] = time.perf_counter()
load = os.getloadavg()[0]
started = time.perf_counter()
result = run_demo(model=sys.argv[1], say=say)
ended = time.perf_counter()
usage = resource.getrusage(resource.RUSAGE_SELF)
print("BENCH " + json.dumps({
    "wall": ended - started, "cpu": usage.ru_utime + usage.ru_stime,
    "finetune": marks["[3/4]"] - marks["[2/4]"], "sweep": marks["[4/4]"] - marks["[3/4]"],
    "after_sweep": ended - marks["[4/4]"], "load_before": load, "load_after": os.getloadavg()[0],
}))
"""


def run_child(tree: Path, model: str) -> dict[str, float]:
    """The demo of the source tree ``tree`` in a fresh process and data folder (kept, and printed:
    ``--table <folder>/ft-hallu.db`` shows what it made); its seconds."""
    home = tempfile.mkdtemp(prefix="ft-hallu-demo-bench-")
    print(f"data folder {home}: the demo of {tree}", flush=True)
    env = {**os.environ, "FT_HALLU_HOME": home, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, model], cwd=tree, env=env, capture_output=True, text=True, check=False
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"demo in {tree} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(line[len("BENCH ") :])


def compare(revision: str, model: str, rounds: int) -> int:
    """The demo of ``revision`` and of this tree, alternating, in one run; the ratio new / old."""
    exported = Path(tempfile.mkdtemp(prefix="ft-hallu-demo-old-"))
    archive = subprocess.run(["git", "archive", revision], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(exported)], input=archive, check=True)
    runs: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    for index in range(rounds):
        for name, tree in (("old", exported), ("new", ROOT)):
            found = run_child(tree, model)
            runs[name].append(found)
            print(
                f"round {index + 1} {name:>3}: {found['wall']:.0f} s wall, {found['cpu']:.0f} CPU-s "
                f"(fine-tune {found['finetune']:.0f} s, sweep + scoring {found['sweep']:.0f} s, "
                f"after the sweep {found['after_sweep']:.0f} s); load average {found['load_before']:.2f} "
                f"-> {found['load_after']:.2f}",
                flush=True,
            )
    for what in ("wall", "cpu"):
        old = sum(r[what] for r in runs["old"])
        new = sum(r[what] for r in runs["new"])
        print(f"{what}: new / old = {new / old:.2f} ({new:.0f} / {old:.0f} s over {rounds} round(s))")
    print(f"old = {revision} ({model}), new = this tree")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2", choices=("smollm2", "tiny"))
    parser.add_argument("--samples", type=int, default=None)
    parser.add_argument("--home", help="data folder (default: a fresh temporary one)")
    parser.add_argument("--table", metavar="DB", help="only print the table from this store")
    parser.add_argument("--sweep", type=int, help="with --table: the sweep id (default: the latest)")
    parser.add_argument("--compare", metavar="REV", help="also run the demo of git revision REV; print new / old")
    parser.add_argument("--rounds", type=int, default=1, help="with --compare: runs of each, alternating")
    args = parser.parse_args()
    if args.table:
        print_tables(args.table, args.sweep, study=True)
        return 0
    if args.compare:
        return compare(args.compare, args.model, args.rounds)

    home = Path(args.home or tempfile.mkdtemp(prefix="ft-hallu-demo-bench-"))
    os.environ["FT_HALLU_HOME"] = str(home)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from engine.demo import format_knowledge, format_table, format_trajectory, run_demo

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
    print(f"  study (trajectory, knowledge kept): {result.study_seconds:.1f} s wall")
    print(f"  sweep rows: {sum(r['answers'] for r in result.business)} for the entity prompt; see the store for all")
    print(f"eval loss {result.eval_loss_before:.3f} -> {result.eval_loss_after:.3f}")
    print()
    print(format_table(result.summary))
    print()
    print_tables(result.db_path, result.sweep_id)
    print()
    print(format_trajectory(result.trajectory, result.best_step))
    print()
    print(format_knowledge(result.knowledge))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
