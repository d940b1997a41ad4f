"""The Gradio page as a user drives it: headless Chromium over the DevTools protocol, real clicks and keys.

One app (tiny model with its adapter) over one temp store and one browser page at 1280x800 are
shared by the module. The store holds a planted checkpoint sweep with a control set (study_sweep.py),
two small sweeps of the tiny model, and, newest, a scored sweep with the demo's shape
(claims_sweep.make_review_sweep). The tests run in order on that page like one user's session:
open (on the Sweeps tab's finding, nothing pressed), look at the Compare tab, go back to the Sweeps
tab, click a heatmap cell, label a sample with a key, switch sweeps, the Study, Sweep vs sweep and
Training tabs. Screenshots go to $FT_HALLU_SCREENSHOTS when it is set (else the test's temp
folder) so a person can look at them.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
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
WIDTH, HEIGHT = 1280, 800
WAIT_SECONDS = 90.0  # the machine is shared and slow; every wait polls and returns as soon as it holds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Page:
    """One Chromium tab driven over the DevTools protocol (Runtime.evaluate, Input.*, Page.*)."""

    def __init__(self, websocket: Any) -> None:
        self._ws = websocket
        self._next_id = 0

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        call_id = self._next_id
        self._ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=WAIT_SECONDS))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def js(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str) -> Any:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}: {expression}")

    def click_at(self, x: float, y: float) -> None:
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y, button="none", buttons=0)
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1, buttons=1)

    def click(self, selector: str) -> None:
        """Scroll the element into view and click its centre with the mouse."""
        box = self.wait_for(
            f"""(() => {{ const el = document.querySelector({json.dumps(selector)});
                 if (!el) return null; el.scrollIntoView({{block: 'center'}});
                 const r = el.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; }})()""",
            selector,
        )
        self.click_at(*box)

    def press(self, key: str) -> None:
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", type=kind, key=key, text=key if kind == "keyDown" else "")

    def text(self, selector: str) -> str:
        return self.js(f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent || ''")

    def settle(self) -> None:
        """Wait until no event is pending (every Gradio status tracker hidden)."""
        self.wait_for(
            "[...document.querySelectorAll('[data-testid=status-tracker]')].every(e => e.classList.contains('hide'))",
            "pending events to finish",
        )

    def screenshot(self, path: Path) -> Path:
        """The whole page, top to bottom (at most 6000 px)."""
        self.settle()
        height = self.js("document.documentElement.scrollHeight")
        return self._capture(
            path, {"x": 0, "y": 0, "width": WIDTH, "height": min(int(height), 6000), "scale": 1}
        )

    def first_screen(self, path: Path) -> Path:
        """What the window shows now, as a user sees it without scrolling."""
        self.settle()
        return self._capture(path, None)

    def _capture(self, path: Path, clip: dict[str, Any] | None) -> Path:
        options: dict[str, Any] = {"format": "png"}
        if clip:
            options.update(captureBeyondViewport=True, clip=clip)
        shot = self.send("Page.captureScreenshot", **options)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def open_tab(self, name: str) -> None:
        tabs = self.js("[...document.querySelectorAll('button[role=tab]')].map(b => b.textContent.trim())")
        assert name in tabs, f"no tab {name!r} among {tabs}"
        self.js(
            "[...document.querySelectorAll('button[role=tab]')]"
            f".find(b => b.textContent.trim() === {json.dumps(name)}).click()"
        )

    def pick(self, picker: str, option: str) -> None:
        """A real click on a dropdown, then on the option whose text contains ``option``."""
        self.click(f"{picker} input")
        found = f"[...document.querySelectorAll('ul[role=listbox] li')].find(li => li.textContent.includes({json.dumps(option)}))"
        self.wait_for(f"!!{found}", f"the option {option}")
        box = self.js(
            f"(() => {{ const li = {found}; li.scrollIntoView({{block: 'center'}});"
            " const r = li.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; })()"
        )
        self.click_at(*box)


@pytest.fixture(scope="module")
def app(tiny_adapter_dir, tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("headless Chromium not installed (Debian package 'chromium'; .ci/run installs it)")
    from claims_sweep import make_review_sweep
    from study_sweep import make_study_sweep

    from engine.models import load_model
    from engine.sweep import Grid, SweepConfig, run_sweep
    from engine.workspace import Workspace
    from gradio_app.handlers import AppHandlers, AppSettings
    from gradio_app.layout import ServeOptions, launch_app

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FT_HALLU_EMBEDDINGS", "0")  # lexical similarity: the embedding model would dominate
        loaded = load_model("tiny", adapter_dir=str(tiny_adapter_dir))
        folder = tmp_path_factory.mktemp("browser-store")
        db = folder / "ft.db"  # the review sweep's store file (claims_sweep)
        sweeps = {"planted": make_study_sweep(folder, db=db)[1]}
        for name, seed, grid in (
            ("browser-first", 11, Grid(temperatures=[0.7, 1.3], top_ps=[0.9], top_ks=[20])),
            (
                "browser-second",
                99,
                Grid(temperatures=[1.0], top_ps=[1.0], top_ks=[50]),
            ),  # one cell the review shares
        ):
            config = SweepConfig(
                name=name,
                base_model="tiny",
                adapter=str(tiny_adapter_dir),
                samples_per_cell=2,
                max_new_tokens=8,
                seed=seed,
                grid=grid,
            )
            sweeps[name] = run_sweep(config, db_path=db, loaded=loaded).sweep_id
        store, sweeps["review"] = make_review_sweep(folder)
        store.close()
        with Workspace.open(db) as workspace:
            handlers = AppHandlers(
                loaded, workspace, AppSettings(base_model="tiny", adapter_dir=str(tiny_adapter_dir))
            )
            demo, url = launch_app(handlers, ServeOptions(port=free_port()), block=False)
            yield url, db, sweeps, handlers
            demo.close()


@pytest.fixture(scope="module")
def page(app, tmp_path_factory) -> Iterator[Page]:
    from websockets.sync.client import connect

    profile = tmp_path_factory.mktemp("chromium-profile")
    process = subprocess.Popen(
        [
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
            "--remote-debugging-port=0",
            "--remote-allow-origins=*",
            f"--user-data-dir={profile}",
            f"--window-size={WIDTH},{HEIGHT}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + WAIT_SECONDS
        while not (port_file.exists() and port_file.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as response:
            targets = json.load(response)
        target = next(t for t in targets if t["type"] == "page")
        with connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=30) as websocket:
            driven = Page(websocket)
            driven.send(
                "Emulation.setDeviceMetricsOverride",
                width=WIDTH,
                height=HEIGHT,
                deviceScaleFactor=1,
                mobile=False,
            )
            driven.send("Page.navigate", url=app[0])
            driven.wait_for("document.querySelector('#sweep-finding .headline') !== null", "the finding")
            yield driven
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = os.environ.get("FT_HALLU_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def visible(text: str) -> str:
    """What a page shows of a stored answer: engine.escape drops control characters (the random
    tiny model writes some, e.g. U+001F) before anything is rendered."""
    from engine.escape import html_text

    return html.unescape(html_text(text))


def generations(db: Path, sweep_id: int, **where: Any) -> list[dict[str, Any]]:
    from store import core, open_db

    return core.iter_generations(open_db(db), sweep_id, **where)


def test_the_app_opens_on_the_finding(page, app, shots):
    """The page opens on the Sweeps tab with the newest sweep's headline and summary table on the
    first screen: nothing clicked, nothing scrolled."""
    _url, _db, sweeps, _handlers = app
    selected = page.js(
        "[...document.querySelectorAll('button[role=tab]')]"
        ".find(b => b.getAttribute('aria-selected') === 'true').textContent.trim()"
    )
    assert selected == "Sweeps"
    tabs = page.js("[...document.querySelectorAll('button[role=tab]')].map(b => b.textContent.trim())")
    assert tabs == ["Sweeps", "Compare", "Study", "Blind labels", "Sweep vs sweep", "Training"]
    page.wait_for(
        f"document.querySelector('#sweep-info').textContent.includes('#{sweeps['review']} ')", "the newest sweep"
    )
    assert in_first_screen(page, "#sweep-finding .headline")
    assert in_first_screen(page, "#sweep-finding .summary-table")
    page.first_screen(shots / "opening-screen.png")


def test_compare_tab_renders_with_stop_idle(page, shots):
    page.open_tab("Compare")
    page.wait_for("document.querySelector('#base-pane') !== null", "the Compare tab")
    labels = set(
        page.js("[...document.querySelectorAll('[data-testid=block-info]')].map(e => e.textContent.trim())")
    )
    missing = [label for label in RENDERED_LABELS if label not in labels]
    assert not missing, f"not rendered: {missing}; rendered labels: {sorted(labels)}"
    assert page.js("document.querySelectorAll('input[type=range]').length") >= 4
    # Stop is disabled (and not red) while nothing runs.
    assert page.js("document.querySelector('#stop-button').disabled") is True
    assert "stop" not in page.js("document.querySelector('#stop-button').className")
    # Empty tables show their real headers, not 1 2 3.
    page.js("[...document.querySelectorAll('button')].find(b => b.textContent.includes('N samples')).click()")
    headers = page.wait_for(
        "[...document.querySelectorAll('th')].map(t => t.textContent.trim()).filter(Boolean)", "table headers"
    )
    assert "sample_index" in " ".join(headers) and "metric" in " ".join(headers)
    page.screenshot(shots / "compare-tab.png")


def in_first_screen(page: Page, selector: str) -> bool:
    """Whether the element's top lies inside the window as it is (nothing scrolled)."""
    return page.js(
        f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
        f" return r.height > 0 && r.top >= 0 && r.top < {HEIGHT}; }})()"
    )


