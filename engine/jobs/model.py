"""The job model: a launched job as the store holds it, its states, and what a launcher answers.

Both launchers (:mod:`engine.jobs.slurm`, :mod:`engine.jobs.local`) implement :class:`Launcher`:
``submit(spec)``, ``resubmit(job, task)``, ``status(job)``, ``tail(job, n)`` and ``cancel(job)``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from engine.jobs.spec import LaunchSpec

ACTIVE_STATES = frozenset(
    {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING", "STAGE_OUT"}
)
FINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "OUT_OF_MEMORY",
        "NODE_FAIL",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
        "REVOKED",
        "SPECIAL_EXIT",
    }
)
UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class Job:
    """One launched job as the store holds it."""

    id: int
    launcher: str
    job_id: str
    name: str
    state: str
    exit_code: int | None
    detail: str | None
    config_path: str
    output_dir: str
    log_path: str
    script_path: str
    submitted_at: str
    started_at: str | None
    finished_at: str | None
    config: dict[str, Any]
    kind: str = "finetune"  # finetune | sweep
    job_dir: str | None = None  # None for jobs launched before job folders existed
    array: str | None = None  # Slurm --array spec ("0-2", or "1" for a re-submitted shard)
    shards: int | None = None
    parent_id: int | None = None  # the sweep job whose shard this one re-submits
    depends_on: str | None = None
    tasks: dict[str, Any] = field(default_factory=dict)  # array task -> {"state", "exit_code", "job_id"}
    ingested_at: str | None = None
    ingest: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    def task_ids(self) -> list[int]:
        """The array tasks this job runs (sweep shards); [] for a plain job."""
        return array_tasks(self.array)

    @property
    def ref(self) -> str:
        return f"{self.launcher}:{self.job_id}"

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        values = {name: row.get(name) for name in cls.__dataclass_fields__}
        for name in ("config", "tasks", "ingest"):
            values[name] = values[name] or {}
        values["kind"] = values["kind"] or "finetune"
        return cls(**values)


def array_tasks(spec: str | None) -> list[int]:
    """Task numbers of a Slurm array spec such as "0-2", "1", "0,3-4" (a %limit suffix is ignored)."""
    if not spec:
        return []
    tasks: list[int] = []
    for part in spec.split("%")[0].split(","):
        first, _, last = part.partition("-")
        if first.isdigit() and (not last or last.isdigit()):
            tasks.extend(range(int(first), int(last or first) + 1))
    return tasks


@dataclass(frozen=True)
class Submission:
    job_id: str
    log_path: Path
    script_path: Path
    state: str


@dataclass(frozen=True)
class JobStatus:
    state: str
    exit_code: int | None = None
    detail: str | None = None
    tasks: dict[str, Any] | None = None  # per array task, for job arrays


class Launcher(Protocol):
    name: str

    def submit(self, spec: LaunchSpec) -> Submission: ...

    def resubmit(self, job: Job, task: int) -> Submission: ...

    def status(self, job: Job) -> JobStatus: ...

    def tail(self, job: Job, lines: int = 50) -> str: ...

    def cancel(self, job: Job) -> None: ...


def tail_file(path: str | Path, lines: int = 50) -> str:
    """The last ``lines`` lines of a text file ('' when it does not exist yet)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            block = 8192
            data = b""
            while size > 0 and data.count(b"\n") <= lines:
                step = min(block, size)
                size -= step
                handle.seek(size)
                data = handle.read(step) + data
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:]) if lines > 0 else ""


# ANSI colour/cursor codes, and a tqdm-style bar ("Loading weights:  50%|#####     | 1/2 [...]").
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_BAR = re.compile(r"\d+%\|.*\|")


def clean_log(text: str, lines: int = 40) -> str:
    """The last ``lines`` lines of a job log as a person reads it: carriage-return updates collapsed
    to what a terminal would show last, colour codes and blank lines removed, and progress bars
    dropped unless a bar is the last line (what the job is doing now). Losses and errors stay."""
    shown: list[str] = []
    for raw in text.split("\n"):
        line = _ANSI.sub("", raw.rstrip("\r").split("\r")[-1]).rstrip()
        if line.strip():
            shown.append(line)
    kept = [line for index, line in enumerate(shown) if not _BAR.search(line) or index == len(shown) - 1]
    return "\n".join(kept[-lines:]) if lines > 0 else ""


def _exit_code(text: str) -> tuple[int | None, int | None]:
    """Slurm's ``exit:signal`` as two ints."""
    match = re.match(r"^(\d+):(\d+)$", text.strip())
    if not match:
        return None, None
    return int(match.group(1)), int(match.group(2))


def final_status(state: str, exit_text: str, detail: str | None) -> JobStatus:
    """Decide on State; the exit code only says more for a failed job (sources disagree otherwise)."""
    code, sig = _exit_code(exit_text)
    if state == "COMPLETED":
        code = 0
    elif state == "CANCELLED":
        code = None
    if state == "FAILED" and sig:
        detail = f"{detail or ''} killed by signal {sig}".strip()
    return JobStatus(state, code, detail)


# When array tasks end differently, the job shows the state that most needs attention.
_STATE_PRIORITY = ("FAILED", "OUT_OF_MEMORY", "NODE_FAIL", "TIMEOUT", "BOOT_FAIL", "DEADLINE", "PREEMPTED")


def combine_task_states(tasks: Mapping[str, Mapping[str, Any]], expected: Iterable[int]) -> JobStatus:
    """One state for a job array from its tasks' states (missing tasks make it UNKNOWN)."""
    states = {int(k): str(v.get("state")) for k, v in tasks.items()}
    wanted = list(expected)
    active = [states[t] for t in wanted if states.get(t) in ACTIVE_STATES]
    counts = ", ".join(f"{t}:{states.get(t, '?')}" for t in wanted)
    if active:
        running = any(state in ("RUNNING", "COMPLETING", "CONFIGURING") for state in active)
        return JobStatus("RUNNING" if running else active[0], None, f"tasks {counts}", dict(tasks))
    if any(t not in states or states[t] not in FINAL_STATES for t in wanted):
        return JobStatus(UNKNOWN, None, f"tasks {counts}", dict(tasks))
    finals = [states[t] for t in wanted]
    if all(state == "COMPLETED" for state in finals):
        return JobStatus("COMPLETED", 0, None, dict(tasks))
    worst = next((s for s in _STATE_PRIORITY if s in finals), None)
    worst = worst or next(s for s in finals if s != "COMPLETED")
    codes = [tasks[str(t)].get("exit_code") for t in wanted if states[t] == worst]
    code = next((c for c in codes if c), None)
    return JobStatus(worst, code, f"tasks {counts}", dict(tasks))
