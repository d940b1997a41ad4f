"""The endpoint for a generation run: financial-datasets' prompt and tool, and one chunk caller per
run on the shared endpoint client (engine/endpoint.py: key, retries, backoff, redaction, stop)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.endpoint import EndpointClient, GaveUp, Rejected, Retryable, RetryPolicy, Stopped
from engine.endpoint import find_api_key as find_api_key  # re-exported for generate's callers
from engine.endpoint import resolve_api_key as resolve_api_key
from engine.errors import UserError
from engine.generate.config import INSTALL_HINT, TOOL_NAME, GenerateConfig, GenerationError
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


class _Malformed(Retryable):
    """A reply without a readable tool call: asked again, as a timeout would be."""


@dataclass
class ChunkOutcome:
    chunk: Chunk
    items: list[dict[str, str]]
    dropped: int
    attempts: int


class ChunkCaller:
    """Sends one chunk at a time with retries; safe to share between worker threads."""

    def __init__(self, config: GenerateConfig, api_key: str, on_retry: Callable[[Chunk, int, str], None]):
        self._config = config
        self._on_retry = on_retry
        self._client = EndpointClient(
            config.endpoint,
            RetryPolicy(config.max_attempts, config.backoff_base_s, config.backoff_max_s),
            api_key=api_key,
            log=log,
        )
        prompt, tools, item_model = package_parts()
        self._system_prompt = config.system_prompt or prompt
        self._tools = tools
        self._item_model = item_model

    def stop(self) -> None:
        self._client.stop()

    def redact(self, text: str) -> str:
        return self._client.redact(text)

    def run(self, chunk: Chunk) -> ChunkOutcome:
        attempts = 0

        def attempt() -> tuple[list[dict[str, str]], int]:
            nonlocal attempts
            attempts += 1
            return self._request(chunk)

        try:
            items, dropped = self._client.retrying(
                attempt,
                what=f"chunk {chunk.id}",
                on_retry=lambda number, message: self._on_retry(chunk, number, message),
            )
        except Stopped:
            raise ChunkStopped(chunk.id) from None
        except GaveUp as exc:
            raise GenerationError(f"chunk {chunk.id} {exc}", chunk.id) from None
        return ChunkOutcome(chunk, items, dropped, attempts)

    def _request(self, chunk: Chunk) -> tuple[list[dict[str, str]], int]:
        try:
            response = self._client.chat(
                [
                    {"role": "system", "content": self._system_prompt},
                    {"role": "user", "content": user_message(chunk.text, self._config.questions_per_chunk)},
                ],
                tools=self._tools,
                tool_choice={"type": "function", "function": {"name": TOOL_NAME}},
            )
        except Rejected as exc:
            raise GenerationError(f"chunk {chunk.id}: {exc.describe()}", chunk.id) from None
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
