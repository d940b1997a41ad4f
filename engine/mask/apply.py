"""Apply a plan to a NEW file atomically and record it in the store; undo a recorded masking."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.dataset import dump_records, read_records
from engine.errors import UserError
from engine.files import file_sha256, first_existing_parent, remove_leftovers, write_atomic
from engine.liveness import recorded
from engine.mask.leaks import LeakReport, closest_spelling, leak_report_for_rules
from engine.mask.plan import MaskPlan, SourceInfo
from engine.mask.rules import MaskRule, name_rule
from store import masks as mask_store
from store.core import add_dataset
from store.db import write_transaction


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


def require_changes(mask_plan: MaskPlan, entity: str) -> None:
    """Refuse a masking that would change nothing: a typo in the name must not pass as CLEAN."""
    if mask_plan.edits and mask_plan.accepted_edits:
        return
    if mask_plan.edits:
        raise UserError(
            f"all {len(mask_plan.edits)} occurrence(s) of {entity} are rejected: the output would be an "
            "unchanged copy"
        )
    guess = closest_spelling(mask_plan.records, entity)
    hint = f"; did you mean {guess[0]} ({guess[1]})?" if guess and guess[0] != entity else ""
    where = f" of {mask_plan.source.path}" if mask_plan.source else ""
    raise UserError(f"no occurrence of {entity} in any field{where}{hint}")


def check_output(mask_plan: MaskPlan, out: Path, *, entity: str | None, overwrite: bool) -> None:
    """Everything ``apply`` refuses, checked before a store is opened or a byte is written."""
    source = mask_plan.source
    require_changes(mask_plan, entity or mask_plan.rules[0].target)
    parent = first_existing_parent(out.parent)
    if not parent.is_dir():
        raise UserError(f"{out}: cannot write here, {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{out}: cannot write here, {parent} is not writable")
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
    check_output(mask_plan, out, entity=entity, overwrite=overwrite)
    fmt = _format_for(out, source.format if source else "jsonl")
    masked = mask_plan.masked_records()
    accepted = mask_plan.accepted_edits
    counts = mask_plan.counts(accepted_only=True)
    rules = mask_plan.rules
    main = name_rule(rules)
    entity_name = entity or (main.target if main else "")
    new = new_name or (main.replacement if main else "")

    text = dump_records(masked, fmt)
    for leftover in remove_leftovers(out):  # temp files of a killed earlier write of this output
        print(f"note: removed {leftover}, left by an interrupted masking", file=sys.stderr)
    mask_id = None
    if store is not None:
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
            planned_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        )
    backup: Path | None = None

    def mark(status: str, reason: str) -> None:
        if store is not None and mask_id is not None:
            mask_store.fail_mask(store, mask_id, error=reason, status=status)

    # The output and its record agree: both or neither. The output is written first (atomically),
    # then the record that it is done, with its dataset row, in one transaction; if that record
    # cannot be written, the output is taken back (the old file restored) before the error goes on.
    with recorded(mark):
        written = False
        try:
            if out.exists():
                backup = _backup_path(out, mask_id or os.getpid())
                shutil.copy2(out, backup)
            write_atomic(out, text)
            written = True
            output_sha = file_sha256(out)
            # Identifying names are learned from the unmasked rows; a rejected name rule keeps that name.
            leaks = leak_report_for_rules(
                masked, rules, sources=mask_plan.records, rejected=mask_plan.rejected_rules
            )
            if store is not None and mask_id is not None:
                _record_done(store, mask_id, mask_plan, out, backup, masked, counts, leaks, output_sha, entity_name, new)
        except BaseException:
            if written:
                _take_back(out, backup)
            elif backup is not None:
                backup.unlink(missing_ok=True)
            raise
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


def _record_done(
    store: Any,
    mask_id: int,
    mask_plan: MaskPlan,
    out: Path,
    backup: Path | None,
    masked: list[dict[str, Any]],
    counts: dict[str, dict[str, int]],
    leaks: LeakReport,
    output_sha: str,
    entity_name: str,
    new: str,
) -> None:
    """The masking is done and its output a dataset: one transaction, so the store holds both or neither."""
    source = mask_plan.source
    with write_transaction(store.db):
        mask_store.finish_mask(
            store,
            mask_id,
            output_sha256=output_sha,
            backup_path=str(backup) if backup else None,
            rows=len(masked),
            edits_applied=len(mask_plan.accepted_edits),
            counts=counts,
            leaks={
                "clean": leaks.clean,
                "count": len(leaks.leaks),
                "by_term": leaks.counts(),
                "names": {name.name: name.rows for name in leaks.names},
                "kept": {name.name: name.rows for name in leaks.kept},
            },
        )
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


def _take_back(out: Path, backup: Path | None) -> None:
    """Undo a written output whose record failed: restore the file it replaced, or remove it."""
    if backup is not None and backup.exists():
        os.replace(backup, out)
    else:
        out.unlink(missing_ok=True)


def _backup_path(out: Path, mask_id: int) -> Path:
    return out.with_name(f".{out.name}.before-mask-{mask_id}.bak")


def recover_interrupted(store: Any) -> list[str]:
    """Settle maskings a killed process left 'writing'; returns one line per masking it settled.

    Complete output (its sha256 is the one planned): the masking is recorded as done, so undo works.
    Otherwise it is marked failed; the old output is untouched (writes are atomic) and the temp file
    and backup the killed run left are removed.
    """
    notes = []
    for row in mask_store.orphaned_masks(store):
        out = Path(row["output_path"])
        backup = _backup_path(out, row["id"])
        removed = remove_leftovers(out)
        if out.exists() and row.get("planned_sha256") and file_sha256(out) == row["planned_sha256"]:
            records, _fmt = read_records(out)
            rules = [MaskRule(**rule) for rule in row.get("rules") or []]
            leaks = leak_report_for_rules(records, rules, rejected=_rejected_rules(row)) if rules else None
            mask_store.finish_mask(
                store,
                row["id"],
                output_sha256=row["planned_sha256"],
                backup_path=str(backup) if backup.exists() else None,
                rows=len(records),
                edits_applied=None,
                counts={},
                leaks={"clean": leaks.clean, "count": len(leaks.leaks), "recovered": True} if leaks else {},
            )
            notes.append(
                f"masking {row['id']}: its writer was killed after {out} was complete; recorded as done"
            )
        else:
            backup.unlink(missing_ok=True)
            mask_store.fail_mask(
                store, row["id"], error=f"writer process {row['pid']} on {row['host']} is gone", status="interrupted"
            )
            notes.append(
                f"masking {row['id']}: its writer was killed before {out} was written; marked interrupted"
                + (f", removed {len(removed)} temp file(s)" if removed else "")
            )
    return notes


@dataclass(frozen=True)
class RecordedMask:
    """The rules a recorded masking applied, found from the file it wrote."""

    mask_id: int
    entity: str
    new_name: str
    rules: list[MaskRule]
    rejected: list[str]  # ids of the rules the user turned off


def recorded_mask_for(store: Any, path: str | Path) -> RecordedMask | None:
    """The done masking whose output is this file, byte for byte (its sha256), or None; its rules
    let a later leak report know the invented names and the names kept on purpose."""
    sha = file_sha256(Path(path))
    done = [row for row in mask_store.list_masks(store) if row.get("status") == "done" and row.get("rules")]
    for row in done:
        if row.get("output_sha256") == sha:
            return _recorded(row)
    # A copy that holds only rows of a masked output (its duplicates dropped, a subset kept) carries
    # that masking's names too; the rows are compared as JSON, so a rewritten layout still matches.
    rows = _row_keys(Path(path))
    if rows:
        for row in done:
            output = Path(str(row.get("output_path") or ""))
            if output.is_file() and rows <= _row_keys(output):
                return _recorded(row)
    return None


def _recorded(row: dict[str, Any]) -> RecordedMask:
    rules = [MaskRule(**rule) for rule in row["rules"]]
    return RecordedMask(int(row["id"]), str(row["entity"]), str(row["new_name"]), rules, _rejected_rules(row))


def _row_keys(path: Path) -> frozenset[str]:
    """Each record of a QA file as canonical JSON; empty when the file cannot be read as one."""
    try:
        records, _fmt = read_records(path)
    except (OSError, UserError, ValueError):
        return frozenset()
    return frozenset(json.dumps(record.data, sort_keys=True, ensure_ascii=False) for record in records)


def _rejected_rules(row: dict[str, Any]) -> list[str]:
    rejected = row.get("rejected") or {}
    return list(rejected.get("rules") or []) if isinstance(rejected, dict) else []


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
