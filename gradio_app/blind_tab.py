"""The Blind labels tab: one sweep's samples in a seeded order, showing only the prompt, the answer
and plain source sentences, labelled under a labeller's name.

The order, what is hidden and where a resumed session continues come from ``engine.labels``
through the Workspace (``blind_start``, ``blind_next``, ``blind_label``); this tab renders the
``BlindItem`` it gets and keeps the session (sweep, labeller, seed, position) in server-side state,
so nothing but the rendered item reaches the browser. Keys f / h / r / u / s press the buttons
(page.js) while this tab shows a sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

import gradio as gr

from engine.errors import UserError
from engine.labels import LABEL_KEYS, BlindItem, check_seed, default_labeller
from gradio_app.events import user_errors
from gradio_app.handlers import AppHandlers

EMPTY_ITEM = (
    '<div class="aligned-empty">Pick a sweep and press <b>Start / resume</b>: its samples come one by '
    "one, without the model, the sampling settings or any score.</div>"
)
INTRO = (
    "Label without knowing which model wrote the answer: the samples come in a seeded order (the same "
    "order when you come back, continuing where you stopped), with the prompt, the answer and the "
    "source sentences near it only. Each labeller's labels are kept apart; "
    "`ft-hallu calibrate` reports how well labellers agree (Cohen's kappa)."
)


def blind_html(item: BlindItem) -> str:
    """The item as the labeller reads it; every text escaped."""
    sources = (
        "<p><b>sources near this answer (alphabetical):</b></p><ul class='blind-sources'>"
        + "".join(f"<li>{escape(sentence)}</li>" for sentence in item.sources)
        + "</ul>"
        if item.sources
        else "<p class='dim'>sources: none for this answer</p>"
    )
    return (
        f'<div class="blind-item" data-blind="{item.position}">'
        f"<p><b>prompt:</b> {escape(item.prompt)}</p>"
        f"<p><b>answer:</b> <i>{escape(item.text)}</i></p>{sources}</div>"
    )


def progress_text(item: BlindItem | None, who: str) -> str:
    if item is None:
        return f"Every sample seen by **{escape(who)}**; skipped ones come back: press Start / resume."
    mine = f" · your label now: **{item.label}**" if item.label else ""
    return f"**{item.position} of {item.total}** · {item.left} left for **{escape(who)}**{mine}"


@dataclass(frozen=True)
class BlindTab:
    sweep: gr.Dropdown
    refresh: Any  # fn(current sweep) -> the picker's update


def build_blind_tab(handlers: AppHandlers) -> BlindTab:
    """Lay out the Blind labels tab inside the current ``gr.Blocks`` and wire its events."""
    workspace = handlers.workspace

    @user_errors
    def refresh(current: Any = None) -> dict[str, Any]:
        choices = handlers.sweep_choices()
        ids = [value for _label, value in choices]
        value = str(current) if current and str(current) in ids else (ids[0] if ids else None)
        return gr.update(choices=choices, value=value)

    def show(state: dict[str, Any], after: int) -> tuple[str, str, dict[str, Any]]:
        item = workspace.blind_next(state["sweep"], who=state["who"], seed=state["seed"], after=after)
        state = {**state, "position": item.position if item else None}
        return progress_text(item, state["who"]), blind_html(item) if item else EMPTY_ITEM, state

    @user_errors
    def start(sweep: Any, who: Any, seed: Any, request: gr.Request):
        if not sweep:
            raise UserError("blind labels: pick a sweep first")
        # Signed in (--auth): the sign-in name is the default labeller.
        name = str(who or "").strip() or (getattr(request, "username", None) or default_labeller())
        chosen = check_seed(seed, where="seed") if str(seed or "").strip() else None
        session = workspace.blind_start(handlers.sweep_id(sweep), who=name, seed=chosen)
        state = {"sweep": session.sweep_id, "who": session.who, "seed": session.seed}
        progress, html, state = show(state, 0)
        if session.previous_seed is not None:
            progress += f" · a new order: seed {session.seed} (was {session.previous_seed})"
        return session.who, str(session.seed), progress, html, state

    def current(state: Any) -> dict[str, Any]:
        if not state or not state.get("position"):
            raise UserError("blind labels: no sample shown, press Start / resume")
        return state

    def labeller(label: str):
        @user_errors
        def set_label(state: Any, note: Any):
            state = current(state)
            workspace.blind_label(
                state["sweep"],
                who=state["who"],
                seed=state["seed"],
                position=state["position"],
                label=label,
                note=str(note or "").strip() or None,
            )
            return (*show(state, state["position"]), "")

        return set_label

    @user_errors
    def skip(state: Any):
        state = current(state)
        return show(state, state["position"])

    with gr.Tab("Blind labels"):
        gr.Markdown(INTRO)
        with gr.Row():
            sweep = gr.Dropdown(
                label="Stored sweep", choices=[], allow_custom_value=True, scale=3, elem_id="blind-sweep"
            )
            who = gr.Textbox(
                label="Labeller", placeholder="your name (default: sign-in or login name)", scale=2
            )
            seed = gr.Textbox(label="Order seed", placeholder="empty: yours, else the default", scale=1)
            start_btn = gr.Button("Start / resume", scale=1, elem_id="blind-start")
        progress = gr.Markdown("", elem_id="blind-progress")
        item = gr.HTML(EMPTY_ITEM, elem_id="blind-item")
        with gr.Row():
            buttons = {
                label: gr.Button(f"{label} ({key})", elem_id=f"blind-{label}", size="sm")
                for key, label in LABEL_KEYS.items()
            }
            skip_btn = gr.Button("skip (s)", elem_id="blind-skip", size="sm")
        note = gr.Textbox(label="Note (optional, saved with the next label)", elem_id="blind-note")
    state = gr.State(None)  # sweep, labeller, seed, position: never sent to the browser

    start_btn.click(start, [sweep, who, seed], [who, seed, progress, item, state], api_name="blind_start")
    for label, button in buttons.items():
        button.click(labeller(label), [state, note], [progress, item, state, note], api_name=f"blind_{label}")
    skip_btn.click(skip, state, [progress, item, state], api_name="blind_skip")
    return BlindTab(sweep=sweep, refresh=refresh)
