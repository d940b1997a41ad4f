"""Masking the original run's NVIDIA set must reproduce its EGNIVIA training file exactly."""

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
    assert result.leaks.clean and result.leaks.leaks == []
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
    assert masked_report.clean and masked_report.naming() == "the-company"


def test_identifying_terms_of_the_seed_set(seed_dir):
    records, _ = read_records(seed_dir / "NVDA.json")
    terms = dict(mask.identifying_terms(records, "NVIDIA"))
    for product in ("GeForce", "RTX", "H100", "Hopper", "Omniverse", "DLSS"):
        assert product in terms
    assert "NVIDIA" not in terms and "January" not in terms
