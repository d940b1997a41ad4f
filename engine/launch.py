"""Launch fine-tunes through Slurm or as a detached local process, and follow them.

Both launchers share one interface (:class:`Launcher`): ``submit(spec)``, ``status(job)``,
``tail(job, n)`` and ``cancel(job)``. The module-level functions (:func:`launch`, :func:`refresh`,
:func:`cancel`, :func:`tail`, :func:`wait`) also keep the ``jobs`` table in the store up to date, so
front ends can list jobs and reattach after the operator's SSH session drops.

The job runs ``ft-hallu finetune --config FILE``. Its script holds no secrets: every value in it comes
from the fine-tune config path and the cluster settings, and the environment handed to ``sbatch`` (or
to the local process) has API keys, tokens and passwords removed (see :func:`job_environment`).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from engine.configfile import load_dataclass, read_toml, setting, validate_instance
from engine.dataset import write_atomic
from engine.errors import UserError
from engine.paths import data_dir
from store import jobs as job_store
from store.db import Store, utc_now

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

# Environment variables whose names look like credentials never reach a job unless kept on purpose.
_SECRET_NAME = re.compile(r"API_?KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE_KEY", re.IGNORECASE)
DEFAULT_KEEP_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")

# Starts the CLI from this checkout even when the package is not installed: argv[1] is its root.
_BOOTSTRAP = "import sys; sys.path.insert(0, sys.argv.pop(1)); from cli import main; sys.exit(main())"

_NAME_RE = re.compile(r"^[A-Za-z0-9_.,+-]+$")  # partition, account, qos, gpu type
_TIME_RE = re.compile(r"^(\d+-)?\d+(:\d+){0,2}$|^(UNLIMITED|INFINITE)$")
_MEM_RE = re.compile(r"^\d+[KMGT]?B?$", re.IGNORECASE)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


# ------------------------------------------------------------------ settings


@dataclass(frozen=True)
class ClusterSettings:
    """What a cluster needs to run a fine-tune; read once from the user's cluster TOML."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    gpus: int = setting(0, min=0)  # --gres=gpu[:type]:N; 0 asks for none
    gpu_type: str | None = None
    time: str | None = None  # Slurm time limit, e.g. "08:00:00" or "1-00:00:00"
    mem: str | None = None  # e.g. "64G"
    cpus: int | None = setting(None, min=1)  # --cpus-per-task
    extra_sbatch: tuple[str, ...] = ()  # whole option strings, e.g. "--constraint=a100"
    setup: tuple[str, ...] = ()  # shell lines run before the fine-tune (module load, venv activation)
    command: tuple[str, ...] = ()  # argv that starts ft-hallu on the node; empty: this interpreter
    log_dir: str | None = None  # where scripts and logs go; must be visible from the compute node
    keep_env: tuple[str, ...] = DEFAULT_KEEP_ENV  # secret-looking variables the job may still receive

    def validate(self, source: str = "cluster settings") -> None:
        """Raise UserError naming ``source`` and the field for any value unsafe in a job script."""
        validate_instance(self, source=source)  # types and ranges, as for a file (forms build these too)
        for name in ("partition", "account", "qos", "gpu_type"):
            value = getattr(self, name)
            if value is not None and not _NAME_RE.match(value):
                raise UserError(f"{source}: {name} {value!r} may only contain letters, digits and _ . , + -")
        if self.time is not None and not _TIME_RE.match(self.time):
            raise UserError(f"{source}: time {self.time!r} is not a Slurm time like 08:00:00 or 1-00:00:00")
        if self.mem is not None and not _MEM_RE.match(self.mem):
            raise UserError(f"{source}: mem {self.mem!r} is not a size like 64G or 32000M")
        if not isinstance(self.gpus, int) or self.gpus < 0:
            raise UserError(f"{source}: gpus must be a whole number >= 0")
        if self.cpus is not None and (not isinstance(self.cpus, int) or self.cpus < 1):
            raise UserError(f"{source}: cpus must be a whole number >= 1")
        for index, line in enumerate(self.extra_sbatch):
            _reject_control(f"{source}: extra_sbatch[{index}]", line)
            if not line.startswith("-"):
                raise UserError(
                    f"{source}: extra_sbatch[{index}] {line!r} must be an sbatch option such as --constraint=a100"
                )
        for index, line in enumerate(self.setup):
            _reject_control(f"{source}: setup[{index}]", line)
            if re.search(r"\b\w*(API_?KEY|SECRET|TOKEN|PASSWORD)\w*\s*=", line, re.IGNORECASE):
                raise UserError(f"{source}: setup[{index}] sets a secret; job scripts must not hold secrets")
        for index, arg in enumerate(self.command):
            _reject_control(f"{source}: command[{index}]", arg)
        if self.log_dir is not None:
            _check_path(f"{source}: log_dir", self.log_dir)


