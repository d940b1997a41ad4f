"""``ft-hallu label``: label a sweep's samples in the terminal, or import/export labels as CSV."""

from __future__ import annotations

import argparse
import sys
import unicodedata
from typing import TextIO

from cli.common import ID, NAME, Checked, db_path_from
from engine import labels as engine_labels
from engine.errors import UserError
from engine.metrics.claims import marked_answer
from engine.workspace import Workspace

_KEYS_HELP = ", ".join(f"{key} = {label}" for key, label in engine_labels.LABEL_KEYS.items())
_PROMPT = "label [f/h/r/u], s = skip, q = quit (a note may follow the key: 'h wrong business'): "


# Bidirectional overrides and isolates: they reorder what follows them on screen.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def shown(text: str) -> str:
    """Model or dataset text made safe for a terminal: control characters (an escape sequence would
    recolour or clear the screen) and bidi overrides are written as \\xNN / \\uNNNN; tabs and
    newlines are kept."""
    out = []
    for ch in text:
        if ch in "\n\t" or (unicodedata.category(ch) != "Cc" and ch not in _BIDI_CONTROLS):
            out.append(ch)
        else:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
    return "".join(out)


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
    print(f"prompt: {shown(sample.prompt)}", file=out)
    print(f"answer: {shown(marked_answer(sample.text, sample.claims, mark=_mark))}", file=out)
    if not sample.claims:
        print("claims: none checked (a refusal, or a sweep without sources)", file=out)
    ordered = sorted(sample.claims, key=lambda c: (c.get("clause") or 0, c["start"]))
    for number, claim in enumerate(ordered, start=1):
        strength = claim.get("strength")
        measure = f"strength {strength:.2f}" if strength is not None else f"{claim['score']:.2f}"
        print(f"  claim {number} [{claim['decision']}, {claim['rule']}, {measure}]: {shown(claim['text'])}", file=out)
        if claim.get("evidence"):
            print(f"    evidence: {shown(claim['evidence'])}", file=out)
        if claim.get("source_says"):
            print(f"    source says: {shown(claim['source_says'])}", file=out)
    print(
        "  [[word]]: not in the evidence of an unsupported/contradicted claim; [word]: of a supported one",
        file=out,
    )


def show_blind(item: engine_labels.BlindItem, out: TextIO) -> None:
    """What a blind labeller reads: place in the seeded order, prompt, answer, plain source sentences.

    BlindItem holds nothing else (no variant, settings, id or score), so nothing else can show.
    """
    print(
        f"\n--- {item.position} of {item.total} ({item.left} left)"
        + (f"  (your label now: {item.label})" if item.label else ""),
        file=out,
    )
    print(f"prompt: {shown(item.prompt)}", file=out)
    print(f"answer: {shown(item.text)}", file=out)
    if not item.sources:
        print("sources: none for this answer", file=out)
    else:
        print("sources near this answer (alphabetical):", file=out)
        for sentence in item.sources:
            print(f"  - {shown(sentence)}", file=out)


def _read_key(source: TextIO, out: TextIO) -> tuple[str, str] | None:
    """The next answer: (key, note); None at the end of input. Unknown keys are asked again."""
    while True:
        print(_PROMPT, end="", file=out, flush=True)
        line = source.readline()
        if not line:
            print(file=out)
            return None
        key, _, note = line.strip().partition(" ")
        key = key.lower()
        if key in ("q", "s") or key in engine_labels.LABEL_KEYS:
            return key, note.strip()
        print(f"unknown key {key!r} ({_KEYS_HELP})", file=out)


def _blind(workspace: Workspace, args: argparse.Namespace, source: TextIO, out: TextIO) -> int:
    """Blind labelling: the sweep's samples in a seeded order, nothing shown but prompt, answer and
    plain source sentences; resumable (the seed is recorded per labeller and sweep)."""
    who = engine_labels.check_labeller(args.who or engine_labels.default_labeller())
    workspace.score(args.sweep)  # source sentences for anything not scored yet (incremental)
    session = workspace.blind_start(args.sweep, who=who, seed=args.seed)
    changed = f" (was {session.previous_seed}: a new order)" if session.previous_seed is not None else ""
    print(
        f"sweep {args.sweep}, blind: {session.left} of {session.total} sample(s) left for {who}; "
        f"order: seed {session.seed}{changed}; hidden: {', '.join(engine_labels.BLIND_HIDDEN)} "
        f"({_KEYS_HELP})",
        file=out,
    )
    saved, position = 0, 0
    while True:
        item = workspace.blind_next(
            args.sweep, who=who, seed=session.seed, after=position, relabel=args.relabel
        )
        if item is None:
            break
        position = item.position
        show_blind(item, out)
        answer = _read_key(source, out)
        if answer is None or answer[0] == "q":
            print(f"saved {saved} label(s); run again to continue in the same order", file=out)
            return 0
        key, note = answer
        if key == "s":
            continue
        workspace.blind_label(
            args.sweep,
            who=who,
            seed=session.seed,
            position=item.position,
            label=engine_labels.LABEL_KEYS[key],
            note=note or None,
        )
        saved += 1
    print(f"saved {saved} label(s); every sample seen (skipped ones come back next time)", file=out)
    return 0


def _interactive(workspace: Workspace, args: argparse.Namespace, source: TextIO, out: TextIO) -> int:
    who = engine_labels.check_labeller(args.who or engine_labels.default_labeller())
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


def _check_options(args: argparse.Namespace) -> None:
    """Refuse contradictory options before the store is opened."""
    if args.who is not None:
        args.who = engine_labels.check_labeller(args.who)
    if args.action is not None and (args.blind or args.seed is not None):
        raise UserError(f"label {args.action}: --blind and --seed are for labelling in the terminal")
    if args.seed is not None and not args.blind:
        raise UserError("--seed orders a blind session: add --blind")
    if args.blind and args.variant:
        raise UserError("--blind hides the variant: drop --variant (the blind order covers every sample)")


def _label(args: argparse.Namespace) -> int:
    _check_options(args)
    with Workspace.open(db_path_from(args)) as workspace:
        if not any(sweep.id == args.sweep for sweep in workspace.sweeps()):
            raise UserError(f"--sweep {args.sweep}: no such sweep")
        if args.action is None:
            if args.file:
                raise UserError(
                    f"unexpected argument {args.file!r}: did you mean 'label import {args.file}'?"
                )
            if args.blind:
                return _blind(workspace, args, sys.stdin, sys.stdout)
            return _interactive(workspace, args, sys.stdin, sys.stdout)
        if not args.file:
            raise UserError(f"label {args.action}: give the CSV file")
        with workspace.handle() as store:
            if args.action == "export":
                rows = engine_labels.export_labels_csv(store, args.sweep, args.file, who=args.who)
                print(f"wrote {rows} label(s) of sweep {args.sweep} to {args.file}")
            else:
                result = engine_labels.import_labels_csv(
                    store, args.sweep, args.file, who=args.who, variant=args.variant
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
            "--blind shows only the prompt, the answer and plain source sentences, in a seeded order, "
            "so a labeller cannot tell the model, the settings or the scores; --who keeps labellers apart. "
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
    label.add_argument(
        "--blind",
        action="store_true",
        help="hide the variant, the sampling settings and every score; show the samples in a seeded order",
    )
    label.add_argument(
        "--seed",
        type=int,
        default=None,
        help=f"order of a blind session (default: the one recorded for you, else {engine_labels.DEFAULT_BLIND_SEED})",
    )
    label.set_defaults(func=_label)
