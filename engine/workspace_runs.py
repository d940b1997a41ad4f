"""The Workspace's study and fine-tune runs: compare, knowledge kept and the trajectory of a sweep
(engine.study), kept checkpoints, adapters and fine-tune runs. Mixed into
engine.workspace.Workspace, the one door."""

from __future__ import annotations

from pathlib import Path

from engine import adapter_runs, study
from engine.adapter_runs import AdapterChoice
from engine.records import (
    FinetuneCheckpoint,
    FinetuneRun,
    Trajectory,
)
from engine.study import Comparison, KnowledgeKept, StudySettings
from store import checkpoints as checkpoint_store
from store import core


class StudyRunsMixin:
    """The study of a sweep and the fine-tune runs: methods of the Workspace (engine/workspace.py)."""

    # ------------------------------------------------------------ the study (docs/STUDY.md)

    def compare(self, sweep_id: int, settings: StudySettings | None = None) -> Comparison:
        """Paired base − variant differences per cell (BH-adjusted), sampling-setting effects, operating
        points, knowledge kept, the trajectory and the power analysis of one sweep."""
        with self.handle() as store:
            return study.compare(store, sweep_id, settings)

    def knowledge_kept(self, sweep_id: int, settings: StudySettings | None = None) -> list[KnowledgeKept]:
        """Per variant x temperature (temperature None: pooled): the share of control answers stating
        the reference, with its interval over questions and the paired base − variant difference."""
        settings = settings or StudySettings()
        with self.handle() as store:
            data = study.load_study_data(store, sweep_id, settings)
        return study.knowledge_kept(data, settings)

    def trajectory(self, sweep_id: int, settings: StudySettings | None = None) -> Trajectory:
        """Each variant's metrics with intervals next to its training step and losses (checkpoint
        sweeps), and the best trade-off step by the rule of ``study.best_step``."""
        settings = settings or StudySettings()
        with self.handle() as store:
            data = study.load_study_data(store, sweep_id, settings)
        points = study.trajectory(data, settings)
        return Trajectory(points, study.best_step(points, settings) if data.trajectory else None)

    def finetune_checkpoints(self, run_id: int) -> list[FinetuneCheckpoint]:
        """The adapters fine-tune run ``run_id`` kept during training, by step."""
        with self.handle() as store:
            rows = checkpoint_store.list_checkpoints(store, run_id)
        return [
            FinetuneCheckpoint(
                run_id=int(row["run_id"]),
                label=str(row["label"]),
                step=int(row["step"]),
                epoch=row.get("epoch"),
                train_loss=row.get("train_loss"),
                eval_loss=row.get("eval_loss"),
                path=str(row["path"]),
            )
            for row in rows
        ]

    # ------------------------------------------------------------ fine-tune runs

    def adapters(self) -> list[AdapterChoice]:
        """Every adapter the store knows, newest run first, each run's checkpoints after it
        (``finetune_checkpoints``), for the app's adapter picker."""
        with self.handle() as store:
            runs = core.list_finetune_runs(store)
        checkpoints = {int(run["id"]): self.finetune_checkpoints(int(run["id"])) for run in runs}
        with self.handle() as store:
            return adapter_runs.adapter_choices(store, checkpoints)

    def adapter_entity(self, adapter_dir: str | Path, dataset: str | None = None) -> str | None:
        """The masked entity name an adapter was trained on (its sweeps, its dataset's masking, or
        the dataset's questions), None when nothing says."""
        with self.handle() as store:
            return adapter_runs.adapter_entity(store, adapter_dir, dataset)

    def adapter_dataset(self, adapter_dir: str | Path) -> str | None:
        """The QA file an adapter was trained on, when its record names one that still exists."""
        with self.handle() as store:
            return adapter_runs.adapter_dataset(store, adapter_dir)

    def finetune_runs(self) -> list[FinetuneRun]:
        """Fine-tunes recorded in this store (by ``ft-hallu finetune`` or a launched job), newest first."""
        with self.handle() as store:
            rows = core.list_finetune_runs(store)
        return [
            FinetuneRun(
                id=int(row["id"]),
                name=str(row.get("name") or ""),
                mode=str(row.get("mode") or ""),
                base_model=str(row.get("base_model") or ""),
                dataset_path=str(row.get("dataset_path") or ""),
                output_dir=str(row.get("output_dir") or ""),
                status=str(row.get("status") or ""),
                train_loss=row.get("train_loss"),
                eval_loss_before=row.get("eval_loss_before"),
                eval_loss_after=row.get("eval_loss_after"),
                train_seconds=row.get("train_seconds"),
                loss_history=list((row.get("result") or {}).get("loss_history") or []),
                started_at=str(row.get("started_at") or ""),
                finished_at=row.get("finished_at"),
                error=row.get("error"),
            )
            for row in rows
        ]