def test_sweeps_tab_opens_on_the_finding(page, app, shots):
    """Opening the Sweeps tab, nothing else pressed: the newest sweep's finding (each prompt group's
    headline, then the per-temperature table) is on the first screen; the heatmaps below open on the
    main hallucination score for the entity prompt alone, its question shown, on the fixed 0-1 scale."""
    from engine.escape import html_text

    _url, _db, sweeps, handlers = app
    summary = handlers.workspace.summary(sweeps["review"])
    page.js("window.scrollTo(0, 0)")
    page.open_tab("Sweeps")
    page.wait_for(
        "document.querySelector('#sweep-heatmaps .js-plotly-plot .heatmaplayer') !== null", "heatmaps"
    )
    assert f"#{sweeps['review']} claims" in page.text("#sweep-info")
    headlines = page.js("[...document.querySelectorAll('#sweep-finding .headline')].map(p => p.textContent)")
    assert headlines == [html.unescape(html_text(g.headline)) for g in summary.groups]
    assert len(headlines) == 2  # the entity prompt and the held-out questions, never pooled
    assert in_first_screen(page, "#sweep-finding .headline")
    assert in_first_screen(page, "#sweep-finding .summary-table")
    page.first_screen(shots / "sweeps-first-screen.png")
    caption = page.text("#heat-caption")
    assert "Prompt shown: entity" in caption and "Tell me about EGNIVIA Corporation." in caption
    assert page.js("document.querySelector('#metric-picker input').value").startswith("weakest-claim support")
    scale = page.js(
        "(() => { const c = document.querySelector('#sweep-heatmaps .js-plotly-plot')._fullLayout.coloraxis;"
        " return [c.cmin, c.cmax]; })()"
    )
    assert scale == [0, 1]  # a bounded score: the colour scale spans its range, whatever the data
    page.screenshot(shots / "sweeps-tab.png")


