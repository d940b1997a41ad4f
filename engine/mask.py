"""Masking a company's name in a QA set: rules, a reviewable plan, an atomic apply, a leak report.

Workflow: ``propose_rules`` turns an entity name (plus ticker and aliases) into rules; ``plan`` finds
every occurrence in every string field with one combined regex and keeps the edits, each tagged with
the rule that found it; the user accepts or rejects rules, rows or single edits; ``apply`` writes a NEW
file atomically and records source, rules and output in the store; ``leak_report`` scans the result
(or any set) for the name, its aliases and near-misses such as ``N.V.I.D.I.A``.

Only the name itself is replaced: a possessive (``'s`` / ``’s``), a legal suffix (``Corporation``) or a
web domain's top-level part stays exactly as written, so ``NVIDIA's`` becomes ``EGNIVIA's``.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import unicodedata
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.dataset import Record, file_sha256, read_records, write_records_atomic
from engine.errors import UserError

# Letters and digits (any script); the underscore counts as a separator so ``NVIDIA_driver`` is masked.
_NOT_WORD_BEFORE = r"(?<![^\W_])"
_NOT_WORD_AFTER = r"(?![^\W_])"

LEGAL_SUFFIXES = (
    "Corporation",
    "Corp.",
    "Corp",
    "Incorporated",
    "Inc.",
    "Inc",
    "Limited",
    "Ltd.",
    "Ltd",
    "L.L.C.",
    "LLC",
    "PLC",
    "Co.",
    "GmbH",
    "S.A.",
    "N.V.",
    "AG",
    "SE",
    "Holdings",
)
DOMAIN_TLDS = (
    "com",
    "net",
    "org",
    "io",
    "ai",
    "co",
    "dev",
    "app",
    "info",
    "biz",
    "tech",
    "cloud",
    "us",
    "uk",
    "de",
    "cn",
    "jp",
    "fr",
    "eu",
)

# Rule ids. Name forms are split by how the name is written so a user can reject, say, lowercase
# matches of a name that is also an ordinary word ("apple").
RULE_NAME = "name"
RULE_POSSESSIVE = "possessive"
RULE_POSSESSIVE_CURLY = "possessive-curly"
RULE_SUFFIX = "suffix"
RULE_OTHER_CASING = "other-casing"
RULE_DOMAIN = "domain"
RULE_TICKER = "ticker"
ALIAS_PREFIX = "alias:"

_SUFFIX_RE = "|".join(re.escape(s) for s in sorted(LEGAL_SUFFIXES, key=len, reverse=True))
_TLD_RE = "|".join(sorted(DOMAIN_TLDS, key=len, reverse=True))


@dataclass(frozen=True)
class MaskRule:
    """One kind of occurrence to replace. ``target`` is what is searched; ``replacement`` replaces
    only the name part of a match (a suffix or possessive stays as written)."""

    id: str
    label: str
    target: str
    replacement: str
    case_sensitive: bool = False
    drop_suffix: bool = (
        False  # suffix rule only: "NVIDIA Corporation" -> "EGNIVIA" instead of "EGNIVIA Corporation"
    )


@dataclass(frozen=True)
class Edit:
    """One replacement inside one string field of one row. ``start``/``end`` index the original text."""

    index: int
    row: int
    line: int
    field: str
    path: tuple[str | int, ...]
    start: int
    end: int
    old: str
    new: str
    rule_id: str


@dataclass(frozen=True)
class SourceInfo:
    path: str
    sha256: str
    format: str


@dataclass
class RowDiff:
    row: int
    line: int
    edits: list[Edit]
    accepted: list[bool]
    diff: str  # unified diff of the accepted edits ("" when every edit of the row is rejected)


def split_legal_suffix(name: str) -> str:
    """'Apple Inc.' -> 'Apple'; a name without a legal suffix is returned stripped."""
    pattern = re.compile(rf",?\s+(?:{_SUFFIX_RE})$", re.IGNORECASE)
    core = pattern.sub("", name.strip())
    return core or name.strip()


def _literal(text: str) -> str:
    """Regex for ``text`` where any run of whitespace matches any run of whitespace."""
    return r"\s+".join(re.escape(part) for part in text.split())


def _domain_label(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def _default_new_ticker(ticker: str, new_name: str) -> str:
    letters = re.sub(r"[^A-Z0-9]", "", new_name.upper())
    return (letters[: len(ticker)] or "XXXX").ljust(len(ticker), "X")


def propose_rules(
    entity: str,
    *,
    new_name: str,
    ticker: str | None = None,
    new_ticker: str | None = None,
    aliases: Sequence[str] = (),
    keep_suffix: bool = True,
) -> list[MaskRule]:
    """The rules that mask ``entity`` as ``new_name``.

    ``aliases`` are other names of the company; ``"OLD=NEW"`` gives an alias its own replacement.
    A ticker of four or more characters is matched in any casing, a shorter one only as written.
    """
    core = split_legal_suffix(entity)
    new = new_name.strip()
    if not core:
        raise UserError("entity name is empty")
    if not new:
        raise UserError("new name is empty")
    if core.casefold() == new.casefold():
        raise UserError(f"new name {new!r} is the entity name itself")
    if not any(ch.isalnum() for ch in core):
        raise UserError(f"entity name {entity!r} has no letters or digits")
    rules = [
        MaskRule(RULE_NAME, f"{core} (as written)", core, new, case_sensitive=True),
        MaskRule(RULE_POSSESSIVE, f"{core}'s (possessive, straight apostrophe)", core, new, True),
        MaskRule(RULE_POSSESSIVE_CURLY, f"{core}\u2019s (possessive, curly apostrophe)", core, new, True),
        MaskRule(
            RULE_SUFFIX,
            f"{core} + legal suffix (Corporation, Inc., Ltd., ...)",
            core,
            new,
            True,
            drop_suffix=not keep_suffix,
        ),
        MaskRule(
            RULE_OTHER_CASING, f"{core} in another casing ({core.title()}, {core.lower()}, ...)", core, new
        ),
        MaskRule(
            RULE_DOMAIN, f"web domains ({_domain_label(core)}.com, ...)", core, _domain_label(new) or new
        ),
    ]
    if ticker and ticker.strip():
        symbol = ticker.strip()
        replacement = (new_ticker or "").strip() or _default_new_ticker(symbol, new)
        rules.append(
            MaskRule(RULE_TICKER, f"ticker {symbol}", symbol, replacement, case_sensitive=len(symbol) < 4)
        )
    seen = {core.casefold()}
    for raw in aliases:
        alias, _, alias_new = raw.partition("=")
        alias = alias.strip()
        if not alias or alias.casefold() in seen:
            continue
        seen.add(alias.casefold())
        rules.append(MaskRule(ALIAS_PREFIX + alias, f"alias {alias}", alias, alias_new.strip() or new))
    return rules


# ---------------------------------------------------------------- matching


@dataclass(frozen=True)
class _Alternative:
    group: str
    core_group: str
    rule_id: str | None  # None: name forms, classified by casing
    suffix_group: str | None = None


class _Matcher:
    """All rules compiled into ONE regex; each alternative is a named group so a match names its rule."""

    def __init__(self, rules: Sequence[MaskRule]):
        self.rules = {rule.id: rule for rule in rules}
        if len(self.rules) != len(rules):
            raise UserError("two mask rules share an id")
        parts: list[str] = []
        self.alternatives: dict[str, _Alternative] = {}

        def add(group: str, body: str, rule_id: str | None, suffix: bool = False) -> None:
            parts.append(f"(?P<{group}>{body})")
            self.alternatives[group] = _Alternative(
                group, f"{group}_c", rule_id, f"{group}_s" if suffix else None
            )

        alias_rules = sorted(
            (r for r in rules if r.id.startswith(ALIAS_PREFIX)), key=lambda r: len(r.target), reverse=True
        )
        for number, rule in enumerate(alias_rules):
            add(f"a{number}", f"(?P<a{number}_c>{self._flagged(rule)}){_NOT_WORD_AFTER}", rule.id)
        name_rule = next(
            (r for r in rules if r.id in (RULE_NAME, RULE_POSSESSIVE, RULE_POSSESSIVE_CURLY, RULE_SUFFIX)),
            None,
        )
        core_any_case = f"(?i:{_literal(name_rule.target)})" if name_rule else None
        if RULE_DOMAIN in self.rules:
            domain_core = f"(?i:{_literal(self.rules[RULE_DOMAIN].target)})"
            add("dom", rf"(?P<dom_c>{domain_core})\.(?i:{_TLD_RE}){_NOT_WORD_AFTER}", RULE_DOMAIN)
        if name_rule is not None or RULE_OTHER_CASING in self.rules:
            target = (name_rule or self.rules[RULE_OTHER_CASING]).target
            self.core = target
            # Other casings are only matched when their rule is present.
            core = core_any_case if RULE_OTHER_CASING in self.rules else _literal(target)
            if core is None:
                core = f"(?i:{_literal(target)})"
            add("suf", rf"(?P<suf_c>{core})(?P<suf_s>,?[ \t]+(?i:{_SUFFIX_RE})){_NOT_WORD_AFTER}", None, True)
            add("pcu", rf"(?P<pcu_c>{core})\u2019[sS]{_NOT_WORD_AFTER}", None)
            add("pst", rf"(?P<pst_c>{core})'[sS]{_NOT_WORD_AFTER}", None)
            add("bare", rf"(?P<bare_c>{core}){_NOT_WORD_AFTER}", None)
        else:
            self.core = None
        if RULE_TICKER in self.rules:
            add(
                "tick", rf"(?P<tick_c>{self._flagged(self.rules[RULE_TICKER])}){_NOT_WORD_AFTER}", RULE_TICKER
            )
        self.regex = re.compile(_NOT_WORD_BEFORE + "(?:" + "|".join(parts) + ")") if parts else None
        # Lowercased first word of every target: each match of the regex starts with one of them.
        self.needles = sorted({rule.target.split()[0].lower() for rule in rules if rule.target.split()})
        self._form_rule = {
            "suf": RULE_SUFFIX,
            "pcu": RULE_POSSESSIVE_CURLY,
            "pst": RULE_POSSESSIVE,
            "bare": RULE_NAME,
        }
        self._core_exact = re.compile(_literal(self.core)) if self.core else None

    @staticmethod
    def _flagged(rule: MaskRule) -> str:
        body = _literal(rule.target)
        return f"(?-i:{body})" if rule.case_sensitive else f"(?i:{body})"

    def _matches(self, text: str) -> list[re.Match[str]]:
        """The regex's matches, found fast: every match starts with one of the targets' first words,
        so ``str.find`` on the lowercased text gives the only positions worth trying."""
        assert self.regex is not None
        lowered = text.lower()
        if len(lowered) != len(text):  # lowercasing changed offsets (rare scripts): scan everything
            return list(self.regex.finditer(text))
        starts: list[int] = []
        for needle in self.needles:
            position = lowered.find(needle)
            while position != -1:
                starts.append(position)
                position = lowered.find(needle, position + 1)
        if not starts:
            return []
        if len(self.needles) > 1:
            starts.sort()
        matches: list[re.Match[str]] = []
        end = 0
        for position in starts:
            if position < end:
                continue
            match = self.regex.match(text, position)
            if match is not None:
                end = match.end()
                matches.append(match)
        return matches

    def edits_in_many(self, texts: Sequence[str]) -> list[tuple[int, int, int, str, str]]:
        """(text index, start, end, new text, rule id) for every occurrence in every text.

        One lowercase copy of all texts joined, one ``find`` sweep per needle, and a bisect to map a
        hit back to its text: per-field Python overhead only where a target actually occurs.
        """
        if self.regex is None or not texts:
            return []
        # Lowercase text by text: pure-ASCII fields take CPython's fast path, one big mixed string would not.
        lowered_parts = [text.lower() for text in texts]
        if any(len(low) != len(text) for low, text in zip(lowered_parts, texts, strict=True)):
            # Lowercasing changed offsets (rare scripts): go text by text.
            return [(i, *edit) for i, text in enumerate(texts) for edit in self.edits_in(text)]
        lowered = "\x00".join(lowered_parts)
        offsets: list[int] = []
        position = 0
        for text in texts:
            offsets.append(position)
            position += len(text) + 1
        hits: list[int] = []
        for needle in self.needles:
            position = lowered.find(needle)
            while position != -1:
                hits.append(position)
                position = lowered.find(needle, position + 1)
        hits.sort()
        found: list[tuple[int, int, int, str, str]] = []
        last_text, last_end = -1, 0
        for hit in hits:
            index = bisect_right(offsets, hit) - 1
            local = hit - offsets[index]
            if index == last_text and local < last_end:
                continue
            match = self.regex.match(texts[index], local)
            if match is None:
                continue
            last_text, last_end = index, match.end()
            edit = self._edit(texts[index], match)
            if edit is not None:
                found.append((index, *edit))
        return found

    def _edit(self, text: str, match: re.Match[str]) -> tuple[int, int, str, str] | None:
        alt = self.alternatives[match.lastgroup]  # type: ignore[index]
        core_start, core_end = match.span(alt.core_group)
        rule_id = alt.rule_id
        if rule_id is None:
            exact = self._core_exact.fullmatch(match.group(alt.core_group)) if self._core_exact else None
            if exact:
                form_rule = self._form_rule[alt.group]
                rule_id = form_rule if form_rule in self.rules else RULE_NAME
            else:
                rule_id = RULE_OTHER_CASING
            if rule_id not in self.rules:
                return None
        rule = self.rules[rule_id]
        start, end = match.span()
        if alt.suffix_group and rule.drop_suffix:
            # The suffix group ends the alternative, so the whole match becomes the new name.
            return start, end, text[start:core_start] + rule.replacement, rule_id
        return start, end, text[start:core_start] + rule.replacement + text[core_end:end], rule_id

    def edits_in(self, text: str) -> list[tuple[int, int, str, str]]:
        """(start, end, new text, rule id) for every occurrence in ``text``."""
        if self.regex is None:
            return []
        found: list[tuple[int, int, str, str]] = []
        for match in self._matches(text):
            edit = self._edit(text, match)
            if edit is not None:
                found.append(edit)
        return found


def _string_fields(
    value: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every string inside a JSON value with its path (top-level keys, nested keys, list indices)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _string_fields(item, (*path, key))
    elif isinstance(value, list):
        for number, item in enumerate(value):
            yield from _string_fields(item, (*path, number))


def field_name(path: tuple[str | int, ...]) -> str:
    name = ""
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name


def _as_records(records: Sequence[Record | dict[str, Any]]) -> list[Record]:
    return [r if isinstance(r, Record) else Record(r, number + 1) for number, r in enumerate(records)]


# ---------------------------------------------------------------- the plan


@dataclass
class MaskPlan:
    """Every edit the rules found, and which of them the user accepts. Diffs are built per page."""

    records: list[Record]
    rules: list[MaskRule]
    edits: list[Edit]
    source: SourceInfo | None = None
    rejected_rules: set[str] = field(default_factory=set)
    rejected_rows: set[int] = field(default_factory=set)
    rejected_edits: set[int] = field(default_factory=set)
    _by_row: dict[int, list[Edit]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self._by_row:
            for edit in self.edits:
                self._by_row.setdefault(edit.row, []).append(edit)

    # -- review
    def _check_rule(self, rule_id: str) -> None:
        if rule_id not in {r.id for r in self.rules}:
            known = ", ".join(r.id for r in self.rules)
            raise UserError(f"unknown mask rule {rule_id!r} (rules: {known})")

    def reject_rule(self, rule_id: str) -> None:
        self._check_rule(rule_id)
        self.rejected_rules.add(rule_id)

    def accept_rule(self, rule_id: str) -> None:
        self._check_rule(rule_id)
        self.rejected_rules.discard(rule_id)

    def reject_row(self, row: int) -> None:
        if not 0 <= row < len(self.records):
            raise UserError(f"row {row} is out of range (0..{len(self.records) - 1})")
        self.rejected_rows.add(row)

    def accept_row(self, row: int) -> None:
        self.rejected_rows.discard(row)

    def reject_edit(self, index: int) -> None:
        self.rejected_edits.add(index)

    def accept_edit(self, index: int) -> None:
        self.rejected_edits.discard(index)

    def is_accepted(self, edit: Edit) -> bool:
        return (
            edit.rule_id not in self.rejected_rules
            and edit.row not in self.rejected_rows
            and edit.index not in self.rejected_edits
        )

    # -- counts
    def counts(self, *, accepted_only: bool = False) -> dict[str, dict[str, int]]:
        """{rule id: {field: occurrences}} for every rule (zero counts included as empty dicts)."""
        table: dict[str, dict[str, int]] = {rule.id: {} for rule in self.rules}
        for edit in self.edits:
            if accepted_only and not self.is_accepted(edit):
                continue
            per_field = table[edit.rule_id]
            per_field[edit.field] = per_field.get(edit.field, 0) + 1
        return table

    def field_counts(self, *, accepted_only: bool = False) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for edit in self.edits:
            if not accepted_only or self.is_accepted(edit):
                totals[edit.field] += 1
        return dict(totals)

    @property
    def accepted_edits(self) -> list[Edit]:
        return [edit for edit in self.edits if self.is_accepted(edit)]

    @property
    def rows_with_edits(self) -> list[int]:
        return sorted(self._by_row)

    def edits_for_row(self, row: int) -> list[Edit]:
        """The edits found in one row (accepted or not), in text order; O(1) lookup."""
        return list(self._by_row.get(row, ()))

    # -- preview
    def row_diff(self, row: int) -> RowDiff:
        record = self.records[row]
        edits = self._by_row.get(row, [])
        accepted = [self.is_accepted(edit) for edit in edits]
        chunks: list[str] = []
        by_field: dict[tuple[str | int, ...], list[Edit]] = {}
        for edit, ok in zip(edits, accepted, strict=True):
            if ok:
                by_field.setdefault(edit.path, []).append(edit)
        where = f"{self.source.path}:{record.line}" if self.source else f"row {row}"
        for path, field_edits in by_field.items():
            before = _get(record.data, path)
            after = _replace_spans(before, field_edits)
            name = field_name(path)
            lines = difflib.unified_diff(
                before.splitlines(),
                after.splitlines(),
                fromfile=f"{where} {name}",
                tofile=f"{where} {name} (masked)",
                lineterm="",
                n=1,
            )
            chunks.append("\n".join(lines))
        return RowDiff(row=row, line=record.line, edits=edits, accepted=accepted, diff="\n".join(chunks))

    def diff_page(self, start: int = 0, size: int = 20) -> list[RowDiff]:
        """Diffs of the ``size`` rows with edits starting at the ``start``-th such row."""
        rows = self.rows_with_edits[start : start + size]
        return [self.row_diff(row) for row in rows]

    # -- result
    def masked_records(self) -> list[dict[str, Any]]:
        """The records with accepted edits applied; rows without edits are the original objects."""
        out: list[dict[str, Any]] = []
        for number, record in enumerate(self.records):
            edits = [e for e in self._by_row.get(number, ()) if self.is_accepted(e)]
            if not edits:
                out.append(record.data)
                continue
            by_path: dict[tuple[str | int, ...], list[Edit]] = {}
            for edit in edits:
                by_path.setdefault(edit.path, []).append(edit)
            data = _copy_json(record.data)
            for path, path_edits in by_path.items():
                _set(data, path, _replace_spans(_get(record.data, path), path_edits))
            out.append(data)
        return out

    def rule_lines(self) -> list[str]:
        """A table of rules with their counts per field, for the CLI and logs."""
        fields = sorted(self.field_counts(), key=_field_order)
        header = (
            f"{'rule':<18} {'status':<8} " + " ".join(f"{f:>9}" for f in fields) + f" {'total':>7}  example"
        )
        lines = [header]
        counts = self.counts()
        for rule in self.rules:
            per_field = counts[rule.id]
            status = "rejected" if rule.id in self.rejected_rules else "accepted"
            cells = " ".join(f"{per_field.get(f, 0):>9}" for f in fields)
            example = f"{rule.label} -> {rule.replacement}"
            lines.append(f"{rule.id:<18} {status:<8} {cells} {sum(per_field.values()):>7}  {example}")
        return lines


def _field_order(name: str) -> tuple[int, str]:
    order = {"question": 0, "answer": 1, "context": 2}
    return (order.get(name, 3), name)


def _get(data: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def _set(data: Any, path: tuple[str | int, ...], value: Any) -> None:
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


def _copy_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy_json(item) for item in value]
    return value


def _replace_spans(text: str, edits: Sequence[Edit]) -> str:
    pieces: list[str] = []
    position = 0
    for edit in sorted(edits, key=lambda e: e.start):
        pieces.append(text[position : edit.start])
        pieces.append(edit.new)
        position = edit.end
    pieces.append(text[position:])
    return "".join(pieces)


def plan(
    records: Sequence[Record | dict[str, Any]], rules: Sequence[MaskRule], *, source: SourceInfo | None = None
) -> MaskPlan:
    """Find every occurrence of every rule in every string field of every record."""
    matcher = _Matcher(rules)
    rows = _as_records(records)
    texts: list[str] = []
    owner_rows: list[int] = []
    owner_paths: list[Any] = []  # a top-level key, or a path tuple for a nested string
    for number, record in enumerate(rows):
        for key, value in record.data.items():
            # Top-level strings directly (the common case, and the hot loop); nested values walked.
            if isinstance(value, str):
                texts.append(value)
                owner_rows.append(number)
                owner_paths.append(key)
            elif isinstance(value, (dict, list)):
                for path, text in _string_fields(value, (key,)):
                    texts.append(text)
                    owner_rows.append(number)
                    owner_paths.append(path)
    edits: list[Edit] = []
    for index, start, end, new, rule_id in matcher.edits_in_many(texts):
        number = owner_rows[index]
        path = owner_paths[index]
        if not isinstance(path, tuple):
            path = (path,)
        edits.append(
            Edit(
                len(edits),
                number,
                rows[number].line,
                field_name(path),
                path,
                start,
                end,
                texts[index][start:end],
                new,
                rule_id,
            )
        )
    return MaskPlan(records=rows, rules=list(rules), edits=edits, source=source)


def plan_file(path: str | Path, rules: Sequence[MaskRule]) -> MaskPlan:
    """Read a JSON/JSONL dataset and plan its masking; the source's sha256 is kept for the audit."""
    file_path = Path(path)
    records, fmt = read_records(file_path)
    if not records:
        raise UserError(f"{file_path}: no rows to mask")
    source = SourceInfo(path=str(file_path), sha256=file_sha256(file_path), format=fmt)
    return plan(records, rules, source=source)


