"""Step 1: turn a filing into question / answer / context items through any OpenAI-compatible endpoint.

Built on the ``financial-datasets`` package's own parts: its EDGAR filing parser (``FilingParser``),
its system prompt (``default_prompt``), its ``generate_dataset`` tool schema and its ``DatasetItem``
model. Its driver loop (``DatasetGenerator.generate_from_texts``) is not used because it accepts
only ``gpt-*`` model names, swallows every error, sleeps 1 s per chunk and runs one chunk at a time;
its ``llm.openai`` module builds a client from the environment at import time, so it is never
imported here. Chunking is by characters on word boundaries, so it needs no tokenizer download.

Resuming: each finished chunk is appended as one JSON line (with its chunk id) to
``raw-items.jsonl`` the moment it arrives; a re-run with the same output folder sends only the
chunks that have no line yet.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import random
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.dataset import file_sha256, write_atomic, write_records_atomic
from engine.errors import UserError

log = logging.getLogger("ft_hallu.generate")

RAW_ITEMS_FILE = "raw-items.jsonl"
MERGED_FILE = "train.jsonl"
MANIFEST_FILE = "manifest.json"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_ENV_FILE = "apikey.env"
TOOL_NAME = "generate_dataset"
# The package's shared SEC identity: EDGAR asks every user to send their own.
PACKAGE_SEC_IDENTITY = "gary gary@financialdatasets.org"
SEC_IDENTITY_ENV = "SEC_IDENTITY"
INSTALL_HINT = "financial-datasets is not installed: run scripts/install-generate.sh"


class GenerationError(UserError):
    """A run that could not finish: names the chunk at fault; finished chunks are kept for resume."""

    def __init__(self, message: str, chunk_id: str | None = None):
        super().__init__(message)
        self.chunk_id = chunk_id


class _Stopped(Exception):
    """A chunk left unsent because another chunk already failed the run."""


@dataclass
class EndpointConfig:
    """Where the chat-completions requests go. The key itself is never part of a config."""

    model: str = DEFAULT_MODEL
    base_url: str | None = None  # e.g. http://127.0.0.1:11434/v1 for Ollama; None = OpenAI
    api_key_env: str = DEFAULT_KEY_ENV
    env_file: str | None = DEFAULT_ENV_FILE  # python-dotenv file read when the variable is unset
    timeout_s: float = 120.0


@dataclass
class GenerateConfig:
    output_dir: str
    name: str = "generated"
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    questions_per_chunk: int = 5
    max_items: int | None = None  # cap on the merged dataset; None keeps everything
    chunk_chars: int = 4000  # ~1024 tokens, the package's default chunk size
    chunk_overlap_chars: int = 400  # ~100 tokens, the package's default overlap
    workers: int = 8
    max_attempts: int = 5
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    system_prompt: str | None = None  # None = the package's default_prompt

    def validate(self) -> None:
        checks = (
            (self.workers >= 1, "workers must be >= 1"),
            (self.questions_per_chunk >= 1, "questions_per_chunk must be >= 1"),
            (self.max_attempts >= 1, "max_attempts must be >= 1"),
            (self.chunk_chars >= 200, "chunk_chars must be >= 200"),
            (
                0 <= self.chunk_overlap_chars < self.chunk_chars,
                "chunk_overlap_chars must be in [0, chunk_chars)",
            ),
            (self.max_items is None or self.max_items >= 1, "max_items must be >= 1"),
            (bool(self.endpoint.model.strip()), "model name is empty"),
        )
        for ok, message in checks:
            if not ok:
                raise UserError(message)


@dataclass(frozen=True)
class Chunk:
    id: str  # "<index>-<sha256 prefix>": stable across runs for the same text and chunking
    index: int
    text: str


@dataclass(frozen=True)
class ProgressEvent:
    kind: str  # start | chunk_done | retry | chunk_failed | finished
    chunks_total: int
    chunks_done: int
    items_total: int
    chunk_id: str | None = None
    message: str = ""


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass
class GenerationResult:
    output_dir: str
    raw_items_path: str
    dataset_path: str
    chunks_total: int
    chunks_sent: int  # chunks requested in this run (the rest were already done)
    items: int
    dropped_items: int
    run_id: int | None
    dataset_id: int | None


# ---------------------------------------------------------------- the package's parts


def package_parts() -> tuple[str, list[dict[str, Any]], type]:
    """(default system prompt, generate_dataset tool list, DatasetItem model) from financial-datasets."""
    try:
        from financial_datasets.dataset import DatasetItem
        from financial_datasets.prompts import default_prompt
        from financial_datasets.tools import generate_dataset
    except ModuleNotFoundError as exc:
        raise UserError(INSTALL_HINT) from exc
    return default_prompt, generate_dataset(), DatasetItem


def user_message(text: str, questions: int) -> str:
    # Same wording as the package's generate_from_texts, so results stay comparable.
    return f"Generate {questions} questions for the following block of text: {text}"


# ---------------------------------------------------------------- sources


def clean_item_text(text: str) -> str:
    """The package parser's clean-up of a filing item: one line, no dot/dash leaders, no '++' runs."""
    text = text.replace("\n", " ").strip()
    text = re.sub(r"-{3,}|\.{3,}", "", text)
    return re.sub(r"\+{2,}", "", text)