def load_cluster_settings(path: str | Path) -> ClusterSettings:
    """Read and validate a cluster TOML (see configs/cluster.example.toml)."""
    source = str(path)
    raw = read_toml(path)
    fields = ClusterSettings.__dataclass_fields__
    # "" in the file means "not set" for the settings whose default is None (partition, account, ...).
    values = {k: None if v == "" and k in fields and fields[k].default is None else v for k, v in raw.items()}
    settings = load_dataclass(ClusterSettings, values, source=source)  # types, ranges, unknown keys
    settings.validate(source)
    return settings


def _reject_control(where: str, value: str) -> None:
    if _CONTROL_RE.search(value):
        raise UserError(f"{where}: newlines and control characters are not allowed")


def _check_path(where: str, value: str) -> None:
    _reject_control(where, value)
    if "%" in value:
        # sbatch expands %j, %u, ... in --output; a literal % would be mangled.
        raise UserError(f"{where}: '%' is not allowed in paths a job writes to")


# ------------------------------------------------------------------ launch spec


@dataclass(frozen=True)
class LaunchSpec:
    """Everything a launcher needs: what to run, where, and under which cluster settings."""

    name: str
    config_path: Path
    output_dir: str
    workdir: Path
    log_dir: Path
    argv: tuple[str, ...]  # the full command the job runs
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    finetune_config: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """What the store keeps about the launch (no environment, so no secrets)."""
        return {
            "finetune": self.finetune_config,
            "cluster": asdict(self.cluster),
            "argv": list(self.argv),
            "workdir": str(self.workdir),
        }


def default_command() -> tuple[str, ...]:
    """How the job starts ft-hallu: this venv's ``ft-hallu`` script, else this interpreter + checkout."""
    script = Path(sys.executable).with_name("ft-hallu")
    if script.exists():
        return (str(script),)
    root = Path(__file__).resolve().parents[1]
    return (sys.executable, "-c", _BOOTSTRAP, str(root))


def build_spec(
    config_path: str | Path,
    cluster: ClusterSettings | None = None,
    *,
    name: str | None = None,
    log_dir: str | Path | None = None,
    workdir: str | Path | None = None,
    db_path: str | Path | None = None,
) -> LaunchSpec:
    """Check the fine-tune config and settings on the login node, before anything is queued."""
    cluster = cluster or ClusterSettings()
    cluster.validate()
    config = Path(config_path).expanduser().resolve()
    raw = read_toml(config)
    output_dir = _finetune_output_dir(config, raw)
    run_name = raw.get("finetune", raw).get("name")
    job_name = (
        name if name is not None else f"ft-hallu-{run_name if isinstance(run_name, str) else config.stem}"
    )
    if not job_name.strip():
        raise UserError("job name: must not be empty")
    _reject_control("job name", job_name)
    _check_path("fine-tune config path", str(config))
    run_dir = Path(workdir).resolve() if workdir else Path.cwd()
    _check_path("working directory", str(run_dir))
    logs = Path(log_dir or cluster.log_dir or data_dir() / "jobs").expanduser().resolve()
    _check_path("log_dir", str(logs))
    prefix = cluster.command or default_command()
    store_args: tuple[str, ...] = ()
    if db_path is not None:  # the job records its run in the same store as the launch
        _check_path("store path", str(db_path))
        store_args = ("--db", str(Path(db_path).expanduser().resolve()))
    output = Path(output_dir).expanduser()
    if not output.is_absolute():
        output = run_dir / output
    return LaunchSpec(
        name=job_name,
        config_path=config,
        output_dir=str(output),
        workdir=run_dir,
        log_dir=logs,
        argv=(*prefix, *store_args, "finetune", "--config", str(config)),
        cluster=cluster,
        finetune_config=raw,
    )


