"""Masking identifying names too: invented replacements, one rule per name, the plan again.

A replacement keeps the name's shape (letters by letters with their case, digits by digits,
"Ada Lovelace" -> "Kesi Puvobaze"), is deterministic from a seed, is no word of the set and holds no
masked target, so ``undo`` and a rerun with the same seed give the same file. The rules get the id
``leak:<name>``: the diff shows them, ``apply`` writes them with the rest and records them, and
rejecting one keeps that name on purpose (the leak report lists it as kept, not as a leak).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

from engine.dataset import Record
from engine.errors import UserError
from engine.mask.names import entity_terms, identifying_names
from engine.mask.plan import MaskPlan, as_records, string_fields
from engine.mask.plan import plan as plan_rows
from engine.mask.rules import LEAK_PREFIX, NOT_WORD_AFTER, NOT_WORD_BEFORE, MaskRule, literal_pattern

_ANY_WORD_RE = re.compile(r"[^\W_]+")
_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"


def invent_replacement(name: str, seed: int, attempt: int = 0) -> str:
    """An invented name shaped like ``name``: letters by letters (keeping each one's case), digits by
    digits, other characters kept. Deterministic: the same name, seed and attempt give the same word."""
    rng = random.Random(f"{seed}\x00{name}\x00{attempt}")
    out = []
    letters = 0
    for char in name:
        if char.isalpha():
            pool = _CONSONANTS if letters % 2 == 0 else _VOWELS
            letters += 1
            new = rng.choice(pool)
            out.append(new.upper() if char.isupper() else new)
        elif char.isdigit():
            letters = 0
            out.append(str(rng.randint(1 if not out or not out[-1].isdigit() else 0, 9)))
        else:
            letters = 0
            out.append(char)
    return "".join(out)


def leak_rules(
    names: Sequence[str],
    *,
    records: Sequence[Record | dict[str, Any]],
    rules: Sequence[MaskRule],
    seed: int = 0,
    kinds: dict[str, str] | None = None,
) -> list[MaskRule]:
    """A mask rule per name, with an invented replacement that is no word of the set, contains no
    masked target and differs from every other replacement."""
    words: set[str] = set()
    for record in as_records(records):
        for _path, text in string_fields(record.data):
            words.update(w.casefold() for w in _ANY_WORD_RE.findall(" ".join(set(text.split()))))
    targets = [r.target.casefold() for r in rules] + [n.casefold() for n in names]
    taken = {r.replacement.casefold() for r in rules}
    existing = {r.target.casefold() for r in rules}

    def free(new: str) -> bool:
        folded = new.casefold()
        parts = [w.casefold() for w in _ANY_WORD_RE.findall(new)]
        return (
            folded not in taken
            and not any(p in words for p in parts)
            and not any(t in folded for t in targets)
        )

    out: list[MaskRule] = []
    last_words: dict[str, str] = {}  # last word of a longer name -> last word of its replacement
    # Longer names first, so "Mr. Teter" gets the surname of the replacement of "Timothy S. Teter".
    for name in sorted(names, key=lambda n: -len(n.split())):
        if name.casefold() in existing:
            continue
        new = last_words.get(name, "")
        for attempt in range(1000):
            if new and free(new):
                break
            new = invent_replacement(name, seed, attempt)
        else:  # 1000 collisions: a set holding most short words
            raise UserError(f"no free invented replacement for {name!r}; mask it with --alias {name}=NEW")
        if " " in name and " " in new:
            last_words.setdefault(name.rsplit(" ", 1)[1], new.rsplit(" ", 1)[1])
        taken.add(new.casefold())
        existing.add(name.casefold())
        kind = (kinds or {}).get(name, "name")
        out.append(
            MaskRule(
                LEAK_PREFIX + name,
                f"identifying {kind} {name}",
                name,
                new,
                # Short all-capital names only as written, like a short ticker.
                case_sensitive=len(name) <= 4 and name.isupper(),
            )
        )
    return out


def add_leak_rules(mask_plan: MaskPlan, names: Sequence[str] | None = None, *, seed: int = 0) -> MaskPlan:
    """The plan again with a rule per identifying name (``None``: every one its accepted edits leave),
    each with an invented replacement, so the diff shows them and ``apply`` writes them with the rest.

    Rejections carry over (rules, rows, and single edits by their place in the text)."""
    terms = entity_terms(mask_plan.rules, mask_plan.rejected_rules)
    found = identifying_names(
        mask_plan.masked_records(),
        terms.entity,
        aliases=terms.aliases,
        new_names=terms.new_names,
        tickers=terms.tickers,
        ignore=terms.invented,
        sources=mask_plan.records,
    )
    kinds = {n.name: n.kind for n in found}
    if names is None:
        chosen = [n.name for n in found]
    else:
        chosen = _chosen_names(mask_plan, names)
    new_rules = leak_rules(chosen, records=mask_plan.records, rules=mask_plan.rules, seed=seed, kinds=kinds)
    if not new_rules:
        return mask_plan
    rules = [*mask_plan.rules, *new_rules]
    replanned = plan_rows(mask_plan.records, rules, source=mask_plan.source)
    replanned.rejected_rules = set(mask_plan.rejected_rules)
    replanned.rejected_rows = set(mask_plan.rejected_rows)
    rejected_at = {
        (e.row, e.path, e.start, e.end) for e in mask_plan.edits if e.index in mask_plan.rejected_edits
    }
    replanned.rejected_edits = {
        e.index for e in replanned.edits if (e.row, e.path, e.start, e.end) in rejected_at
    }
    return replanned


def _chosen_names(mask_plan: MaskPlan, names: Sequence[str]) -> list[str]:
    """Names the user picked, each checked to occur in the set (a typo must not pass silently)."""
    chosen = []
    texts = [text for record in mask_plan.records for _path, text in string_fields(record.data)]
    for raw in names:
        name = " ".join(raw.split())
        if not name:
            raise UserError("identifying name to mask is empty")
        finder = re.compile(NOT_WORD_BEFORE + literal_pattern(name) + NOT_WORD_AFTER, re.IGNORECASE)
        if not any(finder.search(text) for text in texts):
            where = f" of {mask_plan.source.path}" if mask_plan.source else ""
            raise UserError(f"identifying name {name!r}: not in any field{where}")
        chosen.append(name)
    return chosen
