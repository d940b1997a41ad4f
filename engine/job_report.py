"""A job as a person reads it: what it is, how far it got, what it produced or why it failed.

The detail line leaves the log's path out: it goes with the log (``job.log_path``), which a front
end shows under it.

:func:`report` reads only the job's own files (its log, the fine-tune record or the sweep's results
files in the job folder) and what the store already holds about it (``job.ingest``); it writes
nothing and loads no model. Front ends show its ``detail`` line, its ``progress`` and ``result``
columns and its ``log`` (the tail without progress-bar litter); its ``sweep_id``, ``adapter`` and
``failed_shards`` say what can be opened or re-submitted.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from engine import jobs
from engine.finetune import step_progress
from engine.jobs import jobrun

# A line that says why a job failed: an exception's last line, the CLI's one-line error, a kill.
_ERROR_LINE = re.compile(r"(^ft-hallu: error:|\b\w*(Error|Exception)\b|\bKilled\b|out of memory|CANCELLED)")
KIND_WORDS = {"finetune": "fine-tune", "sweep": "sweep"}


@dataclass(frozen=True)
class JobReport:
    """One job, read for a person (see the module docstring)."""

    job: jobs.Job
    progress: str  # "3/10 steps", "12/36 rows"; "" when nothing is known yet
    result: str  # "train loss 1.23, eval 2.95 -> 2.40" or "36/36 rows in sweep 3"; "" before the end
    detail: str  # one line: kind, name, where, state, how long, then the result or the reason
    log: str  # the log's last lines, without progress bars
    elapsed: str
    sweep_id: int | None = None  # a completed sweep job's sweep in the store
    adapter: str | None = None  # a completed fine-tune's output folder
    base_model: str | None = None  # the base that adapter was trained on
    dataset: str | None = None  # the QA file it was trained on (a sweep's held-out questions and sources)
    failed_shards: tuple[int, ...] = ()  # sweep shards that ended without finishing (re-submit them)


def elapsed_text(started: str | None, finished: str | None, now: dt.datetime | None = None) -> str:
    """h:mm:ss (or m:ss) from ``started`` to ``finished`` (or now); '-' before it started."""
    if not started:
        return "-"
    try:
        begin = dt.datetime.fromisoformat(started)
        end = dt.datetime.fromisoformat(finished) if finished else (now or dt.datetime.now(dt.UTC))
    except ValueError:
        return "?"
    if begin.tzinfo is None:
        begin = begin.replace(tzinfo=dt.UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=dt.UTC)
    seconds = max(0, int((end - begin).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def last_error_line(log: str) -> str | None:
    """The last line of ``log`` that says what went wrong, or None."""
    for line in reversed(log.splitlines()):
        if _ERROR_LINE.search(line.strip()):
            return line.strip()
    return None


def report(job: jobs.Job, *, lines: int = 40, raw_lines: int = 400, now: dt.datetime | None = None) -> JobReport:
    """Read ``job`` for a person; ``lines`` log lines are kept after the bars are dropped."""
    log = jobs.clean_log(jobs.tail(job, raw_lines), lines)
    elapsed = elapsed_text(job.started_at or (job.submitted_at if job.finished else None), job.finished_at, now)
    if job.kind == "sweep":
        return _sweep_report(job, log, elapsed)
    return _finetune_report(job, log, elapsed)


def _head(job: jobs.Job, elapsed: str) -> str:
    kind = KIND_WORDS.get(job.kind, job.kind)
    if job.state == "COMPLETED":
        when = f" in {elapsed}"
    elif job.finished:
        when = f" after {elapsed}"
    elif job.started_at:
        when = f" for {elapsed}"
    else:
        when = f" since {job.submitted_at[:19].replace('T', ' ')}"
    return f"{kind} {job.name} ({job.ref}) {job.state}{when}"


def _why_failed(job: jobs.Job, log: str, recorded: str | None = None) -> str:
    reason = recorded or last_error_line(log)
    if not reason and job.detail:
        reason = job.detail
    code = f"exit {job.exit_code}" if job.exit_code not in (None, 0) else ""
    parts = [part for part in (code, reason) if part]
    return ": ".join(parts) if parts else "no reason in its log"


# ------------------------------------------------------------------ fine-tunes


def _losses(result: dict[str, Any]) -> str:
    parts = []
    if isinstance(result.get("train_loss"), (int, float)):
        parts.append(f"train loss {result['train_loss']:.4f}")
    before, after = result.get("eval_loss_before"), result.get("eval_loss_after")
    if isinstance(before, (int, float)) and isinstance(after, (int, float)):
        parts.append(f"eval loss {before:.4f} -> {after:.4f}")
    return ", ".join(parts)


def _finetune_report(job: jobs.Job, log: str, elapsed: str) -> JobReport:
    record = jobrun.read_finetune_record(job.job_dir) if job.job_dir else {}
    result = record.get("result") if isinstance(record.get("result"), dict) else {}
    steps = step_progress(log)
    progress = f"{steps[0]}/{steps[1]} steps" if steps else ""
    head = _head(job, elapsed)
    output = str(record.get("output_dir") or job.output_dir)
    base = record.get("base_model") if isinstance(record.get("base_model"), str) else None
    dataset = record.get("dataset") if isinstance(record.get("dataset"), str) and record.get("dataset") else None
    if job.state == "COMPLETED" and record.get("status") == "completed":
        losses = _losses(result)
        detail = f"{head}: {losses or 'no losses recorded'}; adapter in {output}"
        return JobReport(
            job, progress, losses, detail, log, elapsed, adapter=output, base_model=base, dataset=dataset
        )
    if job.state == "COMPLETED":
        detail = f"{head}, but left no completed run record in {job.job_dir}"
        return JobReport(job, progress, "", detail, log, elapsed)
    if job.finished:
        recorded = record.get("error") if isinstance(record.get("error"), str) else None
        why = (job.detail or "cancelled") if job.state == "CANCELLED" else _why_failed(job, log, recorded)
        detail = f"{head}: {why}; no adapter was saved to {output}"
        return JobReport(job, progress, "", detail, log, elapsed)
    now_doing = f"step {steps[0]}/{steps[1]}, loss {steps[2]:.4f}" if steps else (log.splitlines() or [""])[-1]
    detail = f"{head}: {now_doing or job.detail or 'no output yet'}"
    return JobReport(job, progress, "", detail, log, elapsed)


# ------------------------------------------------------------------ sweeps


def _failed_shards(job: jobs.Job) -> tuple[int, ...]:
    if job.tasks:
        return tuple(
            sorted(
                int(task)
                for task, info in job.tasks.items()
                if str(info.get("state")) in jobs.FINAL_STATES and info.get("state") != "COMPLETED"
            )
        )
    if job.finished and job.state != "COMPLETED":
        return tuple(job.task_ids() or [0])
    return ()


def _sweep_report(job: jobs.Job, log: str, elapsed: str) -> JobReport:
    done = jobs.progress(job)
    progress = f"{done.done}/{done.planned} rows" if done is not None and done.planned else ""
    stored = [entry for entry in (job.ingest or {}).get("sweeps", []) if isinstance(entry, dict)]
    head = _head(job, elapsed)
    if job.state == "COMPLETED":
        if stored:
            first = stored[0]
            sweep_id = int(first["sweep_id"])
            result = f"{first.get('stored')}/{first.get('expected')} rows in sweep {sweep_id}"
            detail = f"{head}: {result} ({first.get('status')}); job folder {job.job_dir}"
            return JobReport(job, progress, result, detail, log, elapsed, sweep_id=sweep_id)
        written = f"{progress or 'its rows'} written, not read into the store yet (ingest)"
        return JobReport(job, progress, "", f"{head}: {written}; job folder {job.job_dir}", log, elapsed)
    if job.finished:
        shards = _failed_shards(job)
        why = (job.detail or "cancelled") if job.state == "CANCELLED" else _why_failed(job, log)
        kept = f"{progress or 'rows written so far'} kept"
        again = f"; re-submit shard(s) {', '.join(map(str, shards))} to finish" if shards else ""
        detail = f"{head}: {why}; {kept}{again}"
        return JobReport(job, progress, "", detail, log, elapsed, failed_shards=shards)
    rate = f", {done.rows_per_second:.2f} rows/s" if done is not None and done.rows_per_second else ""
    waits = f"; waits for slurm:{job.depends_on}" if job.depends_on and job.state == "PENDING" else ""
    state = f"{progress}{rate}" if progress else (job.detail or "no rows yet")
    return JobReport(job, progress, "", f"{head}: {state}{waits}", log, elapsed)
