"""One client for OpenAI-compatible chat-completions endpoints, shared by ``generate`` and the judge.

What both callers need and used to write twice: the API key (from the environment or a dotenv
file, never in a config), one request at a time with the openai client's own retries off, errors
sorted into worth-retrying (timeouts, lost connections, HTTP 429 and 5xx, and whatever the caller's
reply parser refuses) and final (any other HTTP status, a rejected key), retries with exponential
backoff and jitter that honour a server's Retry-After, the key redacted from every message, and a
stop (``stop()``: Ctrl-C, a failed sibling request) checked before each attempt and during each wait.

The caller keeps its own words: it wraps the failures below (:class:`Rejected`, :class:`GaveUp`,
:class:`Stopped`) in its own errors, naming the chunk or the judge.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from engine.configfile import setting, validate_instance
from engine.errors import UserError
from engine.secrets import redact, redact_url

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_ENV_FILE = "apikey.env"
OPENAI_BASE_URL = "https://api.openai.com/v1"  # where the openai client sends requests without a base URL
RETRY_AFTER_MAX_S = 60.0  # a server asking for longer is waited on for this long, then asked again

T = TypeVar("T")


def check_base_url(url: str, *, source: str = "endpoint", label: str = "base_url") -> None:
    """An OpenAI-compatible base URL must be http(s)://host[:port][/path]; the message names it."""
    from urllib.parse import urlsplit

    shown = redact_url(url)  # the message never repeats a password given in the URL
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise UserError(f"{source}: {label} {shown!r}: not a URL ({redact(str(exc))})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(
            f"{source}: {label} {shown!r}: expected http(s)://host[:port]/path, e.g. http://127.0.0.1:11434/v1"
        )


@dataclass
class EndpointConfig:
    """Where the chat-completions requests go. The key itself is never part of a config."""

    model: str = setting(DEFAULT_MODEL, name=True, help="the model the endpoint serves")
    base_url: str | None = setting(
        None, help="OpenAI-compatible URL, e.g. http://127.0.0.1:11434/v1 for Ollama; empty: OpenAI"
    )
    api_key_env: str = setting(DEFAULT_KEY_ENV, help="the environment variable holding the key (never shown)")
    env_file: str | None = setting(
        DEFAULT_ENV_FILE, help="dotenv file read when the variable is unset (python-dotenv)"
    )
    timeout_s: float = setting(120.0, gt=0, max=86400)

    def validate(self, source: str = "endpoint") -> None:
        validate_instance(self, source=source)
        if self.base_url is not None:
            check_base_url(self.base_url, source=source)


def find_api_key(endpoint: EndpointConfig) -> tuple[str, str]:
    """The key and where it was found: ``$VARIABLE`` or the dotenv file's path; a clear error when
    neither has it. Only the place is ever shown, never the key."""
    value = os.environ.get(endpoint.api_key_env, "").strip()
    if value:
        return value, f"${endpoint.api_key_env}"
    looked = [f"${endpoint.api_key_env}"]
    if endpoint.env_file:
        env_path = Path(endpoint.env_file).expanduser()
        looked.append(str(env_path.resolve()))
        if env_path.is_file():
            from dotenv import dotenv_values

            value = (dotenv_values(env_path).get(endpoint.api_key_env) or "").strip()
            if value:
                return value, str(env_path.resolve())
    raise UserError(
        f"no API key: set {endpoint.api_key_env} in the environment or in {endpoint.env_file or 'apikey.env'} "
        f"(looked in {', '.join(looked)}); for a local server without auth any value works"
    )


def resolve_api_key(endpoint: EndpointConfig) -> str:
    """The key from the environment, else from the dotenv file; a clear error when neither has it."""
    return find_api_key(endpoint)[0]


@dataclass(frozen=True)
class RetryPolicy:
    """How often to try and how long to wait: ``base * 2**(attempt-1)`` capped at ``max``, with jitter."""

    max_attempts: int
    backoff_base_s: float
    backoff_max_s: float

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed ``attempt`` (1-based); the server's Retry-After wins."""
        if retry_after is not None:
            return retry_after
        # Jitter (half to full) keeps parallel workers from retrying in lockstep.
        return min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