def test_clicking_a_heatmap_cell_opens_its_aligned_samples(page, app, shots):
    _url, db, sweeps, _handlers = app
    # The fine-tuned panel (second subplot), row T=1, column p=1: where Plotly draws it.
    box = page.js(
        """(() => { const gd = document.querySelector('#sweep-heatmaps .js-plotly-plot');
             gd.scrollIntoView({block: 'center'});
             const L = gd._fullLayout, r = gd.getBoundingClientRect();
             return [r.left + L.xaxis2._offset + L.xaxis2.l2p(0), r.top + L.yaxis2._offset + L.yaxis2.l2p(1)]; })()"""
    )
    page.click_at(*box)
    caption = page.wait_for(
        "(t => t.includes('T = 1 ') && t)(document.querySelector('#sample-caption').textContent)",
        "the caption",
    )
    assert "claims" in caption and "p = 1" in caption and "k = 50" in caption
    assert "clicked finetuned" in caption and "entity" in caption
    shown = page.text("#aligned-samples")
    rows = generations(db, sweeps["review"], temperature=1.0, prompt_id="entity")
    assert {r["variant"] for r in rows} == {"base", "finetuned"}
    for row in rows:
        assert visible(row["text"]) in shown, row["text"]
    # The cells table is filtered to the clicked panel's variant, setting and prompt.
    rows = page.js(
        "[...document.querySelectorAll('#cells-table tbody tr')]"
        ".map(tr => [...tr.querySelectorAll('td')].slice(0, 5).map(td => td.textContent.trim()).join('|'))"
    )
    assert set(rows) == {"finetuned|1|1|50|entity"}, rows
    page.screenshot(shots / "aligned-samples.png")


