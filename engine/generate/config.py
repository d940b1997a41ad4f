"""Settings, results and errors of a generation run, shared by the client and the run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from engine.configfile import validate_instance
from engine.endpoint import DEFAULT_ENV_FILE as DEFAULT_ENV_FILE  # the endpoint's settings, re-exported
from engine.endpoint import DEFAULT_KEY_ENV as DEFAULT_KEY_ENV
from engine.endpoint import DEFAULT_MODEL as DEFAULT_MODEL
from engine.endpoint import EndpointConfig
from engine.endpoint import check_base_url as check_base_url
from engine.errors import UserError

RAW_ITEMS_FILE = "raw-items.jsonl"
MERGED_FILE = "train.jsonl"
MANIFEST_FILE = "manifest.json"
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

    def validate(self, source: str = "generate settings") -> None:
        validate_instance(self, source=source)  # types and each field's range
        self.endpoint.validate(source)
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
