"""``ft-hallu profile``: the entity profile the claim checks build from a QA file's contexts."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cli.common import db_path_from
from engine.dataset import load_items
from engine.errors import UserError
from engine.workspace import Workspace


def _profile(args: argparse.Namespace) -> int:
    if not args.entity.strip():
        raise UserError("--entity: give the (masked) entity name, e.g. --entity ZYTRELL")
    if not Path(args.dataset).is_file():  # before the store is opened: nothing is created
        raise UserError(f"--dataset {args.dataset}: no such file")
    load_items(args.dataset, require_context=False)  # a bad file: its line and field, nothing written
    with Workspace.open(db_path_from(args)) as workspace:
        profile = workspace.entity_profile(args.dataset, args.entity.strip())
    if args.json:
        json.dump(profile.to_dict(), sys.stdout, indent=2, ensure_ascii=False)
        print()
        return 0
    print(
        f"entity profile of {args.entity} from {args.dataset}: {len(profile.facts)} facts "
        f"(key {profile.key}, extractor v{profile.version}; 'now' = {profile.latest_year or 'unknown'})"
    )
    for what, value, sentence in profile.summary():
        print(f"  {what:<20} {value}")
        print(f"  {'':<20}   ← {sentence}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "profile",
        help="print the entity profile built from a QA file's contexts (what the claim checks believe)",
        description=(
            "Founding year, headquarters, size, listing, products and services, customers, suppliers, "
            "competitors, partners and places, each with its source sentence. Built once per source "
            "set and kept in the store (docs/METRICS.md, 'Entity profile')."
        ),
    )
    parser.add_argument(
        "--dataset", required=True, help="QA file (JSONL/JSON/CSV) whose context fields are the sources"
    )
    parser.add_argument("--entity", required=True, help="the (masked) entity name, e.g. ZYTRELL")
    parser.add_argument("--json", action="store_true", help="print the profile as JSON")
    parser.set_defaults(func=_profile)
