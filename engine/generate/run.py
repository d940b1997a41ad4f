"""The run: send every pending chunk, append finished ones to raw-items.jsonl, merge, register."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import queue
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict
from pathlib import Path
from typing import Any

from engine.dataset import write_records_atomic
from engine.errors import UserError
from engine.files import file_sha256, naming, slug, write_atomic
from engine.generate.client import ChunkCaller, ChunkOutcome, ChunkStopped, package_parts, resolve_api_key
from engine.generate.config import (
    MANIFEST_FILE,
    MERGED_FILE,
    RAW_ITEMS_FILE,
    RESUME_HINT,
    EndpointConfig,
    GenerateConfig,
    GenerationError,
    GenerationResult,
    ProgressCallback,
    ProgressEvent,
)
from engine.generate.sources import Chunk
from engine.liveness import recorded
from engine.paths import data_dir
from engine.secrets import redact_url
from store import generation as gen_store
from store.core import add_dataset
from store.db import Store

log = logging.getLogger("ft_hallu.generate")


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
    with naming(path):  # a full disk names the file
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, line)
            if written != len(line):  # a short write on a nearly full disk: cut it, keep whole lines
                os.ftruncate(fd, os.fstat(fd).st_size - written)
                raise OSError(errno.ENOSPC, "No space left on device (short write)", str(path))
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


# ---------------------------------------------------------------- the run log


class RunLog:
    """What a run records as it goes. This one records nothing (a run without a store);
    :class:`StoreRunLog` writes the same events to the store."""

    run_id: int | None = None

    def started(
        self,
        *,
        name: str,
        output_dir: Path,
        endpoint: EndpointConfig,
        chunks_total: int,
        source: dict[str, Any],
        config: dict[str, Any],
    ) -> None:
        return None

    def chunk_done(self, chunk_id: str, *, items: int, dropped: int, attempts: int) -> None:
        return None

    def chunk_failed(self, chunk_id: str, error: str) -> None:
        return None

    def failed(self, *, items: int, error: str) -> None:
        return None

    def stopped(self, status: str, error: str) -> None:
        """The run ended early: 'interrupted' (a signal, Ctrl-C) or 'failed', and why."""
        return None

    def completed(
        self,
        *,
        name: str,
        dataset_path: Path,
        merged: Sequence[dict[str, Any]],
        source: dict[str, Any],
        model: str,
    ) -> int | None:
        """Register the merged dataset; returns its id (None when nothing is recorded)."""
        return None


class StoreRunLog(RunLog):
    """Records the run, each chunk and the resulting dataset in an open store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.run_id: int | None = None

    def started(
        self,
        *,
        name: str,
        output_dir: Path,
        endpoint: EndpointConfig,
        chunks_total: int,
        source: dict[str, Any],
        config: dict[str, Any],
    ) -> None:
        self.run_id = gen_store.start_generation_run(
            self.store,
            name=name,
            output_dir=str(output_dir),
            model=endpoint.model,
            base_url=redact_url(endpoint.base_url) if endpoint.base_url else None,
            chunks_total=chunks_total,
            source=source,
            config=config,
        )

    def chunk_done(self, chunk_id: str, *, items: int, dropped: int, attempts: int) -> None:
        gen_store.record_chunk(
            self.store, self.run_id, chunk_id, status="done", items=items, dropped=dropped, attempts=attempts
        )

    def chunk_failed(self, chunk_id: str, error: str) -> None:
        gen_store.record_chunk(self.store, self.run_id, chunk_id, status="failed", error=error)

    def failed(self, *, items: int, error: str) -> None:
        gen_store.finish_generation_run(self.store, self.run_id, status="failed", items=items, error=error)

    def stopped(self, status: str, error: str) -> None:
        if self.run_id is not None:
            gen_store.stop_generation_run(self.store, self.run_id, status=status, error=error)

    def completed(
        self,
        *,
        name: str,
        dataset_path: Path,
        merged: Sequence[dict[str, Any]],
        source: dict[str, Any],
        model: str,
    ) -> int | None:
        unique = len({(r["question"], r["answer"]) for r in merged})
        dataset_id = add_dataset(
            self.store,
            name=name,
            path=str(dataset_path),
            kind="generated",
            rows=len(merged),
            unique_rows=unique,
            sha256=file_sha256(dataset_path),
            source={**source, "generation_run_id": self.run_id, "model": model},
        )
        gen_store.finish_generation_run(
            self.store, self.run_id, status="completed", items=len(merged), dataset_id=dataset_id
        )
        return dataset_id


