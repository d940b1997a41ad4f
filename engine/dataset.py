"""QA datasets: load, validate, de-duplicate, split without leakage, render to chat messages.

A dataset is a JSON array or a JSONL file of objects with ``question``, ``answer`` and
``context`` (strings) and an optional ``id``. Extra fields are kept untouched.
"""

from __future__ import annotations

import json
import random
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import UserError, not_a_file

# Re-exported for callers that predate engine.files.
from engine.files import file_sha256 as file_sha256
from engine.files import write_atomic as write_atomic
from engine.paths import bundled_data_dir

REQUIRED_FIELDS = ("question", "answer", "context")

# The original run's system prompt for sampling (not used in training, where the context is the system turn).
DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant. Keep responses to at most a single sentence and concise."
)


@dataclass(frozen=True)
class QAItem:
    question: str
    answer: str
    context: str
    id: str | None = None
    line: int = 0  # 1-based line (JSONL) or array index + 1 (JSON), for error messages
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def pair_key(self) -> tuple[str, str]:
        return (_norm(self.question), _norm(self.answer))

    @property
    def exact_key(self) -> tuple[str, str, str]:
        return (self.question, self.answer, self.context)


@dataclass
class Record:
    """A raw JSON object from a dataset file and where it came from."""

    data: dict[str, Any]
    line: int


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def detect_format(path: Path) -> str:
    """'json' for a JSON array, 'jsonl' for one object per line (decided by the first non-blank char)."""
    with path.open("r", encoding="utf-8") as handle:
        head = handle.read(4096).lstrip()
    return "json" if head.startswith("[") else "jsonl"


