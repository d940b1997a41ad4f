"""Reading finished jobs' results files into the login node's store (the store's only writer).

A sweep job leaves append-only results files (:mod:`engine.jobs.results_file`); a fine-tune job
leaves ``finetune-result.json`` (:mod:`engine.jobs.jobrun`). :func:`ingest_job` reads them and inserts what the
store does not hold yet: generations are keyed by sweep, cell, prompt and sample, so reading the
same files twice, or two attempts of one shard, adds each row once. A shard killed half-way
contributes the rows it finished; the sweep is marked completed once every planned row is stored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from engine.jobs import jobrun
from engine.jobs.model import Job
from engine.jobs.results_file import read_job_results
from engine.liveness import tracked_run
from engine.scoring import compute_metrics_if_available
from store import checkpoints as checkpoint_store
from store import core
from store import jobs as job_store
from store.db import Store, utc_now

_ROW_FIELDS = (
    "variant", "temperature", "top_p", "top_k", "prompt_id", "prompt", "reference",
    "sample_index", "seed", "text", "new_tokens", "seconds", "extra",
)  # fmt: skip


@dataclass
class SweepIngest:
    sweep_id: int
    stored: int  # generations the store now holds for the sweep
    expected: int
    status: str  # completed | running | interrupted


@dataclass
class IngestResult:
    job_id: int
    kind: str
    files: int = 0
    rows_read: int = 0
    rows_added: int = 0
    sweeps: list[SweepIngest] = field(default_factory=list)
    finetune_run_id: int | None = None

    def line(self) -> str:
        if self.kind == "finetune":
            run = (
                "no run record yet"
                if self.finetune_run_id is None
                else f"fine-tune run {self.finetune_run_id}"
            )
            return f"job {self.job_id}: {run}"
        sweeps = ", ".join(f"sweep {s.sweep_id} {s.stored}/{s.expected} {s.status}" for s in self.sweeps)
        return (
            f"job {self.job_id}: {self.rows_added} new rows from {self.files} results file(s) "
            f"({self.rows_read} read){'; ' + sweeps if sweeps else ''}"
        )


def ingest_job(store: Store, job: Job) -> IngestResult:
    """Insert whatever the job's folder holds that the store lacks; safe to call any number of times."""
    with tracked_run(store, "ingest", f"job {job.id}"):
        return _ingest(store, job)


def _ingest(store: Store, job: Job) -> IngestResult:
    if not job.job_dir:
        result = IngestResult(job.id, job.kind)  # launched before job folders: nothing travels as files
    elif job.kind == "sweep":
        result = _ingest_sweep(store, job)
    else:
        result = _ingest_finetune(store, job)
    job_store.update_job(store, job.id, ingested_at=utc_now(), ingest=asdict(result))
    return result


# ------------------------------------------------------------------ sweeps


def _ingest_sweep(store: Store, job: Job) -> IngestResult:

    result = IngestResult(job.id, "sweep")
    files = read_job_results(job.job_dir)
    result.files = len(files)
    by_identity: dict[str, list] = {}
    for parsed in files:
        by_identity.setdefault(str(parsed.header.get("config_hash")), []).append(parsed)
    still_running = _attempts_running(store, job)
    for identity, group in by_identity.items():
        header = group[0].header
        sweep_id = core.get_or_create_sweep(
            store,
            name=str(header.get("sweep_name") or job.name),
            source=f"{job.launcher}-job",
            base_model=str(header.get("base_model")),
            adapter_dir=header.get("adapter_dir"),
            config_hash=identity,
            config=header.get("config") or {},
            expected_rows=int(header.get("expected_rows") or 0),
        )
        added = 0
        for parsed in group:
            rows = [{k: row.get(k) for k in _ROW_FIELDS} for row in parsed.rows]
            result.rows_read += len(rows)
            added += core.add_generations(store, sweep_id, rows) if rows else 0
        result.rows_added += added
        stored = core.count_generations(store, sweep_id)
        expected = int(header.get("expected_rows") or 0)
        # An incomplete copy is "interrupted" in the store either way (no process here owns it);
        # the reason says whether more rows are on their way.
        status, why = "completed", None
        if stored < expected and still_running:
            status, why = "running", f"job {job.id} ({job.ref}) is still running; ingest again for the rest"
        elif stored < expected:
            status = "interrupted"
            why = f"job {job.id} ended with {stored}/{expected} rows; re-submit the missing shards"
        core.set_sweep_status(store, sweep_id, "interrupted" if why else status, error=why)
        # Scored on completion even when this call added nothing: earlier ingests of a running job
        # stored rows without scoring them; compute_missing only scores what lacks metrics.
        if status == "completed" and (header.get("config") or {}).get("compute_metrics", True):
            compute_metrics_if_available(store, sweep_id)
        result.sweeps.append(SweepIngest(sweep_id, stored, expected, status))
    return result


def _attempts_running(store: Store, job: Job) -> bool:
    parent_id = job.parent_id or job.id
    rows = [job_store.get_job(store, parent_id), *job_store.children(store, parent_id)]
    return any(row and not row.get("finished_at") for row in rows)  # finished_at is set on a final state


# ------------------------------------------------------------------ fine-tunes


def _ingest_finetune(store: Store, job: Job) -> IngestResult:
    result = IngestResult(job.id, "finetune", finetune_run_id=job.ingest.get("finetune_run_id"))
    record = jobrun.read_finetune_record(job.job_dir)
    # Over several processes, the rank that failed first is the reason (the others were stopped).
    failures = jobrun.rank_failures(job.job_dir) if job.finished and job.state != "COMPLETED" else []
    if failures:
        job_store.update_job(store, job.id, detail=jobrun.failure_line(failures))
    if not record:
        return result
    result.files = 1
    status = record.get("status")
    if failures and status != "completed":
        status = "failed"
        record = {**record, "error": jobrun.failure_line(failures)}
    elif status == "running" and job.finished:
        # The process was killed before it could write its own ending.
        status = "failed"
        record = {**record, "error": f"job ended {job.state} before the fine-tune finished"}
    if status not in ("completed", "failed") or result.finetune_run_id is not None:
        return result
    run_id = core.start_finetune_run(
        store,
        name=str(record.get("name")),
        mode=str(record.get("mode")),
        base_model=str(record.get("base_model")),
        dataset_path=str(record.get("dataset")),
        output_dir=str(record.get("output_dir")),
        config={**(record.get("config") or {}), "job": job.ref, "started_at": record.get("started_at")},
    )
    outcome = record.get("result") or {}
    core.finish_finetune_run(
        store,
        run_id,
        status=status,
        train_loss=outcome.get("train_loss"),
        eval_loss_before=outcome.get("eval_loss_before"),
        eval_loss_after=outcome.get("eval_loss_after"),
        train_seconds=outcome.get("train_seconds"),
        result=outcome,
        error=record.get("error"),
    )
    # The checkpoints the job kept travel in its result record, like the final losses.
    checkpoint_store.add_checkpoints(
        store, run_id, outcome.get("checkpoints") or [], output_dir=str(record.get("output_dir"))
    )
    result.finetune_run_id = run_id
    return result
