"""The endpoint for a generation run: financial-datasets' prompt and tool, and one chunk caller per
run on the shared endpoint client (engine/endpoint.py: key, retries, backoff, redaction, stop)."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.endpoint import EndpointClient, GaveUp, Rejected, Retryable, RetryPolicy, Stopped, short
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
    """A reply without readable items: asked again, as a timeout would be."""


# Asked of a server that answered without the forced tool call (``transformers serve`` ignores
# ``tool_choice``): the same items as one JSON object, also requested through ``response_format``.
JSON_INSTRUCTION = (
    "Answer with one JSON object and nothing else, in this form: "
    '{"dataset_items": [{"question": "...", "answer": "...", "context": "..."}]}'
)
SHOWN_CHARS = 80  # how much of an unusable reply an error quotes


@dataclass
class ChunkOutcome:
    chunk: Chunk
    items: list[dict[str, str]]
    dropped: int
    attempts: int
    reply: str = "tool_call"  # how the items came back: "tool_call" or "json" (the fallback)


class ChunkCaller:
    """Sends one chunk at a time with retries; safe to share between worker threads.

    The first request forces the package's ``generate_dataset`` tool. A reply without that tool
    call is read leniently as JSON from its text, and from then on every request asks for JSON
    output instead (``response_format`` with the tool's schema, and :data:`JSON_INSTRUCTION`). The
    first chunk that fails stops the caller: no chunk is sent after it (see ``run``).
    """

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
        self._schema = tools[0]["function"]["parameters"]
        self._item_model = item_model
        self._json_mode = threading.Event()  # set once a server answered without the tool call

    def stop(self) -> None:
        """No new requests; those in flight finish (a sibling chunk failed)."""
        self._client.stop()

    def abort(self) -> None:
        """No new requests, and those in flight are abandoned (Ctrl-C, SIGTERM)."""
        self._client.abort()

    @property
    def json_mode(self) -> bool:
        return self._json_mode.is_set()

    def redact(self, text: str) -> str:
        return self._client.redact(text)

    def run(self, chunk: Chunk) -> ChunkOutcome:
        attempts = 0

        def attempt() -> tuple[list[dict[str, str]], int, str]:
            nonlocal attempts
            attempts += 1
            return self._request(chunk)

        try:
            items, dropped, reply = self._client.retrying(
                attempt,
                what=f"chunk {chunk.id}",
                on_retry=lambda number, message: self._on_retry(chunk, number, message),
            )
        except Stopped:
            raise ChunkStopped(chunk.id) from None
        except GaveUp as exc:
            self.stop()  # before this worker can take the next chunk: nothing is sent after a failure
            raise GenerationError(f"chunk {chunk.id} {exc}", chunk.id) from None
        except BaseException:
            self.stop()
            raise
        return ChunkOutcome(chunk, items, dropped, attempts, reply)

    def _request(self, chunk: Chunk) -> tuple[list[dict[str, str]], int, str]:
        config = self._config
        system = self._system_prompt
        params: dict[str, Any] = {
            "max_tokens": config.max_tokens,
            "temperature": config.temperature,
            "top_p": config.top_p,
        }
        if self.json_mode:
            system = f"{system}\n\n{JSON_INSTRUCTION}"
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": TOOL_NAME, "schema": self._schema, "strict": False},
            }
        else:
            params["tools"] = self._tools
            params["tool_choice"] = {"type": "function", "function": {"name": TOOL_NAME}}
        try:
            response = self._client.chat(
                [
                    {"role": "system", "content": system},
                    {"role": "user", "content": user_message(chunk.text, config.questions_per_chunk)},
                ],
                **params,
            )
        except Rejected as exc:
            raise GenerationError(f"chunk {chunk.id}: {exc.describe()}", chunk.id) from None
        return self._parse(response)

    def _parse(self, response: Any) -> tuple[list[dict[str, str]], int, str]:
        try:
            choice = response.choices[0]
            message = choice.message
        except (AttributeError, IndexError, TypeError):
            raise _Malformed("the response has no choices") from None
        calls = [c for c in (message.tool_calls or []) if getattr(c, "function", None) is not None]
        call = next((c for c in calls if c.function.name == TOOL_NAME), None)
        if call is not None:
            try:
                arguments = json.loads(call.function.arguments or "")
            except json.JSONDecodeError as exc:
                raise _Malformed(
                    f"tool arguments are not valid JSON ({exc.msg} at char {exc.pos}; {self._described(choice)})"
                ) from None
            raw_items = arguments.get("dataset_items") if isinstance(arguments, dict) else None
            if not isinstance(raw_items, list):
                raise _Malformed(f"tool arguments have no 'dataset_items' list ({self._described(choice)})")
            return (*self._usable(raw_items, choice), "tool_call")
        if not self._json_mode.is_set():
            self._json_mode.set()
            log.warning(
                "the endpoint answered without a %s tool call (it may ignore tool_choice); "
                "asking for JSON output from now on",
                TOOL_NAME,
            )
        raw_items = items_in_json(message.content or "")
        if raw_items is None:
            raise _Malformed(f"no {TOOL_NAME} tool call and no JSON items in the reply ({self._described(choice)})")
        return (*self._usable(raw_items, choice), "json")

    def _usable(self, raw_items: list[Any], choice: Any) -> tuple[list[dict[str, str]], int]:
        """The valid items and how many were dropped. A reply whose every item is unusable is asked
        again (recorded as done, its chunk would never be sent again)."""
        items, dropped = self._validated(raw_items)
        if raw_items and not items:
            raise _Malformed(
                f"none of the {len(raw_items)} item(s) has a question, an answer and a context "
                f"({self._described(choice)})"
            )
        return items, dropped

    def _validated(self, raw_items: list[Any]) -> tuple[list[dict[str, str]], int]:
        from pydantic import ValidationError

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

    def _described(self, choice: Any) -> str:
        """What came back, for an error: why it ended, how long it was, how it began (redacted)."""
        message = choice.message
        calls = getattr(message, "tool_calls", None) or []
        text = message.content or getattr(message, "refusal", None) or ""
        if not text and calls:
            text = getattr(getattr(calls[0], "function", None), "arguments", "") or ""
        reason = getattr(choice, "finish_reason", None) or "none given"
        shown = short(self.redact(text), SHOWN_CHARS)
        described = f"finish_reason={reason}, {len(text)} characters: {shown!r}" if text else f"finish_reason={reason}, empty"
        if reason == "length":
            described += f"; it hit max_tokens={self._config.max_tokens}: raise --max-tokens"
        return described


def items_in_json(text: str) -> list[Any] | None:
    """The QA items in the first JSON value of ``text`` that holds some, read leniently: prose and
    code fences around it are skipped; ``{"dataset_items": [...]}`` or a list of item objects. A
    reply cut off inside the list gives None (no partial list), like any other unreadable one."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", text):
        try:
            value, _end = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and isinstance(value.get("dataset_items"), list):
            return value["dataset_items"]
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            return value
    return None