# ---------------------------------------------------------------- leak report


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

    @property
    def clean(self) -> bool:
        return not self.leaks

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

    def lines(self, *, limit: int = 20) -> list[str]:
        out = [
            f"leak report: {len(self.leaks)} leak(s) in {self.rows_with_leaks} of {self.rows_scanned} rows"
            f" (terms: {', '.join(self.terms)})"
        ]
        if self.clean:
            out[0] += " - CLEAN"
        for term, count in sorted(self.counts().items()):
            out.append(f"  {term}: {count}")
        for leak in self.leaks[:limit]:
            out.append(
                f"  row {leak.row} (line {leak.line}) {leak.field}: {leak.kind} {leak.text!r} in {leak.snippet!r}"
            )
        if len(self.leaks) > limit:
            out.append(f"  ... {len(self.leaks) - limit} more")
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


_COMPANY_RE = re.compile(r"\bthe Company\b")


def _snippet(text: str, start: int, end: int, width: int = 30) -> str:
    return text[max(0, start - width) : end + width].replace("\n", " ")


def _near_miss_regex(term: str) -> re.Pattern[str] | None:
    """The term's letters with up to two separators between them: N.V.I.D.I.A, N V I D I A, NVI-DIA.

    The word-boundary check sits after the first letter so the regex engine can skip ahead to
    candidate first letters instead of testing a lookbehind at every position."""
    chars = [ch for ch in term if ch.isalnum()]
    if len(chars) < 3:
        return None
    body = r"[\W_]{0,2}".join(re.escape(ch) for ch in chars[1:])
    first = re.escape(chars[0])
    return re.compile(rf"{first}(?<![^\W_].)[\W_]{{0,2}}{body}{_NOT_WORD_AFTER}", re.IGNORECASE)


