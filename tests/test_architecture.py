"""House rules on layering: front ends -> engine -> store, never back, and no import circles.

The contracts themselves live in pyproject.toml ([tool.importlinter]); `lint-imports` checks every
import statement, including the lazy ones inside functions. The runtime probe below catches what a
static reading cannot: a module that pulls in a front end while it is being imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[1]
PROJECT_PACKAGES = ("engine", "store", "tui", "gradio_app", "cli")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
# Issue 23: no engine module holds more than this many lines; a bigger one is split by concept.
ENGINE_MODULE_MAX_LINES = 600

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
front_ends = sorted(
    m for m in sys.modules if m.split(".")[0] in ("textual", "gradio", "tui", "gradio_app", "cli")
)
print(json.dumps({"modules": names, "failed": failed, "front_ends": front_ends}))
"""


def test_importing_every_engine_module_imports_no_front_end() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=300, check=True
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "engine.jobs.lifecycle" in report["modules"] and "engine.sweep" in report["modules"]
    assert report["failed"] == {}, report["failed"]
    assert report["front_ends"] == [], f"engine imported front-end modules: {report['front_ends']}"


def test_import_contracts_hold() -> None:
    done = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert "Contracts: " in done.stdout, done.stdout + done.stderr
    assert done.returncode == 0, done.stdout[done.stdout.find("Broken contracts") :] or done.stdout


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; returns the components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _import_graph(packages: tuple[str, ...] = PROJECT_PACKAGES) -> grimp.ImportGraph:
    # Imports under `if TYPE_CHECKING:` count too: a type-only circle still ties two modules together
    # (neither can be read or moved without the other), it only fails later, under a type checker.
    return grimp.build_graph(*packages, exclude_type_checking_imports=False, cache_dir=None)


def test_no_import_cycle_between_modules() -> None:
    graph = _import_graph()
    edges = {module: set(graph.find_modules_directly_imported_by(module)) for module in graph.modules}
    circles = _strongly_connected(edges)
    assert circles == [], f"modules that import each other (directly or round a loop): {circles}"


def test_no_import_cycle_between_top_level_packages() -> None:
    graph = _import_graph()
    edges: dict[str, set[str]] = {package: set() for package in PROJECT_PACKAGES}
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            source, target = module.split(".")[0], imported.split(".")[0]
            if source != target:
                edges[source].add(target)
    circles = _strongly_connected(edges)
    assert circles == [], f"packages that import each other: {circles}"


def test_cycle_finder_reports_a_circle() -> None:
    # The finder must see a real circle, or the two tests above would pass vacuously.
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _strongly_connected(edges) == [["a", "b", "c"]]


def test_a_type_only_circle_counts(tmp_path, monkeypatch) -> None:
    # Two modules that import each other only for annotations are still a circle here.
    package = tmp_path / "loopy"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from loopy import b\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from loopy import a\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = _import_graph(("loopy",))
    edges = {module: set(graph.find_modules_directly_imported_by(module)) for module in graph.modules}
    assert _strongly_connected(edges) == [["loopy.a", "loopy.b"]]


def _engine_modules_over(limit: int) -> list[str]:
    """'path (N lines)' for every module under engine/ with more than ``limit`` lines."""
    over = []
    for path in sorted((REPO / "engine").rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > limit:
            over.append(f"{path.relative_to(REPO).as_posix()} ({lines} lines)")
    return over


def test_no_engine_module_is_over_600_lines() -> None:
    over = _engine_modules_over(ENGINE_MODULE_MAX_LINES)
    assert over == [], f"engine modules over {ENGINE_MODULE_MAX_LINES} lines (split them by concept): {over}"
