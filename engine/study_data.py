"""A stored sweep's samples as the study reads them: the prompt groups, the study's metrics and
settings, and one value per sample and metric (engine/study.py tests them; its module doc says how)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine import control as control_set
from engine.configfile import setting, validate_instance
from engine.errors import UserError
from engine.metrics import catalog
from engine.metrics.knowledge import score_known_fact
from store import core
from store import metrics as metric_store

GROUPS = ("entity", "eval", "control")
# What front ends call each group.
GROUP_LABELS = {
    "entity": "entity prompt",
    "eval": "held-out questions",
    "control": "control questions (known facts)",
}
FINAL = "finetuned"


def prompt_group(prompt_id: str) -> str:
    if control_set.is_control_prompt(prompt_id):
        return "control"
    return "eval" if prompt_id.startswith("eval-") else "entity"


@dataclass(frozen=True)
class StudyMetric:
    name: str
    label: str
    higher_is_better: bool | None


def _catalogued(name: str) -> StudyMetric:
    spec = catalog.sample_metric(name)
    return StudyMetric(name, spec.label, spec.higher_is_better)


# The per-sample values the study compares; names shared with the catalogue take its label.
STUDY_METRICS: dict[str, StudyMetric] = {
    m.name: m
    for m in (
        StudyMetric("hallucinated", "hallucinated (claims mostly unsupported)", False),
        _catalogued("refusal"),
        _catalogued("claim_grounding"),
        _catalogued("conflict"),
        _catalogued("degenerate"),
        _catalogued("token_f1"),
        StudyMetric("states_reference", "states the reference (knowledge kept)", True),
        StudyMetric("claim_states", "a claim states the reference", True),
    )
}
# What each group is compared on, in this order.
GROUP_METRICS: dict[str, tuple[str, ...]] = {
    "entity": ("hallucinated", "refusal", "claim_grounding", "conflict", "degenerate"),
    "eval": ("hallucinated", "refusal", "token_f1"),
    "control": ("states_reference", "claim_states", "token_f1", "refusal"),
}
# The group's headline metric: trajectories, sampling-setting effects and the power analysis use it.
HEADLINE = {"entity": "hallucinated", "eval": "hallucinated", "control": "states_reference"}


@dataclass
class StudySettings:
    """The choices behind the study's tables (``ft-hallu compare`` options; docs/STUDY.md)."""

    alpha: float = setting(0.05, gt=0, lt=1)  # FDR level of the per-cell tests (Benjamini–Hochberg)
    confidence: float = setting(0.95, gt=0, lt=1)  # of every interval
    max_refusal: float = setting(0.5, min=0, max=1)  # operating point: refusal rate at most this
    knowledge_tolerance: float = setting(0.05, min=0, max=1)  # best step: knowledge kept >= base's - this
    hallucination_threshold: float = setting(0.5, min=0, max=1)  # claim grounding <= this: hallucinated
    detect: float = setting(0.2, gt=0, max=1)  # the difference the power analysis sizes N for
    power: float = setting(0.8, gt=0, lt=1)
    resamples: int = setting(1999, min=99)  # bootstrap resamples
    permutations: int = setting(9999, min=99)  # sign-flip resamples (exact below 2^n of them)
    seed: int = setting(2024, min=0, lt=2**32)


# ---------------------------------------------------------------- the samples


@dataclass(frozen=True)
class StudySample:
    variant: str
    temperature: float
    top_p: float
    top_k: int
    prompt_id: str
    sample_index: int
    group: str
    values: dict[str, float | None]

    @property
    def cell(self) -> tuple[float, float, int]:
        return (self.temperature, self.top_p, self.top_k)


@dataclass
class StudyData:
    sweep_id: int
    variants: list[str]
    samples: list[StudySample]
    samples_per_cell: int
    trajectory: dict[str, dict[str, Any]]  # variant -> step, epoch, losses (checkpoint sweeps)
    unscored: int  # entity/eval generations without stored scores

    def groups(self) -> list[str]:
        present = {s.group for s in self.samples}
        return [g for g in GROUPS if g in present]


def _flag(value: Any) -> float | None:
    return None if value is None else float(bool(value))


def _stored(row: dict[str, Any], name: str) -> Any:
    if row.get(name) is not None:
        return row[name]
    return (row.get("metrics") or {}).get(name)


def sample_values(
    row: dict[str, Any], group: str, prompt: dict[str, Any], threshold: float
) -> dict[str, float | None]:
    """The study's per-sample values of one stored generation (see the module doc)."""
    if group == "control":
        accepted = (str(prompt.get("reference") or ""), *(prompt.get("aliases") or []))
        known = score_known_fact(row.get("text") or "", str(prompt.get("prompt") or ""), accepted)
        return {
            "states_reference": float(known.states_reference),
            "claim_states": float(known.claim_states),
            "token_f1": known.token_f1,
            "refusal": float(known.refusal),
            "degenerate": float(known.degenerate),
        }
    if not row.get("metrics"):
        return {name: None for name in GROUP_METRICS[group]}
    refusal = _stored(row, "refusal")
    grounding = _stored(row, "claim_grounding")
    hallucinated = 0.0 if refusal else (None if grounding is None else float(grounding <= threshold))
    token_f1 = _stored(row, "token_f1")
    return {
        "hallucinated": hallucinated,
        "refusal": _flag(refusal),
        "claim_grounding": None if grounding is None else float(grounding),
        "conflict": _flag(_stored(row, "conflict")),
        "degenerate": _flag(_stored(row, "degenerate")),
        "token_f1": None if token_f1 is None else float(token_f1),
    }


def load_study_data(store, sweep_id: int, settings: StudySettings) -> StudyData:
    """Every generation of the sweep with its study values."""
    validate_instance(settings, source="study settings")
    sweep = core.find_sweep(store, sweep_id)
    if not sweep:
        raise UserError(f"sweep {sweep_id}: no such sweep in {store.path}")
    config = sweep.get("config") or {}
    prompts = {p["prompt_id"]: p for p in config.get("prompts") or []}
    rows = metric_store.sample_table(store, sweep_id, only_scored=False)
    if not rows:
        raise UserError(f"sweep {sweep_id}: no generations stored yet")
    samples = []
    unscored = 0
    for row in rows:
        group = prompt_group(str(row["prompt_id"]))
        prompt = prompts.get(row["prompt_id"]) or {
            "prompt": row.get("prompt"),
            "reference": row.get("reference"),
        }
        if group != "control" and not row.get("metrics"):
            unscored += 1
        samples.append(
            StudySample(
                variant=str(row["variant"]),
                temperature=float(row["temperature"]),
                top_p=float(row["top_p"]),
                top_k=int(row["top_k"]),
                prompt_id=str(row["prompt_id"]),
                sample_index=int(row["sample_index"]),
                group=group,
                values=sample_values(row, group, prompt, settings.hallucination_threshold),
            )
        )
    stored_variants = list(dict.fromkeys(s.variant for s in samples))
    variants = [v for v in config.get("variants") or stored_variants if v in stored_variants]
    return StudyData(
        sweep_id=sweep_id,
        variants=variants or stored_variants,
        samples=samples,
        samples_per_cell=int(config.get("samples_per_cell") or max(s.sample_index for s in samples) + 1),
        trajectory=dict(config.get("trajectory") or {}),
        unscored=unscored,
    )
