"""Job scripts: the sbatch script a Slurm job runs and the wrapper a local job runs.

Every value comes from the checked :class:`~engine.jobs.spec.LaunchSpec`; shell words are
shlex-quoted and ``#SBATCH`` values quoted the way sbatch's own parser reads them, so a hostile
name or path stays data. Scripts hold no secrets.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from engine.jobs.settings import reject_control
from engine.jobs.spec import LaunchSpec
from engine.jobs.torchrun import local_command, slurm_lines


def _sbatch_quote(where: str, value: str) -> str:
    """Quote a value for an ``#SBATCH`` line: sbatch's own parser knows only "..." and backslash."""
    reject_control(where, value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


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
    gpus = f"{cluster.gpu_type}:{cluster.gpus}" if cluster.gpu_type else str(cluster.gpus)
    if spec.distributed is not None:
        # One launcher (torchrun) per node, which starts one process per GPU itself.
        directives.append(f"--nodes={int(spec.distributed.nodes)}")
        directives.append("--ntasks-per-node=1")
        if cluster.gpus:
            directives.append(f"--gpus-per-node={_sbatch_quote('gpus', gpus)}")
    elif cluster.gpus:
        directives.append(f"--gres={_sbatch_quote('gres', 'gpu:' + gpus)}")
    if cluster.time:
        directives.append(f"--time={_sbatch_quote('time', cluster.time)}")
    if cluster.mem:
        directives.append(f"--mem={_sbatch_quote('mem', cluster.mem)}")
    if cluster.cpus:
        directives.append(f"--cpus-per-task={int(cluster.cpus)}")
    if spec.array:  # digits and dashes only, built by sweep_spec
        directives.append(f"--array={_sbatch_quote('array', spec.array)}")
    for line in cluster.extra_sbatch:
        reject_control("extra_sbatch", line)
        directives.append(line)
    lines = ["#!/bin/bash", *(f"#SBATCH {d}" for d in directives)]
    lines += _body_lines(spec)
    if spec.distributed is not None and spec.job_dir is not None:
        lines += slurm_lines(spec.distributed, spec.job_dir, spec.argv, cluster.cpus)
        return "\n".join(lines) + "\n"
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
        # Killed while waiting on the job, bash would hand EXIT the status of its last finished
        # command (0): a cancelled job would read as completed.
        "trap 'exit 143' TERM",
        "trap 'exit 130' INT",
        *_body_lines(spec),
    ]
    if spec.distributed is not None and spec.job_dir is not None:
        lines.append(shlex.join(local_command(spec.distributed, spec.job_dir, spec.argv)))
    else:
        lines.append(shlex.join(spec.argv))
    return "\n".join(lines) + "\n"
