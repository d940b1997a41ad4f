"""What the Fine-tune and Sweep screens share about launching a job: the launcher choice, the
cluster settings, where a launch writes the form, the equivalent CLI command, and engine messages
reworded for a form."""

from __future__ import annotations

from engine.configfile import launched_config_path
from engine.errors import UserError
from engine.workspace import ClusterSettings, load_cluster_settings

LAUNCHERS = ("local", "slurm")


def check_launcher(text: str) -> str:
    """The launcher field as a launcher name (empty: local)."""
    launcher = text.lower() or "local"
    if launcher not in LAUNCHERS:
        raise UserError(f"launcher: must be local or slurm, got {launcher!r}")
    return launcher


def cluster_from_file(path: str) -> ClusterSettings | None:
    """The cluster settings file named in a form (None when the field is empty)."""
    return load_cluster_settings(path) if path else None


def launched_path(kind: str, name: str) -> str:
    """Where a launch writes the form (``Workspace.launch_finetune`` / ``launch_sweep``); the job reads it."""
    return str(launched_config_path(kind, name))


def launcher_words(line: str) -> str:
    """Engine messages name CLI flags; on these screens the same choice is the launcher field."""
    for flag_words in ("launch with --local", "use --local"):
        line = line.replace(flag_words, "set launcher to local")
    return line.replace("--local", "launcher local")


def cli_command(kind: str, config_path: str, launcher: str, cluster_file: str, extra: str = "") -> str:
    """The shell command that launches the same thing as the form."""
    parts = ["ft-hallu", "job", "launch", kind, "--config", config_path or "CONFIG.toml"]
    if extra:
        parts.append(extra)
    if launcher == "local":
        parts.append("--local")
    elif cluster_file:
        parts += ["--cluster", cluster_file]
    return " ".join(parts)
