"""How a verifier's outputs are read: its config's ``id2label`` mapped to entailment, contradiction,
neutral or (binary fact checkers) not entailed, in any order, case or spelling (MNLI cross-encoders,
MiniCheck's "0"/"1"). Pure: engine/verifier.py loads and runs the model."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import UserError

# Label words, compared after lower-casing and folding '_' and '-' to spaces.
_ENTAILMENT = frozenset(
    {
        "entailment",
        "entailed",
        "entails",
        "entail",
        "supported",
        "support",
        "supports",
        "consistent",
        "factually consistent",
        "faithful",
        "grounded",
        "true",
        "yes",
        "1",
    }
)
_CONTRADICTION = frozenset(
    {"contradiction", "contradicted", "contradicts", "contradict", "refuted", "refutes"}
)
_NEUTRAL = frozenset({"neutral", "not enough info", "not enough information", "nei", "unverifiable"})
_NOT_ENTAILED = frozenset(
    {
        "not entailment",
        "non entailment",
        "not entailed",
        "hallucinated",
        "hallucination",
        "unsupported",
        "not supported",
        "inconsistent",
        "not consistent",
        "factually inconsistent",
        "unfaithful",
        "false",
        "no",
        "0",
    }
)
ROLES = ("entailment", "contradiction", "neutral", "not_entailment")


def _fold(label: Any) -> str:
    return " ".join(re.sub(r"[_\-]+", " ", str(label).strip().lower()).split())


def _role(label: Any) -> str | None:
    folded = _fold(label)
    for role, words in (
        ("entailment", _ENTAILMENT),
        ("contradiction", _CONTRADICTION),
        ("neutral", _NEUTRAL),
        ("not_entailment", _NOT_ENTAILED),
    ):
        if folded in words:
            return role
    return None


@dataclass(frozen=True)
class LabelMap:
    """Which output of the classifier means what: one entailment output, the others read as
    contradiction, neutral or (binary models) not entailed."""

    roles: tuple[str, ...]  # role of each output index
    names: tuple[str, ...]  # the model's own label of each output index

    @property
    def entailment(self) -> int:
        return self.roles.index("entailment")

    @property
    def contradiction(self) -> int | None:
        return self.roles.index("contradiction") if "contradiction" in self.roles else None

    @property
    def kind(self) -> str:
        """'nli' (three-way) or 'binary'."""
        return "nli" if len(self.roles) == 3 else "binary"


def label_map(id2label: Mapping[Any, Any], *, model: str) -> LabelMap:
    """Read a classifier's ``id2label``; UserError naming the labels when they cannot be mapped."""
    try:
        labels = {int(index): str(name) for index, name in id2label.items()}
    except (TypeError, ValueError):
        labels = {}
    shown = ", ".join(f"{index}: {name!r}" for index, name in sorted(labels.items())) or repr(dict(id2label))
    problem = (
        f"verifier {model}: cannot read its labels ({shown}, from config.json id2label) as "
        "entailment/neutral/contradiction or supported/unsupported"
    )
    if sorted(labels) != list(range(len(labels))) or not 2 <= len(labels) <= 3:
        raise UserError(f"{problem}: it needs 2 or 3 labels numbered from 0")
    roles = tuple(_role(labels[index]) for index in range(len(labels)))
    if None in roles or roles.count("entailment") != 1 or len(set(roles)) != len(roles):
        raise UserError(f"{problem}; use an NLI or fact-checking classifier whose config names its labels")
    if len(roles) == 3 and set(roles) != {"entailment", "contradiction", "neutral"}:
        raise UserError(f"{problem}: three labels must be entailment, neutral and contradiction")
    return LabelMap(
        roles=tuple(str(role) for role in roles), names=tuple(labels[i] for i in range(len(labels)))
    )
