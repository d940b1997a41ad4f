"""The Workspace: the one object the TUI, the Gradio app and the CLI are handed.

It owns the store handles of one database and offers what the front ends do with it: sweeps and
their cells, a cell's samples with every variant side by side, running a sweep, saving live samples,
masking and undo, launching and following jobs, scoring, fine-tune runs. Front ends never import
``store``; they call these methods and get dataclasses back.

Thread safety: every operation borrows a SQLite handle from a small pool for its duration, so
Textual thread workers and Gradio's worker threads each use their own connection and a long
operation (scoring, generating) never blocks a short read. ``with Workspace.open(path) as ws:``
closes every handle at the end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine import adapter_runs, job_report, live, scoring, study
from engine import calibrate as calibrating
from engine import dataset as ds
from engine import generate as gen
from engine import jobs as job_engine
from engine import labels as labelling
from engine import mask as masking
from engine import samples as sample_search
from engine import summary as summarising
from engine import sweep as sweep_engine
from engine.errors import UserError
from engine.grid import MetricGrid
from engine.records import (
    CELL_METRICS,
    Cell,
    CellKey,
    CellSamples,
    FinetuneCheckpoint,
    FinetuneRun,
    MaskRecord,
    MaskUndo,
    Sample,
    SampleRow,
    SweepInfo,
    Trajectory,
    VariantSummary,
    grid_cell_info,
    missing_reason,
)
from engine.workspace_data import DataStepsMixin
from engine.workspace_jobs import JobsMixin
from engine.workspace_runs import StudyRunsMixin
from store import claims as claim_store
from store import core
from store import labels as label_store
from store import metrics as metric_store
from store.db import Store, open_db

# Re-exported so front ends take every type they handle from here.
ClusterSettings = job_engine.ClusterSettings
IngestResult = job_engine.IngestResult
Job = job_engine.Job
JobReport = job_report.JobReport
SweepJobProgress = job_engine.SweepJobProgress
DatasetReport = ds.DatasetReport
DedupeResult = ds.DedupeResult
load_cluster_settings = job_engine.load_cluster_settings
MaskPlan = masking.MaskPlan
MaskResult = masking.MaskResult
LeakReport = masking.LeakReport
SweepConfig = sweep_engine.SweepConfig
SweepProgress = sweep_engine.SweepProgress
SweepResult = sweep_engine.SweepResult
StudySettings = study.StudySettings
Comparison = study.Comparison
KnowledgeKept = study.KnowledgeKept
CellDifference = study.CellDifference
TrajectoryPoint = study.TrajectoryPoint
BestStep = study.BestStep
LiveBatch = live.LiveBatch
LiveModel = live.LiveModel
LiveSample = live.LiveSample
LiveSettings = live.LiveSettings
SavedLive = live.SavedLive
SweepSummary = summarising.SweepSummary
GroupSummary = summarising.GroupSummary
AdapterChoice = adapter_runs.AdapterChoice
SampleQuery = sample_search.SampleQuery
SampleSearch = sample_search.SampleSearch
MetricFilter = sample_search.MetricFilter
QaSource = gen.QaSource


# ---------------------------------------------------------------- the workspace


class Workspace(DataStepsMixin, JobsMixin, StudyRunsMixin):
    """One store and the operations on it. ``Workspace.open(path)`` creates and migrates the file.

    Data steps, jobs, and the study with fine-tune runs are methods of its mixins, one module per
    concept (engine/workspace_data.py, workspace_jobs.py, workspace_runs.py); they use ``handle()``."""

    def __init__(self, db_path: str | Path) -> None:
        self._db_path = Path(db_path)
        self._lock = threading.Lock()
        first = open_db(self._db_path)  # creates the file and applies migrations, once
        self._idle: list[Store] = [first]
        self._closed = False

    @classmethod
    def open(cls, db_path: str | Path) -> Workspace:
        return cls(db_path)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def db_path(self) -> Path:
        return self._db_path

    def close(self) -> None:
        """Close the idle handles now; handles in use are closed when their operation ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for handle in idle:
            handle.close()

    @contextmanager
    def handle(self) -> Iterator[Store]:
        """A store handle for this thread for the duration of one operation (for engine functions
        that take a store; front ends call the operations below instead)."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"workspace for {self._db_path} is closed")
            borrowed = self._idle.pop() if self._idle else None
        if borrowed is None:
            borrowed = open_db(self._db_path, migrate=False)
        try:
            yield borrowed
        finally:
            if borrowed.db.conn.in_transaction:  # an operation that failed half-way
                borrowed.db.conn.rollback()
            with self._lock:
                keep = not self._closed
                if keep:
                    self._idle.append(borrowed)
            if not keep:
                borrowed.close()

    # ------------------------------------------------------------ sweeps and cells

    def sweeps(self) -> list[SweepInfo]:
        """Every sweep, newest first."""
        with self.handle() as store:
            rows = core.list_sweeps(store)
        return [SweepInfo.of(row, int(row.get("generation_count") or 0)) for row in rows]

    def sweep(self, sweep_id: int) -> SweepInfo:
        with self.handle() as store:
            row = core.get_sweep(store, sweep_id)
            if not row:
                raise UserError(f"sweep {sweep_id}: no such sweep in {self._db_path}")
            count = core.count_generations(store, sweep_id)
        return SweepInfo.of(row, count)

    def cells(
        self,
        sweep_id: int,
        *,
        variant: str | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        prompt_id: str | None = None,
    ) -> list[Cell]:
        """The sweep's cells (optionally filtered), ordered by variant, prompt, T, p, k."""
        with self.handle() as store:
            rows = metric_store.sweep_cells(
                store,
                sweep_id,
                variant=variant,
                temperature=temperature,
                top_p=top_p,
                top_k=top_k,
                prompt_id=prompt_id,
            )
        return [
            Cell(
                key=CellKey.of(row),
                n=int(row["n"]),
                mean_new_tokens=row.get("mean_new_tokens"),
                scored=row.get("scored_n") is not None,
                means={metric: row.get(metric) for metric in CELL_METRICS},
                details=row.get("metrics") or {},
            )
            for row in rows
        ]

    def cell_samples(
        self,
        sweep_id: int,
        *,
        temperature: float,
        top_p: float,
        top_k: int,
        prompt_id: str | None = None,
        variant: str | None = None,
        who: str | None = None,
    ) -> CellSamples:
        """A cell's samples, one row per (prompt, sample index) with every variant (or one) side by side,
        each with its label by ``who`` (default: this labeller)."""
        with self.handle() as store:
            rows = metric_store.sample_table(
                store,
                sweep_id,
                variant=variant,
                prompt_id=prompt_id,
                temperature=temperature,
                top_p=top_p,
                top_k=top_k,
                only_scored=False,
            )
            ids = [int(row["generation_id"]) for row in rows]
            labels = label_store.current_labels(store, ids, who=who or labelling.default_labeller())
        paired: dict[tuple[str, int], dict[str, Sample]] = {}
        variants: list[str] = []
        for row in rows:
            sample = Sample(
                generation_id=int(row["generation_id"]),
                variant=str(row["variant"]),
                prompt_id=str(row["prompt_id"]),
                sample_index=int(row["sample_index"]),
                seed=row.get("seed"),
                text=row.get("text") or "",
                new_tokens=row.get("new_tokens"),
                metrics=row.get("metrics") or {},
                label=labels.get(int(row["generation_id"])),
            )
            paired.setdefault((sample.prompt_id, sample.sample_index), {})[sample.variant] = sample
            if sample.variant not in variants:
                variants.append(sample.variant)
        ordered = sorted(variants, key=lambda v: (v != "base", v))
        return CellSamples(
            sweep_id=sweep_id,
            temperature=float(temperature),
            top_p=float(top_p),
            top_k=int(top_k),
            prompt_id=prompt_id,
            prompt=rows[0]["prompt"] if rows else None,
            reference=rows[0].get("reference") if rows else None,
            variants=tuple(ordered),
            rows=[SampleRow(p, i, by_variant) for (p, i), by_variant in sorted(paired.items())],
        )

    def sample_claims(self, sweep_id: int, generation_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        """Each of these generations' atomic claims (decision, rule, score, evidence, strength), in
        claim order; a generation without stored claims (a refusal, not scored yet) is left out.
        ``engine.metrics.claim_words`` says each decision in plain words."""
        with self.handle() as store:
            rows = claim_store.sweep_claims(store, sweep_id, generation_ids=generation_ids)
        claims: dict[int, list[dict[str, Any]]] = {}
        for row in rows:
            claims.setdefault(int(row["generation_id"]), []).append(row)
        return claims

    def metric_grid(self, sweep_id: int, metric: str, *, prompt_id: str | None = None) -> MetricGrid:
        """One metric over T x top_p per variant and top_k; ``prompt_id`` may end in ``*`` (a prefix)."""
        with self.handle() as store:
            try:
                grid = metric_store.metric_grid(store, sweep_id, metric, prompt_id=prompt_id)
            except ValueError as exc:
                raise UserError(f"metric: {exc}") from None
        prefix = prompt_id[:-1] if prompt_id and prompt_id.endswith("*") else None
        cells = self.cells(sweep_id, prompt_id=None if prefix is not None else prompt_id)
        if prefix is not None:
            cells = [cell for cell in cells if cell.key.prompt_id.startswith(prefix)]
        grid["info"] = grid_cell_info(grid, cells)
        return MetricGrid.from_dict(grid)

    def summary(self, sweep_id: int) -> SweepSummary:
        """The sweep's finding (engine/summary.py): per prompt group, per variant x temperature,
        hallucination, refusals and agreement with 95% intervals and n, a headline, example answers,
        the metrics with no variation. What every front end shows first."""
        with self.handle() as store:
            if not core.find_sweep(store, sweep_id):
                raise UserError(f"sweep {sweep_id}: no such sweep in {self._db_path}")
            return summarising.build_summary(store, sweep_id)

    def prompt_texts(self, sweep_id: int) -> dict[str, str]:
        """prompt id -> its text, for every prompt of the sweep (captions name the prompt shown)."""
        with self.handle() as store:
            return core.prompt_texts(store, sweep_id)

    def claims_of(self, sweep_id: int, generation_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        """The stored atomic claims of some generations of a sweep: generation id -> its claims in order."""
        with self.handle() as store:
            rows = claim_store.sweep_claims(store, sweep_id, generation_ids=list(generation_ids))
        found: dict[int, list[dict[str, Any]]] = {}
        for row in rows:
            found.setdefault(int(row["generation_id"]), []).append(row)
        return found

    def search_samples(self, sweep_id: int, query: SampleQuery, *, who: str | None = None) -> SampleSearch:
        """Every sample of the sweep that ``query`` finds (engine/samples.py: text or regex search,
        metric thresholds, base / fine-tuned pairs that differ), the shown rows with their claims
        and ``who``'s labels (default: this labeller)."""
        with self.handle() as store:
            if not core.find_sweep(store, sweep_id):
                raise UserError(f"sweep {sweep_id}: no such sweep in {self._db_path}")
            rows = metric_store.sample_table(store, sweep_id, only_scored=False)
            found = sample_search.search(rows, query)
            ids = [row.generation_id for row in found.rows]
            claims = claim_store.sweep_claims(store, sweep_id, generation_ids=ids)
            labels = label_store.current_labels(store, ids, who=who or labelling.default_labeller())
        prompts = {str(row["prompt_id"]): str(row.get("prompt") or "") for row in rows}
        return sample_search.attach(found, claims=claims, labels=labels, prompts=prompts)

    def variant_summary(self, sweep_id: int, metrics: Sequence[str]) -> list[VariantSummary]:
        """Per variant and prompt: the mean over cells of ``metrics``."""
        with self.handle() as store:
            rows = metric_store.variant_summary(store, sweep_id, tuple(metrics))
        return [
            VariantSummary(
                variant=str(row["variant"]),
                prompt_id=str(row["prompt_id"]),
                cells=int(row["cells"]),
                samples=int(row["samples"] or 0),
                means={m: row.get(m) for m in metrics if m in row},
            )
            for row in rows
        ]

    # ------------------------------------------------------------ running and scoring

    def run_sweep(
        self,
        config: SweepConfig,
        *,
        progress: Callable[[SweepProgress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        loaded: Any = None,
    ) -> SweepResult:
        """Run a sweep, or resume it: the same config finds its stored rows and generates the rest."""
        return sweep_engine.run_sweep(
            config, db_path=self._db_path, loaded=loaded, progress=progress, should_stop=should_stop
        )

    def identical_sweep(self, config: SweepConfig) -> SweepInfo | None:
        """The stored sweep with this config's outputs (same config hash), whatever its name.

        A sweep's identity is what changes its texts; its name is a label. Running this config
        again would only resume that sweep, so front ends show it instead (or change the seed).
        """
        sweep_engine.check_inputs(config)
        digest = sweep_engine.config_hash(config, sweep_engine.build_prompts(config))
        with self.handle() as store:
            rows = list(store.db["sweeps"].rows_where("config_hash = ?", [digest], select="id"))
        return self.sweep(int(rows[0]["id"])) if rows else None

    def set_label(self, generation_id: int, label: str, *, who: str | None = None) -> str:
        """Save a human label on one generation (replacing this labeller's earlier one); returns who."""
        labeller = who or labelling.default_labeller()
        with self.handle() as store:
            labelling.set_label(store, generation_id, label, who=labeller)
        return labeller

    def label_of(self, generation_id: int, *, who: str | None = None) -> str | None:
        """This labeller's current label of a generation (None: not labelled)."""
        with self.handle() as store:
            return labelling.label_sample(store, generation_id, who=who or labelling.default_labeller()).label

    def label_view(self, generation_id: int, *, who: str | None = None) -> labelling.LabelSample:
        """A generation as a labeller sees it: prompt, answer, claims with evidence, current label."""
        with self.handle() as store:
            return labelling.label_sample(store, generation_id, who=who or labelling.default_labeller())

    def label_counts(self, sweep_id: int) -> dict[str, int]:
        """Labelled generations of a sweep per label (every labeller)."""
        with self.handle() as store:
            return labelling.label_counts(store, sweep_id)

    def calibration(self, sweep_id: int, *, agreed_only: bool = False) -> calibrating.SweepCalibration:
        """Each score's AUROC against the sweep's human labels ('not enough labels' below the minimum)."""
        with self.handle() as store:
            return calibrating.calibrate_sweep(store, sweep_id, agreed_only=agreed_only)

    # Blind labelling (engine.labels): front ends get BlindItems, which hold nothing to hide.

    def blind_start(self, sweep_id: int, *, who: str, seed: int | None = None) -> labelling.BlindSession:
        """Open or resume a labeller's blind pass over a sweep (the seed recorded when none is given)."""
        with self.handle() as store:
            return labelling.start_blind(store, sweep_id, who=who, seed=seed)

    def blind_next(
        self, sweep_id: int, *, who: str, seed: int, after: int = 0, relabel: bool = False
    ) -> labelling.BlindItem | None:
        """The next item of the blind order after position ``after`` left for this labeller."""
        with self.handle() as store:
            return labelling.next_blind(store, sweep_id, who=who, seed=seed, after=after, relabel=relabel)

    def blind_label(
        self, sweep_id: int, *, who: str, seed: int, position: int, label: str, note: str | None = None
    ) -> None:
        """Label the item at ``position`` of the labeller's blind order."""
        with self.handle() as store:
            labelling.label_blind(
                store, sweep_id, who=who, seed=seed, position=position, label=label, note=note
            )

    def sweep_profile(self, sweep_id: int) -> tuple[str, list[str], list[list[str]]]:
        """The entity profile a sweep's claims were checked against, as the report shows it: title,
        headers (fact, value, source sentence) and rows; one row saying why when it has no sources."""
        with self.handle() as store:
            return scoring.profile_section(store, sweep_id)

    def entity_profile(self, dataset: str | Path, entity: str | None) -> scoring.EntityProfile:
        """The entity profile of a QA file's contexts (stored once per sources + entity + extractor)."""
        path = Path(dataset)
        if not path.is_file():
            raise UserError(f"--dataset {path}: no such file")
        ds.load_items(path, require_context=False)  # a bad file is refused with its line and field
        with self.handle() as store:
            profile = scoring.entity_profile(store, str(path), entity or None)
        if profile is None:
            raise UserError(f"--dataset {path}: no source contexts to build a profile from")
        return profile

    def score(self, sweep_id: int, *, progress: Callable[[int, int], None] | None = None) -> int:
        """Score the sweep's generations that lack (current) metrics; returns how many were scored."""
        with self.handle() as store:
            return int(scoring.compute_missing(store, sweep_id, progress=progress))

    def save_live(self, model: LiveModel, batch: LiveBatch) -> SavedLive:
        """Store live samples in the model pair's ad-hoc sweep (already stored ones are skipped), scored."""
        if not batch.samples:
            raise UserError("nothing to save yet: generate first")
        with self.handle() as store:
            return live.save_live(store, model, batch)


__all__ = [
    "AdapterChoice",
    "CELL_METRICS",
    "BestStep",
    "CellDifference",
    "Comparison",
    "FinetuneCheckpoint",
    "KnowledgeKept",
    "StudySettings",
    "Trajectory",
    "TrajectoryPoint",
    "Cell",
    "CellKey",
    "CellSamples",
    "ClusterSettings",
    "DatasetReport",
    "DedupeResult",
    "FinetuneRun",
    "IngestResult",
    "GroupSummary",
    "Job",
    "JobReport",
    "LiveBatch",
    "LiveModel",
    "LiveSample",
    "LiveSettings",
    "MaskPlan",
    "MaskRecord",
    "MaskResult",
    "MaskUndo",
    "QaSource",
    "MetricFilter",
    "Sample",
    "SampleQuery",
    "SampleRow",
    "SampleSearch",
    "SavedLive",
    "SweepConfig",
    "SweepInfo",
    "SweepJobProgress",
    "SweepProgress",
    "SweepResult",
    "SweepSummary",
    "VariantSummary",
    "Workspace",
    "load_cluster_settings",
    "missing_reason",
]
