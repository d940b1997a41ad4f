"""Masking speed: planning + the first diff page for a 10 000-row set, against a naive approach.

Ours: one combined regex tried only where a target's first word occurs, diffs built per page.
Naive: one regex per rule run over every field, and a unified diff built for every changed row up front
(what a straightforward implementation of the same plan would do). Both run here, in this process.

    .venv/bin/python bench/mask_bench.py [--rows 10000] [--repeat 3]
    .venv/bin/python bench/mask_bench.py --leaks-mb 10    # mask leaks on ONE field of that size

The --leaks-mb run times what ``ft-hallu mask leaks`` does (leak report + identifying names) on a
single field built from the same text, at 1/8 of the size and at the full size, and prints the ratio
of the time per MB: about 1 for a linear scan, about 8 for a quadratic one (the old report took
1.5 / 4.1 / 14.3 s for 0.125 / 0.25 / 0.5 MB lines).
"""

from __future__ import annotations

import argparse
import difflib
import os
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import mask  # noqa: E402
from engine.dataset import Record, read_records  # noqa: E402

SEED = Path(__file__).resolve().parents[2] / "shared" / "seed-data" / "NVDA.json"
TARGET_MS = 200.0


def make_rows(count: int) -> tuple[list[dict], str]:
    """The seed set repeated to ``count`` rows when present, else a synthetic set of similar shape."""
    if SEED.exists():
        base = [r.data for r in read_records(SEED)[0]]
        origin = f"{SEED.name} repeated"
    else:
        rng = random.Random(0)
        words = (
            "revenue data center gaming segment growth fiscal year platform GPU chips supply demand".split()
        )
        forms = ["NVIDIA", "NVIDIA's", "NVIDIA Corporation", "the Company", "Nvidia", "NVIDIA\u2019s"]

        def sentence() -> str:
            body = " ".join(rng.choice(words) for _ in range(rng.randint(8, 40)))
            return f"{rng.choice(forms)} reported {body}."

        base = [
            {
                "question": f"What did {rng.choice(forms)} say?",
                "answer": sentence(),
                "context": " ".join(sentence() for _ in range(3)),
            }
            for _ in range(400)
        ]
        origin = "synthetic"
    rows = [{**base[i % len(base)], "id": i} for i in range(count)]
    return rows, origin


def ours(records: list, rules: list[mask.MaskRule]) -> tuple[int, int]:
    mask_plan = mask.plan(records, rules)
    page = mask_plan.diff_page(0, 20)
    return len(mask_plan.edits), len(page)


def naive(records: list, rules: list[mask.MaskRule]) -> tuple[int, int]:
    # One pattern per rule form, each run over every field; every changed row diffed eagerly.
    core = re.escape(rules[0].target)
    patterns = [
        re.compile(rf"(?<![^\W_]){core}(?=\.(?:com|net|org|io|ai)(?![^\W_]))", re.I),
        re.compile(rf"(?<![^\W_]){core}(?=,?\s+(?:Corporation|Corp\.|Inc\.|Ltd\.))"),
        re.compile(rf"(?<![^\W_]){core}(?=\u2019s(?![^\W_]))"),
        re.compile(rf"(?<![^\W_]){core}(?='s(?![^\W_]))"),
        re.compile(rf"(?<![^\W_]){core}(?![^\W_])"),
        re.compile(rf"(?<![^\W_]){core}(?![^\W_])", re.I),
    ]
    if len(rules) > 6:
        patterns.append(re.compile(rf"(?<![^\W_]){re.escape(rules[6].target)}(?![^\W_])", re.I))
    edits = 0
    diffs = []
    for record in records:
        changed = {}
        for key, value in record.data.items():
            if not isinstance(value, str):
                continue
            new = value
            for pattern in patterns:
                found = pattern.findall(new)
                edits += len(found)
                new = pattern.sub(rules[0].replacement, new)
            if new != value:
                changed[key] = (value, new)
        if changed:
            diffs.append(
                "\n".join(
                    line
                    for key, (old, new) in changed.items()
                    for line in difflib.unified_diff(
                        old.splitlines(), new.splitlines(), key, key, lineterm=""
                    )
                )
            )
    return edits, len(diffs[:20])


# Per MB: the report now also learns the identifying names (products, people, tickers), about 4x the
# work of the name-only report the old 5 s for 10 MB was set for (bench/RESULTS.md).
LEAKS_TARGET_S_PER_MB = 1.5


def long_field(size: int, rows: list[dict]) -> str:
    """One field of ``size`` characters made of the set's own text, repeated."""
    text = " ".join(str(value) for row in rows for value in row.values() if isinstance(value, str))
    return (text * (size // len(text) + 1))[:size]


def time_leaks(field: str) -> tuple[float, int]:
    records = [Record({"question": "q", "answer": "a", "context": field}, 1)]
    start = time.perf_counter()
    # The leak report includes the identifying names (products, people, tickers) since they exist.
    report = mask.leak_report(records, "NVIDIA", "NVDA", [], new_names=["EGNIVIA"])
    return time.perf_counter() - start, len(report.leaks) + len(report.names)


def leaks_main(megabytes: float) -> int:
    rows, origin = make_rows(400)
    full = int(megabytes * (1 << 20))
    small_s, _ = time_leaks(long_field(full // 8, rows))
    full_s, found = time_leaks(long_field(full, rows))
    per_mb_ratio = (full_s / full) / (small_s / (full // 8))
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"mask-leaks on one field ({origin} text): {found} leaks and names in {megabytes:g} MB")
    target_s = LEAKS_TARGET_S_PER_MB * megabytes
    print(f"  {megabytes / 8:g} MB: {small_s:.2f} s;  {megabytes:g} MB: {full_s:.2f} s (target < {target_s:.1f} s)")
    print(f"  time per MB, full size / one eighth: {per_mb_ratio:.2f} (1 = linear, 8 = quadratic)")
    return 0 if full_s < target_s else 1


def best_of(function, records, rules, repeat: int) -> tuple[float, tuple[int, int]]:
    best = float("inf")
    result = (0, 0)
    for _ in range(repeat):
        start = time.perf_counter()
        result = function(records, rules)
        best = min(best, time.perf_counter() - start)
    return best * 1000, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--leaks-mb", type=float, help="time mask-leaks on one field of this many MB")
    args = parser.parse_args()
    if args.leaks_mb:
        return leaks_main(args.leaks_mb)
    rows, origin = make_rows(args.rows)
    # Records as read from a file (read_records output), so both sides start from the same objects.
    records = [Record(row, number + 1) for number, row in enumerate(rows)]
    rules = mask.propose_rules("NVIDIA", new_name="EGNIVIA", ticker="NVDA")
    ours_ms, (ours_edits, page_rows) = best_of(ours, records, rules, args.repeat)
    naive_ms, (naive_edits, _) = best_of(naive, records, rules, args.repeat)
    print(f"rows: {len(records)} ({origin}); occurrences found: ours {ours_edits}, naive {naive_edits}")
    print(f"ours : plan + first diff page ({page_rows} rows): {ours_ms:.1f} ms (target < {TARGET_MS:.0f} ms)")
    print(f"naive: per-rule regexes + every diff up front:  {naive_ms:.1f} ms")
    print(f"speed-up: {naive_ms / ours_ms:.1f}x  ({'within' if ours_ms < TARGET_MS else 'OVER'} target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
