"""Claim checking on the development label sets: AUROC, misses per failure class, scoring time.

Dev sets only (never the held-out fixtures): the SmolLM2 demo's 144 labelled answers
(tests/fixtures/demo-smollm2-labels.csv, sources engine/data/sample_qa.jsonl) and, when the shared
seed data is there, the original Phi-3.5 run's 36 fine-tuned answers
(tests/fixtures/original-finetuned-labels.csv against EGNIVIA-train.jsonl).

A *miss* is a hallucinated answer whose verdict is "no problem": every atomic claim supported. The
failure class of a miss is read from the label's reason (keywords, see ``failure_classes``), an
answer can be in several.

    PYTHONPATH=. .venv/bin/python bench/claims_bench.py [--method lexical|embedding] [--compare REV]

``--compare REV`` also times the scoring of the 144 demo texts with the engine of git revision REV
(exported to a temporary folder), alternating old and new runs in fresh processes, and prints the
ratio of the medians: one run, one machine, the same load.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine import calibrate as cal
from engine.metrics import claims as cm
from engine.metrics import load_sources, score_sample

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "tests" / "fixtures" / "demo-smollm2-labels.csv"
SAMPLE_QA = REPO / "engine" / "data" / "sample_qa.jsonl"
SEED = REPO.parent / "shared" / "seed-data"
ORIGINAL = REPO / "tests" / "fixtures" / "original-finetuned-labels.csv"

CLASSES = {
    1: "one conjunct invented",
    2: "type/status vs profile",
    3: "role confusion",
    4: "unknown product/object",
}


def failure_classes(reason: str) -> set[int]:
    """The issue's failure classes a hallucination's reason names (keywords of the labellers' reasons)."""
    text = reason.lower()
    found = set()
    if any(w in text for w in ("start-up", "non-profit", "privately held", "business unit", "subsidiary")):
        found.add(2)
    if any(w in text for w in ("supplier", "competitor", "customers do", "(its competitors)")):
        found.add(3)
    if " right" in text and ("invented" in text or "no start-up" in text or "not " in text):
        found.add(1)
    if not found or ("invented" in text and 1 not in found):
        found.add(4)
    return found


def _score_texts(texts: Sequence[str], dataset: Path, entity: str, method: str) -> list[dict[str, Any]]:
    sources = load_sources(str(dataset), entity)
    index = cm.load_evidence(str(dataset), entity, method=method)
    samples = [score_sample(t, sources=sources, entity=entity) for t in texts]
    claims = cm.answer_claims(texts, refusals=[s.refusal for s in samples], index=index, entity=entity)
    rows = []
    for sample, answer in zip(samples, claims, strict=True):
        row = {"claim_grounding": cm.claim_grounding(answer), "grounding": sample.grounding, "claims": answer}
        if hasattr(cm, "claim_support_min"):
            row["claim_support_min"] = cm.claim_support_min(answer)
        rows.append(row)
    return rows


def _missed(row: dict[str, Any]) -> bool:
    """Every claim the answer is scored on is supported: the verdict says nothing is wrong."""
    if "claim_support_min" in row:
        return row["claim_support_min"] is not None and row["claim_support_min"] >= cm.SUPPORTED_AT["lexical"]
    return bool(row["claims"]) and all(c.decision == "supported" for c in row["claims"])


def evaluate(name: str, labelled: list[dict[str, str]], scored: list[dict[str, Any]]) -> None:
    scores = [s for s in ("claim_support_min", "claim_grounding", "grounding") if s in scored[0]]
    for subset, keep in (
        ("all answers", lambda r: True),
        ("fine-tuned", lambda r: r["variant"] == "finetuned"),
    ):
        rows = [{**s, "label": lab["label"]} for lab, s in zip(labelled, scored, strict=True) if keep(lab)]
        specs = [spec for spec in cal.SCORES if spec.name in scores]
        results = cal.calibrate_rows(rows, specs=specs, resamples=200)
        figures = ", ".join(f"{r.score} {r.auroc:.3f}" for r in results if r.auroc is not None)
        print(f"{name}, {subset}: AUROC {figures}")
    misses = {k: 0 for k in CLASSES}
    totals = {k: 0 for k in CLASSES}
    false_alarms = 0
    for lab, row in zip(labelled, scored, strict=True):
        if lab["label"] == "hallucinated":
            for k in failure_classes(lab["reason"]):
                totals[k] += 1
                misses[k] += _missed(row)
        elif lab["label"] == "faithful" and not _missed(row):
            false_alarms += 1
            print(f"  faithful flagged: {lab['text'][:100]!r}")
    for k, label in CLASSES.items():
        print(f"  class {k} ({label}): {misses[k]} of {totals[k]} hallucinations missed")
    print(f"  faithful answers flagged: {false_alarms}")


def time_demo(method: str) -> float:
    """Seconds to score the demo's 144 texts (sources and evidence index built before the clock)."""
    labelled = list(csv.DictReader(DEMO.open(newline="")))
    texts = [r["text"] for r in labelled]
    sources = load_sources(str(SAMPLE_QA), "ZYTRELL")
    index = cm.load_evidence(str(SAMPLE_QA), "ZYTRELL", method=method)
    started = time.perf_counter()
    samples = [score_sample(t, sources=sources, entity="ZYTRELL") for t in texts]
    cm.answer_claims(texts, refusals=[s.refusal for s in samples], index=index, entity="ZYTRELL")
    return time.perf_counter() - started


def compare(revision: str, method: str, rounds: int = 5) -> None:
    """Median scoring time of the demo texts, old engine vs this one, alternating fresh processes."""
    with tempfile.TemporaryDirectory(prefix="claims-bench-") as folder:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", revision, "engine", "store"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path;"
            f"sys.path.insert(1, {str(REPO / 'bench')!r}); import claims_bench as b;"
            "b.cm = __import__('engine.metrics.claims', fromlist=['x']);"
            "print(b.time_demo(sys.argv[2]))"
        )
        times: dict[str, list[float]] = {"old": [], "new": []}
        for _ in range(rounds):
            for name, root in (("old", folder), ("new", str(REPO))):
                env = {**os.environ, "PYTHONPATH": root}
                out = subprocess.run(
                    [sys.executable, "-c", code, root, method], env=env, check=True, capture_output=True, text=True
                ).stdout
                times[name].append(float(out.strip().splitlines()[-1]))
        old, new = statistics.median(times["old"]), statistics.median(times["new"])
        print(
            f"scoring the demo's 144 texts ({method}), median of {rounds}: {revision} {old:.3f} s, "
            f"now {new:.3f} s, ratio now/old {new / old:.2f} (load average {os.getloadavg()})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="lexical", choices=("lexical", "embedding"))
    parser.add_argument("--compare", metavar="REV", help="also time the engine of this git revision")
    args = parser.parse_args()
    if args.compare:
        compare(args.compare, args.method)
    print(f"load average before: {os.getloadavg()}")
    labelled = list(csv.DictReader(DEMO.open(newline="")))
    texts = [r["text"] for r in labelled]
    cm.load_evidence(str(SAMPLE_QA), "ZYTRELL", method=args.method)  # index built once, outside the timing
    started = time.perf_counter()
    scored = _score_texts(texts, SAMPLE_QA, "ZYTRELL", args.method)
    elapsed = time.perf_counter() - started
    print(f"demo: {len(texts)} texts scored (score_sample + claims, {args.method}) in {elapsed:.3f} s")
    evaluate("SmolLM2 demo", labelled, scored)
    if (SEED / "sweep-output-finetuned.txt").exists():
        from engine.importlog import parse_log

        labels = {
            (float(r["temperature"]), float(r["top_p"]), int(r["top_k"])): r
            for r in csv.DictReader(ORIGINAL.open())
        }
        cells = parse_log(SEED / "sweep-output-finetuned.txt").cells
        original = [
            {**labels[(c.temperature, c.top_p, c.top_k)], "text": c.text, "variant": "finetuned"}
            for c in cells
        ]
        scored = _score_texts(
            [r["text"] for r in original], SEED / "EGNIVIA-train.jsonl", "EGNIVIA", args.method
        )
        evaluate("original run", original, scored)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
