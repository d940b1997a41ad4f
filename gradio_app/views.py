"""HTML for the aligned samples view and a sample's claims: rendered from the Workspace's dataclasses.

Every text is escaped. Each sample cell carries ``data-gen`` (its generation id) so a click picks
it for labelling (the page script in layout.py forwards it to the app).
"""

from __future__ import annotations

from typing import Any

from engine.escape import html_text as escape
from engine.escape import markdown_text
from engine.metrics.catalog import sample_metric
from engine.workspace import CellSamples, Sample

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
    text = spec.format(float(value))
    return f'<span class="badge" title="{escape(spec.label)}">{short} {text}</span>'


def _sample_cell(sample: Sample | None, picked: int | None) -> str:
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
        f'<div class="meta">{seed}</div><div class="text">{text}</div><div class="badges">{badges}</div></td>'
    )


def aligned_html(samples: CellSamples, picked: int | None = None) -> str:
    """One row per (prompt, sample index), one column per variant: they share seeds, so they pair."""
    if not samples.rows:
        return '<div class="aligned-empty">No samples stored for this cell.</div>'
    several_prompts = len({row.prompt_id for row in samples.rows}) > 1
    head = "".join(f"<th>{escape(VARIANT_TITLES.get(v, v))}</th>" for v in samples.variants)
    body = []
    for row in samples.rows:
        index = (
            f"{escape(row.prompt_id)}<br>#{row.sample_index}" if several_prompts else f"#{row.sample_index}"
        )
        cells = "".join(_sample_cell(row.get(v), picked) for v in samples.variants)
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
        return (
            head
            + '<p class="dim">No claims checked for this sample (grounding needs the sweep\'s sources).</p>'
        )
    rows = []
    for claim in sorted(view.claims, key=lambda c: (c.get("clause") or 0, c.get("start") or 0)):
        decision = str(claim.get("decision") or "")
        strength = claim.get("strength")
        shown = "" if strength is None else f"strength {float(strength):.2f}"
        says = claim.get("source_says")
        rows.append(
            f'<tr><td class="claim">{escape(str(claim.get("text") or ""))}</td>'
            f'<td><span class="badge {escape(decision)}">{escape(decision)}</span><br>'
            f'<span class="dim">{escape(str(claim.get("rule") or ""))} {shown}</span></td>'
            f'<td class="evidence">{escape(str(claim.get("evidence") or "–"))}'
            + (f'<br><span class="dim">source says: {escape(str(says))}</span>' if says else "")
            + "</td></tr>"
        )
    return (
        head
        + '<table class="claims"><thead><tr><th>atomic claim</th><th>decision</th><th>best evidence</th></tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
        + _profile_html(getattr(view, "profile", None) or [])
    )


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