def run_log_for(store: Store | None) -> RunLog:
    return RunLog() if store is None else StoreRunLog(store)


# ---------------------------------------------------------------- the run


def generate(
    chunks: Sequence[Chunk],
    config: GenerateConfig,
    *,
    source: dict[str, Any] | None = None,
    store: Store | None = None,
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

    run_log = run_log_for(store)
    run_log.started(
        name=config.name,
        output_dir=out_dir,
        endpoint=config.endpoint,
        chunks_total=len(chunks),
        source=source,
        config=public_config,
    )

    with recorded(run_log.stopped):  # Ctrl-C or SIGTERM leaves the run 'interrupted', not 'running'
        return _send_and_merge(
            chunks, config, pending, done, items_total, raw_path, out_dir, source, api_key, run_log, on_progress
        )


def _send_and_merge(
    chunks: Sequence[Chunk],
    config: GenerateConfig,
    pending: list[Chunk],
    done: dict[str, dict[str, Any]],
    items_total: int,
    raw_path: Path,
    out_dir: Path,
    source: dict[str, Any],
    api_key: str,
    run_log: RunLog,
    on_progress: ProgressCallback | None,
) -> GenerationResult:
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
    caller = ChunkCaller(config, api_key, on_retry)
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
                    outcome: ChunkOutcome = future.result()
                except ChunkStopped:
                    continue
                except Exception as exc:  # noqa: BLE001 - any failure must name its chunk, not vanish
                    chunk_id = chunk_of[future].id
                    message = caller.redact(str(exc))
                    if not isinstance(exc, GenerationError):
                        message = f"chunk {chunk_id}: {type(exc).__name__}: {message}"
                    failures.append(message)
                    run_log.chunk_failed(chunk_id, message)
                    emit("chunk_failed", chunk_id, message)
                    caller.stop()  # (the worker stopped it already) no new requests; those in flight get saved
                    continue
                record = {
                    "chunk_id": outcome.chunk.id,
                    "chunk_index": outcome.chunk.index,
                    "items": outcome.items,
                    "dropped": outcome.dropped,
                    "attempts": outcome.attempts,
                    "reply": outcome.reply,
                }
                _append_line(raw_path, record)
                done[outcome.chunk.id] = record
                chunks_done += 1
                items_total += len(outcome.items)
                run_log.chunk_done(
                    outcome.chunk.id,
                    items=len(outcome.items),
                    dropped=outcome.dropped,
                    attempts=outcome.attempts,
                )
                emit("chunk_done", outcome.chunk.id)
    except BaseException:
        # Ctrl-C or a crash: send nothing more and abandon the requests in flight, so the workers
        # end within a poll step and the process need not wait for a server still writing;
        # finished chunks are already on disk.
        caller.abort()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    flush_retries()

    if failures:
        error = (
            f"{failures[0]} ({chunks_done} of {len(chunks)} chunks done and kept in {raw_path}; "
            f"{RESUME_HINT})"
        )
        run_log.failed(items=items_total, error=error)
        raise GenerationError(error)

    merged = merge_records([done[c.id] for c in chunks], max_items=config.max_items)
    dropped = sum(int(done[c.id].get("dropped", 0)) for c in chunks)
    if not merged:
        error = (
            f"the endpoint returned zero usable items for all {len(chunks)} chunks "
            f"({dropped} items dropped as malformed); see {raw_path}"
        )
        run_log.failed(items=0, error=error)
        raise GenerationError(error)
    dataset_path = out_dir / MERGED_FILE
    write_records_atomic(dataset_path, merged, "jsonl")
    dataset_id = run_log.completed(
        name=config.name, dataset_path=dataset_path, merged=merged, source=source, model=config.endpoint.model
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
        run_id=run_log.run_id,
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
    if values["endpoint"].get("base_url"):
        values["endpoint"]["base_url"] = redact_url(values["endpoint"]["base_url"])
    if values.get("system_prompt"):
        values["system_prompt"] = hashlib.sha256(values["system_prompt"].encode()).hexdigest()[:16]
    return values


def output_dir_for(name: str) -> Path:
    return data_dir() / "generated" / slug(name, fallback="generated")
