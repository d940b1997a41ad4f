"""A throw-away single-node Slurm on 127.0.0.1 for the test suite (root only).

Writes a minimal ``slurm.conf`` (one node, ``proctrack/linuxproc``, no cgroups, no accounting
database, job completions to a text file so ``sacct -c`` works) into a short temporary folder,
starts a private ``munged``, ``slurmctld`` and ``slurmd``, and stops them again. Nothing under
/etc is read or written: clients find the cluster only through ``SLURM_CONF``.

``start_cluster(nodes=("127.0.0.1", "127.0.0.2"))`` starts one ``slurmd -N NAME`` per node
instead, all on this machine, each with its own port, spool folder, pid and log file (Debian's
Slurm 22.05 needs no ``--enable-multiple-slurmd`` build for that: the nodes have distinct
NodeHostnames). The node names must resolve, because a multi-node job's rendezvous address is its
first node's name: loopback addresses do everywhere, need no /etc/hosts entry, and cannot clash
with the single-node cluster's node. (``localhost`` is no good: Slurm reads it as this host's name.)

Set ``FT_HALLU_REQUIRE_SLURM=1`` (CI does) to turn "cannot start" into a failure instead of a skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REQUIRED_BINARIES = ("slurmctld", "slurmd", "munged", "mungekey", "sbatch", "squeue", "scontrol", "sinfo")
INSTALL_HINT = "apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge"
REQUIRE_ENV = "FT_HALLU_REQUIRE_SLURM"
PARTITION = "debug"


class SlurmUnavailable(RuntimeError):
    """Slurm cannot be started here; the message says why (used as the skip reason)."""


def unavailable_reason() -> str | None:
    """Why a local Slurm cannot run on this machine, or None when it can."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "real-Slurm tests need root (slurmd must run as root)"
    missing = [name for name in REQUIRED_BINARIES if _which(name) is None]
    if missing:
        return f"Slurm packages missing ({', '.join(missing)}); install with: {INSTALL_HINT}"
    return None


def _which(name: str) -> str | None:
    # The daemons live in /usr/sbin, which is not always on a non-login PATH.
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"
    return shutil.which(name, path=path)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _real_memory_mb() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return max(512, int(int(line.split()[1]) * 0.9 / 1024))
    except OSError:
        pass
    return 2048