@dataclass(frozen=True)
class _TermScan:
    term: str
    exact: re.Pattern[str]
    near: re.Pattern[str] | None  # also matches the exact form; None for short terms and tickers
    needle: str  # lowercase first word: a field without it cannot hold an exact match


def leak_report(
    records: Sequence[Record | dict[str, Any]],
    entity: str,
    ticker: str | None = None,
    aliases: Sequence[str] = (),
) -> LeakReport:
    """Case-insensitive scan of every string field for the name, its aliases, ticker and near-misses."""
    core = split_legal_suffix(entity)
    terms = [core] + [a.partition("=")[0].strip() for a in aliases if a.partition("=")[0].strip()]
    scans = [
        _TermScan(
            term,
            re.compile(_NOT_WORD_BEFORE + _literal(term) + _NOT_WORD_AFTER, re.IGNORECASE),
            _near_miss_regex(term),
            term.split()[0].lower(),
        )
        for term in terms
    ]
    if ticker and ticker.strip():
        symbol = ticker.strip()
        flags = re.IGNORECASE if len(symbol) >= 4 else 0
        exact = re.compile(_NOT_WORD_BEFORE + re.escape(symbol) + _NOT_WORD_AFTER, flags)
        scans.append(_TermScan(symbol, exact, None, symbol.lower()))
        terms.append(symbol)
    core_rx = re.compile(_literal(core), re.IGNORECASE)
    core_needle = core.split()[0].lower()
    leaks: list[Leak] = []
    embedded: list[Leak] = []
    company = 0
    company_rows = 0
    rows = _as_records(records)
    for number, record in enumerate(rows):
        row_company = 0
        for path, text in _string_fields(record.data):
            if "the Company" in text:
                row_company += len(_COMPANY_RE.findall(text))
            lowered = text.lower()
            name = ""
            found: list[tuple[int, int]] = []
            for scan in scans:
                if scan.near is None and scan.needle not in lowered:
                    continue
                for match in (scan.near or scan.exact).finditer(text):
                    kind = "exact" if scan.exact.fullmatch(text, *match.span()) else "near-miss"
                    name = name or field_name(path)
                    snippet = _snippet(text, *match.span())
                    leaks.append(Leak(number, record.line, name, kind, scan.term, match.group(), snippet))
                    found.append(match.span())
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
                for match in core_rx.finditer(text):
                    if any(s <= match.start() < e for s, e in found):
                        continue
                    name = name or field_name(path)
                    word = _word_at(text, *match.span())
                    embedded.append(
                        Leak(number, record.line, name, "embedded", core, word, _snippet(text, *match.span()))
                    )
        company += row_company
        company_rows += 1 if row_company else 0
    leaks.sort(key=lambda leak: (leak.row, leak.field))
    return LeakReport(terms, len(rows), leaks, embedded, company, company_rows)


