"""The offline end-to-end demo: sample data -> tiny model -> LoRA fine-tune -> sweep -> per-cell table."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import dataset as ds
from engine.finetune import FinetuneConfig, run_finetune
from engine.paths import data_dir
from engine.sweep import SweepConfig, SweepProgress, run_sweep

DEMO_ENTITY = "ZYTRELL"


@dataclass
class DemoResult:
    db_path: str
    adapter_dir: str
    sweep_id: int
    table: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    seconds: float


def demo_finetune_config(out_dir: Path) -> FinetuneConfig:
    # The tiny random model needs a large learning rate and several epochs to move at all.
    return FinetuneConfig(
        name="demo-lora",
        base_model="tiny",
        dataset=str(ds.sample_dataset_path()),
        output_dir=str(out_dir),
        overwrite=True,
        epochs=10,
        per_device_batch_size=8,
        gradient_accumulation_steps=1,
        learning_rate=3e-3,
        lr_scheduler="constant",
        gradient_checkpointing=False,
        logging_steps=10,
    )


def demo_sweep_config(adapter_dir: Path, samples_per_cell: int) -> SweepConfig:
    return SweepConfig(
        name="demo-sweep",
        base_model="tiny",
        adapter=str(adapter_dir),
        entity_name=DEMO_ENTITY,
        dataset=str(ds.sample_dataset_path()),
        eval_questions=2,
        samples_per_cell=samples_per_cell,
        max_new_tokens=32,
    )


def run_demo(
    *, db_path: str | Path | None = None, samples_per_cell: int = 3, say: Callable[[str], None] | None = None
) -> DemoResult:
    say = say or (lambda message: print(message, file=sys.stderr, flush=True))
    started = time.perf_counter()
    home = data_dir()
    db = Path(db_path) if db_path else home / "ft-hallu.db"
    say(f"[1/4] sample data: {ds.sample_dataset_path()}")
    report = ds.check(ds.sample_dataset_path())
    say(f"      {report.rows} QA rows, {report.unique_pairs} unique pairs, entity masked as {DEMO_ENTITY}")
    say("[2/4] LoRA fine-tune of the offline tiny Phi-3 (real trl SFTTrainer)")
    result = run_finetune(demo_finetune_config(home / "runs" / "demo-lora"), db_path=db, progress=say)
    say(
        f"      eval loss {result.eval_loss_before:.3f} -> {result.eval_loss_after:.3f} in {result.train_seconds:.1f} s"
    )
    say(f"[3/4] sweep: 36 cells x {samples_per_cell} samples x 3 prompts x base+fine-tuned, one loaded model")

    def show(progress: SweepProgress) -> None:
        say(f"      {progress.done}/{progress.total} rows ({progress.elapsed:.1f} s)")

    sweep = run_sweep(demo_sweep_config(Path(result.output_dir), samples_per_cell), db_path=db, progress=show)
    say("[4/4] per-cell summary")
    table = cell_summary(db, sweep.sweep_id)
    summary = variant_summary(db, sweep.sweep_id)
    return DemoResult(
        str(db), result.output_dir, sweep.sweep_id, table, summary, time.perf_counter() - started
    )


def variant_summary(db_path: str | Path, sweep_id: int) -> list[dict[str, Any]]:
    """Per variant and prompt: the mean over cells of the summary metrics."""
    from engine.metrics.catalog import SUMMARY_METRICS
    from store import metrics as metric_store
    from store import open_db

    return metric_store.variant_summary(open_db(db_path), sweep_id, SUMMARY_METRICS)


def cell_summary(db_path: str | Path, sweep_id: int) -> list[dict[str, Any]]:
    """Per-cell rows for the entity prompt: metric means when scored, else counts and lengths."""
    from engine.metrics.catalog import SUMMARY_METRICS
    from store import core, open_db
    from store import metrics as metric_store

    store = open_db(db_path)
    rows = metric_store.cell_table(store, sweep_id, prompt_id="entity")
    if rows:
        keep = ("variant", "temperature", "top_p", "top_k", "n", *SUMMARY_METRICS)
        return [{key: row.get(key) for key in keep} for row in rows]

    cells: dict[tuple, dict[str, Any]] = {}
    for row in core.iter_generations(store, sweep_id, prompt_id="entity"):
        key = (row["variant"], row["temperature"], row["top_p"], row["top_k"])
        cell = cells.setdefault(
            key,
            {
                "variant": key[0],
                "temperature": key[1],
                "top_p": key[2],
                "top_k": key[3],
                "n": 0,
                "mean_new_tokens": 0.0,
            },
        )
        cell["n"] += 1
        cell["mean_new_tokens"] += row["new_tokens"] or 0
    for cell in cells.values():
        cell["mean_new_tokens"] = round(cell["mean_new_tokens"] / cell["n"], 1)
    return list(cells.values())


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain fixed-width table of every column of ``rows`` (None shown as '-')."""
    if not rows:
        return "(no rows)"
    columns = list(rows[0])

    def fmt(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.3g}"
        return str(value)

    widths = {c: max(len(c), *(len(fmt(r.get(c, ""))) for r in rows)) for c in columns}
    lines = ["  ".join(c.rjust(widths[c]) for c in columns)]
    lines.append("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        lines.append("  ".join(fmt(row.get(c, "")).rjust(widths[c]) for c in columns))
    return "\n".join(lines)
