"""Launch fine-tunes and sweeps through Slurm or as a detached local process, and follow them.

Both launchers share one interface (:class:`Launcher`): ``submit(spec)``, ``status(job)``,
``tail(job, n)``, ``cancel(job)`` and ``resubmit(job, task)``. The module-level functions
(:func:`launch`, :func:`launch_sweep`, :func:`refresh`, :func:`resubmit`, :func:`cancel`,
:func:`tail`, :func:`wait`) also keep the ``jobs`` table in the store up to date, so front ends can
list jobs and reattach after the operator's SSH session drops.

Every job gets a folder of its own under the log folder (manifest, script, logs, results). A
fine-tune job runs ``ft-hallu job-run finetune``; a sweep runs as one Slurm job array whose task K
runs ``ft-hallu job-run sweep`` on shard K (see :mod:`engine.shards`). Neither is given the login
node's store: results come back as files in the job folder and :mod:`engine.ingest` reads them
in, automatically once :func:`refresh` sees the job end. Scripts hold no secrets: every value in
them comes from config paths and the cluster settings, and the environment handed to ``sbatch`` (or
to the local process) has API keys, tokens and passwords removed (see :func:`job_environment`).
"""

from __future__ import annotations

import dataclasses
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
from typing import TYPE_CHECKING, Any, Protocol

from engine import shards as sharding
from engine import sweep as sweeping
from engine.configfile import load_dataclass, read_toml, setting, validate_instance
from engine.dataset import write_atomic
from engine.errors import UserError
from engine.files import slug
from engine.finetune import is_adapter_dir
from engine.finetune import load_config as load_finetune_config
from engine.ingest import ingest_job
from engine.jobrun import write_manifest
from engine.paths import data_dir
from engine.results_file import SweepJobProgress, job_progress
from engine.secrets import filter_environment
from store import jobs as job_store
from store.db import Store, utc_now

if TYPE_CHECKING:
    from engine.ingest import IngestResult

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
    kind: str = "finetune"  # finetune | sweep
    job_dir: Path | None = None  # the job's own folder (scripts, logs, manifest, results files)
    array: str | None = None  # Slurm --array, e.g. "0-2": one task per sweep shard
    shards: int | None = None
    dependency: str | None = None  # Slurm job id that must end COMPLETED first (afterok)
    manifest: dict[str, Any] = field(default_factory=dict)  # what the job reads from job.json

    def record(self) -> dict[str, Any]:
        """What the store keeps about the launch (no environment, so no secrets)."""
        record = {
            "cluster": asdict(self.cluster),
            "argv": list(self.argv),
            "workdir": str(self.workdir),
        }
        if self.kind == "sweep":
            record["sweep"] = self.manifest.get("sweep", {})
            record["planned_per_shard"] = self.manifest.get("planned_per_shard", [])
        else:
            record["finetune"] = self.finetune_config
        return record


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
) -> LaunchSpec:
    """Check the fine-tune config and settings on the login node, before anything is queued.

    The job is given no store: it leaves its run record in its job folder (``finetune-result.json``
    next to the ``ft-hallu-run.json`` in the adapter folder), and the login node ingests it.
    """
    cluster = cluster or ClusterSettings()
    cluster.validate()
    config = Path(config_path).expanduser().resolve()
    raw = read_toml(config)
    output_dir = _finetune_output_dir(config)
    run_name = raw.get("finetune", raw).get("name")
    job_name = (
        name if name is not None else f"ft-hallu-{run_name if isinstance(run_name, str) else config.stem}"
    )
    if not job_name.strip():
        raise UserError("job name: must not be empty")
    _reject_control("job name", job_name)
    _check_path("fine-tune config path", str(config))
    run_dir, logs, job_dir = _job_places(cluster, job_name, log_dir, workdir)
    prefix = cluster.command or default_command()
    output = Path(output_dir).expanduser()
    if not output.is_absolute():
        output = run_dir / output
    return LaunchSpec(
        name=job_name,
        config_path=config,
        output_dir=str(output),
        workdir=run_dir,
        log_dir=logs,
        argv=(*prefix, "job-run", "finetune", "--config", str(config), "--job-dir", str(job_dir)),
        cluster=cluster,
        finetune_config=raw,
        kind="finetune",
        job_dir=job_dir,
        manifest={
            "kind": "finetune",
            "name": job_name,
            "config_path": str(config),
            "output_dir": str(output),
        },
    )


