"""How the report shows small things: paths relative to the data folder, variants, one-line texts,
an answer's unsupported words, repeated rows once, and the line said before an embedding model loads."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine import metrics as engine_metrics
from engine import summary as engine_summary
from engine.metrics.cell import EMBEDDING_MODEL_NAME, embedding_model_loaded
from engine.metrics.text import stem, words
from engine.paths import bundled_data_dir
from engine.report.blocks import Say


def display_path(value: str | None, data_folder: Path) -> str:
    """A path as the report shows it: relative to the data folder ('<data>/runs/x'), to the
    bundled data ('<ft-hallu>/engine/data/x'), else only its last two parts ('…/a/b')."""
    if not value:
        return "–"
    path = Path(value)
    if not path.is_absolute():
        return str(path)
    for root, label in ((data_folder, "<data>"), (bundled_data_dir().parent.parent, "<ft-hallu>")):
        try:
            return f"{label}/{path.resolve().relative_to(root.resolve())}"
        except ValueError:
            continue
    return "…/" + "/".join(path.parts[-2:])


def variant_label(variant: str) -> str:
    return engine_summary.variant_name(variant)


def _cell_label(row: dict[str, Any]) -> str:
    return f"T={row['temperature']:g} p={row['top_p']:g} k={row['top_k']}"


def one_line(text: str) -> str:
    return " ".join((text or "").split())


def unsupported_words(text: str, stems: Sequence[str]) -> list[str]:
    """The answer's own words behind grounding's unsupported stems ('multin' -> 'multinational')."""
    by_stem: dict[str, str] = {}
    for word in words(text or ""):
        by_stem.setdefault(stem(word), word)
    return list(dict.fromkeys(by_stem.get(s, s) for s in stems))


def collapse_repeats(
    rows: Sequence[dict[str, Any]], key: Callable[[dict[str, Any]], Any]
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Rows with the same key once, in first-seen order, each with every row it stands for."""
    groups: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return [(members[0], members) for members in groups.values()]


def temperatures_text(members: Sequence[dict[str, Any]]) -> str:
    values = sorted({float(m["temperature"]) for m in members})
    return ", ".join(f"{t:g}" for t in values)


def announce_embeddings(say: Say, why: str) -> None:
    """A progress line before the sentence-embedding model loads (once per process)."""
    if engine_metrics.embeddings_available() and not embedding_model_loaded():
        say(f"loading the sentence-embedding model {EMBEDDING_MODEL_NAME} (CPU) {why}")


def file_stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"