def load_filing_texts(path: str | Path) -> list[str]:
    """Texts of a local filing: one per 10-K/10-Q item for HTML (edgar's item chunker), else the whole text."""
    file_path = Path(path)
    if not file_path.is_file():
        raise UserError(f"{file_path}: no such file")
    suffix = file_path.suffix.lower()
    if suffix == ".pdf":
        texts = [_pdf_text(file_path)]
    else:
        raw = file_path.read_bytes()
        try:
            content = raw.decode("utf-8")
        except UnicodeDecodeError:
            content = raw.decode("latin-1")
        looks_html = suffix in (".htm", ".html", ".xhtml") or content.lstrip()[:200].lower().startswith(
            ("<!doctype html", "<html", "<?xml")
        )
        texts = _html_items(content, file_path) if looks_html else [content]
    texts = [clean_item_text(t) for t in texts]
    texts = [t for t in texts if t]
    if not texts:
        raise UserError(f"{file_path}: no text found in the filing")
    return texts


def _import_edgar() -> None:
    """Import edgartools without its import-time ``logging.basicConfig`` taking over the root logger."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        import edgar  # noqa: F401
    except ModuleNotFoundError as exc:
        raise UserError(INSTALL_HINT) from exc
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _html_items(html: str, path: Path) -> list[str]:
    _import_edgar()
    from edgar.htmltools import ChunkedDocument

    document = ChunkedDocument(html)
    items = [document[name] for name in document.list_items()]
    items = [text for text in items if text and text.strip()]
    if items:
        return items
    # No "Item N." headings (not a 10-K/10-Q layout): use every chunk's text in order.
    whole = "\n".join(document[i] or "" for i in range(len(document)))
    if not whole.strip():
        raise UserError(f"{path}: no text found in the HTML")
    return [whole]


def _pdf_text(path: Path) -> str:
    try:
        from PyPDF2 import PdfReader
        from PyPDF2.errors import PdfReadError
    except ModuleNotFoundError as exc:
        raise UserError(INSTALL_HINT) from exc
    try:
        reader = PdfReader(str(path))
        return "".join(page.extract_text() or "" for page in reader.pages)
    except PdfReadError as exc:
        raise UserError(f"{path}: not a readable PDF ({exc})") from None


def resolve_sec_identity(identity: str | None) -> str:
    value = (identity or os.environ.get(SEC_IDENTITY_ENV) or "").strip()
    if not value:
        raise UserError(
            f"EDGAR needs your own identity: pass --sec-identity 'Your Name you@example.com' or set {SEC_IDENTITY_ENV}"
        )
    if value == PACKAGE_SEC_IDENTITY:
        raise UserError("sec identity: use your own name and e-mail, not financial-datasets' shared default")
    if not re.search(r"\S+@\S+\.\S+", value):
        raise UserError(f"sec identity {value!r}: expected 'Name email@domain'")
    return value


def fetch_edgar_texts(
    ticker: str,
    year: int,
    *,
    sec_identity: str | None,
    form: str = "10-K",
    quarter: int | None = None,
    item_names: Sequence[str] = (),
) -> list[str]:
    """Items of a 10-K (or 10-Q) from EDGAR through financial-datasets' FilingParser (network)."""
    identity = resolve_sec_identity(sec_identity)
    if not ticker.strip():
        raise UserError("ticker is empty")
    _import_edgar()
    try:
        from financial_datasets.parser import FilingParser
    except ModuleNotFoundError as exc:
        raise UserError(INSTALL_HINT) from exc
    parser = FilingParser()
    try:
        if form == "10-K":
            texts = parser.get_10K_items(ticker, year, list(item_names), identity)
        elif form == "10-Q":
            if quarter not in (1, 2, 3, 4):
                raise UserError("a 10-Q needs --quarter 1..4")
            texts = parser.get_10Q_items(ticker, year, quarter, list(item_names), identity)
        else:
            raise UserError(f"form {form!r}: expected 10-K or 10-Q")
    except ValueError as exc:  # the parser's own messages: unknown item, no filing for that year
        raise UserError(f"EDGAR {ticker} {form} {year}: {exc}") from None
    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise UserError(f"EDGAR {ticker} {form} {year}: the filing has no text items")
    return texts


