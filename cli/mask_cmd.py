"""``ft-hallu mask {plan,undo,list,leaks}``: replace a company's name in a QA set (preview the diff),
undo it, list the recorded maskings, report leaks in any set."""

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
    group = subparsers.add_parser(
        "mask",
        help="replace a company name with an invented one, undo it, list maskings, report leaks",
        description="`mask plan FILE --entity N --as NEW (--diff | --out OUT)` masks a QA set; `mask undo ID`, "
        "`mask list` and `mask leaks FILE --entity N` look after it.",
    )
    actions = group.add_subparsers(dest="mask_action", metavar="ACTION", required=True)
    p = actions.add_parser(
        "plan",
        help="mask an entity name in a QA set (preview with --diff, write with --out)",
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
    p.add_argument(
        "--also-mask-leaks",
        action="store_true",
        help="also mask every identifying name the leak report finds (products, people, tickers), "
        "each with an invented replacement; the rules are leak:NAME (reject one to keep that name)",
    )
    p.add_argument(
        "--mask-leak",
        action="append",
        default=[],
        metavar="NAME",
        help="also mask this identifying name with an invented replacement (repeatable)",
    )
    p.add_argument(
        "--leak-seed", type=int, default=0, help="seed of the invented replacements (same seed, same names)"
    )
    p.set_defaults(func=run_mask)

    u = actions.add_parser("undo", help="undo a recorded masking (removes its output)")
    u.add_argument("mask_id", action=Checked, kind=int, rules=ID)
    u.set_defaults(func=run_undo)

    ls = actions.add_parser("list", help="list recorded maskings (audit)")
    ls.set_defaults(func=run_list)

    lk = actions.add_parser(
        "leaks", help="leak report for any set: does it name the company, or say 'the Company'?"
    )
    lk.add_argument("file")
    lk.add_argument("--entity", action=Checked, rules=NAME, required=True)
    lk.add_argument("--ticker", action=Checked, rules=NAME)
    lk.add_argument("--alias", action=CheckedAppend, rules=NAME, metavar="A")
    lk.add_argument(
        "--as",
        dest="new_name",
        action=Checked,
        rules=NAME,
        help="the invented name the set was masked with: it counts as the entity, never as a leak",
    )
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
    if args.also_mask_leaks or args.mask_leak:  # before the rule choices: they may name leak:NAME
        names = None if args.also_mask_leaks else args.mask_leak
        mask_plan = mask.add_leak_rules(mask_plan, names, seed=args.leak_seed)
    if args.accept_rule:
        for rule_id in args.accept_rule:
            mask_plan.accept_rule(rule_id)  # validates the id
        for rule in mask_plan.rules:
            if rule.id not in args.accept_rule:
                mask_plan.reject_rule(rule.id)
    for rule_id in args.reject_rule:
        mask_plan.reject_rule(rule_id)
    for row in args.reject_row:
        mask_plan.reject_row(row)
    return mask_plan


# How to mask the identifying names a report lists, said where the report is printed.
MASK_HINT = (
    "not done: mask them too with --also-mask-leaks (or --mask-leak NAME); "
    "keep one on purpose with --also-mask-leaks --reject-rule 'leak:NAME'"
)
LEAKS_HINT = "mask them: run ft-hallu mask plan on the unmasked file again with --also-mask-leaks"


def _remaining(report: mask.LeakReport) -> str:
    """One stderr line saying what remains in a written file."""
    parts = []
    if report.leaks:
        parts.append(f"{len(report.leaks)} name leak(s)")
    if report.names:
        parts.append(f"{len(report.names)} identifying name(s) ({', '.join(n.name for n in report.names[:5])})")
    return "ft-hallu: " + " and ".join(parts) + " remain in the output (see above)"


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
        print("\n".join(mask.plan_leak_report(mask_plan).lines(hint=MASK_HINT)))
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
        f"masking id {result.mask_id} (undo: ft-hallu mask undo {result.mask_id})"
    )
    print("\n".join(result.leaks.lines(hint=MASK_HINT)))
    if not result.leaks.clean:
        print(_remaining(result.leaks), file=sys.stderr)
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
    recorded = None
    if Path(db_path_from(args)).is_file():  # never create a store just to read a report
        with Workspace.open(db_path_from(args)) as workspace:
            recorded = workspace.recorded_mask_for(args.file)
    if recorded is not None and recorded.entity.casefold() == args.entity.casefold():
        # The file a recorded masking wrote: its invented names and kept names are known.
        print(f"{args.file}: written by masking {recorded.mask_id} ({recorded.entity} -> {recorded.new_name})")
        report = mask.leak_report_for_rules(records, recorded.rules, rejected=recorded.rejected)
    else:
        new_names = [args.new_name] if args.new_name else []
        report = mask.leak_report(records, args.entity, args.ticker, args.alias, new_names=new_names)
    print("\n".join(report.lines(hint=LEAKS_HINT)))
    return 0 if report.clean else 1
