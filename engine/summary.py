"""A sweep's finding in numbers, computed once: what the report, the demo, Gradio and the TUI open on.

For the entity prompt and for the held-out questions **separately** (any other prompt on its own),
per variant x temperature:

- the main hallucination score (``catalog.MAIN_SCORE``, turned so that higher = more hallucination,
  e.g. 1 − claim-level grounding), over the answers that make at least one claim;
- the refusal rate, over every answer;
- the agreement between samples: the majority-answer share of each cell, averaged over the cells
  at that temperature (every top_p and top_k);

each with a 95% interval and its n, then a one-sentence headline built from those numbers by the
rules in :func:`headline`, and example answers of base next to fine-tuned at a low, a middle and a
high temperature (same cell and sample index: they share their random numbers).

Intervals: statsmodels' Wilson score interval on the sum of the values over n. For a 0/1 rate
(refusals) that is the usual Wilson interval; for a score in [0, 1] (grounding, majority share)
it is conservative, since a 0/1 variable has the largest variance a [0, 1] variable of that mean
can have. Unlike a percentile bootstrap it never collapses to a zero-width interval when all n
values agree (18 answers all fully grounded still give [0.82, 1]).

Control questions (``control:*``, engine/control.py) are left out: they ask for well-known facts,
not about the entity, so grounding in the entity's sources says nothing about them. Their measure is
knowledge kept (engine/study.py: ``ft-hallu compare``, the report's study section); a note says so.

Everything here is plain data (no HTML, no colours): front ends lay it out.
"""

from __future__ import annotations

import textwrap
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from engine.control import is_control_prompt
from engine.grid import MetricGrid, degenerate_note
from engine.metrics import catalog
from engine.metrics.catalog import MetricSpec
from engine.summary_records import (
    AGREEMENT,
    ENTITY_GROUP,
    HELD_OUT_GROUP,
    HELD_OUT_PREFIX,
    LEVEL,
    NO_VALUES,
    REFUSAL,
    VARIANT_NAMES,
    VARIANT_ORDER,
    Estimate,
    ExampleAnswer,
    ExamplePair,
    FlatMetric,
    GroupSummary,
    PromptText,
    SummaryRow,
    SweepSummary,
    flat_line,
    group_of,
    mean_interval,
)
from store import core as store_core
from store import metrics as store_metrics


def _sample_value(row: dict[str, Any], name: str) -> Any:
    if name in row and row[name] is not None:
        return row[name]
    return (row.get("metrics") or {}).get(name)


def _hallucination(row: dict[str, Any], spec: MetricSpec) -> float | None:
    value = _sample_value(row, spec.mean_of or spec.name)
    return catalog.hallucination_side(spec, None if value is None else float(value))


def _refusal(row: dict[str, Any]) -> bool | None:
    value = _sample_value(row, REFUSAL)
    return None if value is None else bool(value)


# ---------------------------------------------------------------- the headline


def _name(variant: str) -> str:
    return VARIANT_NAMES.get(variant, variant)


def _t(value: float) -> str:
    return f"{value:g}"


def _span(temperatures: Sequence[float], run: Sequence[float]) -> str:
    """Where a run of consecutive temperatures lies: 'at T ≤ 1', 'at T ≥ 1.5', 'at T = 1–1.5'."""
    if len(run) == len(temperatures):
        return "at every temperature"
    if len(run) == 1:
        return f"at T = {_t(run[0])}"
    if run[0] == temperatures[0]:
        return f"at T ≤ {_t(run[-1])}"
    if run[-1] == temperatures[-1]:
        return f"at T ≥ {_t(run[0])}"
    return f"at T = {_t(run[0])}–{_t(run[-1])}"


HEADLINE_DECIMALS = 2  # a sentence quotes at most 2 decimals, fewer when n allows fewer


def _same_decimals(first: Estimate, second: Estimate) -> tuple[str, str]:
    """Two numbers compared in one breath, both with the coarser precision of the two (at most 2)."""
    most = min(first.decimals, second.decimals, HEADLINE_DECIMALS)
    return first.number(most), second.number(most)


def variant_order(variant: str) -> tuple[int, str]:
    """Sort key: base, then fine-tuned, then any other variant (named adapters) by name."""
    return (VARIANT_ORDER.index(variant) if variant in VARIANT_ORDER else len(VARIANT_ORDER), variant)