def _word_at(text: str, start: int, end: int) -> str:
    while start > 0 and text[start - 1].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum():
        end += 1
    return text[start:end]


def leak_report_for_rules(
    records: Sequence[Record | dict[str, Any]], rules: Sequence[MaskRule]
) -> LeakReport:
    """The leak report for the targets of a rule set (name, ticker, aliases)."""
    by_id = {rule.id: rule for rule in rules}
    name_rule = next((r for r in rules if not r.id.startswith(ALIAS_PREFIX) and r.id != RULE_TICKER), None)
    if name_rule is None:
        raise UserError("the rules hold no entity name to scan for")
    ticker = by_id[RULE_TICKER].target if RULE_TICKER in by_id else None
    aliases = [r.target for r in rules if r.id.startswith(ALIAS_PREFIX)]
    return leak_report(records, name_rule.target, ticker, aliases)


# ---------------------------------------------------------------- identifying terms

# Capitalised words that identify nothing: calendar words and common acronyms of filings and tech.
_GENERIC_TERMS = frozenset(
    """
    January February March April May June July August September October November December
    Monday Tuesday Wednesday Thursday Friday Saturday Sunday Q1 Q2 Q3 Q4 FY
    AI GPU GPUs CPU CPUs PC PCs IP API APIs SDK SDKs SEC US USA EU UK CEO CFO COO CTO IT HR ESG
    GAAP IPO LLC LLP FAQ OEM OEMs ML IoT COVID COVID-19 Mr Mrs Ms Dr
    President Vice Chairman Chief Officer Director Directors Secretary Counsel Board Committee Series
    Institute University
    """.split()
)
_SENTENCE_STARTERS = frozenset(".?!:;\"'(\u201c")
_LOWER_WORD_RE = re.compile(r"\b[a-z][a-z\-]*\b")
# A capitalised word; the "not after a letter, digit or dot" check follows the first letter so the
# regex engine can jump between capitals instead of testing every position.
_TERM_RE = re.compile(r"([A-Z](?<![\w.].)(?:[\w\-]*\w)?)")


