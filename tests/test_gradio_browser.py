"""The Gradio page as a browser renders it: headless Chromium's DOM and a screenshot of the Compare tab."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Labels the Compare tab must render (panes, sliders, seed), as the browser shows them.
RENDERED_LABELS = (
    "Base model",
    "Fine-tuned model (LoRA adapter on)",
    "Temperature",
    "Top-p",
    "Top-k (0 = off)",
    "Max new tokens",
    "Seed",
    "Prompt",
    "System prompt",
)
WIDTH, HEIGHT = 1400, 1800


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def page_url(tiny_adapter_dir, tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("headless Chromium not installed (Debian package 'chromium'; .ci/run installs it)")
    from engine.models import load_model
    from engine.workspace import Workspace
    from gradio_app.handlers import AppHandlers, AppSettings
    from gradio_app.layout import ServeOptions, launch_app

    loaded = load_model("tiny", adapter_dir=str(tiny_adapter_dir))
    db = tmp_path_factory.mktemp("browser-store") / "ft-hallu.db"
    with Workspace.open(db) as workspace:
        handlers = AppHandlers(
            loaded, workspace, AppSettings(base_model="tiny", adapter_dir=str(tiny_adapter_dir))
        )
        demo, url = launch_app(handlers, ServeOptions(port=free_port()), block=False)
        yield url
        demo.close()


def chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={WIDTH},{HEIGHT}",
        # Virtual time runs the page's scripts (Svelte renders client-side) before the dump/screenshot.
        "--virtual-time-budget=15000",
        *extra,
        url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_rendered_dom_has_both_panes_and_the_sliders(page_url, tmp_path):
    result = chromium(page_url, tmp_path / "profile", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    # The page also embeds its config as JSON, so look for the labels inside rendered label elements.
    rendered = set(re.findall(r'data-testid="block-info"[^>]*>\s*([^<]+?)\s*<', dom))
    missing = [label for label in RENDERED_LABELS if label not in rendered]
    assert not missing, f"not rendered: {missing}; rendered labels: {sorted(rendered)}"
    assert len(re.findall(r'<input[^>]*type="range"', dom)) >= 4  # temperature, top_p, top_k, max tokens
    assert "Generate" in dom and "Stop" in dom and "Save to store" in dom


def test_screenshot_shows_the_compare_tab(page_url, tmp_path):
    from PIL import Image, ImageStat

    png = tmp_path / "compare.png"
    result = chromium(page_url, tmp_path / "profile", f"--screenshot={png}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert png.exists() and png.stat().st_size > 20_000
    with Image.open(png) as image:
        assert image.size == (WIDTH, HEIGHT)
        gray = image.convert("L")
        # A blank (all white) or unrendered page has almost no variation and very few colours.
        assert ImageStat.Stat(gray).stddev[0] > 10
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
        assert len(colours) > 200
        # The Generate button's orange and the Stop button's red are on screen (the buttons rendered).
        rgb = image.convert("RGB")
        pixels = [c for _count, c in colours]
        assert any(r > 220 and 90 < g < 140 and b < 60 for r, g, b in pixels), "no orange primary button"
        assert any(r > 220 and g < 90 and b < 90 for r, g, b in pixels), "no red Stop button"
        rgb.close()
