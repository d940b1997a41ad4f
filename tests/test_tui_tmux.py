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
    """A private tmux server (its own socket) holding one 80x24 session."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    def run(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30)
        return done.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "tui")

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
        screen = tmux.wait_for("EGNIVIA", timeout=10)
        assert "new name  EGNIVIA" in screen, screen
        tmux.keys("C-r")
        screen = tmux.wait_for("possessive", timeout=30)
        assert "EGNIVIA" in screen
        tmux.keys("C-s")
        tmux.wait_for("Leak report empty", timeout=30)
        masked = tmp_path / "qa.masked.jsonl"
        assert "EGNIVIA" in masked.read_text() and "NVIDIA" not in masked.read_text()
        # ctrl+z reaches the app (raw terminal: no job-control suspend) and undoes the masking.
        tmux.keys("C-z")
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