def test_a_key_labels_the_picked_sample(page, app, shots):
    from store import labels as store_labels
    from store import open_db

    _url, db, _sweeps, _handlers = app
    page.click("#aligned-samples td[data-gen]")
    generation_id = int(page.js("document.querySelector('#aligned-samples td.picked').dataset.gen"))
    page.wait_for(
        f"document.querySelector('#sample-claims').textContent.includes('generation {generation_id}')",
        "claims",
    )
    page.press("h")
    page.wait_for(
        "document.querySelector('#label-status').textContent.includes('hallucinated')", "the label status"
    )
    assert store_labels.label_of(open_db(db), generation_id)["label"] == "hallucinated"
    page.wait_for(
        "document.querySelector('#aligned-samples').textContent.includes('label: hallucinated')", "badge"
    )
    page.screenshot(shots / "labelled.png")


def test_switching_sweeps_leaves_nothing_stale(page, app, shots):
    _url, db, sweeps, _handlers = app
    first_texts = [r["text"] for r in generations(db, sweeps["review"]) if r["text"]]
    second_texts = {r["text"] for r in generations(db, sweeps["browser-second"])}
    page.pick("#sweeps-picker", f"#{sweeps['browser-second']} browser-second")
    page.wait_for(
        "document.querySelector('#sweep-info').textContent.includes('browser-second')", "second sweep"
    )
    page.wait_for(
        "document.querySelector('#sample-caption').textContent.includes('No cell picked')", "cleared caption"
    )
    assert "Click a heatmap cell" in page.text("#aligned-samples")
    assert "Click a sample above" in page.text("#sample-claims")
    page.wait_for(
        "!document.querySelector('#cells-table').textContent.includes('eval-1')", "the second sweep's cells"
    )
    shown = "".join(
        page.text(s)
        for s in ("#sample-caption", "#aligned-samples", "#sample-claims", "#cells-table", "#sweep-finding")
    )
    stale = [t for t in first_texts if t not in second_texts and t in shown]
    assert not stale, stale
    assert "claims" not in page.text("#sweep-info") and "entity" in page.text("#cells-table")
    page.screenshot(shots / "switched.png")


def test_study_tab_opens_on_a_base_and_fine_tuned_sweep(page, app, shots):
    """The Study tab draws, when opened, the paired differences of the newest sweep with a base and
    a fine-tuned variant; picking the checkpoint sweep shows its knowledge kept per temperature."""
    _url, _db, sweeps, handlers = app
    page.open_tab("Study")
    page.wait_for(
        "document.querySelector('#study-plot .js-plotly-plot .heatmaplayer') !== null", "the study heatmap"
    )
    assert f"#{sweeps['review']} claims" in page.text("#study-header").replace("\\", "")
    assert "Benjamini–Hochberg" in page.text("#study-header")
    assert "base − finetuned" in page.text("#study-caption")
    page.screenshot(shots / "study-review.png")
    page.pick("#study-sweep", f"#{sweeps['planted']} planted")
    page.wait_for(  # hidden for a sweep without a control set, shown again for this one
        "(document.querySelector('#study-knowledge') || {textContent: ''}).textContent.includes('finetuned kept')",
        "knowledge kept",
    )
    marked = page.wait_for(  # the planted cells (T = 1.3, both top_k), starred as significant after BH
        "(() => { const gd = document.querySelector('#study-plot .js-plotly-plot');"
        " return gd && gd._fullData && gd._fullData.map(t => t.text.flat().filter(x => x.endsWith('★'))).flat(); })()",
        "the planted sweep's study heatmap",
    )
    assert marked == ["-1.00 ★", "-1.00 ★"]
    assert "yes ★" in page.text("#study-cells")
    comparison = handlers.comparison(str(sweeps["planted"]))
    lost = next(k for k in comparison.knowledge if k.variant == "finetuned" and k.temperature == 1.3)
    assert f"{lost.kept.mean:.2f} [{lost.kept.low:.2f}, {lost.kept.high:.2f}]" in page.text(
        "#study-knowledge"
    )
    page.screenshot(shots / "study-planted.png")