def identifying_terms(
    records: Sequence[Record | dict[str, Any]], entity: str, *, aliases: Sequence[str] = (), limit: int = 50
) -> list[tuple[str, int]]:
    """Product, brand and people names that occur in fields mentioning the name, with total counts.

    A candidate is a capitalised word, not at the start of a sentence, whose lowercase form never
    appears in the set (so "Statement" is dropped when "statement" occurs). Never replaced automatically.
    """
    core = split_legal_suffix(entity)
    skip = {core.casefold(), *(a.partition("=")[0].strip().casefold() for a in aliases)}
    skip |= {s.rstrip(".").casefold() for s in LEGAL_SUFFIXES}
    name_rx = re.compile(_NOT_WORD_BEFORE + _literal(core) + _NOT_WORD_AFTER, re.IGNORECASE)
    needle = core.split()[0].lower()
    near: Counter[str] = Counter()
    total: Counter[str] = Counter()
    lowercase_words: set[str] = set()
    for record in _as_records(records):
        texts = [text for _path, text in _string_fields(record.data)]
        # "Near" = in a row that names the company, by its name or as "the Company".
        mentions = any(
            (needle in text.lower() and name_rx.search(text)) or "the Company" in text for text in texts
        )
        for text in texts:
            lowercase_words.update(_LOWER_WORD_RE.findall(text))
            for match in _TERM_RE.finditer(text):
                word = match.group(1)
                before = match.start() - 1
                while before >= 0 and text[before].isspace():
                    before -= 1
                if before < 0 or text[before] in _SENTENCE_STARTERS:  # sentence start or heading
                    continue
                total[word] += 1
                if mentions:
                    near[word] += 1
    result = []
    for word in near:
        folded = word.casefold()
        if folded in skip or word in _GENERIC_TERMS or word.lower() in lowercase_words:
            continue
        if len(word) < 2:
            continue
        result.append((word, total[word]))
    result.sort(key=lambda item: (-item[1], item[0]))
    return result[:limit]


