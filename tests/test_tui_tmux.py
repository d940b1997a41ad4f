"""End to end in a real terminal: `ft-hallu tui` inside tmux at 80x24, driven with send-keys."""

from __future__ import annotations

import importlib.util
import json
import os
import re
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

    def wait_until(self, shows, timeout: float = 10.0) -> str:
        """The screen once ``shows(screen)`` holds (a key's effect is drawn), else the last one."""
        deadline = time.monotonic() + timeout
        screen = self.screen()
        while not shows(screen) and time.monotonic() < deadline:
            time.sleep(0.1)
            screen = self.screen()
        return screen

    def wait_gone(self, text: str, timeout: float = 30.0) -> str:
        """The screen once ``text`` (e.g. a notification over the form) has gone."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text not in screen:
                return screen
            time.sleep(0.3)
        raise AssertionError(f"{text!r} still on screen after {timeout:.0f} s")

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.3)
        raise AssertionError(f"{text!r} not on screen after {timeout:.0f} s; screen was:\n{screen}")


# The basic fields of each form: all on one 80x24 screen (the rest is folded away).
BASIC_LABELS = {
    "Generate": ["ticker", "year", "local filing", "SEC identity", "base URL", "model", "key file", "output folder"],
    "Check": ["QA file", "copy without duplicates"],
    "Mask": ["QA file", "entity", "new name", "ticker", "aliases", "output file"],
    "Fine-tune": ["launcher", "config TOML", "name", "base_model", "chat_template", "dataset", "mode", "epochs", "max_steps",
                  "learning_rate", "save_checkpoints", "output_dir"],
    "Sweep": ["launcher", "sweep TOML", "name", "base_model", "adapter", "dataset", "entity_name", "control",
              "temperatures", "top_ps", "top_ks", "samples_per_cell", "max_new_tokens"],
}  # fmt: skip


def check_form(screen: str, step: str, focused: str) -> None:
    """The step's basic labels are all on screen, and exactly one row, the focused field's, shows
    the marker right after its label (the bar on its left is the thick border)."""
    lines = screen.splitlines()
    assert len(lines) <= 24 and max(len(line) for line in lines) <= 80, screen
    for label in BASIC_LABELS[step]:
        assert any(line.strip().startswith(label) or f" {label} " in line for line in lines), (step, label, screen)
    marked = [line for line in lines if "▶" in line]
    assert len(marked) == 1, (step, screen)
    assert marked[0].split("▶")[0].rstrip().endswith(focused), (step, focused, marked[0])
    assert marked[0].startswith("█"), marked[0]  # the bar beside the focused row


def test_a_new_user_walks_every_step_at_80x24_with_the_focus_always_visible(
    tmp_path: Path, stocked_store: Path
) -> None:
    """Generate -> Check -> Mask -> Fine-tune -> Jobs -> Sweep -> Results -> Study in a real terminal, keys
    only: after each step the screen shows the step's basic fields and which one has the focus."""
    import shutil

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from openai_server import running_stub

    db = tmp_path / "walk.db"
    shutil.copy(stocked_store, db)  # a scored sweep and a cancelled fine-tune job to look at
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "acme.txt").write_text(
        "Acme Widgets makes industrial widgets in Ohio. Acme Widgets had revenue of $12 million in 2023. "
        "Acme Widgets employs 140 people.\n"
    )
    (tmp_path / "apikey.env").write_text("OPENAI_API_KEY=sk-local-stub\n")
    can_generate = importlib.util.find_spec("financial_datasets") is not None
    done_file = tmp_path / "exit-code"
    command = (
        f"cd {tmp_path} && FT_HALLU_HOME={home} HF_HUB_OFFLINE=1 {sys.executable} -m cli --db {db} tui "
        f"--step generate; echo $? > {done_file}"
    )
    tmux = Tmux(f"ft-hallu-walk-{uuid.uuid4().hex[:8]}")
    env = {**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm-256color"}
    env.pop("OPENAI_API_KEY", None)
    with running_stub() as stub:
        subprocess.run(
            ["tmux", "-L", tmux.socket, "-f", "/dev/null", "new-session", "-d", "-s", "tui", "-x", "80", "-y", "24",
             "bash", "-c", command],
            check=True, env=env, timeout=30,
        )  # fmt: skip
        try:
            # Generate: the first field has the focus; the key is found in the key file (which one is said).
            screen = tmux.wait_for("ticker ▶", timeout=90)
            check_form(screen, "Generate", "ticker")
            assert "apikey.env" in tmux.wait_for("API key: found in", timeout=20)  # which source: the file
            assert "(instead of EDGAR)" in screen and "more: form, quarter" in screen  # the rest is folded
            tmux.keys("Tab", "Tab")
            tmux.keys("-l", "acme.txt")
            tmux.keys("Tab", "Tab")
            tmux.keys("-l", stub.base_url)
            check_form(tmux.wait_for(stub.base_url[-12:], timeout=20), "Generate", "base URL")
            qa = home / "generated" / "acme" / "train.jsonl"
            if can_generate:
                tmux.keys("C-r")
                tmux.wait_for("Done:", timeout=60)
            else:  # financial-datasets missing: the file the run would write
                qa.parent.mkdir(parents=True)
                rows = ["Acme Widgets makes widgets.", "Acme Widgets is in Ohio."]
                qa.write_text("".join(json.dumps({"question": f"Q{i}?", "answer": r, "context": r}) + "\n"
                                      for i, r in enumerate(rows)))  # fmt: skip

            # Check: the generated file was handed on; ctrl+r shows what `dataset check` prints.
            tmux.keys("F2")
            tmux.wait_for("QA file ▶", timeout=30)
            if not can_generate:
                tmux.keys("-l", str(qa))
            check_form(tmux.wait_gone("Filled in"), "Check", "QA file")
            tmux.keys("C-r")
            screen = tmux.wait_for("exact duplicates:", timeout=30)
            check_form(screen, "Check", "QA file")

            # Mask: keyboard only, tab between fields; the marker follows the focus.
            tmux.keys("F3")
            tmux.wait_for("QA file ▶", timeout=30)
            if not can_generate:
                tmux.keys("-l", str(qa))
            # Typed at once, as a fast typist does: the letters after a tab land in the next field.
            for keys in (["Tab"], ["-l", "Acme Widgets"], ["Tab"], ["-l", "Zorblat"]):
                tmux.run("send-keys", "-t", "tui", *keys)
            tmux.wait_for("new name ▶ Zorblat", timeout=20)
            screen = tmux.wait_gone("Filled in")
            check_form(screen, "Mask", "new name")
            assert re.search(r"entity   Acme Widgets\s*$", screen, re.M), screen
            tmux.keys("C-r")
            tmux.wait_for("Zorblat", timeout=30)
            tmux.keys("C-s")
            tmux.wait_for("Wrote", timeout=30)
            tmux.keys("C-o")  # back to the form
            check_form(tmux.wait_for("QA file ▶", timeout=20), "Mask", "QA file")

            # Fine-tune: the masked file is its dataset; basic fields on one screen, the rest folded.
            tmux.keys("F4")
            tmux.wait_for("launcher ▶", timeout=30)
            check_form(tmux.wait_gone("Filled in"), "Fine-tune", "launcher")
            tmux.keys("Tab", "Tab", "Tab")
            tmux.wait_for("base_model ▶", timeout=20)
            screen = tmux.wait_for("base_model: HF id", timeout=20)  # its help under the form
            check_form(screen, "Fine-tune", "base_model")

            # Jobs: every job with a real detail line (here a cancelled fine-tune).
            tmux.keys("F5")
            screen = tmux.wait_for("CANCELLED after", timeout=30)
            assert "cancelled" in screen and "fine-tune" in screen and "no adapter was saved" in screen
            assert any(line.startswith("█") for line in screen.splitlines()), screen  # the table has the focus

            # Sweep: models, dataset and grid on one screen.
            tmux.keys("F6")
            tmux.wait_for("launcher ▶", timeout=30)
            check_form(tmux.wait_gone("Filled in"), "Sweep", "launcher")
            tmux.keys("Tab", "Tab", "Tab")
            check_form(tmux.wait_for("base_model ▶", timeout=20), "Sweep", "base_model")

            # Results: the stored sweep.
            tmux.keys("F7")
            screen = tmux.wait_for("cut-check-sweep", timeout=30)
            assert any(line.startswith("█") for line in screen.splitlines()), screen
            # The study view: this sweep has the base model only, and the view says what it needs.
            tmux.keys("d")
            screen = tmux.wait_for("no fine-tuned variant in this sweep", timeout=60)
            assert "Study of sweep 1: base vs (no fine-tuned variant)" in screen, screen
            lines = screen.splitlines()
            assert any(line.startswith("█") for line in lines) and max(map(len, lines)) <= 80, screen
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


def marked_line(screen: str) -> str:
    """The row with the focus marker ('' when none shows it)."""
    return next((line for line in screen.splitlines() if "▶" in line), "")


def label_shown_whole(screens: list[str], label: str) -> bool:
    """The label is on some screen in full, right before its field (two spaces, then the value, or
    the line's end: tmux drops trailing blanks)."""

    return any(re.search(rf"(^|\s){re.escape(label)}(  |$)", screen, re.M) for screen in screens)


def labels_shown_whole(screens: list[str], labels: list[str]) -> None:
    missing = [label for label in labels if not label_shown_whole(screens, label)]
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
    tmux = start_tui(tmp_path, stocked_store, "jobs", width, height)
    try:
        # Job states and details whole (column widths follow the content).
        screen = tmux.wait_for("CANCELLED after", timeout=90)
        assert "cancelled" in screen and "cut-check-ft" in screen, screen
        # Every fine-tune field label whole: tab through the form, opening the folds on the way.
        tmux.keys("F4")
        screens = [tmux.wait_for("^r Launch", timeout=30)]
        fields = [item.name for item in dataclasses.fields(FinetuneConfig)]
        labels = ["launcher", "cluster TOML", "config TOML", *fields]
        for _ in range(2 * len(fields) + 12):  # every field and the folds' titles, with room for a slow frame
            marked = marked_line(screens[-1])
            tmux.run("send-keys", "-t", "tui", "Tab")
            # The new focus drawn (a frame between may show no marker at all).
            screens.append(tmux.wait_until(lambda shown, before=marked: marked_line(shown) not in ("", before)))
            if "+ ▶ " in screens[-1]:  # a closed fold has the focus: enter opens it
                tmux.run("send-keys", "-t", "tui", "Enter")
                screens.append(tmux.wait_until(lambda shown: "- ▶ " in shown))
            if all(label_shown_whole(screens, label) for label in labels):
                break
        labels_shown_whole(screens, labels)
        for shown in screens:
            assert max(len(line) for line in shown.splitlines()) <= width

        # Results: the metric titles whole, each a column header over b (base).
        tmux.keys("F7")
        screen = tmux.wait_for("cut-check-sweep", timeout=30)
        screen = tmux.wait_for("refus", timeout=60)
        header = next(line for line in screen.splitlines() if "refus" in line)
        titles = [
            title for _name, title in ((n, catalog.cell_metric(n).title) for n in catalog.SUMMARY_METRICS)
        ]
        words = header.split()
        for word in words:  # a title is shown whole or not at all (never 'entrop')
            assert word in titles or not any(t.startswith(word) for t in titles), (word, header)
        # The sweep line: its name and state whole (a complete sweep's row count only where it fits).
        assert "cut-check-sweep · completed" in screen

        # Mask: the whole field, wrapped, in the diff.
        tmux.keys("F3")
        tmux.wait_for("QA file", timeout=30)
        tmux.keys("C-o")
        tmux.keys("-l", qa.name)
        tmux.keys("Tab")
        tmux.keys("-l", "NVIDIA")
        tmux.keys("Tab")
        tmux.keys("-l", "EGNIVIA")
        tmux.keys("C-r")
        screen = tmux.wait_for("row 0", timeout=30)
        seen = [screen]
        for _ in range(10):  # at 80x24 the diff box scrolls (shift+down): bring the field's end into view
            if "ZEBRA-END" in screen:
                break
            tmux.keys("S-Down")
            screen = tmux.screen()
            seen.append(screen)

        def diff_words(shown: str) -> str:
            return " ".join(" ".join(line.split("│")[1:2]) for line in shown.splitlines()).strip()

        assert "ZEBRA-END" in screen, screen
        assert any(re.search(r"context: NVIDIA.?EGNIVIA", " ".join(diff_words(shown).split())) for shown in seen), seen

        # Below 80x24: a clear note, not a broken layout.
        tmux.resize(60, 20)
        tmux.wait_for("needs 80x24", timeout=10)
        tmux.resize(width, height)
        tmux.keys("C-q")
    finally:
        tmux.run("kill-server")


def test_the_tui_quits_when_its_terminal_goes_away(tmp_path):
    """An SSH session that drops (here: the tmux server killed) hangs the TUI up; it must quit rather
    than keep running without a terminal (it used to keep about half a core busy on the login node)."""
    tmux = Tmux(f"ft-hallu-hup-{uuid.uuid4().hex[:8]}")
    pid_file = tmp_path / "tui.pid"
    command = (
        f"echo $$ > {pid_file}; exec {sys.executable} -m cli --db {tmp_path / 'ft.db'} tui --step jobs"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run(
        ["tmux", "-L", tmux.socket, "new-session", "-d", "-s", "tui", "-x", "80", "-y", "24", command],
        check=True, env=env, cwd=tmp_path, timeout=30,
    )  # fmt: skip
    try:
        tmux.wait_for("Jobs: every fine-tune and sweep", timeout=90)
        pid = int(pid_file.read_text())
    finally:
        tmux.run("kill-server")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.2)
    alive = Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    if alive:
        os.kill(pid, 9)
    assert not alive, "the TUI kept running after its terminal went away"
