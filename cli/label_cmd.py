"""``ft-hallu label``: label a sweep's samples in the terminal, or import/export labels as CSV."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from cli.common import ID, NAME, Checked, db_path_from
from engine import labels as engine_labels
from engine.errors import UserError
from engine.metrics.claims import marked_answer
from engine.workspace import Workspace

_KEYS_HELP = ", ".join(f"{key} = {label}" for key, label in engine_labels.LABEL_KEYS.items())
_PROMPT = "label [f/h/r/u], s = skip, q = quit (a note may follow the key: 'h wrong business'): "


def _mark(word: str, decision: str) -> str:
    return f"[[{word}]]" if decision != "supported" else f"[{word}]"


def show_sample(sample: engine_labels.LabelSample, position: int, total: int, out: TextIO) -> None:
    """What the labeller reads: grid position, prompt, the answer with unsupported words marked,
    each claim with its decision and evidence."""
    print(
        f"\n--- {position}/{total}  generation {sample.generation_id}: {sample.variant}, "
        f"T={sample.temperature:g} top_p={sample.top_p:g} top_k={sample.top_k} sample {sample.sample_index}"
        + (f"  (now: {sample.label})" if sample.label else ""),
        file=out,
    )
    print(f"prompt: {sample.prompt}", file=out)
    print(f"answer: {marked_answer(sample.text, sample.claims, mark=_mark)}", file=out)
    if not sample.claims:
        print("claims: none checked (a refusal, or a sweep without sources)", file=out)
    for number, claim in enumerate(sample.claims, start=1):
        print(
            f"  claim {number} [{claim['decision']}, {claim['rule']}, {claim['score']:.2f}]: {claim['text']}",
            file=out,
        )
        if claim.get("evidence"):
            print(f"    evidence: {claim['evidence']}", file=out)
    print(
        "  [[word]]: not in the evidence of an unsupported/contradicted claim; [word]: of a supported one",
        file=out,
    )


def _interactive(workspace: Workspace, args: argparse.Namespace, source: TextIO, out: TextIO) -> int:
    who = args.who or engine_labels.default_labeller()
    workspace.score(args.sweep)  # claims and evidence for anything not scored yet (incremental)
    with workspace.handle() as store:
        queue = engine_labels.labelling_queue(store, args.sweep, who=who, relabel=args.relabel)
        if args.variant:
            queue = [g for g in queue if engine_labels.label_sample(store, g).variant == args.variant]
    if not queue:
        print(f"sweep {args.sweep}: nothing left for {who} to label", file=out)
        return 0
    print(f"sweep {args.sweep}: {len(queue)} sample(s) to label as {who} ({_KEYS_HELP})", file=out)
    saved = 0
    for position, generation_id in enumerate(queue, start=1):
        with workspace.handle() as store:
            sample = engine_labels.label_sample(store, generation_id, who=who)
        show_sample(sample, position, len(queue), out)
        while True:
            print(_PROMPT, end="", file=out, flush=True)
            line = source.readline()
            if not line:  # end of input: what was labelled is saved
                print(f"\nsaved {saved} label(s); run again to continue", file=out)
                return 0
            key, _, note = line.strip().partition(" ")
            key = key.lower()
            if key == "q":
                print(f"saved {saved} label(s); run again to continue", file=out)
                return 0
            if key == "s":
                break
            if key in engine_labels.LABEL_KEYS:
                with workspace.handle() as store:
                    engine_labels.set_label(
                        store,
                        generation_id,
                        engine_labels.LABEL_KEYS[key],
                        who=who,
                        note=note.strip() or None,
                    )
                saved += 1
                break
            print(f"unknown key {key!r} ({_KEYS_HELP})", file=out)
    print(f"saved {saved} label(s); every sample seen", file=out)
    return 0


def _label(args: argparse.Namespace) -> int:
    with Workspace.open(db_path_from(args)) as workspace:
        if not any(sweep.id == args.sweep for sweep in workspace.sweeps()):
            raise UserError(f"--sweep {args.sweep}: no such sweep")
        if args.action is None:
            if args.file:
                raise UserError(
                    f"unexpected argument {args.file!r}: did you mean 'label import {args.file}'?"
                )
            return _interactive(workspace, args, sys.stdin, sys.stdout)
        if not args.file:
            raise UserError(f"label {args.action}: give the CSV file")
        with workspace.handle() as store:
            if args.action == "export":
                rows = engine_labels.export_labels_csv(store, args.sweep, args.file, who=args.who)
                print(f"wrote {rows} label(s) of sweep {args.sweep} to {args.file}")
            else:
                who = args.who or engine_labels.default_labeller()
                result = engine_labels.import_labels_csv(
                    store, args.sweep, args.file, who=who, variant=args.variant
                )
                print(f"sweep {args.sweep}: {result.written} label(s) imported from {args.file}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    label = subparsers.add_parser(
        "label",
        help="label samples faithful / hallucinated / refusal / unclear (terminal, or CSV import/export)",
        description=(
            "Without an action: show each unlabelled sample of the sweep (prompt, answer, claims with "
            f"their evidence) and read one key per label from standard input ({_KEYS_HELP}); resumable. "
            "'import FILE' reads labels from CSV (generation_id, or temperature/top_p/top_k with "
            "variant, prompt_id, sample_index; label; note or reason; who); 'export FILE' writes them."
        ),
    )
    label.add_argument("action", nargs="?", choices=("import", "export"), help="CSV import or export")
    label.add_argument("file", nargs="?", help="the CSV file (import/export)")
    label.add_argument("--sweep", action=Checked, kind=int, rules=ID, required=True)
    label.add_argument(
        "--who", action=Checked, rules=NAME, default=None,
        help="labeller name (default: $FT_HALLU_LABELLER or the login)",
    )  # fmt: skip
    label.add_argument("--variant", default=None, help="only this variant; for import, rows without one")
    label.add_argument("--relabel", action="store_true", help="go through labelled samples again too")
    label.set_defaults(func=_label)
