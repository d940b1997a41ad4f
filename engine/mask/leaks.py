"""Leak report: does a set still name the company (exactly, near-miss, hidden Unicode)?"""

from __future__ import annotations

import difflib
import re
import unicodedata
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.dataset import Record
from engine.errors import UserError
from engine.mask.names import IdentifyingName, entity_terms, identifying_names
from engine.mask.plan import MaskPlan, as_records, field_name, string_fields
from engine.mask.rules import (
    NOT_WORD_AFTER,
    NOT_WORD_BEFORE,
    MaskRule,
    literal_pattern,
    split_legal_suffix,
)


@dataclass(frozen=True)
class Leak:
    row: int
    line: int
    field: str
    kind: str  # exact | near-miss | unicode | embedded
    term: str
    text: str
    snippet: str


@dataclass
class LeakReport:
    terms: list[str]
    rows_scanned: int
    leaks: list[Leak]
    embedded: list[Leak]  # the name inside a longer word ("NVIDIANs"): listed, not counted as a leak
    company_mentions: int  # occurrences of "the Company"
    rows_with_company: int
    # Products, brands, people and tickers the sources tie to the entity, still in the set.
    names: list[IdentifyingName] = field(default_factory=list)
    kept: list[IdentifyingName] = field(default_factory=list)  # ... whose mask rule the user rejected

    @property
    def clean(self) -> bool:
        """No name, alias, ticker or near-miss of it, and no identifying name left (unless kept)."""
        return not self.leaks and not self.names

    @property
    def rows_with_names(self) -> int:
        return len({row for name in self.names for row in name.row_numbers})

    @property
    def rows_with_leaks(self) -> int:
        return len({leak.row for leak in self.leaks})

    def counts(self) -> dict[str, int]:
        return dict(Counter(f"{leak.term} ({leak.kind})" for leak in self.leaks))

    def naming(self) -> str:
        """How the set names the company: 'real-name', 'the-company', 'both' or 'neither'."""
        real = any(leak.kind == "exact" for leak in self.leaks)
        company = self.company_mentions > 0
        return {(True, True): "both", (True, False): "real-name", (False, True): "the-company"}.get(
            (real, company), "neither"
        )

    def lines(self, *, limit: int = 20, hint: str = "") -> list[str]:
        """The report as text lines, most important first; ``hint`` says how to mask what remains
        (it differs per front end)."""
        out = [
            f"leak report: {len(self.leaks)} leak(s) in {self.rows_with_leaks} of {self.rows_scanned} rows"
            f" (terms: {', '.join(self.terms)})"
        ]
        if self.names:
            out[0] += f"; {len(self.names)} identifying name(s) left in {self.rows_with_names} rows"
        if self.clean:
            out[0] += " - CLEAN"
        if self.names:
            listed = ", ".join(f"{n.name} ({n.rows})" for n in self.names[:limit])
            more = f", ... {len(self.names) - limit} more" if len(self.names) > limit else ""
            out.append(f"  identifying names left (rows): {listed}{more}")
            if hint:
                out.append(f"  {hint}")
        for term, count in sorted(self.counts().items()):
            out.append(f"  {term}: {count}")
        for leak in self.leaks[:limit]:
            out.append(
                f"  row {leak.row} (line {leak.line}) {leak.field}: {leak.kind} {leak.text!r} in {leak.snippet!r}"
            )
        if len(self.leaks) > limit:
            out.append(f"  ... {len(self.leaks) - limit} more")
        for name in self.names[:limit]:
            out.append(
                f"  {name.name} ({name.kind}, {name.rows} rows): the sources say {name.evidence!r}; "
                f"left in row {name.example_row} (line {name.example_line}) {name.example_field}: {name.example!r}"
            )
        if self.kept:
            out.append(
                "  kept on purpose (their mask rule is rejected): "
                + ", ".join(f"{n.name} ({n.rows})" for n in self.kept)
            )
        if self.embedded:
            out.append(
                f"  inside longer words (not replaced, check them): {len(self.embedded)}, e.g. "
                + ", ".join(sorted({e.text for e in self.embedded})[:5])
            )
        naming = {
            "real-name": "the set uses the real name",
            "the-company": 'the set says "the Company", not the name',
            "both": 'the set uses both the real name and "the Company"',
            "neither": 'the set uses neither the real name nor "the Company"',
        }[self.naming()]
        out.append(
            f'  naming: {naming} ("the Company" {self.company_mentions}x in {self.rows_with_company} rows)'
        )
        return out


