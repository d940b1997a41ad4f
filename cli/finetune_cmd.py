"""``ft-hallu finetune --config FILE``: train on this machine (Slurm jobs run exactly this)."""

from __future__ import annotations

import argparse
import sys

from cli.common import Checked, db_path_from
from engine.checkpoints import parse_steps_option
from engine.finetune import FinetuneConfig, load_config, run_finetune


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("finetune", help="fine-tune (LoRA / QLoRA / full) from a TOML config")
    parser.add_argument("--config", required=True, help="fine-tune TOML (see configs/finetune.example.toml)")
    parser.add_argument("--output-dir", help="override output_dir")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument(
        "--max-steps",
        action=Checked,
        field=(FinetuneConfig, "max_steps"),
        rules={"min": 1},  # -1 means "train for epochs" in a config; on the command line, leave the flag out
        help="override max_steps (quick checks; leave it out to train for epochs)",
    )
    parser.add_argument(
        "--save-checkpoints",
        metavar="WHEN",
        help='override save_checkpoints: none, epoch, every N steps ("50") or steps ("50,100,150")',
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    overrides = {}
    if args.output_dir:
        overrides["output_dir"] = args.output_dir
    if args.overwrite:
        overrides["overwrite"] = True
    if args.max_steps is not None:
        overrides["max_steps"] = args.max_steps
    if args.save_checkpoints is not None:
        overrides["save_checkpoints"] = parse_steps_option(args.save_checkpoints, words=("none", "epoch"))
    config = load_config(args.config, overrides)
    result = run_finetune(config, db_path=db_path_from(args))
    before = "n/a" if result.eval_loss_before is None else f"{result.eval_loss_before:.4f}"
    after = "n/a" if result.eval_loss_after is None else f"{result.eval_loss_after:.4f}"
    print(f"run {result.run_id}: {result.mode} fine-tune saved to {result.output_dir}")
    print(f"eval loss {before} -> {after}; train loss {result.train_loss:.4f}; {result.train_seconds:.1f} s")
    for kept in result.checkpoints:
        loss = "n/a" if kept["eval_loss"] is None else f"{kept['eval_loss']:.4f}"
        print(f"checkpoint {kept['label']}: epoch {kept['epoch']}, eval loss {loss} ({kept['path']})")
    sys.stdout.flush()
    return 0