class Retryable(Exception):
    """One attempt failed in a way another attempt may not: raised by a request or a reply parser."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class Rejected(Exception):
    """The endpoint refused the request for good (an HTTP status other than 429/5xx)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status

    @property
    def key_rejected(self) -> bool:
        return self.status in (401, 403)

    def describe(self) -> str:
        """The failure in words: a rejected key says so."""
        return f"the endpoint rejected the API key ({self})" if self.key_rejected else str(self)


class GaveUp(Exception):
    """Every attempt failed; ``last_error`` is the last one's (redacted) message."""

    def __init__(self, attempts: int, last_error: str):
        super().__init__(f"failed after {attempts} attempts: {last_error}")
        self.attempts = attempts
        self.last_error = last_error


class Stopped(Exception):
    """``stop()`` was called: no further attempt is made."""


class EndpointClient:
    """Chat-completions requests to one endpoint with one key; safe to share between threads.

    ``sleep(seconds)`` waits between attempts and returns True when the wait was cut short by a
    stop (default: the client's own stop event, so ``stop()`` ends a wait at once).
    """

    def __init__(
        self,
        endpoint: EndpointConfig,
        retry: RetryPolicy,
        *,
        api_key: str | None = None,
        log: logging.Logger | None = None,
        sleep: Callable[[float], bool] | None = None,
    ):
        from openai import OpenAI

        self.endpoint = endpoint
        self.retry = retry
        self._key = api_key if api_key is not None else resolve_api_key(endpoint)
        self._log = log or logging.getLogger(__name__)
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._client = OpenAI(
            api_key=self._key,
            base_url=endpoint.base_url,
            max_retries=0,  # retries are ours: backoff, Retry-After, logging and errors without the key
            timeout=endpoint.timeout_s,
        )

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def redact(self, text: str) -> str:
        return redact(text.replace(self._key, "***") if self._key else text)

    def chat(self, messages: list[dict[str, str]], **params: Any) -> Any:
        """One chat-completions request (every sampling parameter passed by the caller).

        Raises :class:`Retryable` for a timeout, a lost connection or HTTP 429/5xx (with the
        server's Retry-After) and :class:`Rejected` for any other HTTP status; messages never
        hold the key.
        """
        import openai

        try:
            return self._client.chat.completions.create(
                model=self.endpoint.model, messages=messages, **params
            )
        except openai.APITimeoutError as exc:
            raise Retryable(f"timed out after {self.endpoint.timeout_s:g}s") from exc
        except openai.APIConnectionError as exc:
            where = redact_url(self.endpoint.base_url or OPENAI_BASE_URL)
            raise Retryable(self.redact(f"connection to {where} failed: {exc}")) from exc
        except openai.APIStatusError as exc:
            message = f"HTTP {exc.status_code}: {short(self.redact(str(exc.message)))}"
            if exc.status_code == 429 or exc.status_code >= 500:
                raise Retryable(message, retry_after=_retry_after(exc)) from exc
            raise Rejected(exc.status_code, message) from None

    def retrying(
        self,
        attempt: Callable[[], T],
        *,
        what: str,
        on_retry: Callable[[int, str], None] | None = None,
    ) -> T:
        """``attempt()`` until it returns, up to the policy's attempts, waiting between tries.

        Only :class:`Retryable` is retried; ``on_retry(attempt, message)`` hears of each retry and
        the log names ``what`` ("chunk 3-ab12", "judge gpt-4o-mini"). Raises :class:`Stopped` once
        ``stop()`` was called and :class:`GaveUp` when no attempt succeeded.
        """
        last_error = ""
        for number in range(1, self.retry.max_attempts + 1):
            if self.stopped:
                raise Stopped(what)
            try:
                return attempt()
            except Retryable as exc:
                last_error = self.redact(str(exc))
                retry_after = exc.retry_after
            if number == self.retry.max_attempts:
                break
            delay = self.retry.delay(number, retry_after)
            if on_retry is not None:
                on_retry(number, last_error)
            self._log.warning(
                "%s: attempt %d failed (%s); retrying in %.2fs", what, number, last_error, delay
            )
            if self._sleep(delay):
                raise Stopped(what)
        raise GaveUp(self.retry.max_attempts, last_error)


def short(text: str, limit: int = 200) -> str:
    """One line of at most ``limit`` characters (server messages can be whole HTML pages)."""
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _retry_after(exc: Any) -> float | None:
    try:
        value = exc.response.headers.get("retry-after")
        return min(RETRY_AFTER_MAX_S, max(0.0, float(value))) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None