# ---------------------------------------------------------------- apply / undo


@dataclass
class MaskResult:
    output_path: str
    output_format: str
    output_sha256: str
    source: SourceInfo | None
    rows: int
    edits_applied: int
    counts: dict[str, dict[str, int]]
    leaks: LeakReport
    mask_id: int | None = None
    backup_path: str | None = None


def _format_for(out_path: Path, fallback: str) -> str:
    suffix = out_path.suffix.lower()
    if suffix == ".jsonl":
        return "jsonl"
    if suffix == ".json":
        return "json"
    return fallback


def apply(
    mask_plan: MaskPlan,
    out_path: str | Path,
    store: Any = None,
    *,
    entity: str | None = None,
    new_name: str | None = None,
    overwrite: bool = False,
) -> MaskResult:
    """Write the accepted edits to a NEW file atomically and record the masking in ``store``.

    The input is never written. An existing output is replaced only with ``overwrite=True``; its
    old content is kept as a backup beside it so ``undo`` can restore it.
    """
    out = Path(out_path)
    source = mask_plan.source
    if source is not None:
        source_path = Path(source.path)
        if out.resolve() == source_path.resolve():
            raise UserError(f"{out}: the output must be a new file, not the input")
        if source_path.exists() and file_sha256(source_path) != source.sha256:
            raise UserError(f"{source_path}: changed since the masking was planned; plan again")
    if out.is_dir():
        raise UserError(f"{out}: is a folder, expected a file name")
    if out.exists() and not overwrite:
        raise UserError(f"{out}: already exists (choose another name or overwrite it explicitly)")
    fmt = _format_for(out, source.format if source else "jsonl")
    masked = mask_plan.masked_records()
    accepted = mask_plan.accepted_edits
    counts = mask_plan.counts(accepted_only=True)
    rules = mask_plan.rules
    name_rule = next((r for r in rules if not r.id.startswith(ALIAS_PREFIX) and r.id != RULE_TICKER), None)
    entity_name = entity or (name_rule.target if name_rule else "")
    new = new_name or (name_rule.replacement if name_rule else "")

    mask_id = None
    if store is not None:
        from store import masks as mask_store

        mask_id = mask_store.start_mask(
            store,
            entity=entity_name,
            new_name=new,
            source_path=source.path if source else None,
            source_sha256=source.sha256 if source else None,
            source_format=source.format if source else None,
            output_path=str(out.resolve()),
            output_format=fmt,
            rules=[_rule_dict(rule) for rule in rules],
            rejected={
                "rules": sorted(mask_plan.rejected_rules),
                "rows": sorted(mask_plan.rejected_rows),
                "edits": sorted(mask_plan.rejected_edits),
            },
        )
    backup: Path | None = None
    try:
        if out.exists():
            backup = out.with_name(f".{out.name}.before-mask-{mask_id or os.getpid()}.bak")
            shutil.copy2(out, backup)
        write_records_atomic(out, masked, fmt)
    except BaseException as exc:
        if backup is not None:
            backup.unlink(missing_ok=True)
        if store is not None and mask_id is not None:
            mask_store.fail_mask(store, mask_id, error=f"{type(exc).__name__}: {exc}")
        raise
    output_sha = file_sha256(out)
    leaks = leak_report_for_rules(masked, rules)
    if store is not None and mask_id is not None:
        mask_store.finish_mask(
            store,
            mask_id,
            output_sha256=output_sha,
            backup_path=str(backup) if backup else None,
            rows=len(masked),
            edits_applied=len(accepted),
            counts=counts,
            leaks={"clean": leaks.clean, "count": len(leaks.leaks), "by_term": leaks.counts()},
        )
        from store.core import add_dataset

        add_dataset(
            store,
            name=out.stem,
            path=str(out.resolve()),
            kind="masked",
            rows=len(masked),
            unique_rows=len({repr(sorted(r.items())) for r in masked}),
            sha256=output_sha,
            source={
                "mask_id": mask_id,
                "source": source.path if source else None,
                "entity": entity_name,
                "as": new,
            },
        )
    return MaskResult(
        output_path=str(out),
        output_format=fmt,
        output_sha256=output_sha,
        source=source,
        rows=len(masked),
        edits_applied=len(accepted),
        counts=counts,
        leaks=leaks,
        mask_id=mask_id,
        backup_path=str(backup) if backup else None,
    )


