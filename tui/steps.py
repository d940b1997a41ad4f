"""The workflow steps of the TUI, in order: one definition for the app, the step bar and the CLI.

Plain data (no Textual import), so ``ft-hallu tui --step`` can list the choices cheaply.
"""

from __future__ import annotations

# (mode name, key, title) in workflow order.
STEPS: tuple[tuple[str, str, str], ...] = (
    ("generate", "f1", "Generate"),
    ("mask", "f2", "Mask"),
    ("finetune", "f3", "Fine-tune"),
    ("sweep", "f4", "Sweep"),
    ("results", "f5", "Results"),
)
STEP_NAMES: tuple[str, ...] = tuple(name for name, _key, _title in STEPS)
