"""``ft-hallu compare --sweep N [--json FILE]``: paired inference over a sweep's grid (docs/STUDY.md)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from cli.common import db_path_from
from engine.configfile import check_values
from engine.errors import UserError
from engine.files import write_json_atomic
from engine.stats import PairedDifference
from engine.study import CellDifference
from engine.workspace import Comparison, StudySettings, Workspace

# CLI option -> StudySettings field (each checked by the field's own rules).
_OPTIONS = {
    "alpha": "--alpha",
    "confidence": "--confidence",
    "max_refusal": "--max-refusal",
    "knowledge_tolerance": "--knowledge-tolerance",
    "hallucination_threshold": "--hallucination-threshold",
    "detect": "--detect",
    "power": "--power",
    "resamples": "--resamples",
    "seed": "--seed",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="paired base vs fine-tuned differences per cell (BH-adjusted), knowledge kept, trajectory, power",
    )
    parser.add_argument("--sweep", type=int, required=True, help="stored sweep id (see `ft-hallu sweeps`)")
    parser.add_argument("--json", metavar="FILE", help="also write every table as JSON to FILE")
    parser.add_argument(
        "--all-cells", action="store_true", help="print every cell, not only significant ones"
    )
    defaults = StudySettings()
    for name, option in _OPTIONS.items():
        kind = int if name in ("resamples", "seed") else float
        parser.add_argument(option, type=kind, help=f"default {getattr(defaults, name)} (docs/STUDY.md)")
    parser.set_defaults(func=_run)


def _settings(args: argparse.Namespace) -> StudySettings:
    given = {name: getattr(args, name) for name in _OPTIONS if getattr(args, name) is not None}
    checked = check_values(StudySettings, given, source="command line", labels=_OPTIONS)
    return dataclasses.replace(StudySettings(), **checked)


def _run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    out = Path(args.json) if args.json else None
    if out is not None and out.is_dir():  # before any work, and nothing written
        raise UserError(f"--json {out}: is a folder, expected a file name")
    with Workspace.open(db_path_from(args)) as workspace:
        workspace.sweep(args.sweep)  # a missing sweep is one line naming it
        comparison = workspace.compare(args.sweep, settings)
    print_comparison(comparison, all_cells=args.all_cells)
    if out is not None:
        write_json_atomic(out, comparison.to_dict())
        print(f"\nwrote {out}")
    return 0


# ---------------------------------------------------------------- printing


def _plain(text: str, width: int = 60) -> str:
    """Text from a model or a dataset as one printable line."""
    line = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _number(value: float | None, fmt: str = "+.2f") -> str:
    return "–" if value is None else format(value, fmt)


def _interval(low: float | None, high: float | None, fmt: str = "+.2f") -> str:
    return "" if low is None or high is None else f"[{low:{fmt}}, {high:{fmt}}]"


def _share(estimate) -> str:
    """A mean with its interval, for shares and rates (no signs)."""
    return f"{_number(estimate.mean, '.2f')} {_interval(estimate.low, estimate.high, '.2f')}"


def _p(value: float | None) -> str:
    """``=0.123`` or ``<0.001``, to follow "p" or "q"."""
    return "=–" if value is None else (f"={value:.3f}" if value >= 0.001 else "<0.001")


def _cell(c: CellDifference) -> str:
    return f"T={c.temperature:g} p={c.top_p:g} k={c.top_k}"


def print_comparison(comparison: Comparison, *, all_cells: bool = False) -> None:
    s = comparison.settings
    tuned = [v for v in comparison.variants if v != "base"]
    print(
        f"sweep {comparison.sweep_id}: base vs {', '.join(tuned) or '(no fine-tuned variant)'}; "
        f"{comparison.samples_per_cell} samples per cell; prompts: {', '.join(comparison.groups)}"
    )
    for line in comparison.warnings:
        print(f"warning: {line}")
    _print_cells(comparison, all_cells)
    _print_knowledge(comparison)
    _print_trajectory(comparison)
    _print_effects(comparison)
    _print_operating_points(comparison)
    _print_power(comparison)
    print(
        f"\nintervals: {s.confidence:.0%} (paired bootstrap per cell); tests: sign-flip permutation, "
        f"Benjamini–Hochberg at {s.alpha:g} over each row's cells"
    )


def _print_cells(comparison: Comparison, all_cells: bool) -> None:
    print("\nPer-cell paired differences, base − variant (pairs: samples; eval/control: questions)")
    print(f"{'variant':<12} {'prompts':<8} {'metric':<17} {'cells':>5} {'signif':>6}  largest difference")
    rows: dict[tuple[str, str, str], list[CellDifference]] = {}
    for cell in comparison.cells:
        rows.setdefault((cell.variant, cell.group, cell.metric), []).append(cell)
    for (variant, group, metric), cells in rows.items():
        tested = [c for c in cells if c.difference is not None]
        significant = [c for c in tested if c.significant]
        largest = max(tested, key=lambda c: abs(c.difference or 0.0), default=None)
        where = (
            f"{_cell(largest)}: {_number(largest.difference)} {_interval(largest.low, largest.high)} "
            f"q{_p(largest.q_value)}"
            if largest
            else "no pairs"
        )
        print(f"{variant:<12} {group:<8} {metric:<17} {len(tested):>5} {len(significant):>6}  {where}")
        for c in cells if all_cells else significant:
            print(
                f"{'':<12} {'':<8} {_cell(c):<28} base {_number(c.base, '.2f')} vs {_number(c.value, '.2f')}: "
                f"{_number(c.difference)} {_interval(c.low, c.high)} p{_p(c.p_value)} q{_p(c.q_value)}"
                + (" *" if c.significant else "")
            )


def _difference(d: PairedDifference | None) -> str:
    if d is None or d.difference is None:
        return ""
    return f"  base−this {_number(d.difference)} {_interval(d.low, d.high)} p{_p(d.p_value)}"


def _print_knowledge(comparison: Comparison) -> None:
    if not comparison.knowledge:
        print('\nKnowledge kept: no control set in this sweep (control = "builtin" adds one)')
        return
    print("\nKnowledge kept: share of control answers stating the reference (interval over questions)")
    for row in comparison.knowledge:
        where = "all T" if row.temperature is None else f"T={row.temperature:g}"
        print(
            f"  {row.variant:<12} {where:<7} {_share(row.kept)}"
            f"  ({row.questions} questions, {row.answers} answers){_difference(row.difference)}"
        )
    lost = [
        q for q in comparison.questions
        if q.kept.get("base", 0) >= 0.5 and any(q.kept.get(v, 1) < 0.5 for v in q.kept if v != "base")
    ]  # fmt: skip
    if lost:
        print("  known to base (>= half its answers), then lost by a fine-tuned variant (< half):")
        for q in lost[:15]:
            shares = ", ".join(f"{v} {share:.2f}" for v, share in q.kept.items())
            print(f"    {_plain(q.question, 50)} ({_plain(q.reference, 20)}): {shares}")


def _print_trajectory(comparison: Comparison) -> None:
    points = comparison.trajectory
    if not any(p.step is not None for p in points):
        return
    keys = list(dict.fromkeys(k for p in points for k in p.metrics))
    print("\nTrajectory over training (metrics pooled over the grid, with intervals)")
    print(f"  {'variant':<12} {'step':>5} {'epoch':>6} {'train':>7} {'eval':>7}  " + "  ".join(keys))
    for p in points:
        values = "  ".join(_share(p.metrics[k]) if k in p.metrics else "–" for k in keys)
        print(
            f"  {p.variant:<12} {p.step if p.step is not None else '–':>5} {_number(p.epoch, '.2f'):>6} "
            f"{_number(p.train_loss, '.3f'):>7} {_number(p.eval_loss, '.3f'):>7}  {values}"
        )
    best = comparison.best_step
    if best is not None:
        chosen = f"{best.variant} (step {best.step})" if best.variant else "none"
        print(f"  best trade-off step: {chosen}; rule: {best.rule}" + (f"; {best.note}" if best.note else ""))


def _print_effects(comparison: Comparison) -> None:
    if not comparison.effects:
        return
    print("\nSampling settings: change from the first to the last level, other settings held (OLS, HC3)")
    for found in comparison.effects:
        parts = []
        for e in found.effects:
            if e.effect is None or e.note:
                parts.append(f"{e.factor}: {e.note}")
            else:
                span = f"{e.levels[0]:g}→{e.levels[-1]:g}" if e.levels else ""
                parts.append(
                    f"{e.factor} {span} {_number(e.effect)} {_interval(e.low, e.high)} p{_p(e.p_value)}"
                )
        print(f"  {found.variant:<12} {found.group:<8} {found.metric}: " + "; ".join(parts))


def _print_operating_points(comparison: Comparison) -> None:
    if not comparison.operating_points:
        return
    print(f"\nOperating point per variant; rule: {comparison.operating_points[0].point.rule}")
    for found in comparison.operating_points:
        cell = found.point.cell
        if cell is None:
            print(f"  {found.variant:<12} {found.group:<8} none: {found.point.note}")
            continue
        print(
            f"  {found.variant:<12} {found.group:<8} T={cell.temperature:g} top_p={cell.top_p:g} top_k={cell.top_k}: "
            f"hallucinated {_number(cell.hallucination, '.2f')}, refusal {_number(cell.refusal, '.2f')} "
            f"({cell.n} samples; {found.point.candidates} cells within the refusal bound)"
        )


def _print_power(comparison: Comparison) -> None:
    if not comparison.power:
        return
    print("\nSamples needed (paired test, two-sided)")
    for found in comparison.power:
        n = found.note
        print(
            f"  {found.group:<8} {found.metric}: to detect {n.detect:g} with power {n.power:g} at {n.alpha:g}: "
            f"{n.needed} {n.unit} ({n.needed_all_cells} at {n.alpha:g}/{n.cells} cells); sd {n.sd:.2f} ({n.sd_source}); "
            f"this sweep has {n.have}"
        )
