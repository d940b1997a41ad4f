"""The local launcher: the job runs as a detached process group on this machine.

It survives the terminal (and SSH session) that launched it; its wrapper script leaves the exit
code in a file next to the script, and the pid (checked against /proc so a reused pid is not taken
for the job) says whether it still runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from engine.configfile import load_dataclass
from engine.errors import UserError
from engine.files import write_atomic
from engine.jobs.model import Job, JobStatus, Submission, tail_file
from engine.jobs.scripts import render_local_script
from engine.jobs.settings import ClusterSettings, cluster_environment
from engine.jobs.spec import LaunchSpec, job_slug, stamp

# Local children started by this process, so they can be reaped instead of lingering as zombies.
_LOCAL_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class LocalLauncher:
    """Runs the job as a detached process group on this machine, with its own log and exit-code file."""

    name = "local"

    def __init__(self, env: Mapping[str, str] | None = None, grace_seconds: float = 10.0) -> None:
        self._env = env
        self.grace_seconds = grace_seconds

    @staticmethod
    def exit_file(job_or_script: Job | Path) -> Path:
        script = Path(job_or_script.script_path if isinstance(job_or_script, Job) else job_or_script)
        return script.with_suffix(".exit")

    @staticmethod
    def cancel_file(job: Job) -> Path:
        """Written before the kill: every reader of the job's files (a poll in another thread, another
        process) then derives the same end, CANCELLED, unless the job had already exited 0."""
        return Path(job.script_path).with_suffix(".cancel")

    def submit(self, spec: LaunchSpec) -> Submission:
        folder = spec.job_dir or spec.log_dir
        folder.mkdir(parents=True, exist_ok=True)
        base = f"{job_slug(spec.name)}-{stamp()}"
        script_path = folder / f"{base}.sh"
        log_path = folder / f"{base}.log"
        write_atomic(script_path, render_local_script(spec, self.exit_file(script_path)))
        # Only what the settings allow (engine/jobs/settings.py), never a credential.
        env = cluster_environment(spec.cluster, os.environ if self._env is None else self._env)
        with open(log_path, "ab") as log:
            # A new session: the job survives the terminal (and SSH) that launched it.
            process = subprocess.Popen(
                ["/bin/bash", str(script_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=spec.workdir,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        _LOCAL_CHILDREN[process.pid] = process
        return Submission(str(process.pid), log_path, script_path, "RUNNING")

    def resubmit(self, job: Job, task: int) -> Submission:
        """Run one shard of ``job`` again as a new local process in the same job folder."""
        if not job.job_dir:
            raise UserError(f"job {job.id}: has no job folder to re-run a shard in")
        cluster = load_dataclass(ClusterSettings, job.config.get("cluster", {}), source=f"job {job.id}")
        spec = LaunchSpec(
            name=f"{job.name}-task{int(task)}",
            config_path=Path(job.config_path),
            output_dir=job.output_dir,
            workdir=Path(job.config.get("workdir") or Path.cwd()),
            log_dir=Path(job.job_dir),
            argv=(*job.config.get("argv", []), "--task", str(int(task))),
            cluster=cluster,
            kind="sweep",
            job_dir=Path(job.job_dir),
        )
        return self.submit(spec)

    def _alive(self, job: Job) -> bool:
        pid = int(job.job_id)
        child = _LOCAL_CHILDREN.get(pid)
        if child is not None:
            return child.poll() is None
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return False
        except OSError:  # no /proc: fall back to a signal-0 probe
            try:
                os.kill(pid, 0)
            except OSError:
                return False
            return True
        if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
            return False
        try:
            # Guard against pid reuse: the process must still be running this job's script.
            return job.script_path.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False

    def status(self, job: Job) -> JobStatus:
        exit_path = self.exit_file(job)
        if self._alive(job):
            return JobStatus("RUNNING")
        try:
            code = int(exit_path.read_text().strip())
        except (OSError, ValueError):
            code = None
        if code == 0:  # it finished on its own, even where a cancel came too late
            return JobStatus("COMPLETED", 0)
        if self.cancel_file(job).exists():
            return JobStatus("CANCELLED", None, "cancelled by user")
        if code is None:
            return JobStatus("FAILED", None, "the process ended without writing an exit code (killed?)")
        return JobStatus("FAILED", code, f"exit code {code}")

    def tail(self, job: Job, lines: int = 50) -> str:
        return tail_file(job.log_path, lines)

    def cancel(self, job: Job) -> None:
        if not self._alive(job):
            return
        write_atomic(self.cancel_file(job), "cancelled by user\n")
        pid = int(job.job_id)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pid, sig)  # the whole session: the wrapper and the fine-tune under it
            except ProcessLookupError:
                return
            deadline = time.monotonic() + self.grace_seconds
            while time.monotonic() < deadline:
                if not self._alive(job):
                    return
                time.sleep(0.05)