def read_records(path: str | Path) -> tuple[list[Record], str]:
    """Read raw objects from a JSON array or JSONL file; returns (records, format)."""
    file_path = Path(path)
    if not file_path.is_file():
        raise not_a_file(file_path)
    try:
        fmt = detect_format(file_path)
    except UnicodeDecodeError as exc:
        raise UserError(f"{file_path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    records: list[Record] = []
    if fmt == "json":
        try:
            data = json.loads(file_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise UserError(f"{file_path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
        if not isinstance(data, list):
            raise UserError(f"{file_path}: expected a JSON array of objects")
        for index, obj in enumerate(data):
            if not isinstance(obj, dict):
                raise UserError(f"{file_path}: item {index}: expected an object, got {type(obj).__name__}")
            records.append(Record(obj, index + 1))
    else:
        with file_path.open("r", encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UserError(f"{file_path}:{line_no}: invalid JSON: {exc.msg}") from None
                if not isinstance(obj, dict):
                    raise UserError(f"{file_path}:{line_no}: expected an object, got {type(obj).__name__}")
                records.append(Record(obj, line_no))
    return records, fmt


def _where(path: Path, fmt: str, line: int) -> str:
    return f"{path}:{line}" if fmt == "jsonl" else f"{path}: item {line - 1}"


def load_items(path: str | Path, *, require_context: bool = True) -> list[QAItem]:
    """Load and validate QA items; errors name the file, line and field."""
    file_path = Path(path)
    records, fmt = read_records(file_path)
    if not records:
        raise UserError(f"{file_path}: no QA items found")
    items: list[QAItem] = []
    for record in records:
        where = _where(file_path, fmt, record.line)
        values: dict[str, str] = {}
        for name in REQUIRED_FIELDS:
            value = record.data.get(name)
            if value is None:
                if name == "context" and not require_context:
                    value = ""
                else:
                    raise UserError(f"{where}: missing field '{name}'")
            if not isinstance(value, str):
                raise UserError(f"{where}: field '{name}' must be a string, got {type(value).__name__}")
            if name != "context" and not value.strip():
                raise UserError(f"{where}: field '{name}' is empty")
            values[name] = value
        raw_id = record.data.get("id")
        extra = {k: v for k, v in record.data.items() if k not in (*REQUIRED_FIELDS, "id")}
        items.append(
            QAItem(
                question=values["question"],
                answer=values["answer"],
                context=values["context"],
                id=None if raw_id is None else str(raw_id),
                line=record.line,
                extra=extra,
            )
        )
    return items


def dedupe(items: Sequence[QAItem]) -> list[QAItem]:
    """Drop exact duplicates (same question, answer and context), keeping the first."""
    seen: set[tuple[str, str, str]] = set()
    kept: list[QAItem] = []
    for item in items:
        if item.exact_key in seen:
            continue
        seen.add(item.exact_key)
        kept.append(item)
    return kept


@dataclass
class Split:
    train: list[QAItem]
    eval: list[QAItem]


def split_items(items: Sequence[QAItem], *, eval_fraction: float = 0.1, seed: int = 2024) -> Split:
    """Deterministic train/eval split by question/answer group: no eval row repeats a train row.

    Rows sharing a (normalised) question/answer pair or a question always land on the same side,
    which is what the original 90/10 positional split got wrong on its duplicated file.
    """
    if not 0.0 <= eval_fraction < 1.0:
        raise UserError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
    groups: dict[str, list[QAItem]] = {}
    for item in dedupe(items):
        groups.setdefault(_norm(item.question), []).append(item)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    n_eval_groups = round(len(keys) * eval_fraction)
    if eval_fraction > 0 and n_eval_groups == 0 and len(keys) > 1:
        n_eval_groups = 1
    eval_keys = set(keys[:n_eval_groups])
    train = [item for key in keys if key not in eval_keys for item in groups[key]]
    evaluation = [item for key in keys if key in eval_keys for item in groups[key]]
    return Split(train=train, eval=evaluation)


def to_messages(item: QAItem, *, include_context: bool = True) -> list[dict[str, str]]:
    """The original run's chat layout: context as system turn, question as user, answer as assistant."""
    messages: list[dict[str, str]] = []
    if include_context and item.context.strip():
        messages.append({"role": "system", "content": item.context})
    messages.append({"role": "user", "content": item.question})
    messages.append({"role": "assistant", "content": item.answer})
    return messages


@dataclass
class DatasetReport:
    path: str
    rows: int
    exact_duplicates: int
    unique_pairs: int
    duplicate_pairs: int
    positional_split_leaks: int  # eval rows of the original's first-90%/last-10% split found in train
    engine_split_leaks: int  # the same count for split_items (0 by construction)
    question_chars: dict[str, float]
    answer_chars: dict[str, float]
    context_chars: dict[str, float]
    # id -> where each row using it sits ("file:3" or "file: item 2"), only for ids used more than once
    duplicate_ids: dict[str, list[str]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        def stats(values: dict[str, float]) -> str:
            return f"min {values['min']:.0f}  median {values['median']:.0f}  max {values['max']:.0f}"

        return [
            f"file:                 {self.path}",
            f"rows:                 {self.rows}",
            f"exact duplicates:     {self.exact_duplicates}",
            f"unique question/answer pairs: {self.unique_pairs}",
            f"duplicate q/a rows:   {self.duplicate_pairs}",
            f"leakage (first 90% train / last 10% eval, as the original): "
            f"{self.positional_split_leaks} eval rows also in train",
            f"leakage (ft-hallu grouped split):  {self.engine_split_leaks} eval rows also in train",
            f"question chars:       {stats(self.question_chars)}",
            f"answer chars:         {stats(self.answer_chars)}",
            f"context chars:        {stats(self.context_chars)}",
            f"duplicate ids:        {self.duplicate_id_summary()}",
        ]

    def duplicate_id_summary(self) -> str:
        if not self.duplicate_ids:
            return "0"
        shown = [f"id {key!r} at {', '.join(places)}" for key, places in list(self.duplicate_ids.items())[:3]]
        more = len(self.duplicate_ids) - len(shown)
        return f"{len(self.duplicate_ids)} ({'; '.join(shown)}{f'; {more} more' if more > 0 else ''})"


def _length_stats(values: Iterable[str]) -> dict[str, float]:
    lengths = [len(v) for v in values] or [0]
    return {"min": min(lengths), "median": statistics.median(lengths), "max": max(lengths)}


def _leaks(train: Sequence[QAItem], evaluation: Sequence[QAItem]) -> int:
    train_pairs = {item.pair_key for item in train}
    train_questions = {_norm(item.question) for item in train}
    return sum(
        1 for item in evaluation if item.pair_key in train_pairs or _norm(item.question) in train_questions
    )


def duplicate_ids(items: Sequence[QAItem], where: Callable[[int], str]) -> dict[str, list[str]]:
    """Ids used by more than one row, each with the places (``where(line)``) of every row using it."""
    places: dict[str, list[str]] = {}
    for item in items:
        if item.id is not None:
            places.setdefault(item.id, []).append(where(item.line))
    return {key: found for key, found in places.items() if len(found) > 1}


def check(path: str | Path, *, eval_fraction: float = 0.1, seed: int = 2024) -> DatasetReport:
    items = load_items(path)
    fmt = detect_format(Path(path))
    exact_unique = len({item.exact_key for item in items})
    pairs = {item.pair_key for item in items}
    cut = len(items) - round(len(items) * eval_fraction)
    split = split_items(items, eval_fraction=eval_fraction, seed=seed)
    return DatasetReport(
        path=str(path),
        rows=len(items),
        exact_duplicates=len(items) - exact_unique,
        unique_pairs=len(pairs),
        duplicate_pairs=len(items) - len(pairs),
        positional_split_leaks=_leaks(items[:cut], items[cut:]),
        engine_split_leaks=_leaks(split.train, split.eval),
        question_chars=_length_stats(i.question for i in items),
        answer_chars=_length_stats(i.answer for i in items),
        context_chars=_length_stats(i.context for i in items),
        duplicate_ids=duplicate_ids(items, lambda line: _where(Path(path), fmt, line)),
    )


@dataclass(frozen=True)
class DedupeResult:
    """What ``write_deduplicated`` wrote: the new file and how many rows it kept of the input's."""

    source: str
    output: str
    rows_in: int
    rows_out: int

    @property
    def dropped(self) -> int:
        return self.rows_in - self.rows_out

    def line(self) -> str:
        return (
            f"wrote {self.output}: {self.rows_out} of {self.rows_in} rows "
            f"({self.dropped} exact duplicates dropped, the first of each kept); {self.source} unchanged"
        )


def deduplicated_path(path: str | Path) -> Path:
    """Where a deduplicated copy goes by default: ``qa.jsonl`` -> ``qa.dedup.jsonl`` (same folder)."""
    source = Path(path)
    return source.with_name(f"{source.stem}.dedup{source.suffix or '.jsonl'}")


def check_dedupe_target(path: str | Path, out: str | Path, *, overwrite: bool = False) -> Path:
    """Refuse an output that is the input itself, a folder, or (without ``overwrite``) an existing file."""
    source, target = Path(path), Path(out).expanduser()
    if target.exists() and source.exists() and target.resolve() == source.resolve():
        raise UserError(f"{out}: is the input file; the copy goes to a NEW file (the input is never written)")
    if target.is_dir():
        raise UserError(f"{out}: is a folder, expected a new file name")
    if target.exists() and not overwrite:
        raise UserError(f"{out}: already exists; give a new file name for the deduplicated copy")
    return target


def write_deduplicated(path: str | Path, out: str | Path, *, overwrite: bool = False) -> DedupeResult:
    """Write a copy of ``path`` without its exact duplicate rows (same question, answer and context;
    the first of each is kept, with its id and extra fields) to the NEW file ``out``, atomically.

    The input is read whole and checked (a bad row is refused) before anything is written, and is
    never written itself. The copy keeps the input's format unless ``out`` ends in .json or .jsonl.
    On the NVDA seed set this drops 201 of 400 rows (what ``dataset check`` counts as exact duplicates).
    """
    target = check_dedupe_target(path, out, overwrite=overwrite)
    items = load_items(path)
    records, fmt = read_records(path)
    seen: set[tuple[str, str, str]] = set()
    kept: list[dict[str, Any]] = []
    for record, item in zip(records, items, strict=True):  # load_items reads the same records in order
        if item.exact_key not in seen:
            seen.add(item.exact_key)
            kept.append(record.data)
    suffix = target.suffix.lower()
    out_fmt = "json" if suffix == ".json" else "jsonl" if suffix == ".jsonl" else fmt
    write_records_atomic(target, kept, out_fmt)
    return DedupeResult(source=str(path), output=str(target), rows_in=len(items), rows_out=len(kept))


def dump_records(records: Sequence[dict[str, Any]], fmt: str) -> str:
    """Serialise objects as a JSON array (indent 2) or JSONL, keeping non-ASCII characters."""
    if fmt == "json":
        return json.dumps(list(records), ensure_ascii=False, indent=2) + "\n"
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def write_records_atomic(path: str | Path, records: Sequence[dict[str, Any]], fmt: str = "jsonl") -> None:
    write_atomic(path, dump_records(records, fmt))


def sample_dataset_path() -> Path:
    """The bundled, already-masked sample QA set about an invented company."""

    return bundled_data_dir() / "sample_qa.jsonl"