# "not after a word character" tested after the first letter: much faster than a leading \b.
_COMPANY_RE = re.compile(r"t(?<!\w.)he Company\b")


def _snippet(text: str, start: int, end: int, width: int = 30) -> str:
    return text[max(0, start - width) : end + width].replace("\n", " ")


def _near_miss_regex(term: str, *, lowercase: bool = False) -> re.Pattern[str] | None:
    """The term's letters with up to two separators between them: N.V.I.D.I.A, N V I D I A, NVI-DIA.

    The word-boundary check sits after the first letter so the regex engine can skip ahead to
    candidate first letters instead of testing a lookbehind at every position."""
    chars = [ch.lower() if lowercase else ch for ch in term if ch.isalnum()]
    if len(chars) < 3:
        return None
    body = r"[\W_]{0,2}".join(re.escape(ch) for ch in chars[1:])
    first = re.escape(chars[0])
    # lowercase=True: for text already lowercased, where a case-sensitive scan is 4x faster.
    return re.compile(
        rf"{first}(?<![^\W_].)[\W_]{{0,2}}{body}{NOT_WORD_AFTER}", 0 if lowercase else re.IGNORECASE
    )


@dataclass(frozen=True)
class _TermScan:
    term: str
    exact: re.Pattern[str]
    near: re.Pattern[str] | None  # also matches the exact form; None for short terms and tickers
    needle: str  # lowercase first word: a field without it cannot hold an exact match
    near_lower: re.Pattern[str] | None = None  # ``near`` for text already lowercased

    def finditer(self, text: str, lowered: str) -> Iterator[re.Match[str]]:
        """Candidate matches as (start, end) spans of ``text``."""
        # lower() never shortens a character, so equal lengths mean every offset is the same.
        if self.near_lower is not None and len(lowered) == len(text):
            return self.near_lower.finditer(lowered)
        return (self.near or self.exact).finditer(text)


def leak_report(
    records: Sequence[Record | dict[str, Any]],
    entity: str,
    ticker: str | None = None,
    aliases: Sequence[str] = (),
    *,
    new_names: Sequence[str] = (),
    sources: Sequence[Record | dict[str, Any]] | None = None,
    invented: Sequence[str] = (),
    kept: Sequence[str] = (),
) -> LeakReport:
    """Case-insensitive scan of every string field for the name, its aliases, ticker and near-misses,
    and the identifying names (products, people, tickers) that ``sources`` (default: the set itself)
    tie to the entity and the set still holds.

    ``new_names``: the replacement names (the entity too, never a leak); ``invented``: replacements
    of identifying names; ``kept``: identifying names left on purpose (listed, not counted).
    """
    core = split_legal_suffix(entity)
    terms = [core] + [a.partition("=")[0].strip() for a in aliases if a.partition("=")[0].strip()]
    scans = [
        _TermScan(
            term,
            re.compile(NOT_WORD_BEFORE + literal_pattern(term) + NOT_WORD_AFTER, re.IGNORECASE),
            _near_miss_regex(term),
            term.split()[0].lower(),
            _near_miss_regex(term, lowercase=True),
        )
        for term in terms
    ]
    if ticker and ticker.strip():
        symbol = ticker.strip()
        flags = re.IGNORECASE if len(symbol) >= 4 else 0
        exact = re.compile(NOT_WORD_BEFORE + re.escape(symbol) + NOT_WORD_AFTER, flags)
        scans.append(_TermScan(symbol, exact, None, symbol.lower()))
        terms.append(symbol)
    core_rx = re.compile(literal_pattern(core), re.IGNORECASE)
    core_needle = core.split()[0].lower()
    leaks: list[Leak] = []
    embedded: list[Leak] = []
    company = 0
    company_rows = 0
    rows = as_records(records)
    for number, record in enumerate(rows):
        row_company = 0
        for path, text in string_fields(record.data):
            if "the Company" in text:
                row_company += len(_COMPANY_RE.findall(text))
            lowered = text.lower()
            name = ""
            found: list[tuple[int, int]] = []
            for scan in scans:
                if scan.near is None and scan.needle not in lowered:
                    continue
                for match in scan.finditer(text, lowered):
                    start, end = match.span()
                    kind = "exact" if scan.exact.fullmatch(text, start, end) else "near-miss"
                    name = name or field_name(path)
                    snippet = _snippet(text, start, end)
                    leaks.append(Leak(number, record.line, name, kind, scan.term, text[start:end], snippet))
                    found.append((start, end))
            if not text.isascii():
                # Full-width and other compatibility forms: compare after NFKC normalisation.
                folded = unicodedata.normalize("NFKC", text)
                if folded != text:
                    for scan in scans:
                        in_raw = sum(1 for _ in scan.exact.finditer(text))
                        extra = sum(1 for _ in scan.exact.finditer(folded)) - in_raw
                        for _ in range(max(0, extra)):
                            name = name or field_name(path)
                            leaks.append(
                                Leak(number, record.line, name, "unicode", scan.term, scan.term, folded[:60])
                            )
            if core_needle in lowered:
                covered = _Coverage(found)
                word_span = (0, 0)
                for match in core_rx.finditer(text):
                    if covered.contains(match.start()):
                        continue
                    name = name or field_name(path)
                    # Matches come in order: one word holding many of them is measured once, not per match.
                    if not word_span[0] <= match.start() < word_span[1]:
                        word_span = _word_span(text, *match.span())
                    word = text[word_span[0] : max(word_span[1], match.end())]
                    embedded.append(
                        Leak(number, record.line, name, "embedded", core, word, _snippet(text, *match.span()))
                    )
        company += row_company
        company_rows += 1 if row_company else 0
    leaks.sort(key=lambda leak: (leak.row, leak.field))
    names = identifying_names(
        rows,
        entity,
        aliases=aliases,
        new_names=new_names,
        tickers=[ticker] if ticker and ticker.strip() else [],
        ignore=invented,
        sources=sources,
    )
    keep = {k.casefold() for k in kept}
    left = [n for n in names if n.name.casefold() not in keep]
    on_purpose = [n for n in names if n.name.casefold() in keep]
    return LeakReport(terms, len(rows), leaks, embedded, company, company_rows, left, on_purpose)