@dataclass
class SlurmCluster:
    """A running private cluster. ``env`` is os.environ plus ``SLURM_CONF``."""

    root: Path
    host: str
    env: dict[str, str] = field(default_factory=dict)
    nodes: tuple[str, ...] = ()  # several slurmd on this machine; () = the one node ``host``

    @property
    def node_names(self) -> tuple[str, ...]:
        return self.nodes or (self.host,)

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def munge_socket(self) -> Path:
        return self.root / "run" / "munge" / "munge.socket"

    # ------------------------------------------------------------ start

    def start(self, timeout: float = 30.0) -> None:
        for sub in ("etc", "state/ctld", "state/d", "log", "run/munge", "munge-key", "jobs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # munged insists on a world-executable socket folder and a private key folder.
        os.chmod(self.root, 0o755)
        os.chmod(self.root / "run", 0o755)
        os.chmod(self.root / "run" / "munge", 0o755)
        os.chmod(self.root / "munge-key", 0o700)
        (self.root / "jobs").chmod(0o1777)
        self._write_conf()
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.env["PATH"] = self.env.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"
        self._start_munge()
        self._daemon(["slurmctld"], "slurmctld.out")
        for name in self.node_names:
            if self.nodes:
                (self.root / "state" / f"d-{name}").mkdir(parents=True, exist_ok=True)
            self._daemon(["slurmd", "-N", name], f"slurmd-{name}.out" if self.nodes else "slurmd.out")
        self._wait_idle(timeout)

    def _write_conf(self) -> None:
        root = self.root
        lines = [
            "ClusterName=fthallu",
            f"SlurmctldHost={self.host}(127.0.0.1)",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"SlurmctldPort={_free_port()}",
            *([] if self.nodes else [f"SlurmdPort={_free_port()}"]),  # several nodes: a Port each
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={root}/state/ctld",
            f"SlurmdSpoolDir={root}/state/d" + ("-%n" if self.nodes else ""),  # %n: the node name
            f"SlurmctldPidFile={root}/run/slurmctld.pid",
            f"SlurmdPidFile={root}/run/slurmd" + ("-%n" if self.nodes else "") + ".pid",
            f"SlurmctldLogFile={root}/log/slurmctld.log",
            f"SlurmdLogFile={root}/log/slurmd" + ("-%n" if self.nodes else "") + ".log",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/filetxt",
            f"JobCompLoc={root}/log/jobcomp.txt",
            "SwitchType=switch/none",
            "MpiDefault=none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "EnforcePartLimits=ALL",
            "ReturnToService=2",
            "MinJobAge=600",
            "KillWait=5",
            "MessageTimeout=5",
            # Without these the scheduler waits ~2-3 s before starting each batch job.
            "SchedulerParameters=sched_min_interval=0,batch_sched_delay=0",
            *self._node_lines(),
            f"PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")

    def _node_lines(self) -> list[str]:
        cpus, memory = os.cpu_count() or 1, _real_memory_mb()
        if not self.nodes:
            return [f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN"]
        return [
            f"NodeName={name} NodeHostname={name} NodeAddr=127.0.0.1 Port={_free_port()} CPUs={cpus} "
            f"RealMemory={memory // len(self.nodes)} State=UNKNOWN"
            for name in self.nodes
        ]

    def _start_munge(self) -> None:
        key = self.root / "munge-key" / "munge.key"
        subprocess.run(
            [_which("mungekey") or "mungekey", "--create", f"--keyfile={key}"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        key.chmod(0o600)
        self._daemon(
            [
                "munged",
                f"--socket={self.munge_socket}",
                f"--key-file={key}",
                f"--log-file={self.root}/log/munged.log",
                f"--pid-file={self.root}/run/munged.pid",
                f"--seed-file={self.root}/munge-key/munge.seed",
            ],
            "munged.out",
        )
        deadline = time.monotonic() + 10
        while not self.munge_socket.exists():
            if time.monotonic() > deadline:
                raise SlurmUnavailable(f"munged did not create its socket: {self._log_tail('munged.log')}")
            time.sleep(0.05)

    def _daemon(self, argv: list[str], out_name: str) -> None:
        binary = _which(argv[0]) or argv[0]
        with open(self.root / "log" / out_name, "ab") as out:
            # Each daemon forks into the background; the parent exits once it is up.
            result = subprocess.run(
                [binary, *argv[1:]],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=self.env,
                timeout=60,
            )
        if result.returncode != 0:
            raise SlurmUnavailable(
                f"{argv[0]} failed to start (rc={result.returncode}): {self._log_tail(out_name)}"
            )

    def _wait_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        states: list[str] = []
        names = self.node_names
        while time.monotonic() < deadline:
            result = subprocess.run(
                ["sinfo", "-h", "-N", "-n", ",".join(names), "-o", "%T"],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=30,
            )
            states = result.stdout.split()
            if len(states) == len(names) and set(states) == {"idle"}:
                return
            time.sleep(0.1)
        log = f"slurmd-{names[0]}.log" if self.nodes else "slurmd.log"
        raise SlurmUnavailable(
            f"node(s) {','.join(names)} not idle after {timeout:.0f}s (states: {states!r}); "
            f"slurmd log: {self._log_tail(log)}"
        )

    def _log_tail(self, name: str, lines: int = 8) -> str:
        path = self.root / "log" / name
        try:
            return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # ------------------------------------------------------------ stop

    def stop(self) -> None:
        """Cancel every job, shut the daemons down (by pid file only) and stop munged."""
        if not self.env:
            return
        run = dict(env=self.env, capture_output=True, text=True, timeout=30)
        try:
            queue = subprocess.run(["squeue", "-h", "-o", "%i"], **run).stdout.split()
            if queue:
                subprocess.run(["scancel", *queue], **run)
                deadline = time.monotonic() + 10
                while (
                    time.monotonic() < deadline
                    and subprocess.run(["squeue", "-h", "-o", "%i"], **run).stdout.strip()
                ):
                    time.sleep(0.1)
            subprocess.run(["scontrol", "shutdown"], **run)
        except (OSError, subprocess.SubprocessError):
            pass
        # scontrol shutdown makes both Slurm daemons exit on their own (~2 s); munged needs a signal.
        self._stop_pidfile(self.root / "run" / "slurmctld.pid", "slurmctld", grace=5.0)
        for name in self.nodes:
            self._stop_pidfile(self.root / "run" / f"slurmd-{name}.pid", "slurmd", grace=5.0)
        if not self.nodes:
            self._stop_pidfile(self.root / "run" / "slurmd.pid", "slurmd", grace=5.0)
        self._stop_pidfile(self.root / "run" / "munged.pid", "munged", grace=0.0)

    @staticmethod
    def _stop_pidfile(pidfile: Path, comm: str, grace: float) -> None:
        """Wait ``grace`` seconds for the process to exit by itself, then SIGTERM, then SIGKILL."""
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return

        def alive() -> bool:
            try:
                return Path(f"/proc/{pid}/comm").read_text().strip() == comm
            except OSError:
                return False

        if alive():
            deadline = time.monotonic() + grace
            while alive() and time.monotonic() < deadline:
                time.sleep(0.1)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not alive():
                return
            os.kill(pid, sig)
            deadline = time.monotonic() + 5.0
            while alive() and time.monotonic() < deadline:
                time.sleep(0.05)


def start_cluster(nodes: tuple[str, ...] = ()) -> SlurmCluster:
    """Start a fresh cluster in a short temp folder; raises SlurmUnavailable with the reason.

    ``nodes``: names of several nodes on this machine (each must resolve); default one node.
    """
    reason = unavailable_reason()
    if reason:
        raise SlurmUnavailable(reason)
    for name in nodes:
        try:
            socket.gethostbyname(name)
        except OSError:
            raise SlurmUnavailable(f"node name {name!r} does not resolve here (a rendezvous needs it)") from None
    # Short path: the munge socket path must stay under the ~108-byte AF_UNIX limit.
    root = Path(tempfile.mkdtemp(prefix="fth-slurm-", dir="/tmp"))
    cluster = SlurmCluster(root=root, host=socket.gethostname().split(".")[0] or "localhost", nodes=tuple(nodes))
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def remove_cluster_dir(cluster: SlurmCluster) -> None:
    if os.environ.get("FT_HALLU_KEEP_SLURM") != "1":
        shutil.rmtree(cluster.root, ignore_errors=True)
