"""Human labels: what a labeller sees for one sample, setting labels, and CSV import/export.

Front ends (the ``ft-hallu label`` command, the Gradio and TUI sample views) call these with a
store handle (``Workspace.handle()``). Labels live in store/labels.py.
"""

from __future__ import annotations

import csv
import getpass
import hashlib
import io
import math
import os
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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


MAX_LABELLER_LENGTH = 64


def check_labeller(name: str, *, where: str = "--who") -> str:
    """A labeller's name, stripped; UserError when it is empty, too long or holds control characters."""
    who = (name or "").strip()
    if not who:
        raise UserError(f"{where}: the labeller's name is empty")
    if len(who) > MAX_LABELLER_LENGTH:
        raise UserError(f"{where}: the labeller's name is longer than {MAX_LABELLER_LENGTH} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in who):
        raise UserError(f"{where}: the labeller's name holds a control character")
    return who


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
    """Labelled generations per label, each generation once (its newest label, as calibrate counts it)."""
    counts = {value: 0 for value in LABEL_VALUES}
    for label in choose_labels(sweep_labels(store, sweep_id)).labels.values():
        counts[label] += 1
    return counts


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
    who: str | None = None,
    variant: str | None = None,
) -> ImportResult:
    """Read labels from CSV and store them, all or nothing.

    A row names its generation by ``generation_id``, or by its grid position: ``temperature``,
    ``top_p``, ``top_k`` plus ``variant`` (or the ``variant`` argument), ``prompt_id`` (optional
    when the sweep has one prompt) and ``sample_index`` (default 0). ``note`` or ``reason`` is the
    note; ``who`` in the file overrides the argument. A row without ``who`` takes the ``who``
    argument; without one either, it is refused when other rows of the file name labellers (whose
    label would it be?), and is the default labeller's when none do. Every row is checked before
    anything is written; the first bad one raises UserError naming its file, line and field.
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
    rows = [
        (line, {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None})
        for line, raw in enumerate(reader, start=2)
    ]
    rows = [(line, row) for line, row in rows if any(row.values())]
    named = sorted({row["who"] for _line, row in rows if row.get("who")})
    fallback = check_labeller(who) if who is not None else (None if named else default_labeller())
    labels: list[store_labels.Label] = []
    for line, row in rows:
        where = f"{csv_path}:{line}"
        try:
            label = store_labels.check_label(row.get("label", ""))
        except ValueError as exc:
            raise UserError(f"{where}: field 'label': {exc}") from None
        generation_id = _row_generation(row, where, by_position, known_ids, prompts, variant)
        note = row.get("note") or row.get("reason") or None
        if row.get("who"):
            labeller = check_labeller(row["who"], where=f"{where}: field 'who'")
        elif fallback is not None:
            labeller = fallback
        else:
            raise UserError(
                f"{where}: field 'who' is empty while other rows name labellers ({', '.join(named[:3])}"
                f"{', ...' if len(named) > 3 else ''}): fill it in, or give --who for rows without one"
            )
        labels.append(store_labels.Label(generation_id, label, labeller, note))
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


# ---------------------------------------------------------------- blind labelling

# The order of a blind session when no seed is given (and none was recorded for the labeller).
DEFAULT_BLIND_SEED = 2024
# What a blind labeller never sees: BlindItem carries none of it, so no front end can show it.
BLIND_HIDDEN = (
    "variant",
    "temperature, top_p, top_k",
    "seed and sample index",
    "generation id",
    "every score, claim decision and marked word",
    "other labellers' labels",
)


def blind_order(generation_ids: Iterable[int], seed: int) -> list[int]:
    """The generations in the seeded blind order.

    Each id's place is given by sha256 of (seed, id), so the order depends on the seed only, and a
    generation added to the sweep later slots in without moving the others (a resumed session keeps
    its order).
    """
    return sorted(generation_ids, key=lambda gid: hashlib.sha256(f"{seed}:{gid}".encode()).digest())


@dataclass(frozen=True)
class BlindSession:
    """A labeller's blind pass over a sweep: the seed of its order and how much is left."""

    sweep_id: int
    who: str
    seed: int
    total: int  # generations in the sweep
    left: int  # not labelled by this labeller yet
    previous_seed: int | None = None  # the seed recorded before, when this one replaced it


@dataclass(frozen=True)
class BlindItem:
    """One answer as a blind labeller sees it: the prompt, the answer and plain source sentences.

    It holds no variant, sampling setting, seed, sample index, generation id, score, claim decision
    or other labeller's label (``BLIND_HIDDEN``): front ends render all of it and nothing else.
    ``sources`` are the source sentences retrieved for the answer's claims, every candidate of every
    claim whatever its score, in alphabetical order (not by score), so neither their order nor their
    selection says how the answer scored.
    """

    position: int  # 1-based place in the seeded order of the whole sweep (what labelling refers to)
    total: int
    left: int  # not labelled by this labeller yet (this one included when it is unlabelled)
    prompt: str
    text: str
    sources: tuple[str, ...]
    label: str | None = None  # this labeller's own current label (with relabel)
    note: str | None = None


