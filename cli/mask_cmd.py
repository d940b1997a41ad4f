"""``ft-hallu mask``: replace a company's name in a QA set, preview the diff, report leaks; and undo."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.common import ID, NAME, Checked, CheckedAppend, db_path_from
from engine import mask
from engine.dataset import read_records
from engine.errors import UserError
from engine.workspace import Workspace


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "mask",
        help="replace a company name with an invented one (preview with --diff)",
        description="Mask an entity name in every string field of a JSON/JSONL QA set. Writes a NEW file "
        "atomically, never the input, records the masking in the store and ends with a leak report "
        "(exit 1 when anything identifying remains).",
    )
    p.add_argument("file", help="dataset to mask (JSON array or JSONL)")
    p.add_argument("--entity", action=Checked, rules=NAME, required=True, help="the real name, e.g. NVIDIA")
    p.add_argument(
        "--as",
        dest="new_name",
        action=Checked,
        rules=NAME,
        required=True,
        help="the invented name, e.g. EGNIVIA (casing kept)",
    )
    p.add_argument("--ticker", action=Checked, rules=NAME, help="the stock ticker, e.g. NVDA")
    p.add_argument(
        "--new-ticker", action=Checked, rules=NAME, help="replacement ticker (default: the new name's first letters)"
    )
    p.add_argument(
        "--alias",
        action=CheckedAppend,
        rules=NAME,
        metavar="A",
        help="another name of the company; OLD=NEW sets its replacement",
    )
    p.add_argument("--out", help="output file (.json or .jsonl; required unless --diff)")
    p.add_argument(
        "--diff", action="store_true", help="preview only: rules, counts, diffs, leak report; write nothing"
    )
    p.add_argument(
        "--page", action=Checked, kind=int, rules={"min": 0}, default=0, help="diff page to show (with --diff)"
    )
    p.add_argument("--page-size", action=Checked, kind=int, rules={"min": 1}, default=10, help="rows per diff page")
    p.add_argument("--reject-rule", action="append", default=[], metavar="ID", help="do not apply this rule")
    p.add_argument("--accept-rule", action="append", default=[], metavar="ID", help="apply ONLY these rules")
    p.add_argument(
        "--reject-row", action=CheckedAppend, kind=int, rules={"min": 0}, metavar="N", help="leave row N (0-based) as is"
    )
    p.add_argument(
        "--drop-suffix",
        action="store_true",
        help="'NVIDIA Corporation' -> 'EGNIVIA' (default keeps the suffix)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing output file (undo restores it)"
    )
    p.set_defaults(func=run_mask)

    u = subparsers.add_parser("mask-undo", help="undo a recorded masking (removes its output)")
    u.add_argument("mask_id", action=Checked, kind=int, rules=ID)
    u.set_defaults(func=run_undo)

    ls = subparsers.add_parser("mask-list", help="list recorded maskings (audit)")
    ls.set_defaults(func=run_list)

    lk = subparsers.add_parser(
        "mask-leaks", help="leak report for any set: does it name the company, or say 'the Company'?"
    )
    lk.add_argument("file")
    lk.add_argument("--entity", action=Checked, rules=NAME, required=True)
    lk.add_argument("--ticker", action=Checked, rules=NAME)
    lk.add_argument("--alias", action=CheckedAppend, rules=NAME, metavar="A")
    lk.set_defaults(func=run_leaks)


def _build_plan(args: argparse.Namespace) -> mask.MaskPlan:
    rules = mask.propose_rules(
        args.entity,
        new_name=args.new_name,
        ticker=args.ticker,
        new_ticker=args.new_ticker,
        aliases=args.alias,
        keep_suffix=not args.drop_suffix,
    )
    mask_plan = mask.plan_file(args.file, rules)
    if args.accept_rule:
        for rule_id in args.accept_rule:
            mask_plan.accept_rule(rule_id)  # validates the id
        for rule in rules:
            if rule.id not in args.accept_rule:
                mask_plan.reject_rule(rule.id)
    for rule_id in args.reject_rule:
        mask_plan.reject_rule(rule_id)
    for row in args.reject_row:
        mask_plan.reject_row(row)
    return mask_plan


def _print_terms(records: list, entity: str, aliases: list[str]) -> None:
    terms = mask.identifying_terms(records, entity, aliases=aliases, limit=20)
    if terms:
        listed = ", ".join(f"{term} ({count})" for term, count in terms)
        print(f"other identifying terms near the name (not replaced, decide yourself): {listed}")


def run_mask(args: argparse.Namespace) -> int:
    if not args.diff and not args.out:
        raise UserError("--out FILE is required (or use --diff to preview)")
    mask_plan = _build_plan(args)
    if not mask_plan.edits:  # a typo in --entity: say so instead of writing an unchanged copy
        mask.require_changes(mask_plan, args.entity)
    found = len(mask_plan.edits)
    accepted = len(mask_plan.accepted_edits)
    print(f"{args.file}: {len(mask_plan.records)} rows, {found} occurrence(s) found, {accepted} to replace")
    print("\n".join(mask_plan.rule_lines()))
    if args.diff:
        rows = mask_plan.rows_with_edits
        pages = max(1, -(-len(rows) // args.page_size))
        print(f"\ndiff page {args.page + 1} of {pages} ({len(rows)} rows with edits)")
        for row_diff in mask_plan.diff_page(args.page * args.page_size, args.page_size):
            print(row_diff.diff or f"(row {row_diff.row}: every edit rejected)")
        print()
        print("\n".join(mask.leak_report_for_rules(mask_plan.masked_records(), mask_plan.rules).lines()))
        _print_terms(mask_plan.records, args.entity, args.alias)
        return 0
    # Every refusal of apply() first, so a bad --out never opens (or creates) the store.
    mask.check_output(mask_plan, Path(args.out), entity=args.entity, overwrite=args.overwrite)
    with Workspace.open(db_path_from(args)) as workspace:
        _recover(workspace)
        result = workspace.apply_mask(
            mask_plan, args.out, entity=args.entity, new_name=args.new_name, overwrite=args.overwrite
        )
    print(
        f"wrote {result.output_path} ({result.output_format}, {result.rows} rows, {result.edits_applied} edits); "
        f"masking id {result.mask_id} (undo: ft-hallu mask-undo {result.mask_id})"
    )
    print("\n".join(result.leaks.lines()))
    _print_terms(mask_plan.records, args.entity, args.alias)
    if not result.leaks.clean:
        print("ft-hallu: leaks remain in the output (see above)", file=sys.stderr)
        return 1
    return 0


def _recover(workspace: Workspace) -> None:
    """Settle maskings a killed run left 'writing', and say what was done."""
    for note in workspace.recover_masks():
        print(f"note: {note}", file=sys.stderr)


def run_undo(args: argparse.Namespace) -> int:
    with Workspace.open(db_path_from(args)) as workspace:
        _recover(workspace)
        print(workspace.undo_mask(args.mask_id).message)
    return 0


def run_list(args: argparse.Namespace) -> int:
    with Workspace.open(db_path_from(args)) as workspace:
        _recover(workspace)
        records = workspace.masks()
    if not records:
        print("no maskings recorded")
    for record in records:
        print(
            f"{record.id:>4}  {record.status:<11} {record.created_at}  {record.entity} -> {record.new_name}  "
            f"{record.source_path} -> {record.output_path}  edits {record.edits_applied}"
        )
    return 0


def run_leaks(args: argparse.Namespace) -> int:
    records, _fmt = read_records(args.file)
    report = mask.leak_report(records, args.entity, args.ticker, args.alias)
    print("\n".join(report.lines()))
    _print_terms(records, args.entity, args.alias)
    return 0 if report.clean else 1
