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

from engine import adapter_runs, job_kinds, job_report, live, scoring, study
from engine import calibrate as calibrating
from engine import dataset as ds
from engine import finetune as finetune_engine
from engine import generate as gen
from engine import jobs as job_engine
from engine import labels as labelling
from engine import mask as masking
from engine import samples as sample_search
from engine import summary as summarising
from engine import sweep as sweep_engine
from engine.configfile import write_launched_config
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
from store import checkpoints as checkpoint_store
from store import claims as claim_store
from store import core
from store import labels as label_store
from store import masks as mask_store
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


class Workspace:
    """One store and the operations on it. ``Workspace.open(path)`` creates and migrates the file."""

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

    # ------------------------------------------------------------ generating QA items

    def generate_qa(
        self,
        config: gen.GenerateConfig,
        source: QaSource | gen.SourceTexts,
        *,
        on_progress: gen.ProgressCallback | None = None,
    ) -> gen.GenerationResult:
        """Read the source (unless already read), chunk it and generate (resuming in the same output folder).

        A caller that must refuse a bad source before the store file exists reads it first
        (``source.read()``) and passes what that gave.
        """
        gen.resolve_api_key(config.endpoint)  # fail before fetching anything
        read = source.read()
        chunks = read.chunks(chunk_chars=config.chunk_chars, overlap_chars=config.chunk_overlap_chars)
        with self.handle() as store:
            return gen.generate(chunks, config, source=read.described, store=store, on_progress=on_progress)

    # ------------------------------------------------------------ masking

    @staticmethod
    def plan_mask(
        path: str | Path,
        *,
        entity: str,
        new_name: str,
        ticker: str | None = None,
        aliases: Sequence[str] = (),
    ) -> MaskPlan:
        """Propose the rules and plan every change in the file (nothing is written)."""
        rules = masking.propose_rules(entity, new_name=new_name, ticker=ticker or None, aliases=list(aliases))
        return masking.plan_file(Path(path).expanduser(), rules)

    @staticmethod
    def mask_leak_report(plan: MaskPlan) -> LeakReport:
        """What the plan's accepted edits would leave: name leaks and identifying names (products,
        people, tickers) learned from the unmasked rows. The CLI's `mask leaks` prints the same report."""
        return masking.plan_leak_report(plan)

    @staticmethod
    def mask_identifying_names(plan: MaskPlan, names: Sequence[str] | None = None, *, seed: int = 0) -> MaskPlan:
        """The plan again with a rule per identifying name (all the report lists, or ``names``),
        each with an invented replacement deterministic from ``seed``."""
        return masking.add_leak_rules(plan, names, seed=seed)

    def recorded_mask_for(self, path: str | Path) -> masking.RecordedMask | None:
        """The done masking that wrote this very file (same sha256), with its rules, or None."""
        with self.handle() as store:
            return masking.recorded_mask_for(store, path)

    def apply_mask(
        self,
        plan: MaskPlan,
        out_path: str | Path,
        *,
        entity: str | None = None,
        new_name: str | None = None,
        overwrite: bool = False,
    ) -> MaskResult:
        """Write the accepted edits to a new file and record the masking (the input is never written)."""
        with self.handle() as store:
            return masking.apply(plan, out_path, store, entity=entity, new_name=new_name, overwrite=overwrite)

    def undo_mask(self, mask_id: int | None = None) -> MaskUndo:
        """Undo a masking; without an id, the latest applied one."""
        with self.handle() as store:
            if mask_id is None:
                done = [m for m in mask_store.list_masks(store) if m.get("status") == "done"]
                if not done:
                    raise UserError("undo: no applied masking to undo")
                mask_id = int(done[0]["id"])
            return MaskUndo(mask_id, masking.undo(store, mask_id))

    def recover_masks(self) -> list[str]:
        """Settle maskings a killed run left 'writing'; one line per masking settled."""
        with self.handle() as store:
            return masking.recover_interrupted(store)

    def masks(self) -> list[MaskRecord]:
        with self.handle() as store:
            rows = mask_store.list_masks(store)
        return [
            MaskRecord(
                id=int(row["id"]),
                status=str(row.get("status") or ""),
                entity=str(row.get("entity") or ""),
                new_name=str(row.get("new_name") or ""),
                source_path=row.get("source_path"),
                output_path=str(row.get("output_path") or ""),
                rows=row.get("rows"),
                edits_applied=row.get("edits_applied"),
                created_at=str(row.get("created_at") or ""),
                leaks=row.get("leaks") or {},
            )
            for row in rows
        ]

    # ------------------------------------------------------------ datasets (engine.dataset)

    @staticmethod
    def check_dataset(path: str | Path, *, eval_fraction: float = 0.1, seed: int = 2024) -> DatasetReport:
        """What ``ft-hallu dataset check`` prints: rows, duplicates, split leakage, lengths, ids."""
        return ds.check(path, eval_fraction=eval_fraction, seed=seed)

    @staticmethod
    def drop_duplicates(path: str | Path, out: str | Path, *, overwrite: bool = False) -> DedupeResult:
        """Write ``path`` without its exact duplicate rows to the NEW file ``out`` (atomic; the
        input is never written)."""
        return ds.write_deduplicated(path, out, overwrite=overwrite)

    # ------------------------------------------------------------ jobs (engine.jobs, engine.job_kinds)

    def launch(
        self,
        config_path: str | Path,
        cluster: ClusterSettings | None,
        launcher: str,
        *,
        name: str | None = None,
        log_dir: str | Path | None = None,
        workdir: str | Path | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> Job:
        """Check a fine-tune config and settings, submit it and record the job (no store goes with it).

        ``overrides`` are fine-tune settings given on the command line (distributed, nodes, ...).
        """
        chosen = job_engine.get_launcher(launcher)
        with self.handle() as store:
            return job_kinds.launch_finetune(
                store, config_path, cluster, launcher=chosen, name=name, log_dir=log_dir, workdir=workdir,
                overrides=overrides,
            )  # fmt: skip

    def launch_finetune(
        self, config: finetune_engine.FinetuneConfig, cluster: ClusterSettings | None, launcher: str
    ) -> Job:
        """Write the config as ``<data>/configs/<name>.toml`` and launch it."""
        return self.launch(write_launched_config("finetune", config), cluster, launcher)

    def launch_sweep(
        self, config: SweepConfig, cluster: ClusterSettings | None, launcher: str, *, shards: int = 1
    ) -> Job:
        """Write the config as ``<data>/configs/sweep-<name>.toml`` and launch it."""
        path = write_launched_config("sweep", config)
        return self.launch_sweep_file(path, cluster, launcher, shards=shards)

    def launch_sweep_file(
        self,
        config_path: str | Path,
        cluster: ClusterSettings | None,
        launcher: str,
        *,
        shards: int = 1,
        after: str | None = None,
        name: str | None = None,
        log_dir: str | Path | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> Job:
        """Submit a sweep TOML as a job (``shards`` > 1: a job array; ``after``: wait for that job)."""
        chosen = job_engine.get_launcher(launcher)
        with self.handle() as store:
            return job_kinds.launch_sweep(
                store, config_path, cluster, launcher=chosen, shards=shards, after=after, name=name,
                log_dir=log_dir, overrides=overrides,
            )  # fmt: skip

    def resubmit(self, job: Job, task: int) -> Job:
        """Queue one shard of a sweep job again."""
        with self.handle() as store:
            return job_engine.resubmit(store, job, task)

    def jobs(self, *, refresh: bool = True) -> list[Job]:
        """Every job, newest first; with ``refresh`` the active ones are asked for their state first.
        Only reads: no results file, no ingest, no scoring (``settle_jobs()`` does those)."""
        with self.handle() as store:
            return job_engine.list_jobs(store, refresh_active=refresh)

    def settle_jobs(self, job_ids: Sequence[int] | None = None) -> list[Job]:
        """As ``jobs()``, and finished jobs' results files read into the store (which may score a sweep)."""
        with self.handle() as store:
            return job_engine.settle_jobs(store, job_ids)

    def job(self, ref: str | int) -> Job:
        """A job by store id or ``launcher:scheduler-id``."""
        with self.handle() as store:
            return job_engine.resolve_job(store, str(ref))

    def refresh_job(self, job: Job) -> Job:
        """The job's state from its launcher; a job seen ending here has its results read in."""
        with self.handle() as store:
            return job_engine.refresh(store, job)

    def follow_job(self, job: Job, *, poll_seconds: float = 1.0) -> Iterator[Job]:
        """The job each time it is polled, until it finishes (the last one yielded is final)."""
        return job_engine.follow(self.refresh_job, job, poll_seconds=poll_seconds)

    @staticmethod
    def job_log(job: Job, lines: int = 50, *, task: int | None = None) -> str:
        """The last ``lines`` lines of the job's output (of one array task, or of each)."""
        return job_engine.tail(job, lines, task=task)

    @staticmethod
    def job_report(job: Job, lines: int = 40) -> JobReport:
        """The job read for a person: progress, final losses or rows, a detail line that says what
        finished, where its output is and how long it took (or why it failed), and the log's last
        ``lines`` lines without progress bars. Reads the job's files only; writes nothing."""
        return job_report.report(job, lines=lines)

    @staticmethod
    def job_progress(job: Job) -> SweepJobProgress | None:
        """A sweep job's progress read from its results files (None for other jobs)."""
        return job_engine.progress(job)

    @staticmethod
    def job_latest_rows(job: Job, limit: int = 8) -> list[dict[str, Any]]:
        """The last rows a sweep job wrote (variant, cell, prompt, sample, text), read from its files."""
        return job_engine.latest_rows(job, limit)

    def ingest_job(self, job: Job) -> IngestResult:
        """Read what the job's folder holds that the store lacks (sweep rows, the fine-tune record)."""
        with self.handle() as store:
            return job_engine.ingest(store, job)

    def cancel_job(self, job: Job, *, task: int | None = None) -> Job:
        with self.handle() as store:
            return job_engine.cancel(store, job, task=task)

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
