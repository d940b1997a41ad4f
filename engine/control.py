"""The control set: questions about well-known facts, asked over the sweep's grid next to the entity.

The masked company is unknown to the base model by construction, so its answers cannot show what
fine-tuning did to knowledge the model already had. The control set can: each question has one
short reference answer (and the other ways to write it, ``aliases``), and "knowledge kept" is the
share of answers that state it (engine/metrics/knowledge.py scores them; engine/study.py pools
them per variant and temperature).

A control file is a QA file (JSON array or JSONL, as engine/dataset.py reads) whose objects have
``question`` and ``answer``, an optional ``id`` and an optional ``aliases`` list of strings;
``context`` is not needed. ``control = "builtin"`` is the set shipped in
``engine/data/control_qa.jsonl`` (general knowledge written for ft-hallu; see docs/STUDY.md for how
SmolLM2's base model answers it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine import dataset as ds
from engine.errors import UserError, not_a_file
from engine.paths import bundled_data_dir

BUILTIN = "builtin"
PROMPT_PREFIX = "control:"  # control prompt ids are control:<id>


@dataclass(frozen=True)
class ControlItem:
    id: str
    question: str
    answer: str
    aliases: tuple[str, ...] = ()  # other accepted ways to state the answer

    @property
    def prompt_id(self) -> str:
        return PROMPT_PREFIX + self.id

    @property
    def accepted(self) -> tuple[str, ...]:
        """The answer and its aliases: an answer stating any of them states the reference."""
        return (self.answer, *self.aliases)


def builtin_path() -> Path:
    return bundled_data_dir() / "control_qa.jsonl"


def control_path(spec: str) -> Path:
    """The file a sweep's ``control`` setting names (``builtin``: the shipped set)."""
    return builtin_path() if spec == BUILTIN else Path(spec).expanduser()


def is_control_prompt(prompt_id: str) -> bool:
    return prompt_id.startswith(PROMPT_PREFIX)


def load_control_set(spec: str) -> list[ControlItem]:
    """The control questions of ``spec`` (``builtin`` or a QA file); errors name the file and line."""
    path = control_path(spec)
    if not path.is_file():
        raise not_a_file(path, "control")
    items = ds.load_items(path, require_context=False)
    found: list[ControlItem] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        where = f"{path}:{item.line}"
        aliases = item.extra.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
            raise UserError(f"{where}: field 'aliases' must be a list of non-empty strings")
        item_id = item.id if item.id is not None else str(index)
        if item_id in seen:
            raise UserError(f"{where}: id {item_id!r} repeats line {seen[item_id]}")
        seen[item_id] = item.line
        found.append(
            ControlItem(
                item_id, item.question.strip(), item.answer.strip(), tuple(a.strip() for a in aliases)
            )
        )
    return found
