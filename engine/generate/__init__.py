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

Modules: ``config`` (settings, results, errors), ``sources`` (filing, EDGAR, texts; chunks; ``QaSource``),
``client`` (API key, the chat-completions caller), ``run`` (the run, its run log, the merge). The
public names are re-exported here, so ``from engine import generate as gen; gen.generate(...)`` works.
"""

from __future__ import annotations

from engine.generate.client import (
    JSON_INSTRUCTION,
    find_api_key,
    items_in_json,
    package_parts,
    resolve_api_key,
    user_message,
)
from engine.generate.config import (
    DEFAULT_ENV_FILE,
    DEFAULT_KEY_ENV,
    DEFAULT_MODEL,
    INSTALL_HINT,
    MANIFEST_FILE,
    MERGED_FILE,
    PACKAGE_SEC_IDENTITY,
    RAW_ITEMS_FILE,
    RESUME_HINT,
    SEC_IDENTITY_ENV,
    TOOL_NAME,
    EndpointConfig,
    GenerateConfig,
    GenerationError,
    GenerationResult,
    ProgressCallback,
    ProgressEvent,
)
from engine.generate.run import (
    RunLog,
    StoreRunLog,
    generate,
    merge_records,
    output_dir_for,
    read_raw_records,
    run_log_for,
)
from engine.generate.sources import (
    Chunk,
    QaSource,
    SourceTexts,
    clean_item_text,
    fetch_edgar_texts,
    load_filing_texts,
    load_texts_file,
    make_chunks,
    resolve_sec_identity,
    split_text,
)

__all__ = [
    "Chunk",
    "DEFAULT_ENV_FILE",
    "DEFAULT_KEY_ENV",
    "DEFAULT_MODEL",
    "EndpointConfig",
    "GenerateConfig",
    "GenerationError",
    "GenerationResult",
    "INSTALL_HINT",
    "JSON_INSTRUCTION",
    "MANIFEST_FILE",
    "MERGED_FILE",
    "PACKAGE_SEC_IDENTITY",
    "ProgressCallback",
    "ProgressEvent",
    "QaSource",
    "RAW_ITEMS_FILE",
    "RESUME_HINT",
    "RunLog",
    "SEC_IDENTITY_ENV",
    "SourceTexts",
    "StoreRunLog",
    "TOOL_NAME",
    "clean_item_text",
    "fetch_edgar_texts",
    "items_in_json",
    "find_api_key",
    "generate",
    "load_filing_texts",
    "load_texts_file",
    "make_chunks",
    "merge_records",
    "output_dir_for",
    "package_parts",
    "read_raw_records",
    "resolve_api_key",
    "resolve_sec_identity",
    "run_log_for",
    "split_text",
    "user_message",
]
