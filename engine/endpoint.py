"""One client for OpenAI-compatible chat-completions endpoints, shared by ``generate`` and the judge.

What both callers need and used to write twice: the API key (from the environment or a dotenv
file, never in a config), one request at a time with the openai client's own retries off, errors
sorted into worth-retrying (timeouts, lost connections, HTTP 429 and 5xx, and whatever the caller's
reply parser refuses) and final (any other HTTP status, a rejected key), retries with exponential
backoff and jitter that honour a server's Retry-After, the key redacted from every message, and the
server's own reason for a refusal (a FastAPI server's ``{"detail": ...}``, an OpenAI-style
``{"error": {"message": ...}}``), shortened and redacted, never just "Error code: 400".

Two ways to end early. ``stop()`` (a failed sibling request) sends nothing new: it is checked before
each attempt and ends each wait, while a request already in flight finishes. ``abort()`` (Ctrl-C,
SIGTERM) also abandons the requests in flight at once: each request runs in a daemon thread the
caller waits on in short steps (:data:`POLL_S`), so the caller returns within one step and the
openai client is closed; a Ctrl-C in the waiting thread aborts too. The process may then exit
without waiting for a server still writing a long answer, and its exit closes the connection.

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
from engine.secrets import looks_secret_name, looks_secret_value, redact, redact_url

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_ENV_FILE = "apikey.env"
OPENAI_BASE_URL = "https://api.openai.com/v1"  # where the openai client sends requests without a base URL
RETRY_AFTER_MAX_S = 60.0  # a server asking for longer is waited on for this long, then asked again
POLL_S = 0.05  # how often a caller waiting on its request checks for an abort
REASON_CHARS = 200  # a server's reason is cut to this many characters (some send whole HTML pages)

T = TypeVar("T")
# Request fields ft-hallu sets itself: extra_body may not override them (a sampling parameter is
# passed explicitly by the caller, under its own name).
OWN_FIELDS = frozenset(
    {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "tools",
     "tool_choice", "response_format", "stream", "n"}
)  # fmt: skip


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
    if parts.query or parts.fragment:
        # The client appends /chat/completions to the URL as written, after any query: the request
        # would go to ".../v1?key=.../chat/completions".
        raise UserError(
            f"{source}: {label} {shown!r}: a query string is not supported (the client appends "
            "/chat/completions after it); give the key through the key variable or the env file, "
            "server options through extra_body"
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
    # Fields a server takes beyond the OpenAI API, sent with every request as given (the openai
    # client's extra_body): transformers serve samples only when asked through
    # {"generation_config": "{\"do_sample\": true}"} (a JSON string). Never a credential.
    extra_body: dict[str, Any] | None = None

    def validate(self, source: str = "endpoint") -> None:
        validate_instance(self, source=source)
        if self.base_url is not None:
            check_base_url(self.base_url, source=source)
        check_extra_body(self.extra_body, source=source)


def parse_extra_body(text: str | None, *, source: str = "command line", label: str = "--extra-body") -> dict | None:
    """A JSON object from the command line (``--extra-body '{"generation_config": "..."}'``), checked."""
    import json

    if text is None or not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{source}: {label}: not JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(value, dict):
        raise UserError(f"{source}: {label}: expected a JSON object {{...}}, got {type(value).__name__}")
    check_extra_body(value, source=source, label=label)
    return value


def check_extra_body(extra: dict[str, Any] | None, *, source: str, label: str = "extra_body") -> None:
    """Refuse fields ft-hallu sets itself and anything that looks like a credential (it is stored)."""
    import json

    for name, value in (extra or {}).items():
        if name in OWN_FIELDS:
            raise UserError(f"{source}: {label}: {name!r} is set by ft-hallu; use its own option")
        if looks_secret_name(name) or looks_secret_value(json.dumps(value)):
            raise UserError(
                f"{source}: {label}: {name!r} looks like a credential; extra_body is stored with the run "
                "(pass keys through the API key variable)"
            )


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
    """``stop()`` or ``abort()`` was called: no further attempt is made (or the request in flight
    was abandoned)."""


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
        self._abort = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._client = OpenAI(
            api_key=self._key,
            base_url=endpoint.base_url,
            max_retries=0,  # retries are ours: backoff, Retry-After, logging and errors without the key
            timeout=endpoint.timeout_s,
        )

    def stop(self) -> None:
        """Send nothing new; requests in flight finish (see the module's doc)."""
        self._stop.set()

    def abort(self) -> None:
        """Send nothing new and abandon the requests in flight: their callers raise :class:`Stopped`."""
        self._stop.set()
        if not self._abort.is_set():
            self._abort.set()
            try:
                self._client.close()  # idle connections go now; the one in flight with the process
            except Exception as exc:  # noqa: BLE001 - closing is best effort; the abort stands
                self._log.debug("closing the endpoint client: %s", exc)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def redact(self, text: str) -> str:
        return redact(text.replace(self._key, "***") if self._key else text)

    def chat(self, messages: list[dict[str, str]], **params: Any) -> Any:
        """One chat-completions request (every sampling parameter passed by the caller).

        Raises :class:`Retryable` for a timeout, a lost connection or HTTP 429/5xx (with the
        server's Retry-After), :class:`Rejected` for any other HTTP status (with the server's own
        reason) and :class:`Stopped` when :meth:`abort` abandoned it; messages never hold the key.
        ``params`` may hold ``extra_body`` (fields the openai client does not know, sent as given).
        """
        import openai

        if self.endpoint.extra_body:
            params = {**params, "extra_body": {**self.endpoint.extra_body, **(params.get("extra_body") or {})}}
        try:
            return self._send(messages, params)
        except openai.APITimeoutError as exc:
            raise Retryable(f"timed out after {self.endpoint.timeout_s:g}s") from exc
        except openai.APIConnectionError as exc:
            if self._abort.is_set():
                raise Stopped("aborted") from None
            where = redact_url(self.endpoint.base_url or OPENAI_BASE_URL)
            raise Retryable(self.redact(f"connection to {where} failed: {exc}")) from exc
        except openai.APIStatusError as exc:
            message = f"HTTP {exc.status_code}: {short(self.redact(server_reason(exc)), REASON_CHARS)}"
            if exc.status_code == 429 or exc.status_code >= 500:
                raise Retryable(message, retry_after=_retry_after(exc)) from exc
            raise Rejected(exc.status_code, message) from None

    def _send(self, messages: list[dict[str, str]], params: dict[str, Any]) -> Any:
        """The request, in a daemon thread this one waits on in steps of POLL_S (see abort())."""
        if self._abort.is_set():
            raise Stopped("aborted")
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def send() -> None:
            try:
                outcome["response"] = self._client.chat.completions.create(
                    model=self.endpoint.model, messages=messages, **params
                )
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                outcome["error"] = exc
            finally:
                done.set()

        threading.Thread(target=send, name="ft-hallu-request", daemon=True).start()
        try:
            while not done.wait(POLL_S):
                if self._abort.is_set():
                    raise Stopped("aborted")
        except KeyboardInterrupt:  # Ctrl-C or a stop signal in this (the main) thread
            self.abort()
            raise
        if "error" in outcome:
            raise outcome["error"]
        return outcome["response"]

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


def server_reason(exc: Any) -> str:
    """What the server said was wrong: its JSON error body read as OpenAI, FastAPI (``detail``, a
    string or a list of validation errors) or plain text, else the openai client's message."""
    reason = _reason_in(getattr(exc, "body", None))
    if not reason:
        try:
            reason = exc.response.text
        except (AttributeError, UnicodeDecodeError):
            reason = ""
    return reason.strip() or str(getattr(exc, "message", "") or exc)


def _reason_in(body: Any) -> str:
    if isinstance(body, str):
        return body
    if isinstance(body, list):  # FastAPI: [{"loc": ["body", "max_tokens"], "msg": "...", ...}]
        return "; ".join(part for part in map(_reason_in, body) if part)
    if isinstance(body, dict):
        for key in ("error", "detail", "message", "msg"):
            if body.get(key):
                reason = _reason_in(body[key])
                where = body.get("loc")
                if key == "msg" and isinstance(where, list):
                    reason = f"{'.'.join(map(str, where))}: {reason}"
                return reason
    return ""


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
