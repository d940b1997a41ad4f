"""How a fine-tune over several processes starts: torchrun on each node, ``srun`` for the nodes.

One ``torchrun`` per node starts one process per GPU (``--nproc-per-node``) and sets each one's
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; transformers' Trainer does the rest. Locally torchrun
runs alone (``--standalone``: its rendezvous on a free localhost port). Under Slurm the job asks for
``--nodes`` with ``--ntasks-per-node=1``, and ``srun`` starts that one torchrun on every node; with
several nodes they meet at torchrun's c10d rendezvous on the first node of the allocation
(``MASTER_ADDR`` from ``scontrol show hostnames``, ``MASTER_PORT`` derived from the job id, so two
jobs sharing a node do not collide). ``--kill-on-bad-exit`` ends every node when one fails.

Every process runs the same ``ft-hallu job-run finetune`` command under a small bash wrapper
(:data:`RANK_WRAPPER`): rank 0 writes to the job's log, every other rank to
``<job folder>/ranks/rank-<N>.log``, and each leaves its exit status and host in
``ranks/rank-<N>.exit`` (the host is Slurm's node name where there is one), so a rank that fails (an exception, a kill, a crash outside Python) is named
in the job's detail line (:func:`engine.jobs.jobrun.rank_failures`). All values are shell-quoted;
the only shell expansions are the rendezvous variables this module writes itself. torchrun itself
rewrites every argument it hands a rank (``string.Template(arg).safe_substitute(local_rank=...)``,
its ``${local_rank}`` macro, which also turns ``$$`` into ``$``), so each ``$`` in them is doubled
first: a path holding ``$$`` or ``${local_rank}`` reaches the rank as written.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.jobs.jobrun import RANKS_DIR

# $1 is the job folder, the rest the rank's command. Constant text: no value is spliced into it.
RANK_WRAPPER = (
    'job_dir=$1; shift; rank=${RANK:-0}; ranks="$job_dir/' + RANKS_DIR + '"\n'
    'mkdir -p -- "$ranks"\n'
    'if [ "$rank" = 0 ]; then "$@"; else "$@" > "$ranks/rank-$rank.log" 2>&1; fi\n'
    "code=$?\n"
    'printf \'%s %s\\n\' "$code" "${SLURMD_NODENAME:-$(hostname)}" > "$ranks/rank-$rank.exit"\n'
    'exit "$code"\n'
)
WRAPPER_NAME = "ft-hallu-rank"  # $0 of the wrapper, shown by ps
# MASTER_PORT = PORT_BASE + job id mod PORT_SPAN: above the registered ports, below Linux's
# ephemeral range (32768-60999), so a port a client picked at random is unlikely to be in the way.
PORT_BASE = 20000
PORT_SPAN = 10000


@dataclass(frozen=True)
class DistributedLaunch:
    """Processes of one fine-tune: ``nodes`` x ``processes_per_node``, started by ``torchrun``."""

    strategy: str  # ddp | fsdp | deepspeed (for the log: the job reads the config itself)
    nodes: int = 1
    processes_per_node: int = 1
    torchrun: tuple[str, ...] = ()  # argv that starts torchrun on the node

    @property
    def world_size(self) -> int:
        return self.nodes * self.processes_per_node

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "torchrun": list(self.torchrun), "world_size": self.world_size}


def default_torchrun(command: tuple[str, ...]) -> tuple[str, ...]:
    """This interpreter's torchrun, or ``torchrun`` on the node's PATH when the cluster settings name
    their own ``command`` (whose set-up lines then activate the environment that has it)."""
    if command:
        return ("torchrun",)
    return (sys.executable, "-m", "torch.distributed.run")


def rank_command(job_dir: Path, argv: tuple[str, ...]) -> list[str]:
    """What torchrun starts for each rank: the wrapper around the job's command (as torchrun must be
    given it: see :func:`torchrun_literal`)."""
    return [torchrun_literal(arg) for arg in ("/bin/bash", "-c", RANK_WRAPPER, WRAPPER_NAME, str(job_dir), *argv)]


def torchrun_literal(arg: str) -> str:
    """``arg`` such that torchrun's macro substitution gives it back unchanged ("$" -> "$$")."""
    return arg.replace("$", "$$")


def local_command(launch: DistributedLaunch, job_dir: Path, argv: tuple[str, ...]) -> list[str]:
    """torchrun on this machine, one process per GPU (or per requested CPU process)."""
    return [
        *launch.torchrun,
        "--standalone",
        "--nnodes=1",
        f"--nproc-per-node={launch.processes_per_node}",
        "--no-python",
        *rank_command(job_dir, argv),
    ]


def slurm_lines(
    launch: DistributedLaunch, job_dir: Path, argv: tuple[str, ...], cpus_per_task: int | None
) -> list[str]:
    """The end of the batch script: the rendezvous (several nodes) and one torchrun per node by srun."""
    srun = [
        "srun",
        f"--nodes={launch.nodes}",
        "--ntasks-per-node=1",
        f"--ntasks={launch.nodes}",
        "--kill-on-bad-exit=1",
    ]
    if cpus_per_task:
        srun.append(f"--cpus-per-task={int(cpus_per_task)}")  # steps do not inherit it everywhere
    torchrun = [*launch.torchrun, f"--nnodes={launch.nodes}", f"--nproc-per-node={launch.processes_per_node}"]
    tail = shlex.join(["--no-python", *rank_command(job_dir, argv)])
    lines = [
        f"echo {shlex.quote(_banner(launch))}",
    ]
    if launch.nodes == 1:
        lines.append(f"exec {shlex.join(srun)} {shlex.join([*torchrun, '--standalone'])} {tail}")
        return lines
    lines += [
        "# rendezvous: torchrun's c10d store on the first node of the allocation",
        # awk reads every line: 'head' would leave scontrol writing into a closed pipe (exit 141 under pipefail)
        'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | awk \'NR == 1\')',
        f"MASTER_PORT=$(({PORT_BASE} + SLURM_JOB_ID % {PORT_SPAN}))",
        "export MASTER_ADDR MASTER_PORT",
        'echo "ft-hallu: rendezvous at $MASTER_ADDR:$MASTER_PORT"',
        f"exec {shlex.join(srun)} {shlex.join(torchrun)} --rdzv-backend=c10d"
        ' --rdzv-endpoint="$MASTER_ADDR:$MASTER_PORT" --rdzv-id="$SLURM_JOB_ID" ' + tail,
    ]
    return lines


def _banner(launch: DistributedLaunch) -> str:
    return (
        f"ft-hallu: {launch.strategy} over {launch.world_size} processes "
        f"({launch.nodes} node(s) x {launch.processes_per_node})"
    )