def _finetune_output_dir(config: Path, raw: dict[str, Any]) -> str:
    """The adapter folder the fine-tune will write, via engine.finetune when it is available."""
    try:
        from engine.finetune import load_config
    except ModuleNotFoundError as exc:
        if exc.name != "engine.finetune":
            raise
        load_config = None
    if load_config is not None:
        parsed = load_config(config)  # raises UserError naming the field for a bad config
        resolve = getattr(parsed, "resolved_output_dir", None)
        value = str(resolve()) if callable(resolve) else getattr(parsed, "output_dir", None)
    else:
        value = raw.get("finetune", raw).get("output_dir")
    if not value:
        raise UserError(f"{config}: output_dir: missing (the folder the adapter is written to)")
    return str(value)


def job_environment(
    base: Mapping[str, str] | None = None, keep: Iterable[str] = DEFAULT_KEEP_ENV
) -> dict[str, str]:
    """``base`` (default os.environ) without variables whose names look like credentials."""
    kept = set(keep)
    source = os.environ if base is None else base
    return {k: v for k, v in source.items() if k in kept or not _SECRET_NAME.search(k)}


# ------------------------------------------------------------------ script rendering


def _sbatch_quote(where: str, value: str) -> str:
    """Quote a value for an ``#SBATCH`` line: sbatch's own parser knows only "..." and backslash."""
    _reject_control(where, value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:40] or "job"


def _body_lines(spec: LaunchSpec) -> list[str]:
    """The shell part both launchers share; every value is shlex-quoted."""
    lines = ["set -eo pipefail"]
    if spec.cluster.setup:
        lines.append("# set-up lines from the cluster settings")
        lines.extend(spec.cluster.setup)
    lines.append(f"cd -- {shlex.quote(str(spec.workdir))}")
    lines.append('echo "ft-hallu job started on $(hostname) at $(date -Is)"')
    return lines


def render_sbatch_script(spec: LaunchSpec, output_pattern: str) -> str:
    """The batch script for ``spec``; ``output_pattern`` is the --output path (may contain %j)."""
    cluster = spec.cluster
    directives = [
        f"--job-name={_sbatch_quote('job name', spec.name)}",
        f"--output={_sbatch_quote('log path', output_pattern)}",
        f"--chdir={_sbatch_quote('working directory', str(spec.workdir))}",
    ]
    # Names below were validated against a strict character set; quoting is belt and braces.
    for option, value in (
        ("partition", cluster.partition),
        ("account", cluster.account),
        ("qos", cluster.qos),
    ):
        if value:
            directives.append(f"--{option}={_sbatch_quote(option, value)}")
    if cluster.gpus:
        gres = f"gpu:{cluster.gpu_type}:{cluster.gpus}" if cluster.gpu_type else f"gpu:{cluster.gpus}"
        directives.append(f"--gres={_sbatch_quote('gres', gres)}")
    if cluster.time:
        directives.append(f"--time={_sbatch_quote('time', cluster.time)}")
    if cluster.mem:
        directives.append(f"--mem={_sbatch_quote('mem', cluster.mem)}")
    if cluster.cpus:
        directives.append(f"--cpus-per-task={int(cluster.cpus)}")
    for line in cluster.extra_sbatch:
        _reject_control("extra_sbatch", line)
        directives.append(line)
    lines = ["#!/bin/bash", *(f"#SBATCH {d}" for d in directives)]
    lines += _body_lines(spec)
    # exec: the job's exit code is the fine-tune's, and scancel's signal reaches it directly.
    lines.append("exec " + shlex.join(spec.argv))
    return "\n".join(lines) + "\n"


