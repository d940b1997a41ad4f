"""Human labels: what a labeller sees for one sample, setting labels, and CSV import/export.

Front ends (the ``ft-hallu label`` command, the Gradio and TUI sample views) call these with a
store handle (``Workspace.handle()``). Labels live in store/labels.py.
"""

from __future__ import annotations

import csv
import getpass
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import scoring
from engine.errors import UserError
from engine.files import write_atomic
from store import claims as store_claims
from store import core as store_core
from store import labels as store_labels

LABEL_VALUES = store_labels.LABEL_VALUES
# One key per label in the terminal labeller (and the sample views' shortcuts).
LABEL_KEYS = {"f": "faithful", "h": "hallucinated", "r": "refusal", "u": "unclear"}
EXPORT_COLUMNS = (
    "generation_id",
    "variant",
    "temperature",
    "top_p",
    "top_k",
    "prompt_id",
    "sample_index",
    "label",
    "note",
    "who",
    "created_at",
)


def default_labeller() -> str:
    """Who is labelling: $FT_HALLU_LABELLER, else the login name."""
    name = os.environ.get("FT_HALLU_LABELLER", "").strip()
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return "anonymous"


@dataclass
class LabelSample:
    """One generation as a labeller sees it: the prompt, the answer, each claim with its evidence."""

    generation_id: int
    sweep_id: int
    variant: str
    temperature: float
    top_p: float
    top_k: int
    prompt_id: str
    sample_index: int
    prompt: str
    text: str
    claims: list[dict[str, Any]] = field(default_factory=list)
    label: str | None = None  # this labeller's current label
    note: str | None = None
    # The entity profile the claims were checked against: (fact, value, source sentence) rows.
    profile: list[tuple[str, str, str]] = field(default_factory=list)


def label_sample(store: Any, generation_id: int, *, who: str | None = None) -> LabelSample:
    """A generation with its claims and current label; UserError when there is no such generation."""
    rows = list(store.db.query("select * from generations where id = ?", [generation_id]))
    if not rows:
        raise UserError(f"generation {generation_id}: no such generation")
    row = rows[0]
    current = store_labels.label_of(store, generation_id, who=who)
    claims = store_claims.generation_claims(store, generation_id)
    profile: list[tuple[str, str, str]] = []
    if claims:
        config = (store_core.get_sweep(store, int(row["sweep_id"])) or {}).get("config") or {}
        found = scoring.entity_profile(store, config.get("dataset_path"), config.get("entity_name") or None)
        profile = found.summary() if found else []
    return LabelSample(
        generation_id=int(row["id"]),
        sweep_id=int(row["sweep_id"]),
        variant=row["variant"],
        temperature=float(row["temperature"]),
        top_p=float(row["top_p"]),
        top_k=int(row["top_k"]),
        prompt_id=row["prompt_id"],
        sample_index=int(row["sample_index"]),
        prompt=row["prompt"] or "",
        text=row["text"] or "",
        claims=claims,
        label=current["label"] if current else None,
        note=current["note"] if current else None,
        profile=profile,
    )


def labelling_queue(store: Any, sweep_id: int, *, who: str, relabel: bool = False) -> list[int]:
    """Generation ids left for this labeller, in grid order (all of them with ``relabel``)."""
    _require_sweep(store, sweep_id)
    if relabel:
        return [int(row["id"]) for row in store_core.iter_generations(store, sweep_id)]
    return store_labels.unlabeled_generation_ids(store, sweep_id, who=who)


def set_label(store: Any, generation_id: int, label: str, *, who: str, note: str | None = None) -> None:
    """Save one label (replacing this labeller's earlier one); UserError for an unknown label."""
    try:
        store_labels.save_label(store, generation_id, label, who=who, note=note)
    except ValueError as exc:
        raise UserError(f"generation {generation_id}: {exc}") from None


def sweep_labels(store: Any, sweep_id: int, *, who: str | None = None) -> list[dict[str, Any]]:
    _require_sweep(store, sweep_id)
    return store_labels.sweep_labels(store, sweep_id, who=who)


