"""House rule: engine/ never imports a front end (textual, gradio), not even indirectly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import importlib, json, pkgutil, sys
import engine
names = ["engine"]
for info in pkgutil.walk_packages(engine.__path__, "engine."):
    names.append(info.name)
failed = {}
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:  # a module that cannot import is reported, not hidden
        failed[name] = f"{type(exc).__name__}: {exc}"
front_ends = sorted(m for m in sys.modules if m.split(".")[0] in ("textual", "gradio", "tui", "gradio_app"))
print(json.dumps({"modules": names, "failed": failed, "front_ends": front_ends}))
"""


def test_importing_every_engine_module_imports_no_front_end() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=300, check=True
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "engine.launch" in report["modules"] and "engine.sweep" in report["modules"]
    assert report["failed"] == {}, report["failed"]
    assert report["front_ends"] == [], f"engine imported front-end modules: {report['front_ends']}"
