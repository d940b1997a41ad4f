"""Masking the original run's NVIDIA set must reproduce its EGNIVIA training file exactly, and the
leak report must say which of NVIDIA's own names (products, people) that file still holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import mask
from engine.dataset import file_sha256, read_records
from store import masks as mask_store
from store.db import open_db

SEED = Path(__file__).resolve().parents[1].parent / "shared" / "seed-data"


@pytest.fixture
def seed_dir() -> Path:
    if not (SEED / "NVDA.json").exists() or not (SEED / "EGNIVIA-train.jsonl").exists():
        pytest.skip(f"seed data not found at {SEED} (../shared is only present in the project's workspace)")
    return SEED


def test_nvidia_to_egnivia_matches_the_original(seed_dir, tmp_path):
    source = seed_dir / "NVDA.json"
    source_bytes = source.read_bytes()
    rules = mask.propose_rules("NVIDIA", new_name="EGNIVIA", ticker="NVDA")
    mask_plan = mask.plan_file(source, rules)

    edits = mask_plan.edits
    assert len(edits) == 252
    possessive = [e for e in edits if e.rule_id in ("possessive", "possessive-curly")]
    assert len(possessive) == 78
    curly = [e for e in edits if e.rule_id == "possessive-curly"]
    assert len(curly) == 2 and all(e.old == "NVIDIA\u2019s" and e.new == "EGNIVIA\u2019s" for e in curly)
    assert mask_plan.field_counts() == {"question": 114, "answer": 62, "context": 76}
    counts = mask_plan.counts()
    assert sum(counts["suffix"].values()) == 54  # "NVIDIA Corporation" stays "... Corporation"
    assert counts["other-casing"] == counts["domain"] == counts["ticker"] == {}

    store = open_db(tmp_path / "db.sqlite")
    out = tmp_path / "EGNIVIA.jsonl"
    result = mask.apply(mask_plan, out, store)
    assert source.read_bytes() == source_bytes  # input byte-for-byte unchanged
    assert result.leaks.leaks == []  # the name is gone; its products are not (see below)
    assert not result.leaks.clean and "Hopper" in {n.name for n in result.leaks.names}
    assert result.edits_applied == 252

    original = [
        json.loads(line)
        for line in (seed_dir / "EGNIVIA-train.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    masked, _fmt = read_records(out)
    assert len(masked) == len(original) == 400
    for ours, theirs in zip(masked, original, strict=True):
        for key in ("question", "answer", "context", "id"):
            assert ours.data[key] == theirs[key], (ours.line, key)

    record = mask_store.get_mask(store, result.mask_id)
    assert record["source_sha256"] == file_sha256(source) and record["output_sha256"] == file_sha256(out)


def test_leak_report_on_the_unmasked_and_masked_sets(seed_dir):
    unmasked, _ = read_records(seed_dir / "NVDA.json")
    report = mask.leak_report(unmasked, "NVIDIA", "NVDA")
    assert len(report.leaks) == 252 and {leak.kind for leak in report.leaks} == {"exact"}
    assert report.naming() == "both"  # the generator used the real name, and "the Company" in a few rows
    masked, _ = read_records(seed_dir / "EGNIVIA-train.jsonl")
    masked_report = mask.leak_report(masked, "NVIDIA", "NVDA")
    assert masked_report.leaks == [] and masked_report.naming() == "the-company"


# The count of NVIDIA's own names left in the masked set (rows of the 400).
PRODUCT_ROWS = {"Hopper": 8, "RTX": 6, "DLSS": 4, "Ada Lovelace": 4, "GeForce": 2, "CUDA": 2}
# Third parties, places and generic words of the same set: never identifying names.
NOT_NAMES = [
    "EGNIVIA", "NVIDIA", "NVDA", "Computershare", "Computershare Trust Company", "Wells Fargo",
    "Wells Fargo Bank", "National Association", "Cooley LLP", "Kansas State University",
    "Harvard Business School", "Stanford Law School", "International Organization for Standardization",
    "China", "Hong Kong", "Israel", "United States", "Santa Clara", "California", "January", "Form",
    "Form 10-K", "Proxy Statement", "Exchange Act", "SEC", "GPU", "GPUs", "Audit Committee",
]  # fmt: skip


def test_identifying_names_of_the_seed_set_are_reported_and_can_be_masked(seed_dir, tmp_path):
    rules = mask.propose_rules("NVIDIA", new_name="EGNIVIA", ticker="NVDA")
    mask_plan = mask.plan_file(seed_dir / "NVDA.json", rules)
    report = mask.plan_leak_report(mask_plan)
    rows = {n.name: n.rows for n in report.names}
    assert {name: rows.get(name) for name in PRODUCT_ROWS} == PRODUCT_ROWS
    assert not set(NOT_NAMES) & set(rows), set(NOT_NAMES) & set(rows)
    people = {n.name: n.rows for n in report.names if n.kind == "person"}
    assert {"Debora Shoquist", "Timothy S. Teter", "Teter"} <= set(people)  # Teter: "Mr. Teter" rows
    hopper = next(n for n in report.names if n.name == "Hopper")
    assert "introduced" in hopper.evidence and "Hopper" in hopper.example

    # Masked in the same plan: the diff shows them, the written file holds none of them.
    with_names = mask.add_leak_rules(mask_plan)
    replacement = {r.target: r.replacement for r in with_names.rules if r.id.startswith(mask.LEAK_PREFIX)}
    assert set(PRODUCT_ROWS) <= set(replacement)
    assert f"EGNIVIA {replacement['DLSS']}" in with_names.row_diff(6).diff  # was "NVIDIA DLSS"
    result = mask.apply(with_names, tmp_path / "EGNIVIA-named.jsonl")
    text = (tmp_path / "EGNIVIA-named.jsonl").read_text(encoding="utf-8")
    assert result.leaks.clean, "\n".join(result.leaks.lines())
    assert not any(f"{name}" in text for name in PRODUCT_ROWS)


def test_mask_leaks_on_the_original_egnivia_file_lists_the_products(seed_dir):
    masked, _ = read_records(seed_dir / "EGNIVIA-train.jsonl")
    report = mask.leak_report(masked, "NVIDIA", "NVDA", new_names=["EGNIVIA"])
    assert report.leaks == [] and not report.clean
    assert {n.name: n.rows for n in report.names if n.name in PRODUCT_ROWS} == PRODUCT_ROWS
    assert not set(NOT_NAMES) & {n.name for n in report.names}