def label_counts(store: Any, sweep_id: int) -> dict[str, int]:
    return store_labels.label_counts(store, sweep_id)


def _require_sweep(store: Any, sweep_id: int) -> dict[str, Any]:
    sweep = store_core.get_sweep(store, sweep_id)
    if not sweep:
        raise UserError(f"sweep {sweep_id}: no such sweep")
    return sweep


# ---------------------------------------------------------------- CSV


def export_labels_csv(store: Any, sweep_id: int, path: str | Path, *, who: str | None = None) -> int:
    """Write a sweep's labels (one row per generation and labeller) atomically; returns the row count."""
    rows = sweep_labels(store, sweep_id, who=who)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    write_atomic(path, buffer.getvalue())
    return len(rows)


@dataclass(frozen=True)
class ImportResult:
    rows: int
    written: int


def import_labels_csv(
    store: Any,
    sweep_id: int,
    path: str | Path,
    *,
    who: str,
    variant: str | None = None,
) -> ImportResult:
    """Read labels from CSV and store them, all or nothing.

    A row names its generation by ``generation_id``, or by its grid position: ``temperature``,
    ``top_p``, ``top_k`` plus ``variant`` (or the ``variant`` argument), ``prompt_id`` (optional
    when the sweep has one prompt) and ``sample_index`` (default 0). ``note`` or ``reason`` is the
    note; ``who`` in the file overrides the argument. Every row is checked before anything is
    written; the first bad one raises UserError naming its file, line and field.
    """
    csv_path = Path(path)
    _require_sweep(store, sweep_id)
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UserError(f"{csv_path}: cannot read ({exc.strerror or exc})") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in (reader.fieldnames or [])]
    if "label" not in header:
        raise UserError(f"{csv_path}:1: no 'label' column (header: {', '.join(header) or 'empty'})")
    by_position = _position_index(store, sweep_id)
    prompts = sorted({key[1] for key in by_position})
    known_ids = {generation_id for generation_id in by_position.values()}
    labels: list[store_labels.Label] = []
    for line, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(row.values()):
            continue
        where = f"{csv_path}:{line}"
        try:
            label = store_labels.check_label(row.get("label", ""))
        except ValueError as exc:
            raise UserError(f"{where}: field 'label': {exc}") from None
        generation_id = _row_generation(row, where, by_position, known_ids, prompts, variant)
        note = row.get("note") or row.get("reason") or None
        labels.append(store_labels.Label(generation_id, label, row.get("who") or who, note))
    written = store_labels.save_labels(store, labels)
    return ImportResult(rows=len(labels), written=written)


_Position = tuple[str, str, float, float, int, int]  # variant, prompt_id, temperature, top_p, top_k, sample


def _position_index(store: Any, sweep_id: int) -> dict[_Position, int]:
    index: dict[_Position, int] = {}
    for row in store_core.iter_generations(store, sweep_id):
        key = (
            row["variant"],
            row["prompt_id"],
            float(row["temperature"]),
            float(row["top_p"]),
            int(row["top_k"]),
            int(row["sample_index"]),
        )
        index[key] = int(row["id"])
    return index


def _number(row: dict[str, str], name: str, where: str, kind: type) -> Any:
    value = row.get(name, "")
    if value == "":
        raise UserError(f"{where}: field '{name}' is empty")
    try:
        number = kind(float(value)) if kind is int and "." in value else kind(value)
    except ValueError:
        raise UserError(f"{where}: field '{name}': {value!r} is not a number") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise UserError(f"{where}: field '{name}': {value!r} is not a finite number")
    return number