def _rule_dict(rule: MaskRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "label": rule.label,
        "target": rule.target,
        "replacement": rule.replacement,
        "case_sensitive": rule.case_sensitive,
        "drop_suffix": rule.drop_suffix,
    }


def undo(store: Any, mask_id: int) -> str:
    """Undo a recorded masking: remove its output (or restore the file it replaced).

    Refuses when the output was changed after the masking, so nothing is lost.
    """
    from store import masks as mask_store

    record = mask_store.get_mask(store, mask_id)
    if not record:
        raise UserError(f"no masking with id {mask_id}")
    if record["status"] == "undone":
        raise UserError(f"masking {mask_id} was already undone")
    if record["status"] != "done":
        raise UserError(f"masking {mask_id} did not finish (status {record['status']}); nothing to undo")
    out = Path(record["output_path"])
    backup = Path(record["backup_path"]) if record.get("backup_path") else None
    if out.exists():
        if file_sha256(out) != record["output_sha256"]:
            raise UserError(f"{out}: changed since masking {mask_id}; not touching it")
        if backup is not None and backup.exists():
            os.replace(backup, out)
            message = f"restored {out} to its content before masking {mask_id}"
        else:
            out.unlink()
            message = f"removed {out}"
    else:
        message = f"{out} was already gone"
    mask_store.mark_undone(store, mask_id)
    return message
