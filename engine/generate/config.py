"""Settings, results and errors of a generation run, shared by the client and the run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from engine.configfile import setting, validate_instance
from engine.errors import UserError

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
# How a failed run says it resumes; a front end with its own key for that replaces these words.
RESUME_HINT = "run the same command again to resume"


def check_base_url(url: str, *, source: str = "endpoint", label: str = "base_url") -> None:
    """An OpenAI-compatible base URL must be http(s)://host[:port][/path]; the message names it."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise UserError(f"{source}: {label} {url!r}: not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(
            f"{source}: {label} {url!r}: expected http(s)://host[:port]/path, e.g. http://127.0.0.1:11434/v1"
        )


class GenerationError(UserError):
    """A run that could not finish: names the chunk at fault; finished chunks are kept for resume."""

    def __init__(self, message: str, chunk_id: str | None = None):
        super().__init__(message)
        self.chunk_id = chunk_id


@dataclass
class EndpointConfig:
    """Where the chat-completions requests go. The key itself is never part of a config."""

    model: str = setting(DEFAULT_MODEL, non_empty=True, help="the model the endpoint serves")
    base_url: str | None = setting(
        None, help="OpenAI-compatible URL, e.g. http://127.0.0.1:11434/v1 for Ollama; empty: OpenAI"
    )
    api_key_env: str = setting(DEFAULT_KEY_ENV, help="the environment variable holding the key (never shown)")
    env_file: str | None = setting(
        DEFAULT_ENV_FILE, help="dotenv file read when the variable is unset (python-dotenv)"
    )
    timeout_s: float = setting(120.0, gt=0)

    def validate(self, source: str = "endpoint") -> None:
        validate_instance(self, source=source)
        if self.base_url is not None:
            check_base_url(self.base_url, source=source)


@dataclass
class GenerateConfig:
    output_dir: str = setting(help="run folder: finished chunks are kept there; the same folder resumes")
    name: str = setting("generated", help="the dataset's name (default: TICKER-YEAR or the file name)")
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    questions_per_chunk: int = setting(5, help="questions asked per ~1000-token chunk of the filing")
    max_items: int | None = setting(None, help="cap on the merged set; empty keeps everything")
    chunk_chars: int = 4000  # ~1024 tokens, the package's default chunk size
    chunk_overlap_chars: int = 400  # ~100 tokens, the package's default overlap
    workers: int = setting(8, help="chunks sent to the endpoint at once")
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