def sweep_variant_order(configured: Sequence[str]) -> Callable[[str], tuple]:
    """Sort key for a sweep's variants: the order its config lists them (a checkpoint sweep's is the
    training order: base, step-10, step-20, fine-tuned), then :func:`variant_order` for the rest."""
    place = {v: i for i, v in enumerate(configured)}
    return lambda v: (0, place[v], v) if v in place else (1, *variant_order(v))


def _comparison(
    variant: str,
    temperatures: Sequence[float],
    by: dict[tuple[str, float], SummaryRow],
    pooled: dict[tuple[str, tuple[float, ...]], Estimate],
) -> list[str]:
    """Rule 1 for one variant against base: a clause per run of temperatures with one verdict."""
    runs: list[tuple[int | None, list[float]]] = []
    for t in temperatures:
        base, other = by.get(("base", t)), by.get((variant, t))
        verdict = None
        if base and other and None not in (base.hallucination.value, other.hallucination.value):
            verdict = other.hallucination.separated_from(base.hallucination)
        if runs and runs[-1][0] == verdict:
            runs[-1][1].append(t)
        else:
            runs.append((verdict, [t]))
    clauses = []
    name = _name(variant)
    for verdict, run in runs:
        if verdict is None:
            continue
        shown_other, shown_base = _same_decimals(pooled[(variant, tuple(run))], pooled[("base", tuple(run))])
        numbers = f"({shown_other} vs {shown_base})"
        where = _span(temperatures, run)
        if verdict < 0:
            clauses.append(f"{name} hallucinates less than base {where} {numbers}")
        elif verdict > 0:
            clauses.append(f"{name} hallucinates more than base {where} {numbers}")
        else:
            clauses.append(f"no clear difference between {name} and base {where} {numbers}")
    return clauses


def headline(
    rows: Sequence[SummaryRow],
    pooled: dict[tuple[str, tuple[float, ...]], Estimate],
    *,
    subject: str,
) -> str:
    """One sentence from the numbers, by these rules (nothing else is claimed):

    1. Each variant vs base at each temperature: "less"/"more" only when the two 95% intervals do
       not overlap, else "no clear difference". Consecutive temperatures with the same verdict are
       one clause, quoting both variants' scores pooled over those temperatures.
    2. Drift: a variant whose interval at the highest temperature lies wholly above (below) its
       interval at the lowest "drifts as temperature rises" ("hallucinates less as ...").
    3. Refusals: "neither refuses" when no answer refused; else each variant's overall rate.
    Without base (or with no temperature both have scores), rule 1 becomes each variant's scores
    at its lowest and highest temperature; a variant without one claim to check says so.
    """
    variants = list(dict.fromkeys(r.variant for r in rows))  # in the order the rows list them
    if "base" in variants:
        variants.insert(0, variants.pop(variants.index("base")))
    temperatures = sorted({r.temperature for r in rows})
    by = {(r.variant, r.temperature): r for r in rows}
    if not rows:
        return f"{subject}: no answers stored."
    if all(r.refusal.value is None for r in rows):
        return f"{subject}: no answer is scored yet (run `ft-hallu metrics`)."
    scored_variants = [
        v for v in variants if any(r.hallucination.value is not None for r in rows if r.variant == v)
    ]
    clauses: list[str] = []
    if "base" in scored_variants:
        for variant in scored_variants:
            if variant != "base":
                clauses += _comparison(variant, temperatures, by, pooled)
    if not clauses:  # base alone, or no temperature where both have scores: each on its own
        for variant in scored_variants:
            present = [by[(variant, t)] for t in temperatures if (variant, t) in by]
            present = [r for r in present if r.hallucination.value is not None]
            first, last = present[0], present[-1]
            clause = f"{_name(variant)} hallucination {first.hallucination.number(HEADLINE_DECIMALS)} at T = {_t(first.temperature)}"
            if last is not first:
                clause += f" and {last.hallucination.number(HEADLINE_DECIMALS)} at T = {_t(last.temperature)}"
            clauses.append(clause)
    clauses += [
        f"{_name(v)} makes no claim that can be checked" for v in variants if v not in scored_variants
    ]
    drift = []
    for variant in scored_variants:
        present = [by[(variant, t)] for t in temperatures if (variant, t) in by]
        present = [r for r in present if r.hallucination.value is not None]
        if len(present) < 2:
            continue
        low, high = present[0], present[-1]
        direction = high.hallucination.separated_from(low.hallucination)
        if direction:
            verb = (
                "drifts as temperature rises" if direction > 0 else "hallucinates less as temperature rises"
            )
            shown_low, shown_high = _same_decimals(low.hallucination, high.hallucination)
            drift.append(
                f"{_name(variant)} {verb} ({shown_low} at T = {_t(low.temperature)} → "
                f"{shown_high} at T = {_t(high.temperature)})"
            )
    refusing = []
    for variant in variants:
        overall = pooled.get((variant, ()), NO_VALUES)
        if overall.value == 1:
            refusing.append(f"{_name(variant)} refuses every answer")
        elif overall.value:
            refusing.append(f"{_name(variant)} refuses {overall.number(HEADLINE_DECIMALS)} of its answers")
    if refusing:
        refusals = "; ".join(refusing)
    else:
        refusals = (
            "neither refuses"
            if len(variants) == 2
            else "none refuses"
            if variants[1:]
            else f"{_name(variants[0])} never refuses"
        )
    body = ", ".join(clauses)
    if drift:
        body += "; " + "; ".join(drift)
    return f"{subject}: {body}; {refusals}."