def test_sweep_vs_sweep_opens_drawn_and_training_shows_the_trajectory(page, app, shots):
    _url, _db, sweeps, _handlers = app
    page.open_tab("Sweep vs sweep")
    names = page.wait_for(
        "(() => { const gd = document.querySelector('#sweep-compare .js-plotly-plot');"
        " return gd && gd._fullData && gd._fullData.filter(t => t.type === 'heatmap').map(t => t.name); })()",
        "the sweep-vs-sweep heatmaps, drawn without pressing Compare",
    )
    older, newer = sweeps["browser-second"], sweeps["review"]  # the newest and the next that overlaps it
    assert names == [
        f"#{older} finetuned · top_k=50",
        f"#{newer} finetuned · top_k=50",
        f"#{newer} finetuned − #{older} finetuned · top_k=50",
    ]
    assert "Prompt shown: entity" in page.text("#sweep-compare-note")
    page.screenshot(shots / "sweep-vs-sweep.png")
    page.open_tab("Training")
    page.wait_for(
        "document.querySelector('#training-note').textContent.includes('No fine-tune run recorded')",
        "the training tab's empty state",
    )
    page.wait_for(
        "document.querySelector('#trajectory-plot .js-plotly-plot') !== null", "the trajectory figure"
    )
    assert "best trade-off: step-2 (step 2)" in page.text("#trajectory-note")
    assert f"#{sweeps['planted']} planted" in page.js(
        "document.querySelector('#trajectory-sweep input').value"
    )
    page.screenshot(shots / "training.png")


def test_a_saved_live_generation_appears_in_the_sweep_list(page, app, shots):
    page.open_tab("Compare")
    page.click("#generate-button")
    page.wait_for("document.querySelector('#status').textContent.includes('done:')", "the generation to end")
    status = page.text("#status")
    tokens = int(re.search(r"done: (\d+) tokens", status)[1])
    assert 1 <= tokens <= 64, status  # generated tokens, not the stream's updates (64 tokens said 65)
    page.wait_for("document.querySelector('#stop-button').disabled", "Stop disabled: idle again")
    for side in ("#base-scores", "#finetuned-scores"):  # each answer scored as it finished
        page.wait_for(f"document.querySelector('{side}').textContent.includes('weakest-claim support')", side)
    page.js("window.scrollTo(0, 0)")
    page.first_screen(shots / "compare-first-screen.png")
    page.screenshot(shots / "compare-scored.png")
    page.click("#save-button")
    page.wait_for("document.querySelector('#status').textContent.includes('ad-hoc sweep')", "the save")
    page.open_tab("Sweeps")
    page.settle()
    assert "browser-second" in page.text("#sweep-info")  # the sweep on show is kept
    page.click("#sweeps-picker input")
    page.wait_for(
        "[...document.querySelectorAll('ul[role=listbox] li')].some(li => li.textContent.includes('(adhoc,'))",
        "the saved sweep in the list, without pressing Refresh",
    )


def test_blind_labels_tab_takes_the_label_keys_and_hides_the_model(page, app, shots):
    """The Blind labels tab: Start shows a sample with nothing that tells the model or the settings,
    and a key labels it (the page script presses the blind buttons there, not the Sweeps tab's)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from blind_checks import assert_blind

    from store import labels as store_labels
    from store import open_db

    _url, db, _sweeps, _handlers = app
    page.open_tab("Blind labels")
    page.wait_for("(document.querySelector('#blind-sweep input') || {}).value", "the blind tab's sweep")
    sweep_id = int(re.match(r"#(\d+) ", page.js("document.querySelector('#blind-sweep input').value"))[1])
    page.click("#blind-start")
    page.wait_for("document.querySelector('#blind-item [data-blind]') !== null", "a blind sample")
    page.wait_for("document.querySelector('#blind-progress').textContent.includes(' left for ')", "progress")
    shown = page.text("#blind-progress") + "\n" + page.text("#blind-item")
    store = open_db(db)
    assert_blind([shown], store, sweep_id)
    before = {(r["generation_id"], r["who"]) for r in store_labels.sweep_labels(store, sweep_id)}
    first = page.js("document.querySelector('#blind-item [data-blind]').dataset.blind")
    page.press("h")
    page.wait_for(
        f"(document.querySelector('#blind-item [data-blind]') || {{dataset: {{}}}}).dataset.blind !== '{first}'",
        "the next blind sample",
    )
    added = [
        r for r in store_labels.sweep_labels(store, sweep_id) if (r["generation_id"], r["who"]) not in before
    ]
    assert [r["label"] for r in added] == ["hallucinated"]
    page.screenshot(shots / "blind-labels.png")
