"""The workflow steps of the TUI, in order: one definition for the app, the step bar and the CLI.

Plain data (no Textual import), so ``ft-hallu tui --step`` can list the choices cheaply.
"""

from __future__ import annotations

# (mode name, key, title) in workflow order.
STEPS: tuple[tuple[str, str, str], ...] = (
    ("generate", "f1", "Generate"),
    ("check", "f2", "Check"),
    ("mask", "f3", "Mask"),
    ("finetune", "f4", "Fine-tune"),
    ("jobs", "f5", "Jobs"),
    ("sweep", "f6", "Sweep"),
    ("results", "f7", "Results"),
)
STEP_NAMES: tuple[str, ...] = tuple(name for name, _key, _title in STEPS)


def step_key(name: str) -> str:
    """The key that opens step ``name``, as the screens write it ("F4")."""
    return next(key.upper() for step, key, _title in STEPS if step == name)