def _job_places(
    cluster: ClusterSettings, job_name: str, log_dir: str | Path | None, workdir: str | Path | None
) -> tuple[Path, Path, Path]:
    """(working directory, log folder, this job's own folder inside it), each checked for the script."""
    run_dir = Path(workdir).resolve() if workdir else Path.cwd()
    _check_path("working directory", str(run_dir))
    logs = Path(log_dir or cluster.log_dir or data_dir() / "jobs").expanduser().resolve()
    _check_path("log_dir", str(logs))
    return run_dir, logs, logs / f"{_slug(job_name)}-{_stamp()}"


def build_sweep_spec(
    config_path: str | Path,
    cluster: ClusterSettings | None = None,
    *,
    shards: int = 1,
    after: Job | None = None,
    name: str | None = None,
    log_dir: str | Path | None = None,
    workdir: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> LaunchSpec:
    """Check a sweep config for a launch: settings, shard count, adapters; nothing is written.

    An adapter folder that does not exist yet is accepted only when ``after`` is the fine-tune job
    that will write it.
    """

    cluster = cluster or ClusterSettings()
    cluster.validate()
    config_file = Path(config_path).expanduser().resolve()
    _check_path("sweep config path", str(config_file))
    config = sweeping.load_sweep_config(config_file, overrides)
    sharding.check_shards(config, shards)
    if after is not None and after.finished and after.state != "COMPLETED":
        raise UserError(
            f"--after {after.id}: job {after.ref} ended {after.state}; the sweep would never start"
        )
    waits_for = Path(after.output_dir).resolve() if after is not None else None

    for variant, folder in config.adapter_dirs().items():
        field_name = "adapter" if variant == "finetuned" and not config.adapters else f"adapters.{variant}"
        _check_path(f"{config_file}: {field_name}", folder)
        if Path(folder).exists():
            if not is_adapter_dir(folder):
                raise UserError(f"{config_file}: {field_name}: {folder} is not a LoRA adapter folder")
        elif waits_for is None or Path(folder).resolve() != waits_for:
            hint = f" (job {after.id} writes {waits_for})" if waits_for else " (or launch with --after JOB)"
            raise UserError(f"{config_file}: {field_name}: {folder} does not exist{hint}")
    prompts = sweeping.build_prompts(config)
    planned = sweeping.plan_rows(config, prompts)
    job_name = name if name is not None else f"ft-hallu-sweep-{config.name}"
    if not job_name.strip():
        raise UserError("job name: must not be empty")
    _reject_control("job name", job_name)
    run_dir, logs, job_dir = _job_places(cluster, job_name, log_dir, workdir)
    prefix = cluster.command or default_command()
    manifest = {
        "kind": "sweep",
        "name": job_name,
        "config_path": str(config_file),
        "sweep": dataclasses.asdict(config),
        "shards": shards,
        # The job plans again on the node (an adapter written meanwhile may change the eval split).
        "planned_per_shard": sharding.shard_sizes(planned, shards),
    }
    depends = after.job_id if after is not None and not after.finished else None
    return LaunchSpec(
        name=job_name,
        config_path=config_file,
        output_dir=str(job_dir / "results"),
        workdir=run_dir,
        log_dir=logs,
        argv=(*prefix, "job-run", "sweep", "--job-dir", str(job_dir)),
        cluster=cluster,
        kind="sweep",
        job_dir=job_dir,
        array=f"0-{shards - 1}",
        shards=shards,
        dependency=depends,
        manifest=manifest,
    )


def _finetune_output_dir(config: Path) -> str:
    """The adapter folder the fine-tune will write; a bad config raises UserError naming the field."""
    return str(load_finetune_config(config).resolved_output_dir())


def job_environment(
    base: Mapping[str, str] | None = None, keep: Iterable[str] = DEFAULT_KEEP_ENV
) -> dict[str, str]:
    """``base`` (default os.environ) without variables whose name or value looks like a credential.

    The rule lives in :mod:`engine.secrets` (names like *KEY*, *PAT*, *TOKEN*, DATABASE_URL; values
    such as URLs with a password or sk-/ghp_/hf_ tokens); ``keep`` names variables to pass anyway.
    """
    return filter_environment(os.environ if base is None else base, keep)


# ------------------------------------------------------------------ script rendering


def _sbatch_quote(where: str, value: str) -> str:
    """Quote a value for an ``#SBATCH`` line: sbatch's own parser knows only "..." and backslash."""
    _reject_control(where, value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _slug(name: str) -> str:
    return slug(name, fallback="job", max_length=40)


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
    if spec.array:  # digits and dashes only, built by build_sweep_spec
        directives.append(f"--array={_sbatch_quote('array', spec.array)}")
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
        return _array_tasks(self.array)

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


def _array_tasks(spec: str | None) -> list[int]:
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
        job_id = self._sbatch(script_path, options, spec.cluster.keep_env)
        log = output_pattern.replace("%A", job_id).replace("%j", job_id)
        return Submission(job_id, Path(log), script_path, "PENDING")

    def resubmit(self, job: Job, task: int) -> Submission:
        """Queue array task ``task`` of ``job``'s script again, as a new one-task array."""
        keep = tuple(job.config.get("cluster", {}).get("keep_env", DEFAULT_KEEP_ENV))
        script_path = Path(job.script_path)
        if not script_path.exists():
            raise UserError(f"job {job.id}: its script {script_path} is gone; launch the sweep again")
        # An --array on the command line overrides the script's own #SBATCH --array.
        job_id = self._sbatch(script_path, [f"--array={int(task)}"], keep)
        log = script_path.parent / f"slurm-{job_id}_%a.out"
        return Submission(job_id, log, script_path, "PENDING")

    def _sbatch(self, script_path: Path, options: list[str], keep_env: Iterable[str]) -> str:
        env = job_environment(self._base_env(), keep_env)  # sbatch exports it to the job
        result = self._run(["sbatch", "--parsable", *options, str(script_path)], env=env)
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
            status = _final_status(fields.get("JobState", UNKNOWN), fields.get("ExitCode", ""), None)
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
        folder = spec.job_dir or spec.log_dir
        folder.mkdir(parents=True, exist_ok=True)
        base = f"{_slug(spec.name)}-{_stamp()}"
        script_path = folder / f"{base}.sh"
        log_path = folder / f"{base}.log"
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
    """Submit ``spec`` and record it; returns the stored job.

    The job folder and its manifest are written first (the job reads them); a rejected submission
    removes the folder again, so a failed launch leaves neither a row nor files.
    """

    if spec.dependency and launcher.name != "slurm":
        raise UserError("--after: only Slurm jobs can wait for another job; drop --local or --after")
    created = spec.job_dir is not None and not spec.job_dir.exists()
    if spec.job_dir is not None:
        write_manifest(spec.job_dir, spec.manifest)
    try:
        submission = launcher.submit(spec)
    except BaseException:
        if created and spec.job_dir is not None:
            import shutil

            shutil.rmtree(spec.job_dir, ignore_errors=True)
        raise
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
        kind=spec.kind,
        job_dir=str(spec.job_dir) if spec.job_dir else None,
        # A local sweep runs its shards one after another in one process: no array there.
        array=spec.array if launcher.name == "slurm" else None,
        shards=spec.shards,
        depends_on=spec.dependency,
    )
    if submission.state == "RUNNING":
        job_store.update_job(store, row_id, started_at=utc_now())
    return get_job(store, row_id)


def launch_sweep(
    store: Store,
    config_path: str | Path,
    cluster: ClusterSettings | None = None,
    *,
    launcher: Launcher | None = None,
    shards: int = 1,
    after: str | Job | None = None,
    name: str | None = None,
    log_dir: str | Path | None = None,
    workdir: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> Job:
    """Validate and submit a sweep as one job array of ``shards`` tasks; ``after`` is a job to wait for.

    ``after`` is a :class:`Job` or a reference as :func:`resolve_job` takes it ("3", "slurm:1234").
    """
    launcher = launcher or SlurmLauncher()
    waits_for = resolve_job(store, after) if isinstance(after, str) else after
    if waits_for is not None and waits_for.launcher != launcher.name:
        raise UserError(
            f"--after {waits_for.id}: a {waits_for.launcher} job; the sweep goes to {launcher.name}"
        )
    spec = build_sweep_spec(
        config_path, cluster, shards=shards, after=waits_for, name=name, log_dir=log_dir,
        workdir=workdir, overrides=overrides,
    )  # fmt: skip
    return launch(store, spec, launcher)


def resubmit(store: Store, job: Job, task: int, launcher: Launcher | None = None) -> Job:
    """Queue one shard of a sweep job again; rows its earlier attempts finished are not redone.

    Refused while that shard is still queued or running, so two attempts never run at once.
    """
    if job.kind != "sweep":
        raise UserError(f"job {job.id}: only sweep jobs have shards to re-submit (this is a {job.kind})")
    parent = get_job(store, job.parent_id) if job.parent_id else job
    shards = parent.shards or 1
    if not 0 <= task < shards:
        raise UserError(f"--task {task}: job {parent.id} has shards 0-{shards - 1}")
    for attempt in [parent, *(Job.from_row(r) for r in job_store.children(store, parent.id))]:
        attempt = refresh(store, attempt)
        runs_task = task in attempt.task_ids() or (not attempt.array and attempt.launcher == "local")
        if runs_task and not attempt.finished:
            state = attempt.tasks.get(str(task), {}).get("state", attempt.state)
            if state not in FINAL_STATES:
                raise UserError(
                    f"job {attempt.id} ({attempt.ref}) still runs shard {task} ({state}); cancel it first"
                )
    launcher = launcher or get_launcher(parent.launcher)
    submission = launcher.resubmit(parent, task)
    row_id = job_store.add_job(
        store,
        launcher=launcher.name,
        job_id=submission.job_id,
        name=parent.name,
        config_path=parent.config_path,
        config=parent.config,
        state=submission.state,
        output_dir=parent.output_dir,
        log_path=str(submission.log_path),
        script_path=str(submission.script_path),
        kind="sweep",
        job_dir=parent.job_dir,
        array=str(task) if launcher.name == "slurm" else None,
        shards=shards,
        parent_id=parent.id,
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
        elif job.job_dir and not job.ingested_at:  # ended while nobody looked (or ingest failed)
            job = _auto_ingest(store, job)
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
    if status.tasks is not None:
        values["tasks"] = status.tasks
    if status.state not in ("PENDING", "CANCELLED") and not job.started_at:
        values["started_at"] = utc_now()
    if status.state in FINAL_STATES and not job.finished_at:
        values["finished_at"] = utc_now()
    job_store.update_job(store, job.id, **values)
    job = get_job(store, job.id)
    if job.finished and job.job_dir:
        job = _auto_ingest(store, job)
    return job


def ingest(store: Store, job: Job) -> IngestResult:
    """Refresh ``job``, then read its results files into the store; calling it again adds nothing.

    A running sweep gives the rows its shards have finished so far.
    """

    try:
        job = refresh(store, job)  # a job seen ending here is ingested on the way
    except UserError:
        pass  # no Slurm on this machine: the files are still there to read
    return ingest_job(store, get_job(store, job.id))


def progress(job: Job) -> SweepJobProgress | None:
    """A sweep job's rows done / planned and rate, read from its results files (never written)."""
    if job.kind != "sweep" or not job.job_dir:
        return None
    return job_progress(job.job_dir, job.config.get("planned_per_shard") or [])


def _auto_ingest(store: Store, job: Job) -> Job:
    """Read a finished job's results files into the store; a problem is kept as the job's detail."""

    try:
        ingest_job(store, job)
    except UserError as exc:
        job_store.update_job(store, job.id, detail=f"ingest: {exc}")
    return get_job(store, job.id)


def cancel(store: Store, job: Job, launcher: Launcher | None = None, task: int | None = None) -> Job:
    """Cancel a queued or running job (or one task of a job array); the store shows CANCELLED once
    the scheduler agrees."""
    if job.finished:
        raise UserError(f"job {job.id} ({job.ref}) already finished: {job.state}")
    launcher = launcher or get_launcher(job.launcher)
    if task is not None:
        if not isinstance(launcher, SlurmLauncher) or task not in job.task_ids():
            raise UserError(
                f"--task {task}: job {job.id} has no such array task (tasks: {job.array or 'none'})"
            )
        launcher.cancel_task(job, task)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            job = refresh(store, job, launcher)
            if job.finished or job.tasks.get(str(task), {}).get("state") in FINAL_STATES:
                break
            time.sleep(0.2)
        return job
    launcher.cancel(job)
    if isinstance(launcher, LocalLauncher):
        # No scheduler keeps the reason for a local job, so the store records it.
        job_store.update_job(
            store, job.id, state="CANCELLED", detail="cancelled by user", finished_at=utc_now()
        )
        return get_job(store, job.id)
    # scancel returns at once; the job passes through COMPLETING before Slurm reports CANCELLED.
    return wait(store, job, timeout=5.0, poll_seconds=0.2, launcher=launcher)


def tail(job: Job, lines: int = 50, launcher: Launcher | None = None, task: int | None = None) -> str:
    """The end of the job's log; for a job array, of task ``task`` (default: each task in turn)."""
    if "%a" not in job.log_path:
        return (launcher or get_launcher(job.launcher)).tail(job, lines)
    tasks = [task] if task is not None else job.task_ids()
    parts = []
    for number in tasks:
        text = tail_file(job.log_path.replace("%a", str(number)), lines)
        parts.append(text if task is not None else f"== task {number} ==\n{text}".rstrip())
    return "\n".join(parts)


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