def render_local_script(spec: LaunchSpec, exit_file: Path) -> str:
    """A wrapper that runs the job and leaves its exit code in ``exit_file`` (written atomically)."""
    quoted = shlex.quote(str(exit_file))
    lines = [
        "#!/bin/bash",
        f"exit_file={quoted}",
        'trap \'code=$?; printf "%s\\n" "$code" > "$exit_file.tmp" && mv -f -- "$exit_file.tmp" "$exit_file"\' EXIT',
        *_body_lines(spec),
        shlex.join(spec.argv),
    ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ jobs and launchers


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

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def ref(self) -> str:
        return f"{self.launcher}:{self.job_id}"

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        return cls(**{name: row.get(name) for name in cls.__dataclass_fields__})


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


class Launcher(Protocol):
    name: str

    def submit(self, spec: LaunchSpec) -> Submission: ...

    def status(self, job: Job) -> JobStatus: ...

    def tail(self, job: Job, lines: int = 50) -> str: ...

    def cancel(self, job: Job) -> None: ...


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{time.monotonic_ns() % 1_000_000:06d}"


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


def _exit_code(text: str) -> tuple[int | None, int | None]:
    """Slurm's ``exit:signal`` as two ints."""
    match = re.match(r"^(\d+):(\d+)$", text.strip())
    if not match:
        return None, None
    return int(match.group(1)), int(match.group(2))


def _final_status(state: str, exit_text: str, detail: str | None) -> JobStatus:
    """Decide on State; the exit code only says more for a failed job (sources disagree otherwise)."""
    code, sig = _exit_code(exit_text)
    if state == "COMPLETED":
        code = 0
    elif state == "CANCELLED":
        code = None
    if state == "FAILED" and sig:
        detail = f"{detail or ''} killed by signal {sig}".strip()
    return JobStatus(state, code, detail)


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
        spec.log_dir.mkdir(parents=True, exist_ok=True)
        base = f"{_slug(spec.name)}-{_stamp()}"
        output_pattern = str(spec.log_dir / f"{base}-%j.out")
        script_path = spec.log_dir / f"{base}.sbatch"
        write_atomic(script_path, render_sbatch_script(spec, output_pattern))
        env = job_environment(self._base_env(), spec.cluster.keep_env)  # sbatch exports it to the job
        result = self._run(["sbatch", "--parsable", str(script_path)], env=env)
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
        return Submission(job_id, Path(output_pattern.replace("%j", job_id)), script_path, "PENDING")

    def status(self, job: Job) -> JobStatus:
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
        return _final_status(state.group(1), exit_text.group(1) if exit_text else "", detail)

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
                return _final_status(state, parts[2], None)
        return None

    def _from_jobcomp(self, job: Job) -> JobStatus | None:
        return self._from_sacct(job, jobcomp=True)

    def tail(self, job: Job, lines: int = 50) -> str:
        return tail_file(job.log_path, lines)

    def cancel(self, job: Job) -> None:
        result = self._run(["scancel", job.job_id])
        if result.returncode != 0:
            raise UserError(f"scancel {job.job_id}: {_last_line(result.stderr)}")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


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

    def submit(self, spec: LaunchSpec) -> Submission:
        spec.log_dir.mkdir(parents=True, exist_ok=True)
        base = f"{_slug(spec.name)}-{_stamp()}"
        script_path = spec.log_dir / f"{base}.sh"
        log_path = spec.log_dir / f"{base}.log"
        write_atomic(script_path, render_local_script(spec, self.exit_file(script_path)))
        env = job_environment(os.environ if self._env is None else self._env, spec.cluster.keep_env)
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
        if job.state == "CANCELLED":
            return JobStatus("CANCELLED", None, job.detail)
        if code is None:
            return JobStatus("FAILED", None, "the process ended without writing an exit code (killed?)")
        if code == 0:
            return JobStatus("COMPLETED", 0)
        return JobStatus("FAILED", code, f"exit code {code}")

    def tail(self, job: Job, lines: int = 50) -> str:
        return tail_file(job.log_path, lines)

    def cancel(self, job: Job) -> None:
        if not self._alive(job):
            return
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


def get_launcher(name: str, env: Mapping[str, str] | None = None) -> Launcher:
    if name == "slurm":
        return SlurmLauncher(env)
    if name == "local":
        return LocalLauncher(env)
    raise UserError(f"launcher {name!r}: unknown (use slurm or local)")


# ------------------------------------------------------------------ store-backed operations


def launch(store: Store, spec: LaunchSpec, launcher: Launcher) -> Job:
    """Submit ``spec`` and record it; returns the stored job."""
    submission = launcher.submit(spec)
    row_id = job_store.add_job(
        store,
        launcher=launcher.name,
        job_id=submission.job_id,
        name=spec.name,
        config_path=str(spec.config_path),
        config=spec.record(),
        state=submission.state,
        output_dir=spec.output_dir,
        log_path=str(submission.log_path),
        script_path=str(submission.script_path),
    )
    if submission.state == "RUNNING":
        job_store.update_job(store, row_id, started_at=utc_now())
    return get_job(store, row_id)


def get_job(store: Store, row_id: int) -> Job:
    row = job_store.get_job(store, row_id)
    if not row:
        raise UserError(f"job {row_id}: no such job in {store.path}")
    return Job.from_row(row)


def resolve_job(store: Store, ref: str) -> Job:
    """A job by store id (``3``) or by launcher and scheduler id (``slurm:1234``, ``local:5678``)."""
    text = ref.strip()
    if ":" in text:
        launcher, _, job_id = text.partition(":")
        row = job_store.find_job(store, launcher, job_id)
        if not row:
            raise UserError(f"job {ref}: no {launcher} job {job_id} in {store.path}")
        return Job.from_row(row)
    if not text.isdigit():
        raise UserError(f"job {ref!r}: expected a job number from `ft-hallu jobs`, or slurm:ID / local:PID")
    return get_job(store, int(text))


def list_jobs(store: Store, *, refresh_active: bool = True) -> list[Job]:
    """Every job, newest first; active ones are asked for their state first."""
    jobs = [Job.from_row(row) for row in job_store.list_jobs(store)]
    if not refresh_active:
        return jobs
    refreshed = []
    for job in jobs:
        if not job.finished:
            try:
                job = refresh(store, job)
            except UserError as exc:  # e.g. squeue missing here: show what the store knows
                job_store.update_job(store, job.id, detail=str(exc))
                job = get_job(store, job.id)
        refreshed.append(job)
    return refreshed


def refresh(store: Store, job: Job, launcher: Launcher | None = None) -> Job:
    """Ask the launcher for the job's state and store it; a finished job is left as it is."""
    if job.finished:
        return job
    launcher = launcher or get_launcher(job.launcher)
    status = launcher.status(job)
    if status.state == UNKNOWN:  # Slurm unreachable or record gone: keep what we knew
        job_store.update_job(store, job.id, detail=status.detail)
        return get_job(store, job.id)
    values: dict[str, Any] = {"state": status.state, "exit_code": status.exit_code, "detail": status.detail}
    if status.state not in ("PENDING", "CANCELLED") and not job.started_at:
        values["started_at"] = utc_now()
    if status.state in FINAL_STATES and not job.finished_at:
        values["finished_at"] = utc_now()
    job_store.update_job(store, job.id, **values)
    return get_job(store, job.id)


def cancel(store: Store, job: Job, launcher: Launcher | None = None) -> Job:
    """Cancel a queued or running job; the store shows CANCELLED once the scheduler agrees."""
    if job.finished:
        raise UserError(f"job {job.id} ({job.ref}) already finished: {job.state}")
    launcher = launcher or get_launcher(job.launcher)
    launcher.cancel(job)
    if isinstance(launcher, LocalLauncher):
        # No scheduler keeps the reason for a local job, so the store records it.
        job_store.update_job(
            store, job.id, state="CANCELLED", detail="cancelled by user", finished_at=utc_now()
        )
        return get_job(store, job.id)
    # scancel returns at once; the job passes through COMPLETING before Slurm reports CANCELLED.
    return wait(store, job, timeout=5.0, poll_seconds=0.2, launcher=launcher)


def tail(job: Job, lines: int = 50, launcher: Launcher | None = None) -> str:
    return (launcher or get_launcher(job.launcher)).tail(job, lines)


def wait(
    store: Store, job: Job, *, timeout: float, poll_seconds: float = 0.5, launcher: Launcher | None = None
) -> Job:
    """Refresh until the job finishes or ``timeout`` seconds pass; returns the last stored state."""
    deadline = time.monotonic() + timeout
    current = refresh(store, job, launcher)
    while not current.finished and time.monotonic() < deadline:
        time.sleep(poll_seconds)
        current = refresh(store, current, launcher)
    return current
