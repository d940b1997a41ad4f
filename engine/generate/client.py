"""The endpoint: the API key, and one chat-completions caller per run with retries and backoff."""

from __future__ import annotations

import json
import logging
import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.generate.config import INSTALL_HINT, TOOL_NAME, EndpointConfig, GenerateConfig, GenerationError
from engine.generate.sources import Chunk

log = logging.getLogger("ft_hallu.generate")


class ChunkStopped(Exception):
    """A chunk left unsent because another chunk already failed the run."""


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


class _Retryable(Exception):
    pass


class _Malformed(Exception):
    pass


@dataclass
class ChunkOutcome:
    chunk: Chunk
    items: list[dict[str, str]]
    dropped: int
    attempts: int


class ChunkCaller:
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

    def run(self, chunk: Chunk) -> ChunkOutcome:
        config = self._config
        last_error = ""
        for attempt in range(1, config.max_attempts + 1):
            if self._stop.is_set():
                raise ChunkStopped(chunk.id)
            try:
                items, dropped = self._request(chunk)
                return ChunkOutcome(chunk, items, dropped, attempt)
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
                raise ChunkStopped(chunk.id)
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
            where = self._config.endpoint.base_url or "https://api.openai.com/v1"
            raise _Retryable(f"connection to {where} failed: {exc}") from exc
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
