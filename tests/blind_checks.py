"""What a blind labelling view may show, checked the same way for the CLI, the Gradio app and the TUI.

A blind view shows the prompt, the answer and plain source sentences, its place in the order, and
fixed wording. ``assert_blind`` removes every text the view may show verbatim from what it rendered
and checks that the rest names no variant, no sampling setting, no score or claim decision, no
label, and holds no number but the small counters (place, total, left).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import Any

from store import claims as store_claims
from store import labels as store_labels

# Words a blind view never shows outside the texts (settings, scores, decisions, ids, labels).
FORBIDDEN_WORDS = (
    "temperature",
    "top_p",
    "top_k",
    "top-p",
    "top-k",
    "seed",
    "generation",
    "supported",
    "contradicted",
    "unsupported",
    "claim",
    "score",
    "grounding",
    "refusal",
    "faithful",
    "hallucinated",
    "unclear",
    "variant",
    "base",
    "fine-tuned",
    "finetuned",
)
FORBIDDEN_MARKS = ("[[", "T=", "T =", "p=", "k=", "#")


def blind_texts(store: Any, sweep_id: int) -> set[str]:
    """Every text a blind view may show verbatim: prompts, answers, the claims' source sentences."""
    texts: set[str] = set()
    for row in store.db.query("select prompt, text from generations where sweep_id = ?", [sweep_id]):
        texts.update(t for t in (row["prompt"], row["text"]) if t)
    for gid in store_labels.sweep_generation_ids(store, sweep_id):
        for claim in store_claims.generation_claims(store, gid):
            texts.update(c["sentence"] for c in claim.get("candidates") or [] if c.get("sentence"))
            if claim.get("evidence"):
                texts.add(claim["evidence"])
    return texts


def plain(rendered: str) -> str:
    """HTML as the reader sees it: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", " ", rendered))


def assert_blind(chunks: Iterable[str], store: Any, sweep_id: int, *, own_label: str | None = None) -> None:
    """Each rendered item (plain text) shows nothing but allowed texts, fixed words and counters."""
    allowed = sorted(blind_texts(store, sweep_id), key=len, reverse=True)
    variants = {r["variant"] for r in store.db.query("select distinct variant from generations")}
    total = len(store_labels.sweep_generation_ids(store, sweep_id))
    checked = 0
    for chunk in chunks:
        rest = " ".join(chunk.split())
        for text in allowed:
            rest = rest.replace(" ".join(text.split()), " ")
        if own_label:
            rest = rest.replace(f"your label now: {own_label}", " ")
        lowered = rest.lower()
        for word in (*FORBIDDEN_WORDS, *(v.lower() for v in variants)):
            assert not re.search(rf"\b{re.escape(word)}\b", lowered), (
                f"{word!r} shown in blind view: {rest!r}"
            )
        for mark in FORBIDDEN_MARKS:
            assert mark not in rest, f"{mark!r} shown in blind view: {rest!r}"
        for number in re.findall(r"\d+(?:\.\d+)?", rest):
            assert "." not in number and int(number) <= total, (
                f"number {number} shown in blind view: {rest!r}"
            )
        checked += 1
    assert checked, "no blind item was rendered"
