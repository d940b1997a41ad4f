"""A real OpenAI-compatible chat-completions server on 127.0.0.1 for tests and benchmarks.

It answers ``POST .../chat/completions`` with a forced ``generate_dataset`` tool call whose items
are derived deterministically from the text block in the user message, so a test can tell which
chunk every item came from (each question starts with ``[<tag>]``, the text's sha256 prefix).

Behaviour switches (``Behavior``): a fixed latency, a script of per-request outcomes consumed in
order ("429", "500", "malformed", "badfields", "notool", "empty", "slow", "prose": text without a
tool call or JSON, cut at max_tokens; "fenced": the items as JSON in a code fence instead of a tool
call; "detail": a FastAPI-style 400 ``{"detail": ...}``; "hang": no answer until the client hangs
up), a marker that makes every request whose text contains it fail with 500, and ``ignore_tools``
(a server like ``transformers serve`` that never calls a tool: it answers JSON in its text when the
request asks for JSON through ``response_format``, else prose). Every request is recorded (path,
headers, body) for assertions; ``hung_up`` counts the "hang" requests whose client went away.

Run standalone: ``python tests/openai_server.py --latency 0.3`` prints ``PORT <n>``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

USER_PREFIX = re.compile(r"^Generate (\d+) questions for the following block of text: ", re.S)


def text_tag(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]


def items_for(text: str, count: int) -> list[dict[str, str]]:
    """Deterministic QA items built from the sentences of ``text``."""
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()] or [text.strip()]
    tag = text_tag(text)
    items = []
    for index in range(count):
        sentence = sentences[index % len(sentences)]
        topic = " ".join(sentence.split()[:5])
        items.append(
            {
                "question": f"[{tag}] Q{index}: What is stated about {topic}?",
                "answer": sentence,
                "context": sentence,
            }
        )
    return items


@dataclass
class Behavior:
    latency_s: float = 0.0
    script: list[str] = field(default_factory=list)  # consumed one entry per request, then default_outcome
    default_outcome: str = "ok"  # "ok" | "empty" (a tool call with no items) | any scripted outcome
    fail_marker: str | None = None  # texts containing this always get HTTP 500
    slow_s: float = 5.0  # how long a "slow" scripted request stalls
    retry_after: str | None = None  # Retry-After header sent with 429
    expected_key: str | None = None  # when set, other bearer tokens get 401
    ignore_tools: bool = False  # never answer with a tool call (transformers serve ignores tool_choice)
    hang_s: float = 60.0  # how long a "hang" request waits for its client to hang up
    detail: str = "Server is pinned to 'local-model'; requested 'other-model'."  # the "detail" outcome's reason


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    text: str
    outcome: str


class OpenAIStub:
    """Owns the HTTP server thread, the behaviour and the request log."""

    def __init__(self, behavior: Behavior | None = None):
        self.behavior = behavior or Behavior()
        self.requests: list[RecordedRequest] = []
        self.hung_up = 0  # "hang" requests whose client closed the connection
        self.hanging = 0  # "hang" requests waiting for their client now
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                return

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                stub._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="openai-stub", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> OpenAIStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def texts_requested(self) -> list[str]:
        with self._lock:
            return [r.text for r in self.requests]

    # ------------------------------------------------------------ request handling

    def _next_outcome(self, text: str) -> str:
        with self._lock:
            if self.behavior.fail_marker and self.behavior.fail_marker in text:
                return "500"
            if self.behavior.script:
                return self.behavior.script.pop(0)
            return self.behavior.default_outcome

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._send(handler, 400, _error("request body is not JSON", "invalid_request_error"))
            return
        messages = body.get("messages") or []
        user = next((m.get("content", "") for m in messages if m.get("role") == "user"), "")
        match = USER_PREFIX.match(user or "")
        text = user[match.end() :] if match else user
        count = int(match.group(1)) if match else 3
        headers = {k.lower(): v for k, v in handler.headers.items()}
        expected = self.behavior.expected_key
        if not handler.path.rstrip("/").endswith("/chat/completions"):
            outcome = "404"
        elif expected is not None and headers.get("authorization") != f"Bearer {expected}":
            outcome = "401"
        else:
            outcome = self._next_outcome(text)
        with self._lock:
            self.requests.append(RecordedRequest(handler.path, headers, body, text, outcome))
        if self.behavior.latency_s:
            time.sleep(self.behavior.latency_s)
        if outcome == "slow":
            time.sleep(self.behavior.slow_s)
            outcome = "ok"
        if outcome == "hang":
            with self._lock:
                self.hanging += 1
            gone = _wait_for_hang_up(handler, self.behavior.hang_s)
            with self._lock:
                self.hanging -= 1
                self.hung_up += gone
            if gone:
                return
            outcome = "ok"
        if outcome == "detail":
            self._send(handler, 400, {"detail": self.behavior.detail})
        elif outcome == "404":
            self._send(handler, 404, _error(f"no route {handler.path}", "not_found"))
        elif outcome == "401":
            self._send(handler, 401, _error("Incorrect API key provided", "invalid_api_key"))
        elif outcome == "429":
            extra = {"Retry-After": self.behavior.retry_after} if self.behavior.retry_after else {}
            self._send(handler, 429, _error("Rate limit reached", "rate_limit_exceeded"), extra)
        elif outcome in ("500", "502", "503"):
            self._send(handler, int(outcome), _error("The server had an error", "server_error"))
        elif _is_judge(messages):
            self._send(handler, 200, _judge_completion(body.get("model", "?"), user, outcome))
        else:
            self._answer_generate(handler, body, text, count, outcome)

    def _answer_generate(
        self, handler: BaseHTTPRequestHandler, body: dict[str, Any], text: str, count: int, outcome: str
    ) -> None:
        model = body.get("model", "?")
        wants_json = (body.get("response_format") or {}).get("type") in ("json_schema", "json_object")
        if outcome == "prose" or (self.behavior.ignore_tools and not wants_json):
            words = f"Here are some questions about the text. {text} " * 20
            limit = int(body.get("max_tokens") or 1024)  # one word a token, as a model would stop
            self._send(handler, 200, _text_completion(model, " ".join(words.split()[:limit]), "length"))
            return
        if outcome == "fenced" or wants_json:
            items = items_for(text, count) if outcome != "empty" else []
            if outcome == "badfields":
                items.insert(0, {"question": "no answer", "context": "x"})
            fenced = json.dumps({"dataset_items": items}, indent=1)
            self._send(handler, 200, _text_completion(model, f"Sure! Here you go:\n```json\n{fenced}\n```", "stop"))
            return
        tool_choice = body.get("tool_choice") or {}
        if not body.get("tools") or (tool_choice.get("function") or {}).get("name") != "generate_dataset":
            self._send(handler, 400, _error("expected a forced generate_dataset tool call", "invalid_request"))
            return
        # The forced tool call, as OpenAI answers it.
        if outcome == "malformed":
            arguments = '{"dataset_items": [{"question": "unterminated'
        elif outcome == "badfields":  # valid JSON, but one item lacks its answer
            good = items_for(text, count)
            arguments = json.dumps({"dataset_items": [{"question": "no answer", "context": "x"}, *good]})
        elif outcome == "allbad":  # valid JSON, and no item has its answer
            arguments = json.dumps({"dataset_items": [{"question": "no answer", "context": "x"}] * 2})
        elif outcome == "empty":
            arguments = json.dumps({"dataset_items": []})
        else:
            arguments = json.dumps({"dataset_items": items_for(text, count)})
        self._send(handler, 200, _completion(model, arguments, notool=outcome == "notool"))

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any], extra=None) -> None:
        data = json.dumps(payload).encode("utf-8")
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for name, value in (extra or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass


def _wait_for_hang_up(handler: BaseHTTPRequestHandler, seconds: float) -> bool:
    """Wait until the client closes the connection (True) or ``seconds`` pass (False)."""
    import select
    import socket

    connection = handler.connection
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        readable, _, _ = select.select([connection], [], [], 0.05)
        if readable:
            try:
                if connection.recv(1, socket.MSG_PEEK) == b"":
                    return True
            except OSError:
                return True
    return False


def _text_completion(model: str, content: str, finish_reason: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-text",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 100, "completion_tokens": len(content.split()), "total_tokens": 100},
    }


def _error(message: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": code, "code": code, "param": None}}


def _completion(model: str, arguments: str, *, notool: bool = False) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None}
    if notool:
        message["content"] = "I would rather answer in prose."
    else:
        message["tool_calls"] = [
            {
                "id": "call_0",
                "type": "function",
                "function": {"name": "generate_dataset", "arguments": arguments},
            }
        ]
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop" if notool else "tool_calls"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150},
    }


# ---------------------------------------------------------------- judge replies (engine/judge.py)
# Deterministic verdicts: a claim is "supported" when most of its words occur in the sources,
# "contradicted" when a source sentence denies ("do not" / "does not") something it shares a
# word with, else "not_in_sources"; two answers entail each other when their word sets overlap
# by 60 %. Scripted outcomes: "malformed" (no verdict word), "refused" (the refusal field),
# "sorry" (a refusal in prose).


def _is_judge(messages: list[dict[str, Any]]) -> bool:
    system = next((m.get("content") or "" for m in messages if m.get("role") == "system"), "")
    return system.startswith("ft-hallu judge")


def _judge_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]{4,}", text.lower())}


def judge_verdict(user: str) -> str:
    if user.startswith("CLAIM:"):
        claim = user.split("\n", 1)[0][len("CLAIM:") :]
        sources = user.split("SOURCES:", 1)[-1]
        words = _judge_words(claim)
        if words and len(words & _judge_words(sources)) / len(words) >= 0.6:
            return "supported"
        denials = [line for line in sources.splitlines() if re.search(r"\bdo(?:es)? not\b", line)]
        if any(words & _judge_words(line) for line in denials):
            return "contradicted"
        return "not_in_sources"
    first = re.search(r"^FIRST: (.*)$", user, re.M)
    second = re.search(r"^SECOND: (.*)$", user, re.M)
    a, b = _judge_words(first.group(1) if first else ""), _judge_words(second.group(1) if second else "")
    return "yes" if a and b and len(a & b) / len(a | b) >= 0.6 else "no"


def _judge_completion(model: str, user: str, outcome: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": judge_verdict(user)}
    if outcome == "malformed":
        message["content"] = "Hmm, hard to say."
    elif outcome == "refused":
        message["content"], message["refusal"] = None, "I can't help with that request."
    elif outcome == "sorry":
        message["content"] = "I'm sorry, I can't assist with that."
    return {
        "id": "chatcmpl-judge",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 40 + len(user) // 4,
            "completion_tokens": 2,
            "total_tokens": 42 + len(user) // 4,
        },
    }


@contextmanager
def running_stub(behavior: Behavior | None = None) -> Iterator[OpenAIStub]:
    stub = OpenAIStub(behavior).start()
    try:
        yield stub
    finally:
        stub.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    stub = OpenAIStub(Behavior(latency_s=args.latency)).start()
    print(f"PORT {stub.port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        stub.stop()


if __name__ == "__main__":
    main()
