"""The reviewable plan: every edit the rules found, which are accepted, and their diffs."""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.dataset import Record, read_records
from engine.errors import UserError
from engine.files import file_sha256
from engine.mask.matcher import Matcher
from engine.mask.rules import MaskRule


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


def string_fields(
    value: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every string inside a JSON value with its path (top-level keys, nested keys, list indices)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from string_fields(item, (*path, key))
    elif isinstance(value, list):
        for number, item in enumerate(value):
            yield from string_fields(item, (*path, number))


def field_name(path: tuple[str | int, ...]) -> str:
    name = ""
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name


def as_records(records: Sequence[Record | dict[str, Any]]) -> list[Record]:
    return [r if isinstance(r, Record) else Record(r, number + 1) for number, r in enumerate(records)]


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
        width = max([18, *(len(rule.id) for rule in self.rules)])  # leak:NAME ids can be long
        header = (
            f"{'rule':<{width}} {'status':<8} " + " ".join(f"{f:>9}" for f in fields) + f" {'total':>7}  example"
        )
        lines = [header]
        counts = self.counts()
        for rule in self.rules:
            per_field = counts[rule.id]
            status = "rejected" if rule.id in self.rejected_rules else "accepted"
            cells = " ".join(f"{per_field.get(f, 0):>9}" for f in fields)
            example = f"{rule.label} -> {rule.replacement}"
            lines.append(f"{rule.id:<{width}} {status:<8} {cells} {sum(per_field.values()):>7}  {example}")
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
    matcher = Matcher(rules)
    rows = as_records(records)
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
                for path, text in string_fields(value, (key,)):
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
