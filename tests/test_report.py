"""import-log on a hand-made log, `ft-hallu report` output, and clear errors for bad input."""

from __future__ import annotations

import json
import re

import pytest

from cli import main


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
