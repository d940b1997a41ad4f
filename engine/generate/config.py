"""Settings, results and errors of a generation run, shared by the client and the run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from engine.configfile import setting, validate_instance
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
# How a failed run says it resumes; a front end with its own key for that replaces these words.
RESUME_HINT = "run the same command again to resume"


class GenerationError(UserError):
    """A run that could not finish: names the chunk at fault; finished chunks are kept for resume."""

    def __init__(self, message: str, chunk_id: str | None = None):
        super().__init__(message)
        self.chunk_id = chunk_id


@dataclass
class GenerateConfig:
    output_dir: str = setting(help="run folder: finished chunks are kept there; the same folder resumes")
    name: str = setting("generated", name=True, help="the dataset's name (default: TICKER-YEAR or the file name)")
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    questions_per_chunk: int = setting(5, min=1, max=100, help="questions asked per ~1000-token chunk of the filing")
    max_items: int | None = setting(None, min=1, help="cap on the merged set; empty keeps everything")
    chunk_chars: int = setting(4000, min=200)  # ~1024 tokens, the package's default chunk size
    chunk_overlap_chars: int = setting(400, min=0)  # ~100 tokens, the package's default overlap
    # Every request passes these explicitly. ~110 tokens per item (question, answer, a context
    # sentence, JSON) makes 5 items ~550: 800 leaves room, and a local server stops there instead
    # of writing its own default (transformers serve: 1024) into every attempt's timeout.
    max_tokens: int = setting(800, min=16, max=131072)
    temperature: float = setting(1.0, min=0, max=2)  # the OpenAI default financial-datasets relied on
    top_p: float = setting(1.0, gt=0, max=1)
    workers: int = setting(8, min=1, max=256, help="chunks sent to the endpoint at once")
    max_attempts: int = setting(5, min=1, max=100)
    backoff_base_s: float = setting(1.0, min=0)
    backoff_max_s: float = setting(30.0, min=0)
    system_prompt: str | None = None  # None = the package's default_prompt

    def validate(self, source: str = "generate settings") -> None:
        validate_instance(self, source=source)  # types and each field's range (setting() above)
        self.endpoint.validate(source)
        if self.chunk_overlap_chars >= self.chunk_chars:
            raise UserError(
                f"{source}: chunk_overlap_chars = {self.chunk_overlap_chars}: must be < chunk_chars ({self.chunk_chars})"
            )


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
