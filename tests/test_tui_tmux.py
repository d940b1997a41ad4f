"""End to end in a real terminal: `ft-hallu tui` inside tmux at 80x24, driven with send-keys."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux; .ci/run installs it)"
)


class Tmux:
    """A private tmux server (its own socket) holding one session."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    def run(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30)
        return done.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "tui")

    def resize(self, width: int, height: int) -> None:
        self.run("resize-window", "-t", "tui", "-x", str(width), "-y", str(height))
        time.sleep(0.8)

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "tui", *keys)
        time.sleep(0.4)  # one keystroke group at a time, as a person types

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.3)
        raise AssertionError(f"{text!r} not on screen after {timeout:.0f} s; screen was:\n{screen}")


def test_tui_walks_the_steps_in_a_real_80x24_terminal(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        '{"question": "What does NVIDIA make?", "answer": "GPUs.", "context": "NVIDIA makes GPUs."}\n'
    )
    done_file = tmp_path / "exit-code"
    command = (
        f"cd {tmp_path} && FT_HALLU_HOME={home} {sys.executable} -m cli --db {tmp_path / 'ft.db'} tui "
        f"--step mask; echo $? > {done_file}"
    )
    tmux = Tmux(f"ft-hallu-test-{uuid.uuid4().hex[:8]}")
    env = {**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm-256color"}
    subprocess.run(
        ["tmux", "-L", tmux.socket, "-f", "/dev/null", "new-session", "-d", "-s", "tui", "-x", "80", "-y", "24",
         "bash", "-c", command],
        check=True, env=env, timeout=30,
    )  # fmt: skip
    try:
        screen = tmux.wait_for("F2 Mask", timeout=90)
        # The footer shows every Mask key and quit, inside the 80 columns.
        footer = screen.splitlines()[-1]
        for key in ("^r Preview", "^s Apply", "^z Undo", "^l Rows", "^q Quit"):
            assert key in footer, footer
        assert "QA file" in screen
        assert len(screen.splitlines()) <= 24 and max(len(line) for line in screen.splitlines()) <= 80
        # Fill the mask form with the keyboard only: tab moves between fields.
        tmux.keys("-l", "qa.jsonl")
        tmux.keys("Tab")
        tmux.keys("-l", "NVIDIA")
        tmux.keys("Tab")
        tmux.keys("-l", "EGNIVIA")
        # Wait for the typed value itself (the placeholder also says EGNIVIA).
        screen = tmux.wait_for("new name  EGNIVIA", timeout=20)
        tmux.keys("C-r")
        screen = tmux.wait_for("possessive", timeout=30)
        assert "EGNIVIA" in screen
        tmux.keys("C-s")
        tmux.wait_for("Leak report empty", timeout=30)
        masked = tmp_path / "qa.masked.jsonl"
        assert "EGNIVIA" in masked.read_text() and "NVIDIA" not in masked.read_text()
        # ctrl+z reaches the app (raw terminal: no job-control suspend); it asks, y undoes the masking.
        tmux.keys("C-z")
        tmux.wait_for("Undo the masking?", timeout=30)
        tmux.keys("y")
        tmux.wait_for("Undone masking", timeout=30)
        assert not masked.exists()
        # The other steps open with their keys.
        tmux.keys("F5")
        tmux.wait_for("No sweeps in the store yet", timeout=30)
        tmux.keys("F3")
        screen = tmux.wait_for("^r Launch", timeout=30)
        assert "lora_r" in screen or "launcher" in screen
        tmux.keys("C-q")
        deadline = time.monotonic() + 30
        while not done_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert done_file.read_text().strip() == "0"
    finally:
        tmux.run("kill-server")


# ------------------------------------------------------------------ nothing cut at 80x24 and 120x40

LONG_CONTEXT = (
    "NVIDIA pioneered accelerated computing to help solve the most challenging computational problems, "
    "leveraging its GPU architecture to create platforms for scientific computing, AI, data science, "
    "autonomous vehicles, robotics and more; the last words of this field must be on screen: ZEBRA-END."
)


@pytest.fixture(scope="module")
def stocked_store(tmp_path_factory, tiny_model_dir) -> Path:
    """A store with a scored sweep and a cancelled fine-tune job: what the screens must show whole."""
    from engine import sweep as sweep_engine
    from engine.dataset import sample_dataset_path
    from engine.finetune import FinetuneConfig
    from engine.workspace import SweepConfig, Workspace

    folder = tmp_path_factory.mktemp("tmux-store")
    db = folder / "ft.db"
    with Workspace.open(db) as workspace:
        config = SweepConfig(
            name="cut-check-sweep",
            base_model="tiny",
            samples_per_cell=2,
            max_new_tokens=4,
            grid=sweep_engine.Grid(temperatures=[1.0], top_ps=[1.0], top_ks=[0]),
        )
        workspace.run_sweep(config)
        job = workspace.launch_finetune(
            FinetuneConfig(
                name="cut-check-ft",
                base_model="tiny",
                dataset=str(sample_dataset_path()),
                output_dir=str(folder / "adapter"),
            ),
            None,
            "local",
        )
        workspace.cancel_job(job)
    return db


def start_tui(tmp_path: Path, db: Path, step: str, width: int, height: int) -> Tmux:
    home = tmp_path / f"home-{width}"
    home.mkdir()
    command = f"cd {tmp_path} && FT_HALLU_HOME={home} {sys.executable} -m cli --db {db} tui --step {step}"
    tmux = Tmux(f"ft-hallu-cut-{uuid.uuid4().hex[:8]}")
    env = {**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm-256color"}
    subprocess.run(
        ["tmux", "-L", tmux.socket, "-f", "/dev/null", "new-session", "-d", "-s", "tui", "-x", str(width),
         "-y", str(height), "bash", "-c", command],
        check=True, env=env, timeout=30,
    )  # fmt: skip
    return tmux


def labels_shown_whole(screens: list[str], labels: list[str]) -> None:
    """Every label is on some screen in full, right before its field (two spaces, then the value)."""
    import re

    text = "\n".join(screens)
    # The label, then two spaces and the value (or the line's end: tmux drops trailing blanks).
    missing = [label for label in labels if not re.search(rf"(^|\s){re.escape(label)}(  |$)", text, re.M)]
    assert not missing, f"labels cut or missing: {missing}\n{screens[-1]}"


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_no_label_or_state_is_cut(tmp_path: Path, stocked_store: Path, size: tuple[int, int]) -> None:
    import dataclasses
    import json
    import re

    from engine.finetune import FinetuneConfig
    from engine.metrics import catalog

    width, height = size
    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        json.dumps({"question": "What does NVIDIA make?", "answer": "GPUs.", "context": LONG_CONTEXT}) + "\n"
    )
    tmux = start_tui(tmp_path, stocked_store, "finetune", width, height)
    try:
        screen = tmux.wait_for("^r Launch", timeout=90)
        # Job states and details whole (column widths follow the content).
        screen = tmux.wait_for("cancelled by user", timeout=30)
        assert "CANCELLED" in screen and "ft-hallu-cut-check-ft" in screen, screen
        # Every fine-tune field label whole: tab through the form, collecting what is shown.
        screens = [screen]
        tmux.keys("C-f")
        fields = [item.name for item in dataclasses.fields(FinetuneConfig)]
        for _ in range(len(fields) + 10):
            tmux.run("send-keys", "-t", "tui", "Tab")
            time.sleep(0.25)
            screens.append(tmux.screen())
        labels_shown_whole(screens, ["launcher", "cluster TOML", "config TOML", *fields])
        for shown in screens:
            assert max(len(line) for line in shown.splitlines()) <= width

        # Results: the metric titles whole, each a column header over b (base).
        tmux.keys("F5")
        screen = tmux.wait_for("cut-check-sweep", timeout=30)
        screen = tmux.wait_for("refus", timeout=60)
        header = next(line for line in screen.splitlines() if "refus" in line)
        titles = [
            title for _name, title in ((n, catalog.cell_metric(n).title) for n in catalog.SUMMARY_METRICS)
        ]
        words = header.split()
        for word in words:  # a title is shown whole or not at all (never 'entrop')
            assert word in titles or not any(t.startswith(word) for t in titles), (word, header)
        assert "completed" in screen and "2/2" in screen

        # Mask: the whole field, wrapped, in the diff.
        tmux.keys("F2")
        tmux.wait_for("QA file", timeout=30)
        tmux.keys("C-o")
        tmux.keys("-l", qa.name)
        tmux.keys("Tab")
        tmux.keys("-l", "NVIDIA")
        tmux.keys("Tab")
        tmux.keys("-l", "EGNIVIA")
        tmux.keys("C-r")
        screen = tmux.wait_for("row 0", timeout=30)
        for _ in range(10):  # at 80x24 the diff box scrolls (shift+down): bring the field's end into view
            if "ZEBRA-END" in screen:
                break
            tmux.keys("S-Down")
            screen = tmux.screen()
        diff_words = " ".join(
            line.split("│", 1)[1] if "│" in line else "" for line in tmux.screen().splitlines()
        ).split()
        assert "ZEBRA-END." in diff_words or "ZEBRA-END" in screen, screen
        assert re.search(r"context: NVIDIA.?EGNIVIA", " ".join(diff_words)), screen

        # Below 80x24: a clear note, not a broken layout.
        tmux.resize(60, 20)
        tmux.wait_for("needs 80x24", timeout=10)
        tmux.resize(width, height)
        tmux.keys("C-q")
    finally:
        tmux.run("kill-server")
