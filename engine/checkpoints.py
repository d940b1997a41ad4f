"""LoRA adapters kept during a fine-tune (``save_checkpoints``), and reading them back as sweep variants.

A fine-tune with ``save_checkpoints = "epoch"``, ``= N`` (every N optimizer steps) or ``= [steps]``
keeps the adapter at each chosen step in ``<run folder>/checkpoints/step-<N>/``, next to the final
adapter. Each checkpoint folder is a complete PEFT adapter with its own ``ft-hallu-run.json`` (the
same base-identity record the final adapter has, plus its step, epoch and losses), so it loads and
is checked like any adapter. The run's own ``ft-hallu-run.json`` lists every checkpoint.

At a chosen step the callback asks the Trainer to log (the train loss: the mean over the steps
since the previous log) and, when there is an eval split, to evaluate (the eval loss), then saves
the adapter. The final step is never kept as a checkpoint: the final adapter is that step.

A sweep names the checkpoints it samples with ``checkpoints = "all"`` or a list of steps;
:func:`checkpoint_adapters` turns that into ``{"step-50": folder, ...}``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.files import staging_folder, write_json_atomic

CHECKPOINTS_DIR = "checkpoints"
RUN_RECORD = "ft-hallu-run.json"
FINAL_VARIANT = "finetuned"  # the final adapter's variant name in a sweep, as for one adapter

Schedule = str | int | list[int]  # "none" | "epoch" | every N steps | these steps


def label_of(step: int) -> str:
    """The variant name of the checkpoint kept at ``step``."""
    return f"step-{step}"


@dataclass(frozen=True)
class CheckpointRecord:
    """One kept adapter: where training was and what the losses were."""

    label: str  # step-<N>: its variant name in a sweep
    step: int  # optimizer steps done
    epoch: float | None  # epochs done (fractional)
    train_loss: float | None  # mean training loss over the steps since the previous log
    eval_loss: float | None  # loss on the eval split at this step (None without an eval split)
    path: str  # relative to the run folder: checkpoints/step-<N>

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def wants_checkpoints(schedule: Schedule) -> bool:
    return schedule != "none"


def describe(schedule: Schedule) -> str:
    """The schedule as a person reads it (progress lines, docs)."""
    if schedule == "epoch":
        return "at the end of every epoch"
    if isinstance(schedule, int):
        return f"every {schedule} steps"
    if isinstance(schedule, list):
        return "at steps " + ", ".join(str(s) for s in sorted(set(schedule)))
    return "never"


def planned_steps(schedule: Schedule, *, max_steps: int) -> tuple[list[int], list[int]]:
    """(steps a step-based schedule keeps before the final step, listed steps training never reaches).

    ``"epoch"`` is not step-based (the callback follows the Trainer's epoch ends): ``([], [])``. A
    listed step equal to ``max_steps`` is the final adapter itself, so it is neither kept nor missed.
    """
    if isinstance(schedule, bool) or schedule in ("none", "epoch"):
        return [], []
    if isinstance(schedule, int):
        return list(range(schedule, max_steps, schedule)), []
    wanted = sorted(set(schedule))
    return [s for s in wanted if s < max_steps], [s for s in wanted if s > max_steps]


# ------------------------------------------------------------------ keeping checkpoints while training


def write_checkpoint(
    model: Any, run_folder: Path, record: CheckpointRecord, run_record: dict[str, Any]
) -> Path:
    """Save the adapter of ``model`` (a PEFT model) as ``run_folder/<record.path>``, all or nothing.

    The folder is built next to its final place and renamed in, so a reader (or a killed run) never
    leaves a half-written checkpoint.
    """
    target = run_folder / record.path
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_folder(target)
    try:
        model.save_pretrained(str(staging))
        write_json_atomic(staging / RUN_RECORD, {**run_record, "checkpoint": record.to_dict()})
        if target.exists():  # a retried step (never in one run); keep the newest
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def checkpoint_callback(
    schedule: Schedule,
    *,
    run_folder: Path,
    run_record: dict[str, Any],
    has_eval: bool,
    say: Callable[[str], None],
    writes: bool = True,
):
    """A transformers ``TrainerCallback`` that keeps the adapter at the scheduled steps.

    Under DDP every rank has one (each must take part in the evaluation at a checkpoint: it is a
    collective call), and only rank 0's ``writes``.

    Its ``kept`` attribute lists the :class:`CheckpointRecord` of every checkpoint written, and
    ``unreached`` the listed steps training never got to.
    """
    from transformers import TrainerCallback

    class CheckpointKeeper(TrainerCallback):
        def __init__(self) -> None:
            self.kept: list[CheckpointRecord] = []
            self.unreached: list[int] = []
            self._steps: set[int] = set()
            self._pending: int | None = None
            self._last_loss: tuple[int, float] | None = None

        @property
        def last_train_loss(self) -> float | None:
            """The last logged train loss (at the final step: the final adapter's, like a checkpoint's)."""
            return None if self._last_loss is None else self._last_loss[1]

        def on_train_begin(self, args, state, control, **kwargs):
            steps, self.unreached = planned_steps(schedule, max_steps=state.max_steps)
            self._steps = set(steps)

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in self._steps:
                self._mark(state, control, kwargs.get("model"))
            elif state.global_step >= state.max_steps:
                control.should_log = True  # the final adapter's train loss, measured like a checkpoint's

        def on_epoch_end(self, args, state, control, **kwargs):
            if schedule == "epoch":
                self._mark(state, control, kwargs.get("model"))

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self._last_loss = (state.global_step, float(logs["loss"]))
                if self._pending == state.global_step and not has_eval:
                    self._keep(state, kwargs.get("model"), eval_loss=None)

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            if self._pending == state.global_step:
                loss = (metrics or {}).get("eval_loss")
                self._keep(state, kwargs.get("model"), eval_loss=None if loss is None else float(loss))

        def _mark(self, state, control, model) -> None:
            step = state.global_step
            if step >= state.max_steps or step == self._pending or any(r.step == step for r in self.kept):
                return  # the final step is the final adapter; a step is kept once
            self._pending = step
            control.should_log = True  # the train loss up to this step
            if has_eval:
                control.should_evaluate = True  # on_evaluate then keeps the adapter
            elif self._last_loss is not None and self._last_loss[0] == step:
                self._keep(state, model, eval_loss=None)  # already logged at this step: no new log comes

        def _keep(self, state, model, *, eval_loss: float | None) -> None:
            step = state.global_step
            self._pending = None
            train_loss = self._last_loss[1] if self._last_loss is not None else None
            record = CheckpointRecord(
                label=label_of(step),
                step=step,
                epoch=None if state.epoch is None else round(float(state.epoch), 4),
                train_loss=train_loss,
                eval_loss=eval_loss,
                path=f"{CHECKPOINTS_DIR}/{label_of(step)}",
            )
            if writes:
                write_checkpoint(model, run_folder, record, run_record)
            self.kept.append(record)
            losses = f"train loss {_show(train_loss)}, eval loss {_show(eval_loss)}"
            say(f"checkpoint {record.label} (epoch {record.epoch}): {losses}")

    return CheckpointKeeper()


def _show(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


# ------------------------------------------------------------------ reading them back


def read_checkpoints(run_folder: str | Path) -> list[CheckpointRecord]:
    """The checkpoints a fine-tune kept in ``run_folder``, by step ([] for a run without any)."""
    path = Path(run_folder) / RUN_RECORD
    if not path.exists():
        return []
    try:
        record = json.loads(path.read_text())
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON: {exc}") from None
    kept = [CheckpointRecord(**item) for item in record.get("checkpoints") or []]
    return sorted(kept, key=lambda r: r.step)


def final_point(run_folder: str | Path) -> dict[str, Any]:
    """The final adapter as a point of the trajectory: its step, epoch and losses (from the run record)."""
    path = Path(run_folder) / RUN_RECORD
    record = json.loads(path.read_text()) if path.exists() else {}
    return {
        "step": record.get("steps"),
        "epoch": record.get("epoch"),
        "train_loss": record.get("train_loss"),
        "eval_loss": record.get("eval_loss_after"),
        "eval_loss_before": record.get("eval_loss_before"),
    }


def checkpoint_adapters(adapter: str, selection: str | Sequence[int]) -> dict[str, str]:
    """``{"step-N": folder}`` for the checkpoints of the run in ``adapter`` that ``selection`` names.

    ``selection`` is ``"all"``, a list of steps, or ``""`` (none). A run folder that does not exist
    yet (a sweep launched after its fine-tune job) has no checkpoints to name: ``{}``; the job plans
    again once the folder exists. A listed step the run did not keep is refused, naming the kept ones.
    """
    if not selection or not adapter or not Path(adapter).is_dir():
        return {}
    kept = read_checkpoints(adapter)
    if selection == "all":
        chosen = kept
    else:
        by_step = {r.step: r for r in kept}
        missing = [s for s in selection if s not in by_step]
        if missing:
            have = ", ".join(str(r.step) for r in kept) or "none (fine-tune with save_checkpoints)"
            raise UserError(
                f"checkpoints: {adapter} has no checkpoint at step {', '.join(map(str, missing))} (kept: {have})"
            )
        chosen = [by_step[s] for s in sorted(set(selection))]
    if not chosen:
        raise UserError(
            f'checkpoints = "all": {adapter} kept no checkpoints (fine-tune with save_checkpoints)'
        )
    return {r.label: str(Path(adapter) / r.path) for r in chosen}


def trajectory_points(adapter: str, variants: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Step, epoch and losses of each sweep variant of a checkpoint sweep (base is step 0)."""
    kept = {r.label: r for r in read_checkpoints(adapter)}
    final = final_point(adapter)
    points: dict[str, dict[str, Any]] = {}
    for variant in variants:
        if variant == "base":
            points[variant] = {
                "step": 0,
                "epoch": 0.0,
                "train_loss": None,
                "eval_loss": final["eval_loss_before"],
            }
        elif variant == FINAL_VARIANT:
            points[variant] = {k: final[k] for k in ("step", "epoch", "train_loss", "eval_loss")}
        elif variant in kept:
            record = kept[variant]
            points[variant] = {
                "step": record.step,
                "epoch": record.epoch,
                "train_loss": record.train_loss,
                "eval_loss": record.eval_loss,
            }
    return points


def parse_steps_option(text: str, *, words: Sequence[str]) -> str | int | list[int]:
    """A command-line value: one of ``words`` as it is, ``"50"`` -> 50, ``"50,100"`` -> [50, 100].

    Anything else comes back as the text, for the config's own check to refuse with its message.
    """
    value = text.strip()
    if value in words:
        return value
    parts = [part.strip() for part in value.split(",")]
    if parts and all(part.lstrip("-").isdigit() for part in parts):
        numbers = [int(part) for part in parts]
        return numbers[0] if len(numbers) == 1 and "," not in value else numbers
    return value
