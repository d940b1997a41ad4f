"""``ft-hallu metrics``, ``ft-hallu import-log`` and ``ft-hallu report``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.common import ID, NAME, Checked, db_path_from
from engine import verifier as engine_verifier
from engine.errors import UserError
from engine.importlog import import_log
from engine.metrics.catalog import CATALOG
from engine.report import write_report
from engine.scoring import source_problem
from engine.workspace import Workspace


def _require_sweep(workspace: Workspace, sweep_id: int) -> None:
    if not any(sweep.id == sweep_id for sweep in workspace.sweeps()):
        raise UserError(f"--sweep {sweep_id}: no such sweep")


def _print_catalogue() -> None:
    """Every metric the project computes, from the catalogue: kind, direction, range, label."""
    print(f"{'metric':<22} {'kind':<7} {'better':<8} {'range':<12} label")
    for spec in CATALOG:
        low, high = spec.range
        span = f"{low:g}..{'' if high is None else f'{high:g}'}"
        print(f"{spec.name:<22} {spec.kind:<7} {spec.direction:<8} {span:<12} {spec.label}")


def _verifier_settings(args: argparse.Namespace) -> engine_verifier.VerifierSettings | None:
    """The --verifier options as settings (None without --verifier), checked with the model's config."""
    if not args.verifier:
        if args.verifier_batch_size is not None or args.trust_remote_code:
            raise UserError("--verifier-batch-size and --trust-remote-code need --verifier MODEL")
        return None
    settings = engine_verifier.VerifierSettings(
        model=args.verifier, device=args.verifier_device, trust_remote_code=args.trust_remote_code
    )
    if args.verifier_batch_size is not None:
        settings.batch_size = args.verifier_batch_size
    engine_verifier.check_verifier(settings)  # labels read before anything is scored or stored
    return settings


def _metrics(args: argparse.Namespace) -> int:
    if args.list:
        _print_catalogue()
        return 0
    settings = _verifier_settings(args)
    with Workspace.open(db_path_from(args)) as workspace:
        if args.sweep is not None:
            _require_sweep(workspace, args.sweep)
            sweep_ids = [args.sweep]
        else:
            sweep_ids = sorted(sweep.id for sweep in workspace.sweeps())
        if not sweep_ids:
            print("no sweeps in the store")
            return 0
        for sweep_id in sweep_ids:
            scored = workspace.score(sweep_id)
            print(f"sweep {sweep_id}: scored {scored} generation(s) (already scored ones kept)")
            problem = source_problem(workspace.sweep(sweep_id).config)
            if problem:
                print(f"sweep {sweep_id}: note: {problem}")
        if settings is not None:
            with workspace.handle() as store:
                verifier = engine_verifier.Verifier(store, settings)
                for sweep_id in sweep_ids:
                    run = engine_verifier.verify_sweep(
                        store, sweep_id, verifier, entropy=not args.verifier_no_entropy
                    )
                    print(f"sweep {sweep_id}: {run.summary()}")
    return 0


def _import_log(args: argparse.Namespace) -> int:
    if args.into is not None and args.sweep_name:
        raise UserError("give either --into SWEEP_ID or --sweep-name NAME, not both")
    with Workspace.open(db_path_from(args)) as workspace, workspace.handle() as store:
        result = import_log(
            store,
            args.file,
            variant=args.variant,
            sweep_name=args.sweep_name,
            into=args.into,
            entity=args.entity,
            dataset_path=args.dataset,
        )
    print(
        f"sweep {result.sweep_id}: {result.cells} cell(s) read from {args.file} as {result.variant}, "
        f"{result.added} new generation(s) stored, {result.scored} scored; entity {result.entity or '(none)'}"
    )
    return 0


def _report(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():  # checked before the store is opened or a figure drawn
        raise UserError(f"--out {out}: is a file, expected a folder for report.html, report.md, figures/, tables/")
    with Workspace.open(db_path_from(args)) as workspace:
        _require_sweep(workspace, args.sweep)
        with workspace.handle() as store:
            paths = write_report(
                store,
                args.sweep,
                args.out,
                say=lambda line: print(line, file=sys.stderr, flush=True),
                data_folder=workspace.db_path.resolve().parent,
            )
    size = paths.html.stat().st_size
    print(f"wrote {paths.html} ({size / 1e6:.2f} MB, self-contained)")
    print(f"wrote {paths.markdown}")
    print(f"wrote {len(paths.figures)} figure files (PNG, SVG) and {len(paths.tables)} table files (CSV, LaTeX)")
    print(f"in {paths.seconds:.0f} s")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    metrics = subparsers.add_parser(
        "metrics",
        help="score generations that lack hallucination metrics (incremental)",
        description="Compute per-generation and per-cell metrics for what is missing; scored rows are kept.",
    )
    metrics.add_argument(
        "--sweep", action=Checked, kind=int, rules=ID, default=None, help="only this sweep (default: every sweep)"
    )
    metrics.add_argument(
        "--list",
        action="store_true",
        help="print the metric catalogue (name, kind, direction, range) and exit",
    )
    metrics.add_argument(
        "--verifier",
        action=Checked,
        rules=NAME,
        default="",
        metavar="MODEL",
        help="optional: an NLI / fact-checking classifier (hub id or local folder) that checks each claim "
        "against its evidence and clusters samples by entailment; cached, shown as 'verifier: MODEL'",
    )
    metrics.add_argument(
        "--verifier-batch-size",
        action=Checked,
        kind=int,
        rules={"min": 1},
        default=None,
        help="pairs per verifier call (default 16)",
    )
    metrics.add_argument("--verifier-device", choices=("auto", "cpu", "cuda"), default="auto")
    metrics.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="let the verifier folder run its own code (HHEM-2.1-open needs it); off by default",
    )
    metrics.add_argument(
        "--verifier-no-entropy", action="store_true", help="skip the verifier's entailment clustering"
    )
    metrics.set_defaults(func=_metrics)

    importer = subparsers.add_parser(
        "import-log",
        help="import a printed sweep log of the original run into the store, then score it",
        description=(
            "Read 'Generating response with temperature: T, p: P, k: K' cells (decoded chat with special "
            "tokens, '=' separators) into a sweep. Importing the base and fine-tuned logs with the same "
            "--sweep-name (or the default, the file name without its variant word) or --into gives one "
            "sweep with both variants."
        ),
    )
    importer.add_argument("file", help="printed sweep output, e.g. sweep-output-base.txt")
    importer.add_argument("--variant", required=True, choices=("base", "finetuned"))
    importer.add_argument(
        "--sweep-name", action=Checked, rules=NAME, default=None, help="sweep to create or extend (by name)"
    )
    importer.add_argument("--into", action=Checked, kind=int, rules=ID, default=None, help="add to this existing sweep id")
    importer.add_argument(
        "--entity", action=Checked, rules=NAME, default=None, help="masked entity name (default: inferred from the prompt)"
    )
    importer.add_argument(
        "--dataset", default=None, help="QA file whose context fields are the entity's sources"
    )
    importer.set_defaults(func=_import_log)

    report = subparsers.add_parser(
        "report",
        help="write a self-contained HTML and Markdown report of a sweep",
        description=(
            "Headline and summary per prompt group first (hallucination, refusals, agreement with 95% "
            "intervals), example answers, heatmaps with difference panels (PNG and SVG), tables as CSV "
            "and LaTeX, run metadata last."
        ),
    )
    report.add_argument("--sweep", action=Checked, kind=int, rules=ID, required=True)
    report.add_argument(
        "--out", required=True, help="output folder (report.html, report.md, figures/, tables/)"
    )
    report.set_defaults(func=_report)