def check_seed(value: object, *, where: str = "--seed") -> int:
    """A blind-order seed: a whole number (text from a form is parsed); UserError otherwise."""
    if isinstance(value, bool):
        raise UserError(f"{where}: {value!r} is not a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        raise UserError(f"{where}: {text!r} is not a whole number") from None


def start_blind(store: Any, sweep_id: int, *, who: str, seed: int | None = None) -> BlindSession:
    """Open (or resume) a labeller's blind session and record its seed.

    Without ``seed`` the one recorded for this labeller and sweep is used (else DEFAULT_BLIND_SEED),
    so running the same command again continues in the same order.
    """
    _require_sweep(store, sweep_id)
    labeller = check_labeller(who)
    recorded = store_labels.blind_seed(store, sweep_id, who=labeller)
    chosen = (
        check_seed(seed) if seed is not None else (recorded if recorded is not None else DEFAULT_BLIND_SEED)
    )
    if recorded != chosen:
        store_labels.record_blind_seed(store, sweep_id, who=labeller, seed=chosen)
    ids = store_labels.sweep_generation_ids(store, sweep_id)
    done = store_labels.labelled_generation_ids(store, sweep_id, who=labeller)
    return BlindSession(
        sweep_id=sweep_id,
        who=labeller,
        seed=chosen,
        total=len(ids),
        left=len([gid for gid in ids if gid not in done]),
        previous_seed=recorded if recorded is not None and recorded != chosen else None,
    )


def next_blind(
    store: Any,
    sweep_id: int,
    *,
    who: str,
    seed: int,
    after: int = 0,
    relabel: bool = False,
) -> BlindItem | None:
    """The first item after position ``after`` that this labeller has not labelled (any, with
    ``relabel``); None at the end of the order. Skipped items come back in the next pass."""
    labeller = check_labeller(who)
    order = blind_order(store_labels.sweep_generation_ids(store, sweep_id), check_seed(seed))
    done = store_labels.labelled_generation_ids(store, sweep_id, who=labeller)
    left = len([gid for gid in order if gid not in done])
    for position, generation_id in enumerate(order, start=1):
        if position <= after or (generation_id in done and not relabel):
            continue
        return _blind_item(store, generation_id, position, len(order), left, labeller)
    return None


def label_blind(
    store: Any,
    sweep_id: int,
    *,
    who: str,
    seed: int,
    position: int,
    label: str,
    note: str | None = None,
) -> None:
    """Save a label on the item at ``position`` of the labeller's blind order."""
    order = blind_order(store_labels.sweep_generation_ids(store, sweep_id), check_seed(seed))
    if isinstance(position, bool) or not isinstance(position, int) or not 1 <= position <= len(order):
        raise UserError(f"position {position!r}: the blind order of sweep {sweep_id} has {len(order)} items")
    set_label(store, order[position - 1], label, who=check_labeller(who), note=note)


def _blind_item(store: Any, generation_id: int, position: int, total: int, left: int, who: str) -> BlindItem:
    sample = label_sample(store, generation_id, who=who)
    sentences: set[str] = set()
    for claim in sample.claims:
        candidates = [c.get("sentence") for c in claim.get("candidates") or [] if isinstance(c, dict)]
        sentences.update(s for s in candidates or [claim.get("evidence")] if s)
    return BlindItem(
        position=position,
        total=total,
        left=left,
        prompt=sample.prompt,
        text=sample.text,
        sources=tuple(sorted(sentences, key=str.casefold)),
        label=sample.label,
        note=sample.note,
    )


# ---------------------------------------------------------------- several labellers

# Which label of a generation counts when several people labelled it.
NEWEST = "newest"
AGREED = "agreed"


@dataclass(frozen=True)
class ChosenLabels:
    """The one label per generation that calibration uses, and the rule that picked it."""

    labels: dict[int, str]  # generation id -> label
    rule: str  # NEWEST | AGREED
    labellers: tuple[str, ...]
    disagreements: int = 0  # generations the labellers disagree on (left out by AGREED)
    single: int = 0  # generations with one labeller only (left out by AGREED)

    def describe(self) -> str:
        """One line for the output: whose labels, and which rule picked each generation's label."""
        names = ", ".join(self.labellers) or "nobody"
        if self.rule == AGREED:
            return (
                f"labels: agreed only ({names}): {len(self.labels)} generation(s) where every labeller "
                f"gave the same label; left out {self.disagreements} disagreement(s) and "
                f"{self.single} labelled by one labeller only"
            )
        if len(self.labellers) > 1:
            return (
                f"labels: {len(self.labellers)} labellers ({names}): the newest label of each generation "
                f"counts ({self.disagreements} disagreement(s); --agreed-only keeps only the agreed ones)"
            )
        return f"labels: {names}"


def choose_labels(rows: Sequence[dict[str, Any]], *, agreed_only: bool = False) -> ChosenLabels:
    """One label per generation from every labeller's rows (``sweep_labels``).

    NEWEST: the newest label of each generation counts. AGREED (``agreed_only``): only generations
    labelled by at least two labellers who all gave the same label.
    """
    by_generation: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_generation.setdefault(int(row["generation_id"]), []).append(row)
    labellers = tuple(sorted({row["who"] for row in rows}))
    disagreements = sum(len({r["label"] for r in group}) > 1 for group in by_generation.values())
    if agreed_only:
        agreed = {
            gid: group[0]["label"]
            for gid, group in by_generation.items()
            if len(group) > 1 and len({r["label"] for r in group}) == 1
        }
        single = sum(len(group) == 1 for group in by_generation.values())
        return ChosenLabels(agreed, AGREED, labellers, disagreements, single)
    newest = {
        gid: max(group, key=lambda r: (r["created_at"] or "", r["who"]))["label"]
        for gid, group in by_generation.items()
    }
    return ChosenLabels(newest, NEWEST, labellers, disagreements)


@dataclass(frozen=True)
class PairAgreement:
    """Cohen's kappa of two labellers over the generations both labelled (all four labels)."""

    first: str
    second: str
    shared: int  # generations both labelled
    agreed: int  # of those, the same label
    kappa: float | None  # None: undefined (both gave one and the same label to everything)
    kappa_low: float | None = None  # asymptotic 95% interval (statsmodels)
    kappa_high: float | None = None

    def describe(self) -> str:
        share = f"{self.agreed}/{self.shared} same label"
        if self.kappa is None:
            return f"{self.first} vs {self.second}: {share}, kappa undefined (one label only on both sides)"
        interval = (
            f" [95% CI {self.kappa_low:.2f}, {self.kappa_high:.2f}]"
            if self.kappa_low is not None and self.kappa_high is not None
            else ""
        )
        return f"{self.first} vs {self.second}: {share}, Cohen's kappa {self.kappa:.3f}{interval}"


def contingency(pairs: Sequence[tuple[str, str]]) -> list[list[int]]:
    """The LABEL_VALUES x LABEL_VALUES table of (first labeller's label, second's) counts."""
    index = {label: number for number, label in enumerate(LABEL_VALUES)}
    table = [[0] * len(LABEL_VALUES) for _ in LABEL_VALUES]
    for first, second in pairs:
        table[index[first]][index[second]] += 1
    return table


def cohens_kappa(table: Sequence[Sequence[int]]) -> tuple[float | None, float | None, float | None]:
    """(kappa, low, high) of a square contingency table by statsmodels; None when undefined.

    Kappa is undefined when chance agreement is 1 (both raters used one and the same category).
    """
    # statsmodels takes ~1.5 s to import: only calibrate with labellers pays it.
    from statsmodels.stats.inter_rater import cohens_kappa as sm_kappa

    counts = np.asarray(table, dtype=float)
    total = counts.sum()
    if total == 0:
        return None, None, None
    chance = float((counts.sum(axis=0) * counts.sum(axis=1)).sum() / total**2)
    if chance >= 1.0 - 1e-12:
        return None, None, None
    with np.errstate(divide="ignore", invalid="ignore"):
        result = sm_kappa(counts)
    low, high = float(result.kappa_low), float(result.kappa_upp)
    finite = math.isfinite(low) and math.isfinite(high)
    return float(result.kappa), (low if finite else None), (high if finite else None)


def pairwise_agreement(rows: Sequence[dict[str, Any]]) -> list[PairAgreement]:
    """Cohen's kappa for each pair of labellers that share at least one labelled generation."""
    by_who: dict[str, dict[int, str]] = {}
    for row in rows:
        by_who.setdefault(row["who"], {})[int(row["generation_id"])] = row["label"]
    names = sorted(by_who)
    pairs = []
    for number, first in enumerate(names):
        for second in names[number + 1 :]:
            shared = sorted(set(by_who[first]) & set(by_who[second]))
            if not shared:
                continue
            labels = [(by_who[first][gid], by_who[second][gid]) for gid in shared]
            kappa, low, high = cohens_kappa(contingency(labels))
            agreed = sum(a == b for a, b in labels)
            pairs.append(PairAgreement(first, second, len(shared), agreed, kappa, low, high))
    return pairs


def sweep_agreement(store: Any, sweep_id: int) -> list[PairAgreement]:
    return pairwise_agreement(sweep_labels(store, sweep_id))


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