def _row_generation(
    row: dict[str, str],
    where: str,
    by_position: dict[_Position, int],
    known_ids: set[int],
    prompts: Sequence[str],
    variant: str | None,
) -> int:
    if row.get("generation_id"):
        generation_id = _number(row, "generation_id", where, int)
        if generation_id not in known_ids:
            raise UserError(
                f"{where}: field 'generation_id': {generation_id} is not a generation of this sweep"
            )
        return generation_id
    chosen_variant = row.get("variant") or variant
    if not chosen_variant:
        raise UserError(f"{where}: field 'variant' is empty (give it in the file or with --variant)")
    prompt_id = row.get("prompt_id") or (prompts[0] if len(prompts) == 1 else "")
    if not prompt_id:
        raise UserError(f"{where}: field 'prompt_id' is empty and the sweep has {len(prompts)} prompts")
    key = (
        chosen_variant,
        prompt_id,
        _number(row, "temperature", where, float),
        _number(row, "top_p", where, float),
        _number(row, "top_k", where, int),
        _number(row, "sample_index", where, int) if row.get("sample_index") else 0,
    )
    if key not in by_position:
        raise UserError(
            f"{where}: no generation at variant={key[0]} prompt={key[1]} T={key[2]:g} top_p={key[3]:g} "
            f"top_k={key[4]} sample={key[5]} in this sweep"
        )
    return by_position[key]


# ---------------------------------------------------------------- the report's claims table


def _mark(word: str, decision: str) -> str:
    return f"[[{word}]]" if decision != "supported" else word


def claims_section(store: Any, sweep_id: int) -> tuple[str, list[str], list[list[str]]]:
    """Every sample's claims with decision, score and evidence, words the evidence lacks marked
    [[like this]] in unsupported and contradicted claims; the judge's verdicts as extra columns."""
    from engine.metrics.claims import marked_claim
    from store import metrics as store_metrics

    models = store_claims.judge_models(store, sweep_id)
    judged: dict[tuple[int, int, str], str] = {}
    for model in models:
        for row in store_claims.sweep_claim_judgements(store, sweep_id, model=model):
            judged[(int(row["generation_id"]), int(row["claim_index"]), model)] = (
                row["label"] or row["status"]
            )
    by_generation: dict[int, list[dict[str, Any]]] = {}
    for claim in store_claims.sweep_claims(store, sweep_id):
        by_generation.setdefault(int(claim["generation_id"]), []).append(claim)
    labels = {int(r["generation_id"]): r["label"] for r in store_labels.sweep_labels(store, sweep_id)}
    headers = [
        "variant",
        "cell",
        "sample",
        "human label",
        "weakest claim",
        "claim grounding",
        "atomic claim",
        "decision (rule)",
        "strength",
        "evidence",
    ]
    headers += [f"judge: {model}" for model in models]
    rows: list[list[str]] = []
    for sample in store_metrics.sample_table(store, sweep_id):
        generation_id = int(sample["generation_id"])
        claims = by_generation.get(generation_id, [])
        cell = f"T={sample['temperature']:g} p={sample['top_p']:g} k={sample['top_k']}"
        metrics = sample.get("metrics") or {}
        grounding, weakest = metrics.get("claim_grounding"), metrics.get("claim_support_min")
        lead = [
            sample["variant"],
            cell,
            str(sample["sample_index"]),
            labels.get(generation_id, ""),
            "–" if weakest is None else f"{weakest:.2f}",
            "–" if grounding is None else f"{grounding:.2f}",
        ]
        if not claims:
            why = "refusal: no claim checked" if sample.get("refusal") else "no claim checked (no sources)"
            rows.append(lead + [why, "", "", ""] + [""] * len(models))
            continue
        for number, claim in enumerate(sorted(claims, key=lambda c: (c.get("clause") or 0, c["start"]))):
            shown = marked_claim(claim, mark=_mark)
            verdicts = [judged.get((generation_id, int(claim["claim_index"]), m), "") for m in models]
            rows.append(
                (lead if number == 0 else [""] * len(lead))
                + [
                    shown,
                    f"{claim['decision']} ({claim['rule']})",
                    "–" if claim.get("strength") is None else f"{claim['strength']:.2f}",
                    (claim.get("evidence") or "")
                    + (f" [source says: {claim['source_says']}]" if claim.get("source_says") else ""),
                ]
                + verdicts
            )
    title = (
        "Atomic claims and their evidence (strength: support when supported, 0 when contradicted; "
        "words the evidence lacks marked [[like this]])"
    )
    return title, headers, rows