def _word_span(text: str, start: int, end: int) -> tuple[int, int]:
    """The span of the alphanumeric word around ``text[start:end]``."""
    while start > 0 and text[start - 1].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum():
        end += 1
    return start, end


class _Coverage:
    """Is a position inside any of some spans? Bisect over sorted starts with running max ends, so
    checking every match of a long field stays linear-logarithmic (a scan of all spans per match was
    quadratic: a 0.5 MB field took 14 s)."""

    def __init__(self, spans: Sequence[tuple[int, int]]):
        ordered = sorted(spans)
        self.starts = [start for start, _ in ordered]
        self.reach: list[int] = []
        furthest = -1
        for _, end in ordered:
            furthest = max(furthest, end)
            self.reach.append(furthest)

    def contains(self, position: int) -> bool:
        index = bisect_right(self.starts, position) - 1
        return index >= 0 and self.reach[index] > position


def leak_report_for_rules(
    records: Sequence[Record | dict[str, Any]],
    rules: Sequence[MaskRule],
    *,
    sources: Sequence[Record | dict[str, Any]] | None = None,
    rejected: Iterable[str] = (),
) -> LeakReport:
    """The leak report for the targets of a rule set (name, ticker, aliases, identifying names).

    ``sources``: the unmasked rows the names are learned from; ``rejected``: ids of rules turned off
    (an identifying name whose rule is rejected is kept on purpose)."""
    terms = entity_terms(rules, rejected)
    if not terms.entity:
        raise UserError("the rules hold no entity name to scan for")
    ticker = terms.tickers[0] if terms.tickers else None
    return leak_report(
        records,
        terms.entity,
        ticker,
        terms.aliases,
        new_names=terms.new_names,
        sources=sources,
        invented=terms.invented,
        kept=terms.kept,
    )


def plan_leak_report(mask_plan: MaskPlan) -> LeakReport:
    """The report the plan's accepted edits would leave: names learned from its unmasked rows."""
    return leak_report_for_rules(
        mask_plan.masked_records(),
        mask_plan.rules,
        sources=mask_plan.records,
        rejected=mask_plan.rejected_rules,
    )


def closest_spelling(records: Sequence[Record | dict[str, Any]], term: str) -> tuple[str, int] | None:
    """The word of the set most like ``term`` (a typo such as NVDIA finds NVIDIA) and its count."""
    words: Counter[str] = Counter()
    for record in as_records(records):
        for _path, text in string_fields(record.data):
            words.update(re.findall(r"[^\W_]+", text))
    by_folded: dict[str, Counter[str]] = {}
    for word, count in words.items():
        by_folded.setdefault(word.casefold(), Counter())[word] = count
    first = term.split()[0].casefold() if term.split() else ""
    close = difflib.get_close_matches(first, list(by_folded), n=1, cutoff=0.7)
    if not close:
        return None
    forms = by_folded[close[0]]
    return forms.most_common(1)[0][0], sum(forms.values())