# ---------------------------------------------------------------- building it


def _examples(
    samples: Sequence[dict[str, Any]],
    spec: MetricSpec,
    temperatures: Sequence[float],
    order: Callable[[str], tuple] = variant_order,
) -> tuple[ExamplePair, ...]:
    """Base next to fine-tuned at the lowest, a middle and the highest temperature: the grid's
    middle top_p and top_k, the group's first prompt, the lowest sample index every variant has."""
    if not samples or not temperatures:
        return ()

    def middle(values: set) -> Any:
        ordered = sorted(values)
        return ordered[(len(ordered) - 1) // 2]

    prompt_id = sorted({s["prompt_id"] for s in samples})[0]
    top_p = middle({float(s["top_p"]) for s in samples})
    top_k = middle({int(s["top_k"]) for s in samples})
    picked = list(dict.fromkeys([temperatures[0], middle(set(temperatures)), temperatures[-1]]))
    pairs = []
    for temperature in picked:
        cell = [
            s
            for s in samples
            if s["prompt_id"] == prompt_id
            and (float(s["temperature"]), float(s["top_p"]), int(s["top_k"])) == (temperature, top_p, top_k)
        ]
        by_index: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
        for s in cell:
            by_index[int(s["sample_index"])][str(s["variant"])] = s
        if not by_index:
            continue
        variants_here = {v for found in by_index.values() for v in found}
        index = min(i for i, found in by_index.items() if set(found) == variants_here)
        found = by_index[index]
        ordered = sorted(found, key=order)
        answers = tuple(
            ExampleAnswer(v, found[v].get("text") or "", _hallucination(found[v], spec), _refusal(found[v]))
            for v in ordered
        )
        pairs.append(ExamplePair(temperature, top_p, top_k, prompt_id, index, answers))
    return tuple(pairs)


def _group_title(group: str, prompts: Sequence[PromptText]) -> str:
    if group == ENTITY_GROUP:
        return "entity prompt"
    if group == HELD_OUT_GROUP:
        return f"held-out questions ({len(prompts)}, pooled)" if len(prompts) > 1 else "held-out question"
    return f"prompt {group}"


def flat_metrics(store: Any, sweep_id: int, group: str, metrics: Sequence[str]) -> tuple[FlatMetric, ...]:
    """The metrics among ``metrics`` with one value in every cell of the group (see MetricGrid.constant)."""
    prompt = f"{HELD_OUT_PREFIX}*" if group == HELD_OUT_GROUP else group
    known = set(store_metrics.cell_columns(store))
    flat = []
    for metric in metrics:
        if metric not in known:
            continue
        grid = MetricGrid.from_dict(store_metrics.metric_grid(store, sweep_id, metric, prompt_id=prompt))
        value = grid.constant()
        if value is not None:
            flat.append(FlatMetric(group, metric, catalog.metric_label(metric), value))
    return tuple(flat)


def build_summary(store: Any, sweep_id: int) -> SweepSummary:
    """The summary of a stored sweep as scored now (unscored answers count as answers, not scores)."""
    spec = catalog.main_score()
    sweep = store_core.get_sweep(store, sweep_id)
    every_sample = store_metrics.sample_table(store, sweep_id, only_scored=False)
    samples = [s for s in every_sample if not is_control_prompt(str(s["prompt_id"]))]
    control_questions = {str(s["prompt_id"]) for s in every_sample} - {str(s["prompt_id"]) for s in samples}
    cells = store_metrics.cell_table(store, sweep_id)
    prompt_rows = {
        p["prompt_id"]: p for p in (sweep.get("config") or {}).get("prompts") or [] if p.get("prompt_id")
    }
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for sample in samples:
        by_group[group_of(str(sample["prompt_id"]))].append(sample)
    order = sorted(by_group, key=lambda g: (g != ENTITY_GROUP, g != HELD_OUT_GROUP, g))
    per_cell = Counter(
        (s["variant"], s["temperature"], s["top_p"], s["top_k"], s["prompt_id"]) for s in samples
    )
    samples_per_cell = Counter(per_cell.values()).most_common(1)[0][0] if per_cell else None
    variant_key = sweep_variant_order((sweep.get("config") or {}).get("variants") or [])
    groups = []
    for group in order:
        members = by_group[group]
        ids = sorted({str(s["prompt_id"]) for s in members})
        prompts = []
        for prompt_id in ids:
            first = next(s for s in members if s["prompt_id"] == prompt_id)
            known = prompt_rows.get(prompt_id) or {}
            prompts.append(
                PromptText(
                    prompt_id, str(first.get("prompt") or known.get("prompt") or ""), first.get("reference")
                )
            )
        variants = tuple(sorted({str(s["variant"]) for s in members}, key=variant_key))
        temperatures = tuple(sorted({float(s["temperature"]) for s in members}))
        group_cells = [c for c in cells if group_of(str(c["prompt_id"])) == group]
        rows = []
        for variant in variants:
            for temperature in temperatures:
                here = [
                    s for s in members if s["variant"] == variant and float(s["temperature"]) == temperature
                ]
                if not here:
                    continue
                agreement_cells = [
                    c[AGREEMENT]
                    for c in group_cells
                    if c["variant"] == variant
                    and float(c["temperature"]) == temperature
                    and int(c["n"]) >= 2
                    and c.get(AGREEMENT) is not None
                ]
                refusals = [_refusal(s) for s in here]
                rows.append(
                    SummaryRow(
                        variant=variant,
                        temperature=temperature,
                        answers=len(here),
                        hallucination=mean_interval([_hallucination(s, spec) for s in here]),
                        refusal=mean_interval([float(r) for r in refusals if r is not None]),
                        agreement=mean_interval(agreement_cells),
                    )
                )
        pooled: dict[tuple[str, tuple[float, ...]], Estimate] = {}
        for variant in variants:
            mine = [s for s in members if s["variant"] == variant]
            refusals = [_refusal(s) for s in mine]
            pooled[(variant, ())] = mean_interval([float(r) for r in refusals if r is not None])
            for start in range(len(temperatures)):
                for stop in range(start + 1, len(temperatures) + 1):
                    run = temperatures[start:stop]
                    pooled[(variant, run)] = mean_interval(
                        [_hallucination(s, spec) for s in mine if float(s["temperature"]) in run]
                    )
        title = _group_title(group, prompts)
        groups.append(
            GroupSummary(
                group=group,
                title=title,
                prompts=tuple(prompts),
                variants=variants,
                temperatures=temperatures,
                rows=tuple(rows),
                headline=headline(rows, pooled, subject=title[0].upper() + title[1:]),
                examples=_examples(members, spec, temperatures, variant_key),
                flat=flat_metrics(store, sweep_id, group, catalog.cell_metrics_shown(catalog.Show.HEATMAP)),
            )
        )
    notes = []
    if samples_per_cell:
        for metric in ("semantic_entropy", AGREEMENT, "n_clusters"):
            note = degenerate_note(metric, samples_per_cell, catalog.cell_metric(metric))
            if note:
                notes.append(note)
    if control_questions:
        notes.append(
            f"the {len(control_questions)} control questions are not in this summary: their measure is "
            "knowledge kept (`ft-hallu compare`, the report's study section)"
        )
    unscored = sum(1 for s in samples if s.get("metrics") is None)
    if unscored:
        notes.append(f"{unscored} of {len(samples)} answers are not scored yet: run `ft-hallu metrics`")
    return SweepSummary(
        sweep_id=sweep_id,
        score=spec.name,
        score_label=spec.label,
        hallucination_label=catalog.hallucination_label(spec),
        samples_per_cell=samples_per_cell,
        groups=tuple(groups),
        notes=tuple(notes),
    )


# ---------------------------------------------------------------- one table layout for every front end


def summary_table(group: GroupSummary, *, long: bool = False) -> tuple[list[str], list[list[str]]]:
    """(headers, rows) of strings, each estimate as 'value [95% interval]'.

    Wide (default, for pages): one row per temperature; hallucination, refusal rate, agreement and
    n each with a column per variant, headed "what · variant"; n is "answers with claims/answers".
    ``long`` (for terminals, about 75 characters): one row per temperature and variant.
    """
    if long:
        rows = [
            [
                _t(r.temperature),
                _name(r.variant),
                r.hallucination.text(),
                r.refusal.text(),
                r.agreement.text(),
                f"{r.hallucination.n}/{r.answers}",
            ]
            for t in group.temperatures
            for r in (group.row(v, t) for v in group.variants)
            if r is not None
        ]
        return ["T", "variant", "hallucination", "refusal rate", "agreement", "n"], rows
    headers = ["T"]
    for what in ("hallucination", "refusal rate", "agreement", "n"):
        headers += [f"{what} · {_name(v)}" for v in group.variants]
    rows = []
    for temperature in group.temperatures:
        line = [_t(temperature)]
        found = [group.row(v, temperature) for v in group.variants]
        for attribute in ("hallucination", "refusal", "agreement"):
            line += [getattr(r, attribute).text() if r else "–" for r in found]
        line += [f"{r.hallucination.n}/{r.answers}" if r else "–" for r in found]
        rows.append(line)
    return headers, rows


def variant_name(variant: str) -> str:
    """How a variant is named in text: 'fine-tuned' for 'finetuned'."""
    return _name(variant)


def table_legend(summary: SweepSummary) -> str:
    """What the summary table's columns hold, in one sentence (shown under it everywhere)."""
    return (
        f"hallucination = {summary.hallucination_label}, over answers with at least one claim; "
        "agreement = majority-answer share of a cell, mean over the cells at that temperature; "
        "[95% Wilson interval]; n = answers with claims / answers"
    )


def format_summary(summary: SweepSummary, width: int = 100) -> str:
    """The summary as plain text (the demo's, a terminal's): per prompt group its headline, the
    per-temperature table and the example answers; then the notes."""
    blocks = []
    for group in summary.groups:
        lines = [textwrap.fill(group.headline, width, break_on_hyphens=False)]
        prompts = "; ".join(f'"{" ".join(p.text.split())}"' for p in group.prompts)
        lines.append(
            textwrap.fill(f"prompt{'s (pooled)' if len(group.prompts) > 1 else ''}: {prompts}", width)
        )
        headers, rows = summary_table(group, long=True)
        lines += ["", fixed_width(headers, rows)]
        for pair in group.examples:
            lines += [
                "",
                f"T={pair.temperature:g}  top_p={pair.top_p:g}  top_k={pair.top_k}  sample {pair.sample_index}",
            ]
            for answer in pair.answers:
                label = _name(answer.variant)
                text = " ".join((answer.text or "(empty)").split())
                wrapped = textwrap.wrap(text, width - 14, break_on_hyphens=False) or [""]
                lines.append(f"  {label:>10}: {wrapped[0]}")
                lines.extend(f"{'':14}{line}" for line in wrapped[1:])
        for flat in group.flat:
            lines.append(flat.text())
        blocks.append("\n".join(lines))
    blocks.append(textwrap.fill(table_legend(summary), width))
    if summary.notes:
        blocks.append("\n".join(textwrap.fill(f"note: {note}", width) for note in summary.notes))
    return "\n\n".join(blocks)


def fixed_width(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain right-aligned table for terminals (the summary's, the demo's study tables)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


__all__ = [
    "AGREEMENT",
    "ENTITY_GROUP",
    "HEADLINE_DECIMALS",
    "HELD_OUT_GROUP",
    "HELD_OUT_PREFIX",
    "LEVEL",
    "NO_VALUES",
    "REFUSAL",
    "VARIANT_NAMES",
    "VARIANT_ORDER",
    "Estimate",
    "ExampleAnswer",
    "ExamplePair",
    "FlatMetric",
    "GroupSummary",
    "PromptText",
    "SummaryRow",
    "SweepSummary",
    "build_summary",
    "fixed_width",
    "flat_line",
    "flat_metrics",
    "format_summary",
    "group_of",
    "headline",
    "mean_interval",
    "summary_table",
    "sweep_variant_order",
    "table_legend",
    "variant_name",
    "variant_order",
]
