"""Cluster settings: what a cluster needs to run a job, read once from the user's cluster TOML.

Every value here ends up in a job script, so each is checked against what is safe there (no
control characters, no ``%`` in paths sbatch expands, names from a strict character set, no secret
in a set-up line) before any script is written. :func:`job_environment` is the environment a job
is handed: the caller's, minus anything that looks like a credential.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.configfile import load_dataclass, read_toml, setting, validate_instance
from engine.errors import UserError
from engine.secrets import filter_environment

DEFAULT_KEEP_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")

_NAME_RE = re.compile(r"^[A-Za-z0-9_.,+-]+$")  # partition, account, qos, gpu type
_TIME_RE = re.compile(r"^(\d+-)?\d+(:\d+){0,2}$|^(UNLIMITED|INFINITE)$")
_MEM_RE = re.compile(r"^\d+[KMGT]?B?$", re.IGNORECASE)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


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
    # argv that starts torchrun (fine-tunes with distributed set); empty: this interpreter's
    # torch.distributed.run, or "torchrun" on the node's PATH when `command` is set
    torchrun: tuple[str, ...] = ()
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
            reject_control(f"{source}: extra_sbatch[{index}]", line)
            if not line.startswith("-"):
                raise UserError(
                    f"{source}: extra_sbatch[{index}] {line!r} must be an sbatch option such as --constraint=a100"
                )
        for index, line in enumerate(self.setup):
            reject_control(f"{source}: setup[{index}]", line)
            if re.search(r"\b\w*(API_?KEY|SECRET|TOKEN|PASSWORD)\w*\s*=", line, re.IGNORECASE):
                raise UserError(f"{source}: setup[{index}] sets a secret; job scripts must not hold secrets")
        for index, arg in enumerate(self.command):
            reject_control(f"{source}: command[{index}]", arg)
        for index, arg in enumerate(self.torchrun):
            reject_control(f"{source}: torchrun[{index}]", arg)
        if self.log_dir is not None:
            check_path(f"{source}: log_dir", self.log_dir)


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


def reject_control(where: str, value: str) -> None:
    if _CONTROL_RE.search(value):
        raise UserError(f"{where}: newlines and control characters are not allowed")


def check_path(where: str, value: str) -> None:
    reject_control(where, value)
    if "%" in value:
        # sbatch expands %j, %u, ... in --output; a literal % would be mangled.
        raise UserError(f"{where}: '%' is not allowed in paths a job writes to")


def job_environment(
    base: Mapping[str, str] | None = None, keep: Iterable[str] = DEFAULT_KEEP_ENV
) -> dict[str, str]:
    """``base`` (default os.environ) without variables whose name or value looks like a credential.

    The rule lives in :mod:`engine.secrets` (names like *KEY*, *PAT*, *TOKEN*, DATABASE_URL; values
    such as URLs with a password or sk-/ghp_/hf_ tokens); ``keep`` names variables to pass anyway.
    """
    return filter_environment(os.environ if base is None else base, keep)
