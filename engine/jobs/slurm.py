"""The Slurm launcher: ``sbatch`` to queue, ``squeue``/``scontrol``/``sacct`` to follow, ``scancel``.

The commands are found via PATH and SLURM_CONF, so any cluster whose login node has them works. A
job that has left the queue is looked up in whichever record the cluster keeps (scontrol while
MinJobAge lasts, then sacct or the jobcomp file); a job array's state combines its tasks'.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.configfile import load_dataclass
from engine.errors import UserError
from engine.files import write_atomic
from engine.jobs.model import (
    FINAL_STATES,
    UNKNOWN,
    Job,
    JobStatus,
    Submission,
    combine_task_states,
    final_status,
    tail_file,
)
from engine.jobs.scripts import render_sbatch_script
from engine.jobs.settings import ClusterSettings, cluster_environment
from engine.jobs.spec import LaunchSpec


class SlurmLauncher:
    """Drives ``sbatch``/``squeue``/``sacct``/``scontrol``/``scancel`` (found via PATH and SLURM_CONF)."""

    name = "slurm"

    def __init__(self, env: Mapping[str, str] | None = None, timeout: float = 60.0) -> None:
        self._env = env
        self.timeout = timeout

    def _base_env(self) -> dict[str, str]:
        return dict(os.environ if self._env is None else self._env)

    def _run(self, argv: list[str], env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                argv,
                env=dict(env) if env is not None else self._base_env(),
                capture_output=True,
                text=True,
                timeout=self.timeout,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError:
            raise UserError(
                f"{argv[0]}: not found; run this on a Slurm login node, or launch with --local"
            ) from None
        except subprocess.TimeoutExpired:
            raise UserError(f"{argv[0]}: no answer from Slurm within {self.timeout:.0f}s") from None

    def submit(self, spec: LaunchSpec) -> Submission:
        folder = spec.job_dir or spec.log_dir
        folder.mkdir(parents=True, exist_ok=True)
        output_pattern = str(folder / ("slurm-%A_%a.out" if spec.array else "slurm-%j.out"))
        script_path = folder / "job.sbatch"
        write_atomic(script_path, render_sbatch_script(spec, output_pattern))
        options = [f"--dependency=afterok:{spec.dependency}"] if spec.dependency else []
        job_id = self._sbatch(script_path, options, spec.cluster)
        log = output_pattern.replace("%A", job_id).replace("%j", job_id)
        return Submission(job_id, Path(log), script_path, "PENDING")

    def resubmit(self, job: Job, task: int) -> Submission:
        """Queue array task ``task`` of ``job``'s script again, as a new one-task array."""
        cluster = load_dataclass(ClusterSettings, job.config.get("cluster", {}), source=f"job {job.id}")
        script_path = Path(job.script_path)
        if not script_path.exists():
            raise UserError(f"job {job.id}: its script {script_path} is gone; launch the sweep again")
        # An --array on the command line overrides the script's own #SBATCH --array.
        job_id = self._sbatch(script_path, [f"--array={int(task)}"], cluster)
        log = script_path.parent / f"slurm-{job_id}_%a.out"
        return Submission(job_id, log, script_path, "PENDING")

    def _sbatch(self, script_path: Path, options: list[str], cluster: ClusterSettings) -> str:
        # sbatch runs with only what the settings allow (engine/jobs/settings.py); --export=ALL hands
        # the job exactly that (with Slurm's own SLURM_* variables), whatever a site default says.
        env = cluster_environment(cluster, self._base_env())
        result = self._run(["sbatch", "--parsable", "--export=ALL", *options, str(script_path)], env=env)
        if result.returncode != 0:
            # One line: sbatch often prints the specific reason first and a summary last.
            message = " / ".join(part.strip() for part in result.stderr.splitlines() if part.strip())[:500]
            message = message or f"exit status {result.returncode}"
            if "configuration source" in message:
                message += (
                    " (no Slurm configuration here: run on a login node, set SLURM_CONF, or use --local)"
                )
            raise UserError(f"sbatch rejected {script_path}: {message}")
        job_id = result.stdout.strip().split(";")[0]
        if not job_id.isdigit():
            raise UserError(f"sbatch printed no job id for {script_path}: {result.stdout.strip()!r}")
        return job_id

    def status(self, job: Job) -> JobStatus:
        if job.array:
            return self._array_status(job)
        queue = self._run(["squeue", "-h", "-j", job.job_id, "-o", "%T|%r"])
        if queue.returncode == 0 and queue.stdout.strip():
            state, _, reason = queue.stdout.strip().splitlines()[0].partition("|")
            return JobStatus(state.strip(), None, None if reason in ("", "None") else reason)
        if queue.returncode != 0 and "Invalid job id" not in queue.stderr:
            return JobStatus(UNKNOWN, None, f"squeue: {_last_line(queue.stderr)}")
        # The job has left the queue: ask whichever record this cluster keeps.
        for probe in (self._from_scontrol, self._from_sacct, self._from_jobcomp):
            found = probe(job)
            if found is not None and found.state in FINAL_STATES:
                return found
        return JobStatus(UNKNOWN, None, "job left the queue; neither scontrol nor sacct knows it")

    def _from_scontrol(self, job: Job) -> JobStatus | None:
        result = self._run(["scontrol", "show", "job", "-o", job.job_id])
        if result.returncode != 0 or not result.stdout.strip():
            return None
        line = result.stdout.strip().splitlines()[0]
        # The job name is free text and comes before JobState: drop it so it cannot fake a field.
        line = line.replace(f"JobName={job.name} ", " ", 1)
        state = re.search(r"(?:^|\s)JobState=(\S+)", line)
        if not state:
            return None
        exit_text = re.search(r"(?:^|\s)ExitCode=(\S+)", line)
        reason = re.search(r"(?:^|\s)Reason=(\S+)", line)
        detail = reason.group(1) if reason and reason.group(1) != "None" else None
        return final_status(state.group(1), exit_text.group(1) if exit_text else "", detail)

    def _from_sacct(self, job: Job, jobcomp: bool = False) -> JobStatus | None:
        argv = ["sacct", "-j", job.job_id, "-n", "-P", "-o", "JobID,State,ExitCode"]
        argv.insert(1, "-c" if jobcomp else "-X")
        result = self._run(argv)
        if result.returncode != 0:
            return None
        for line in result.stdout.splitlines():
            parts = line.split("|")
            if len(parts) >= 3 and parts[0] == job.job_id and parts[1]:
                state = parts[1].split()[0]  # "CANCELLED by 0" -> CANCELLED
                return final_status(state, parts[2], None)
        return None

    def _from_jobcomp(self, job: Job) -> JobStatus | None:
        return self._from_sacct(job, jobcomp=True)

    def _array_status(self, job: Job) -> JobStatus:
        """Each task's state (squeue -r while queued, scontrol after, the jobcomp file last)."""
        tasks: dict[str, dict[str, Any]] = {k: dict(v) for k, v in job.tasks.items()}
        queue = self._run(["squeue", "-r", "-h", "-j", job.job_id, "-o", "%K|%i|%T|%r"])
        if queue.returncode != 0 and "Invalid job id" not in queue.stderr:
            return JobStatus(UNKNOWN, None, f"squeue: {_last_line(queue.stderr)}", tasks)
        queued: set[str] = set()
        for line in queue.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) == 4 and parts[0].isdigit():
                reason = None if parts[3] in ("", "None") else parts[3]
                tasks[parts[0]] = {**tasks.get(parts[0], {}), "state": parts[2], "reason": reason}
                queued.add(parts[0])
        shown = self._run(["scontrol", "show", "job", "-o", job.job_id])
        for line in shown.stdout.splitlines() if shown.returncode == 0 else []:
            line = line.replace(f"JobName={job.name} ", " ", 1)
            fields = dict(re.findall(r"(?:^|\s)(JobId|ArrayTaskId|JobState|ExitCode|Reason)=(\S+)", line))
            task = fields.get("ArrayTaskId", "")
            if not task.isdigit() or task in queued:
                continue
            status = final_status(fields.get("JobState", UNKNOWN), fields.get("ExitCode", ""), None)
            tasks[task] = {
                "state": status.state,
                "exit_code": status.exit_code,
                "job_id": fields.get("JobId"),
            }
        for task, info in tasks.items():  # purged from scontrol: the jobcomp file knows task job ids
            if info.get("state") not in FINAL_STATES and info.get("job_id") and task not in queued:
                found = self._from_sacct(dataclasses.replace(job, job_id=str(info["job_id"])), jobcomp=True)
                if found is not None:
                    tasks[task] = {**info, "state": found.state, "exit_code": found.exit_code}
        return combine_task_states(tasks, job.task_ids())

    def tail(self, job: Job, lines: int = 50) -> str:
        return tail_file(job.log_path, lines)

    def cancel(self, job: Job) -> None:
        result = self._run(["scancel", job.job_id])
        if result.returncode != 0:
            raise UserError(f"scancel {job.job_id}: {_last_line(result.stderr)}")

    def cancel_task(self, job: Job, task: int) -> None:
        """Cancel one task of a job array (``scancel ID_K``); the other tasks go on."""
        target = f"{job.job_id}_{int(task)}"
        result = self._run(["scancel", target])
        if result.returncode != 0:
            raise UserError(f"scancel {target}: {_last_line(result.stderr)}")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
