"""Import the original run's printed sweep output into the store, so old runs are scored like new ones.

The format (``sweep-output-*.txt``): for each grid cell a header line
``Generating response with temperature: T, p: P, k: K``, then the decoded chat with special
tokens (``<|system|> ...<|end|><|user|> ...<|end|><|assistant|> ...<|end|>``, possibly over
several lines), and a line of ``=`` between cells. A cell printed twice becomes sample 0 and 1.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import scoring
from engine.dataset import load_items
from engine.errors import UserError, not_a_file
from store import core as store_core
from store.core import find_sweep

HEADER_RE = re.compile(
    r"^\s*Generating response with temperature:\s*(?P<t>[-+\d.eE]+)\s*,\s*p:\s*(?P<p>[-+\d.eE]+)\s*,"
    r"\s*k:\s*(?P<k>[-+\d]+)\s*$"
)
SEPARATOR_RE = re.compile(r"^\s*={3,}\s*$")
_ROLE_RE = re.compile(r"<\|(system|user|assistant)\|>(.*?)(?=<\|(?:system|user|assistant)\|>|\Z)", re.DOTALL)
_SPECIAL_RE = re.compile(r"<\|[^|<>]{1,40}\|>|</?s>")
VARIANTS = ("base", "finetuned")


@dataclass
class LogCell:
    temperature: float
    top_p: float
    top_k: int
    system_prompt: str | None
    prompt: str
    text: str
    line: int  # header line, 1-based
    truncated: bool  # no end-of-turn token: generation hit max_new_tokens


@dataclass
class ParsedLog:
    path: Path
    cells: list[LogCell] = field(default_factory=list)

    @property
    def prompts(self) -> list[str]:
        return list(dict.fromkeys(cell.prompt for cell in self.cells))

    @property
    def system_prompts(self) -> list[str]:
        return list(dict.fromkeys(cell.system_prompt for cell in self.cells if cell.system_prompt))


def _clean(segment: str) -> str:
    return _SPECIAL_RE.sub(" ", segment).strip()


def _parse_chat(body: str, where: str) -> tuple[str | None, str, str, bool]:
    turns: dict[str, str] = {}
    raw_assistant = ""
    for role, content in _ROLE_RE.findall(body):
        if role == "assistant":
            raw_assistant = content
        else:
            turns.setdefault(role, _clean(content))
    if "user" not in turns:
        raise UserError(f"{where}: no <|user|> turn in this cell")
    if not raw_assistant and "<|assistant|>" not in body:
        raise UserError(f"{where}: no <|assistant|> turn in this cell")
    truncated = not re.search(r"<\|(?:end|endoftext)\|>", raw_assistant)
    return turns.get("system"), turns["user"], _clean(raw_assistant), truncated


def _number(text: str, kind: type, where: str, name: str) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise UserError(f"{where}: {name} {text!r} is not a number") from None
    return value


def parse_log(path: str | Path) -> ParsedLog:
    """Parse a printed sweep log; errors name the file and line."""
    file_path = Path(path)
    if not file_path.is_file():
        raise not_a_file(file_path)
    try:
        lines = file_path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise UserError(f"{file_path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    parsed = ParsedLog(file_path)
    header: re.Match[str] | None = None
    header_line = 0
    body: list[str] = []

    def flush() -> None:
        if header is None:
            return
        where = f"{file_path}:{header_line}"
        t = _number(header.group("t"), float, where, "temperature")
        p = _number(header.group("p"), float, where, "top_p")
        k = _number(header.group("k"), int, where, "top_k")
        system, user, text, truncated = _parse_chat("\n".join(body), where)
        parsed.cells.append(LogCell(t, p, k, system, user, text, header_line, truncated))

    for line_no, line in enumerate(lines, start=1):
        match = HEADER_RE.match(line)
        if match:
            flush()
            header, header_line, body = match, line_no, []
        elif SEPARATOR_RE.match(line):
            flush()
            header, body = None, []
        elif header is not None:
            body.append(line)
        elif line.strip():
            raise UserError(
                f"{file_path}:{line_no}: text outside a cell; expected 'Generating response with temperature: T, p: P, k: K'"
            )
    flush()
    if not parsed.cells:
        raise UserError(f"{file_path}: no 'Generating response with temperature: ...' cells found")
    return parsed


def infer_entity(prompt: str) -> str | None:
    """The first all-capitals word of 3+ letters in the prompt (the masked name, e.g. EGNIVIA)."""
    match = re.search(r"\b[A-Z][A-Z0-9&\-]{2,}\b", prompt)
    return match.group(0) if match else None


def default_sweep_name(path: Path) -> str:
    """The file name without its variant word, so base and fine-tuned logs land in one sweep."""
    stem = re.sub(r"[-_.]?(?:base|finetuned|fine-tuned|ft)$", "", path.stem, flags=re.IGNORECASE)
    return f"import:{stem or path.stem}"


def import_hash(name: str) -> str:
    return "import-log:" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:24]


@dataclass
class ImportResult:
    sweep_id: int
    variant: str
    cells: int
    added: int
    scored: int
    entity: str | None


def _merge_grid(config: dict[str, Any], cells: Sequence[LogCell]) -> dict[str, list[float]]:
    grid = dict(config.get("grid") or {})
    return {
        "temperatures": sorted({*grid.get("temperatures", []), *(c.temperature for c in cells)}),
        "top_ps": sorted({*grid.get("top_ps", []), *(c.top_p for c in cells)}),
        "top_ks": sorted({*grid.get("top_ks", []), *(c.top_k for c in cells)}),
    }


def import_log(
    store: Any,
    path: str | Path,
    *,
    variant: str,
    sweep_name: str | None = None,
    into: int | None = None,
    entity: str | None = None,
    dataset_path: str | Path | None = None,
    compute_metrics: bool = True,
) -> ImportResult:
    """Store a printed log as generations of one variant; then score what is new."""
    if variant not in VARIANTS:
        raise UserError(f"--variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    parsed = parse_log(path)
    dataset = None
    if dataset_path:
        dataset = Path(dataset_path).resolve()
        load_items(
            dataset, require_context=False
        )  # validate now: a bad file is named before anything is stored
    prompts = parsed.prompts
    prompt_ids = {prompt: ("entity" if i == 0 else f"prompt-{i + 1}") for i, prompt in enumerate(prompts)}
    entity = entity or infer_entity(prompts[0])

    if into is not None:
        sweep = find_sweep(store, into)
        if not sweep:
            raise UserError(f"--into {into}: no such sweep")
        sweep_id = into
        config = dict(sweep.get("config") or {})
    else:
        name = sweep_name or default_sweep_name(parsed.path)
        config = {}
        sweep_id = store_core.get_or_create_sweep(
            store,
            name=name,
            source="import-log",
            base_model="unknown (imported log)",
            adapter_dir=None,
            config_hash=import_hash(name),
            config={},
            expected_rows=0,
        )
        config = dict(store_core.get_sweep(store, sweep_id).get("config") or {})

    known_entity = config.get("entity_name")
    if known_entity and entity and known_entity.lower() != entity.lower():
        raise UserError(f"sweep {sweep_id} is about entity {known_entity!r}, this import says {entity!r}")
    known_dataset = config.get("dataset_path")
    if known_dataset and dataset and Path(known_dataset).resolve() != dataset:
        raise UserError(f"sweep {sweep_id} uses dataset {known_dataset}, this import says {dataset}")
    known_prompts = {p["prompt"]: p["prompt_id"] for p in config.get("prompts", [])}
    for prompt in prompts:
        if prompt in known_prompts:
            prompt_ids[prompt] = known_prompts[prompt]
    sample_counts: dict[tuple[float, float, int, str], int] = {}
    rows = []
    for cell in parsed.cells:
        key = (cell.temperature, cell.top_p, cell.top_k, prompt_ids[cell.prompt])
        index = sample_counts.get(key, 0)
        sample_counts[key] = index + 1
        rows.append(
            {
                "variant": variant,
                "temperature": cell.temperature,
                "top_p": cell.top_p,
                "top_k": cell.top_k,
                "prompt_id": prompt_ids[cell.prompt],
                "prompt": cell.prompt,
                "reference": None,
                "sample_index": index,
                "seed": None,
                "text": cell.text,
                "extra": {"source_file": str(parsed.path), "line": cell.line, "truncated": cell.truncated},
            }
        )
    merged_prompts = list(config.get("prompts", []))
    for prompt in prompts:
        if prompt not in known_prompts:
            merged_prompts.append({"prompt_id": prompt_ids[prompt], "prompt": prompt, "reference": None})
    imported_from = dict(config.get("imported_from") or {})
    imported_from[variant] = str(parsed.path)
    config.update(
        {
            "entity_name": known_entity or entity,
            "dataset_path": known_dataset or (str(dataset) if dataset else None),
            "system_prompt": config.get("system_prompt") or (parsed.system_prompts or [None])[0],
            "grid": _merge_grid(config, parsed.cells),
            "samples_per_cell": max([config.get("samples_per_cell") or 0, *sample_counts.values()]),
            "max_new_tokens": config.get("max_new_tokens"),
            "seed": config.get("seed"),
            "prompts": merged_prompts,
            "imported_from": imported_from,
            "variants": sorted({*config.get("variants", []), variant}),
        }
    )
    added = store_core.add_generations(store, sweep_id, rows)
    total_rows = store_core.count_generations(store, sweep_id)
    store_core.update_sweep_config(store, sweep_id, config=config, expected_rows=total_rows)
    store_core.set_sweep_status(store, sweep_id, "completed")
    scored = scoring.compute_missing(store, sweep_id) if compute_metrics else 0
    return ImportResult(sweep_id, variant, len(parsed.cells), added, scored, config["entity_name"])