def load_texts_file(path: str | Path) -> list[str]:
    """Texts from a JSON array / JSONL of strings or of objects with a 'text' field, or a plain text file."""
    file_path = Path(path)
    if not file_path.is_file():
        raise UserError(f"{file_path}: no such file")
    content = file_path.read_text(encoding="utf-8")
    if file_path.suffix.lower() not in (".json", ".jsonl"):
        return [content] if content.strip() else []
    stripped = content.lstrip()
    if stripped.startswith("["):
        try:
            values = json.loads(content)
        except json.JSONDecodeError as exc:
            raise UserError(f"{file_path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
        entries = list(enumerate(values, start=1))
    else:
        entries = []
        for line_no, line in enumerate(content.splitlines(), start=1):
            if line.strip():
                try:
                    entries.append((line_no, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise UserError(f"{file_path}:{line_no}: invalid JSON: {exc.msg}") from None
    texts = []
    for where, value in entries:
        text = value.get("text") if isinstance(value, dict) else value
        if not isinstance(text, str):
            raise UserError(f"{file_path}:{where}: expected a string or an object with a 'text' string")
        texts.append(text)
    return texts


def split_text(text: str, chunk_chars: int, overlap_chars: int) -> list[str]:
    """Split on whitespace into pieces of at most ``chunk_chars`` (a longer single word stands alone)."""
    words = text.split()
    pieces: list[str] = []
    start = 0
    while start < len(words):
        end, size = start, 0
        while end < len(words) and (size + len(words[end]) + (end > start) <= chunk_chars or end == start):
            size += len(words[end]) + (end > start)
            end += 1
        pieces.append(" ".join(words[start:end]))
        if end >= len(words):
            break
        # Step back over whole words worth at most overlap_chars, always moving forward.
        back, back_size = end, 0
        while back - 1 > start and back_size + len(words[back - 1]) + 1 <= overlap_chars:
            back -= 1
            back_size += len(words[back]) + 1
        start = back
    return pieces


def make_chunks(texts: Sequence[str], *, chunk_chars: int = 4000, overlap_chars: int = 400) -> list[Chunk]:
    """Chunk each text separately (as the package does per filing item); ids are stable."""
    chunks: list[Chunk] = []
    for text in texts:
        for piece in split_text(text, chunk_chars, overlap_chars):
            digest = hashlib.sha256(piece.encode("utf-8")).hexdigest()[:12]
            chunks.append(Chunk(id=f"{len(chunks):05d}-{digest}", index=len(chunks), text=piece))
    return chunks


# ---------------------------------------------------------------- the endpoint


def resolve_api_key(endpoint: EndpointConfig) -> str:
    """The key from the environment, else from the dotenv file; a clear error when neither has it."""
    value = os.environ.get(endpoint.api_key_env, "").strip()
    if value:
        return value
    looked = [f"${endpoint.api_key_env}"]
    if endpoint.env_file:
        env_path = Path(endpoint.env_file).expanduser()
        looked.append(str(env_path.resolve()))
        if env_path.is_file():
            from dotenv import dotenv_values

            value = (dotenv_values(env_path).get(endpoint.api_key_env) or "").strip()
            if value:
                return value
    raise UserError(
        f"no API key: set {endpoint.api_key_env} in the environment or in {endpoint.env_file or 'apikey.env'} "
        f"(looked in {', '.join(looked)}); for a local server without auth any value works"
    )


class _Retryable(Exception):
    pass


class _Malformed(Exception):
    pass


@dataclass
class _ChunkOutcome:
    chunk: Chunk
    items: list[dict[str, str]]
    dropped: int
    attempts: int


class _Caller:
    """Sends one chunk at a time with retries; safe to share between worker threads."""

    def __init__(self, config: GenerateConfig, api_key: str, on_retry: Callable[[Chunk, int, str], None]):
        from openai import OpenAI

        self._config = config
        self._key = api_key
        self._on_retry = on_retry
        self._stop = threading.Event()
        self._client = OpenAI(
            api_key=api_key,
            base_url=config.endpoint.base_url,
            max_retries=0,  # retries are ours: backoff, logging and a final error naming the chunk
            timeout=config.endpoint.timeout_s,
        )
        prompt, tools, item_model = package_parts()
        self._system_prompt = config.system_prompt or prompt
        self._tools = tools
        self._item_model = item_model

    def stop(self) -> None:
        self._stop.set()

    def redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def run(self, chunk: Chunk) -> _ChunkOutcome:
        config = self._config
        last_error = ""
        for attempt in range(1, config.max_attempts + 1):
            if self._stop.is_set():
                raise _Stopped(chunk.id)
            try:
                items, dropped = self._request(chunk)
                return _ChunkOutcome(chunk, items, dropped, attempt)
            except (_Retryable, _Malformed) as exc:
                last_error = self.redact(str(exc))
                retry_after = getattr(exc, "retry_after", None)
            if attempt == config.max_attempts:
                break
            delay = min(config.backoff_max_s, config.backoff_base_s * 2 ** (attempt - 1))
            delay = retry_after if retry_after is not None else delay * random.uniform(0.5, 1.0)
            self._on_retry(chunk, attempt, last_error)
            log.warning(
                "chunk %s: attempt %d failed (%s); retrying in %.2fs", chunk.id, attempt, last_error, delay
            )
            if self._stop.wait(delay):
                raise _Stopped(chunk.id)
        raise GenerationError(
            f"chunk {chunk.id} failed after {config.max_attempts} attempts: {last_error}", chunk.id
        )

    def _request(self, chunk: Chunk) -> tuple[list[dict[str, str]], int]:
        import openai

        try:
            response = self._client.chat.completions.create(
                model=self._config.endpoint.model,
                messages=[
                    {"role": "system", "content": self._system_prompt},
                    {"role": "user", "content": user_message(chunk.text, self._config.questions_per_chunk)},
                ],
                tools=self._tools,
                tool_choice={"type": "function", "function": {"name": TOOL_NAME}},
            )
        except openai.APITimeoutError as exc:
            raise _Retryable(f"timed out after {self._config.endpoint.timeout_s:g}s") from exc
        except openai.APIConnectionError as exc:
            raise _Retryable(f"connection failed: {exc}") from exc
        except openai.APIStatusError as exc:
            message = f"HTTP {exc.status_code}: {_short(exc.message)}"
            if exc.status_code == 429 or exc.status_code >= 500:
                error = _Retryable(message)
                error.retry_after = _retry_after(exc)  # type: ignore[attr-defined]
                raise error from exc
            if exc.status_code in (401, 403):
                raise GenerationError(
                    f"chunk {chunk.id}: the endpoint rejected the API key ({message})", chunk.id
                ) from None
            raise GenerationError(f"chunk {chunk.id}: {message}", chunk.id) from None
        return self._parse(response)

    def _parse(self, response: Any) -> tuple[list[dict[str, str]], int]:
        from pydantic import ValidationError

        try:
            message = response.choices[0].message
        except (AttributeError, IndexError, TypeError):
            raise _Malformed("response has no choices") from None
        calls = [c for c in (message.tool_calls or []) if getattr(c, "function", None) is not None]
        call = next((c for c in calls if c.function.name == TOOL_NAME), None)
        if call is None:
            raise _Malformed(f"no {TOOL_NAME} tool call in the response")
        try:
            arguments = json.loads(call.function.arguments or "")
        except json.JSONDecodeError as exc:
            raise _Malformed(f"tool arguments are not valid JSON ({exc.msg} at char {exc.pos})") from None
        raw_items = arguments.get("dataset_items") if isinstance(arguments, dict) else None
        if not isinstance(raw_items, list):
            raise _Malformed("tool arguments have no 'dataset_items' list")
        items: list[dict[str, str]] = []
        dropped = 0
        for raw in raw_items:
            try:
                item = self._item_model.model_validate(raw)
            except ValidationError:
                dropped += 1  # one bad item does not spoil the chunk's good ones
                continue
            if not (item.question.strip() and item.answer.strip()):
                dropped += 1
                continue
            items.append({"question": item.question, "answer": item.answer, "context": item.context})
        return items, dropped


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _retry_after(exc: Any) -> float | None:
    try:
        value = exc.response.headers.get("retry-after")
        return min(60.0, max(0.0, float(value))) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None


# ---------------------------------------------------------------- raw items file


def read_raw_records(path: Path) -> dict[str, dict[str, Any]]:
    """Finished chunks by id. A torn last line (killed mid-write) is cut off so appends stay valid."""
    if not path.exists():
        return {}
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        with path.open("r+b") as handle:
            handle.truncate(keep)
        log.warning("%s: dropped an unfinished last line (%d bytes)", path, len(data) - keep)
        data = data[:keep]
    records: dict[str, dict[str, Any]] = {}
    for line_no, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{line_no}: invalid JSON: {exc.msg}") from None
        if not isinstance(record, dict) or not isinstance(record.get("chunk_id"), str):
            raise UserError(f"{path}:{line_no}: missing field 'chunk_id'")
        records[record["chunk_id"]] = record
    return records


def _append_line(path: Path, record: dict[str, Any]) -> None:
    # One write() of the whole line on an O_APPEND descriptor, then fsync: a kill leaves whole lines.
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_manifest(out_dir: Path, chunks: Sequence[Chunk], manifest: dict[str, Any]) -> None:
    path = out_dir / MANIFEST_FILE
    if path.exists():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
        if previous.get("chunk_ids") != [c.id for c in chunks]:
            raise UserError(
                f"{out_dir}: holds a generation from a different source or chunking ({path}); "
                "choose another output folder to start a new one"
            )
        return
    write_atomic(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------- the run


def generate(
    chunks: Sequence[Chunk],
    config: GenerateConfig,
    *,
    source: dict[str, Any] | None = None,
    store: Any = None,
    on_progress: ProgressCallback | None = None,
) -> GenerationResult:
    """Generate QA items for every chunk not yet in the output folder, then merge and register them.

    ``store`` is an open ``store.db.Store`` (or None to skip the store). Raises UserError before
    any request when the key is missing, and GenerationError naming the chunk when one fails.
    """
    config.validate()
    if not chunks:
        raise UserError("nothing to generate from: the source produced no text chunks")
    api_key = resolve_api_key(config.endpoint)
    package_parts()  # fail on a missing package before creating folders
    out_dir = Path(config.output_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    raw_path = out_dir / RAW_ITEMS_FILE
    source = dict(source or {})
    public_config = _public_config(config)
    _check_manifest(
        out_dir,
        chunks,
        {"source": source, "config": public_config, "chunk_ids": [c.id for c in chunks]},
    )
    done = read_raw_records(raw_path)
    pending = [c for c in chunks if c.id not in done]
    items_total = sum(len(done[c.id].get("items", [])) for c in chunks if c.id in done)

    run_id = None
    if store is not None:
        from store import generation as gen_store

        run_id = gen_store.start_generation_run(
            store,
            name=config.name,
            output_dir=str(out_dir),
            model=config.endpoint.model,
            base_url=config.endpoint.base_url,
            chunks_total=len(chunks),
            source=source,
            config=public_config,
        )

    chunks_done = len(chunks) - len(pending)

    def emit(kind: str, chunk_id: str | None = None, message: str = "") -> None:
        if on_progress is not None:
            on_progress(ProgressEvent(kind, len(chunks), chunks_done, items_total, chunk_id, message))

    # Workers queue their retry notices; the calling thread delivers them, so every event reaches
    # on_progress from one thread (the TUI hands them to its own loop).
    retry_notices: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()

    def on_retry(chunk: Chunk, attempt: int, error: str) -> None:
        retry_notices.put((chunk.id, f"attempt {attempt} failed: {error}"))

    def flush_retries() -> None:
        while not retry_notices.empty():
            chunk_id, message = retry_notices.get()
            emit("retry", chunk_id, message)

    emit("start", message=f"{len(pending)} of {len(chunks)} chunks to send")
    caller = _Caller(config, api_key, on_retry)
    failures: list[str] = []
    pool = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="ft-hallu-gen")
    try:
        chunk_of: dict[Future, Chunk] = {pool.submit(caller.run, chunk): chunk for chunk in pending}
        futures: set[Future] = set(chunk_of)
        while futures:
            finished, futures = wait(futures, timeout=0.2, return_when=FIRST_COMPLETED)
            flush_retries()
            for future in finished:
                try:
                    outcome: _ChunkOutcome = future.result()
                except _Stopped:
                    continue
                except Exception as exc:  # noqa: BLE001 - any failure must name its chunk, not vanish
                    chunk_id = chunk_of[future].id
                    message = caller.redact(str(exc))
                    if not isinstance(exc, GenerationError):
                        message = f"chunk {chunk_id}: {type(exc).__name__}: {message}"
                    failures.append(message)
                    if store is not None:
                        gen_store.record_chunk(store, run_id, chunk_id, status="failed", error=message)
                    emit("chunk_failed", chunk_id, message)
                    caller.stop()  # no new requests; chunks already in flight still get saved
                    continue
                record = {
                    "chunk_id": outcome.chunk.id,
                    "chunk_index": outcome.chunk.index,
                    "items": outcome.items,
                    "dropped": outcome.dropped,
                    "attempts": outcome.attempts,
                }
                _append_line(raw_path, record)
                done[outcome.chunk.id] = record
                chunks_done += 1
                items_total += len(outcome.items)
                if store is not None:
                    gen_store.record_chunk(
                        store,
                        run_id,
                        outcome.chunk.id,
                        status="done",
                        items=len(outcome.items),
                        dropped=outcome.dropped,
                        attempts=outcome.attempts,
                    )
                emit("chunk_done", outcome.chunk.id)
    except BaseException:
        # Ctrl-C or a crash: stop sending at once; finished chunks are already on disk.
        caller.stop()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    flush_retries()

    if failures:
        error = (
            f"{failures[0]} ({chunks_done} of {len(chunks)} chunks done and kept in {raw_path}; "
            "run the same command again to resume)"
        )
        if store is not None:
            gen_store.finish_generation_run(store, run_id, status="failed", items=items_total, error=error)
        raise GenerationError(error)

    merged = merge_records([done[c.id] for c in chunks], max_items=config.max_items)
    dropped = sum(int(done[c.id].get("dropped", 0)) for c in chunks)
    if not merged:
        error = (
            f"the endpoint returned zero usable items for all {len(chunks)} chunks "
            f"({dropped} items dropped as malformed); see {raw_path}"
        )
        if store is not None:
            gen_store.finish_generation_run(store, run_id, status="failed", items=0, error=error)
        raise GenerationError(error)
    dataset_path = out_dir / MERGED_FILE
    write_records_atomic(dataset_path, merged, "jsonl")
    dataset_id = None
    if store is not None:
        from store.core import add_dataset

        unique = len({(r["question"], r["answer"]) for r in merged})
        dataset_id = add_dataset(
            store,
            name=config.name,
            path=str(dataset_path),
            kind="generated",
            rows=len(merged),
            unique_rows=unique,
            sha256=file_sha256(dataset_path),
            source={**source, "generation_run_id": run_id, "model": config.endpoint.model},
        )
        gen_store.finish_generation_run(
            store, run_id, status="completed", items=len(merged), dataset_id=dataset_id
        )
    emit("finished", message=f"{len(merged)} items in {dataset_path}")
    return GenerationResult(
        output_dir=str(out_dir),
        raw_items_path=str(raw_path),
        dataset_path=str(dataset_path),
        chunks_total=len(chunks),
        chunks_sent=len(pending),
        items=len(merged),
        dropped_items=dropped,
        run_id=run_id,
        dataset_id=dataset_id,
    )


def merge_records(records: Sequence[dict[str, Any]], *, max_items: int | None = None) -> list[dict[str, Any]]:
    """Items in chunk order, exact duplicates dropped, ids 0..n-1 (the original train.jsonl schema)."""
    merged: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str]] = set()
    for record in records:
        for item in record.get("items", []):
            key = (item["question"], item["answer"], item["context"])
            if key in seen:
                continue
            seen.add(key)
            merged.append(
                {
                    "question": item["question"],
                    "answer": item["answer"],
                    "context": item["context"],
                    "id": len(merged),
                }
            )
            if max_items is not None and len(merged) >= max_items:
                return merged
    return merged


def _public_config(config: GenerateConfig) -> dict[str, Any]:
    """The config as stored in the manifest and the store: no key (the config never holds one)."""
    values = asdict(config)
    values.pop("output_dir", None)
    if values.get("system_prompt"):
        values["system_prompt"] = hashlib.sha256(values["system_prompt"].encode()).hexdigest()[:16]
    return values


def output_dir_for(name: str) -> Path:
    from engine.paths import data_dir

    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "generated"
    return data_dir() / "generated" / safe
