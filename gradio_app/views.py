"""HTML for the aligned samples view and a sample's claims: rendered from the Workspace's dataclasses.

Every text is escaped. Each sample cell carries ``data-gen`` (its generation id) so a click picks
it for labelling (the page script in layout.py forwards it to the app).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.escape import html_text as escape
from engine.escape import markdown_text
from engine.metrics.catalog import MetricSpec, main_score, sample_metric
from engine.metrics.claim_words import claim_words
from engine.metrics.claim_words import legend as claim_legend
from engine.summary import flat_line, summary_table, table_legend, variant_name
from engine.workspace import CellSamples, Sample, SampleSearch, SweepSummary

# Per-sample scores shown as badges, in this order: (metric, short text).
BADGES = (
    ("refusal", "refusal"),
    ("degenerate", "degenerate"),
    ("conflict", "conflict"),
    ("grounding", "ground"),
    ("claim_support_min", "weakest"),
    ("claim_grounding", "claims"),
    ("token_f1", "F1"),
    ("n_words", "words"),
)
VARIANT_TITLES = {"base": "Base model", "finetuned": "Fine-tuned model"}
# Why an answer has no checked claim: it refused, the sweep has no sources, or it said nothing a
# claim could be made of (under three words, or only vague words).
NO_CLAIM_CHECKED = "No claim checked: a refusal, no sources, or nothing specific enough to check."
EMPTY_VIEW = '<div class="aligned-empty">Click a heatmap cell (or a row of the cells table) to read its samples here.</div>'


def _badge(metric: str, short: str, value: Any) -> str:
    if value is None:
        return ""
    spec = sample_metric(metric)
    if spec.fmt == "d" and metric != "n_words":  # flags: shown only when set
        if not value:
            return ""
        tone = "bad" if spec.higher_is_better is False else "note"
        return f'<span class="badge {tone}" title="{escape(spec.label)}">{short}</span>'
    # One answer's score: two decimals read against the 0.45 support threshold; a count stays whole.
    text = spec.format(float(value)) if spec.fmt.endswith("d") else f"{float(value):.2f}"
    return f'<span class="badge" title="{escape(spec.label)}">{short} {text}</span>'


def _sample_cell(sample: Sample | None, picked: int | None, claims: Sequence[Any] = ()) -> str:
    if sample is None:
        return '<td class="sample missing">(no sample)</td>'
    label = sample.label
    badges = "".join(_badge(m, short, sample.metrics.get(m)) for m, short in BADGES)
    if not sample.metrics:
        badges = '<span class="badge note">not scored</span>'
    if label:
        badges += f'<span class="badge label {escape(label)}">label: {escape(label)}</span>'
    classes = "sample pick" + (" picked" if picked == sample.generation_id else "")
    seed = "" if sample.seed is None else f"seed {sample.seed}"
    text = escape(sample.text) if sample.text else '<span class="dim">(empty answer)</span>'
    return (
        f'<td class="{classes}" data-gen="{sample.generation_id}" title="click to pick this sample for labelling">'
        f'<div class="meta">{seed}</div><div class="text">{text}</div><div class="badges">{badges}</div>'
        f"{claim_rows_html(claims)}</td>"
    )


def aligned_html(
    samples: CellSamples, picked: int | None = None, claims: dict[int, list[dict[str, Any]]] | None = None
) -> str:
    """One row per (prompt, sample index), one column per variant: they share seeds, so they pair.
    Each sample's claims (``claims``: generation id -> its stored claims) are shown under it."""
    claims = claims or {}
    if not samples.rows:
        return '<div class="aligned-empty">No samples stored for this cell.</div>'
    several_prompts = len({row.prompt_id for row in samples.rows}) > 1
    head = "".join(f"<th>{escape(VARIANT_TITLES.get(v, v))}</th>" for v in samples.variants)
    body = []
    for row in samples.rows:
        index = (
            f"{escape(row.prompt_id)}<br>#{row.sample_index}" if several_prompts else f"#{row.sample_index}"
        )
        cells = "".join(
            _sample_cell(
                row.get(v), picked, claims.get(sample.generation_id, []) if (sample := row.get(v)) else []
            )
            for v in samples.variants
        )
        body.append(f'<tr><th class="index">{index}</th>{cells}</tr>')
    return (
        '<table class="aligned"><thead><tr><th class="index">sample</th>'
        f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def caption_text(sweep: str, samples: CellSamples, clicked_variant: str | None) -> str:
    """What the view shows: sweep, variant(s), T / p / k, prompt."""
    md = markdown_text  # sweep names, variant labels, prompt ids and prompts come from users and datasets
    sides = " \\| ".join(md(VARIANT_TITLES.get(v, v)) for v in samples.variants) or "no variant"
    clicked = f" · clicked **{md(clicked_variant)}**" if clicked_variant and clicked_variant != "all" else ""
    prompt_ids = sorted({row.prompt_id for row in samples.rows})
    prompt_id = samples.prompt_id or (prompt_ids[0] if len(prompt_ids) == 1 else "every prompt")
    prompt = " ".join((samples.prompt or "").split())
    if len(prompt) > 160:
        prompt = prompt[:159] + "…"
    count = max((len(samples.side(v)) for v in samples.variants), default=0)
    return (
        f"**{md(sweep)}** · variants {sides}{clicked} · **T = {samples.temperature:g} · p = {samples.top_p:g} · "
        f"k = {samples.top_k}** · prompt {md(prompt_id)}: {md(prompt) if prompt else '(none)'} · "
        f"{count} sample(s) per side"
    )


def claims_html(view: Any) -> str:
    """A picked sample's claims: decision, rule, evidence (``view`` is engine.labels.LabelSample)."""
    head = (
        f"<p><b>generation {view.generation_id}</b> · {escape(view.variant)} · T={view.temperature:g} "
        f"p={view.top_p:g} k={view.top_k} · {escape(view.prompt_id)} #{view.sample_index} · "
        f"label: <b>{escape(view.label or 'none yet')}</b></p>"
    )
    if not view.claims:
        return head + f'<p class="dim">{NO_CLAIM_CHECKED}</p>'
    return head + claim_rows_html(view.claims) + _profile_html(getattr(view, "profile", None) or [])


def _profile_html(profile: list[tuple[str, str, str]]) -> str:
    """The entity profile the claims were checked against, folded (what the checker believes)."""
    if not profile:
        return ""
    rows = "".join(
        f"<tr><td>{escape(what)}</td><td>{escape(value)}</td><td class='evidence'>{escape(sentence)}</td></tr>"
        for what, value, sentence in profile
    )
    return (
        f'<details class="profile"><summary>Entity profile from the sources ({len(profile)} facts)</summary>'
        f'<table class="claims"><thead><tr><th>fact</th><th>value</th><th>source sentence</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></details>"
    )


# ---------------------------------------------------------------- the finding (engine/summary.py)


def _estimate_cell(text: str) -> str:
    """'0.5 [0.2, 0.8]' with the interval dimmed."""
    value, _, interval = text.partition(" ")
    return f"{escape(value)} <span class='dim'>{escape(interval)}</span>" if interval else escape(value)


def _answer_badge(answer: Any, spec: MetricSpec) -> str:
    if answer.refusal:
        return '<span class="badge refusal">refused</span>'
    if answer.hallucination is None:
        return '<span class="badge note">no claim checked</span>'
    flagged = answer.hallucination >= (1.0 if spec.flags_below is not None else 0.5)
    words = "a claim not supported" if flagged else "claims supported"
    return f'<span class="badge {"contradicted" if flagged else "supported"}">{words}</span>'


def summary_html(summary: SweepSummary) -> str:
    """The finding first: every prompt group's headline, then per group the prompt text(s), the
    per-temperature table (intervals, n) and base next to fine-tuned at a low, middle and high T."""
    if not summary.groups:
        return f'<div class="finding"><p class="headline">{escape(summary.headline)}</p></div>'
    spec = main_score()
    parts = ['<div class="finding">']
    parts += [f'<p class="headline">{escape(group.headline)}</p>' for group in summary.groups]
    for group in summary.groups:
        parts.append(f'<h4 class="group">{escape(group.title[:1].upper() + group.title[1:])}</h4>')
        pooled = " (pooled in this table)" if len(group.prompts) > 1 else ""
        prompts = "".join(
            f"<li><code>{escape(p.prompt_id)}</code> “{escape(' '.join(p.text.split()))}”</li>"
            for p in group.prompts
        )
        parts.append(
            f'<div class="prompts">prompt{"s" if len(group.prompts) > 1 else ""}{pooled}:<ul>{prompts}</ul></div>'
        )
        headers, rows = summary_table(group)
        head = "".join(f"<th>{escape(h)}</th>" for h in headers)
        body = "".join(
            "<tr>" + "".join(f"<td>{_estimate_cell(cell)}</td>" for cell in row) + "</tr>" for row in rows
        )
        parts.append(
            f'<table class="summary-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        )
        if group.examples:
            variants = [v for v in group.variants]
            head = "".join(f"<th>{escape(variant_name(v))}</th>" for v in variants)
            body = []
            for pair in group.examples:
                where = (
                    f"T = {pair.temperature:g}<br><span class='dim'>p = {pair.top_p:g} · k = {pair.top_k}"
                    f"<br>{escape(pair.prompt_id)} #{pair.sample_index}</span>"
                )
                cells = []
                for variant in variants:
                    answer = pair.get(variant)
                    if answer is None:
                        cells.append('<td class="dim">(no answer)</td>')
                        continue
                    text = escape(" ".join(answer.text.split())) or '<span class="dim">(empty answer)</span>'
                    cells.append(f'<td><div class="text">{text}</div>{_answer_badge(answer, spec)}</td>')
                body.append(f'<tr><th class="index">{where}</th>{"".join(cells)}</tr>')
            parts.append(
                '<table class="examples"><thead><tr><th class="index">example answers</th>'
                f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            )
        if line := flat_line(group):
            parts.append(f'<p class="flat">{escape(line[:1].upper() + line[1:])}</p>')
    legend = table_legend(summary)
    if spec.flags_below is not None:
        legend += f" (hallucination rate: share of answers whose {spec.label} is below {spec.flags_below:g})"
    parts.append(f'<p class="dim legend">{escape(legend)}</p>')
    parts += [f'<p class="dim note">note: {escape(note)}</p>' for note in summary.notes]
    parts.append("</div>")
    return "".join(parts)


# ---------------------------------------------------------------- claims in plain words


def claims_legend_html() -> str:
    """What the parts of a claim's line mean (engine/metrics/claim_words.py), folded."""
    items = "".join(f"<li><b>{escape(part)}</b>: {escape(meaning)}</li>" for part, meaning in claim_legend())
    return f'<details class="claims-legend"><summary>What the claim columns mean</summary><ul>{items}</ul></details>'


def claim_rows_html(claims: Sequence[Any]) -> str:
    """A sample's claims as a table: the claim | the verdict in words, why, strength | evidence."""
    if not claims:
        return ""
    rows = []
    ordered = sorted(claims, key=lambda c: (_get(c, "clause") or 0, _get(c, "start") or 0))
    for claim in ordered:
        words = claim_words(claim if isinstance(claim, dict) else claim.to_dict())
        missing = (
            f'<br><span class="dim">missing from the evidence: {escape(", ".join(words.missing[:6]))}</span>'
            if words.missing and words.decision != "contradicted"
            else ""
        )
        rows.append(
            f'<tr class="claim-row {escape(words.decision)}"><td class="claim">{escape(words.text)}</td>'
            f'<td><span class="badge {escape(words.decision)}">{escape(words.verdict)}</span><br>'
            f'<span class="dim">why: {escape(words.reason)} · strength {escape(words.strength_text)}</span></td>'
            f'<td class="evidence">{_evidence(words)}{missing}</td></tr>'
        )
    return (
        '<table class="claims"><thead><tr><th>atomic claim</th><th>verdict · why · strength</th>'
        f"<th>source sentence</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _evidence(words: Any) -> str:
    """The source sentence, labelled by what it is to the claim (evidence, contradicted by, closest)."""
    if not words.evidence:
        return "–"
    return f'<span class="dim">{escape(words.evidence_label)}:</span> {escape(words.evidence)}'


def _get(claim: Any, name: str) -> Any:
    return claim.get(name) if isinstance(claim, dict) else getattr(claim, name, None)


# ---------------------------------------------------------------- the samples table across a sweep


def _score_badges(metrics: dict[str, Any], label: str | None = None) -> str:
    if not metrics:
        badges = '<span class="badge note">not scored</span>'
    else:
        badges = "".join(_badge(m, short, metrics.get(m)) for m, short in BADGES)
    if label:
        badges += f'<span class="badge label {escape(label)}">label: {escape(label)}</span>'
    return badges


def samples_html(found: SampleSearch) -> str:
    """The samples a search found: where each sits, its text, its scores, its claims inline.

    Rows of a "base and fine-tuned differ" search come in pairs (base first), with their gap.
    """
    if not found.rows:
        return '<div class="aligned-empty">No sample matches.</div>'
    prompts = "".join(
        f"<li><code>{escape(pid)}</code> “{escape(' '.join(text.split()))}”</li>"
        for pid, text in sorted(found.prompts.items())
    )
    body = []
    for row in found.rows:
        pair = ""
        if row.partner is not None and row.variant == "base":
            pair = f'<tr class="pair-head"><td colspan="2">pair: main-score gap {row.gap:.2f}</td></tr>'
        where = (
            f"<b>{escape(VARIANT_TITLES.get(row.variant, row.variant))}</b><br>T = {row.temperature:g} · "
            f"p = {row.top_p:g} · k = {row.top_k}<br><code>{escape(row.prompt_id)}</code> #{row.sample_index}"
            f"<br><span class='dim'>generation {row.generation_id}</span>"
        )
        text = escape(row.text) if row.text else '<span class="dim">(empty answer)</span>'
        claims = claim_rows_html(row.claims) or (
            "" if not row.metrics else f'<p class="dim">{NO_CLAIM_CHECKED}</p>'
        )
        body.append(
            f'{pair}<tr class="found" data-gen="{row.generation_id}"><th class="where">{where}</th>'
            f'<td><div class="text">{text}</div><div class="badges"><span class="badge verdict">{escape(row.verdict_words)}</span>'
            f"{_score_badges(row.metrics, row.label)}</div>{claims}</td></tr>"
        )
    return (
        f'<div class="found-prompts">prompts of these rows:<ul>{prompts}</ul></div>'
        '<table class="aligned samples-found"><thead><tr><th class="where">sample</th><th>answer, scores and claims</th>'
        f"</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


# ---------------------------------------------------------------- live answers, scored as they finish


def live_scores_html(scores: Any, variant: str) -> str:
    """One side's live answer scored (engine.live.score_live): its badges and its claims."""
    samples = scores.samples.get(variant) or []
    if not samples:
        return ""
    sample = samples[0]
    spec = main_score()
    value = sample.metrics.get(spec.mean_of or spec.name)
    head = f"<b>{escape(spec.label)}</b> {spec.format(value) if value is not None else '–'}"
    if not scores.has_sources:
        head += ' <span class="dim">(grounding and claims need sources: pick an adapter whose dataset is known, or start with --dataset)</span>'
    claims = claim_rows_html(sample.claims)
    if scores.has_sources and not sample.claims:
        claims = '<p class="dim">No claim to check (a refusal, or nothing specific said).</p>'
    return f'<div class="live-scores"><p>{head}</p><div class="badges">{_score_badges(sample.metrics)}</div>{claims}</div>'
