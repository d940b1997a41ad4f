"""``transformers serve`` on 127.0.0.1: a real OpenAI-compatible server nobody here wrote, for tests.

It serves one model folder (the request's ``model`` must be that folder's path: the server is
pinned to it) on CPU, with every request logged (``--enable-log-requests``: one line per request
with its prompt length and generation settings) into ``log_path``, which tests read to check what
the server was asked. Its traps are those of the real thing: it ignores ``tool_choice`` and
``response_format`` (with a one-time warning naming them), and samples only when the model's
generation_config or the request's ``generation_config`` (a JSON string in the body) says so.

The server runs on one torch thread: on a 2-core machine shared with other work, SmolLM2 wrote 40
tokens in 9 s with one thread and in 39 s with two (load average 8). It is started with ``-I`` in
its log folder, so nothing in the caller's folder or PYTHONPATH shadows a module it imports (a
stray ``timeit.py`` in the working folder once broke torch's import).

:func:`steering` builds ``generation_config`` fields that make a small model's reply take a given
shape, with the server's own ``sequence_bias`` (a bias on a token given the tokens before it):
SmolLM2-135M cannot write the JSON or the one-word verdict unaided, and the tests that need a
readable reply test ft-hallu's requests, reading and storage, not the model's skill.
"""

from __future__ import annotations

import importlib.util
import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# "Request <id>: model <path>, <n> prompt tokens, generate, stream False, {settings}"
REQUEST_LINE = re.compile(r"Request (\S+): model .*?, (\d+) prompt tokens, .*?, stream \w+, (\{.*\})$", re.M)
ANSWERED_LINE = '"POST /v1/chat/completions HTTP/1.1" 200'
EXTRAS = ("fastapi", "uvicorn", "starlette")  # transformers[serving] beyond what ft-hallu needs anyway
FORCE = 100.0  # a bias no logit of a 135M model comes near


class ServeUnavailable(Exception):
    """transformers serve cannot run here (its serving extras are missing)."""


@dataclass
class ServedModel:
    process: subprocess.Popen[bytes]
    port: int
    model_id: str
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def requests(self) -> list[tuple[str, int, str]]:
        """(request id, prompt tokens, generation settings as logged) of every request so far."""
        return [(m.group(1), int(m.group(2)), m.group(3)) for m in REQUEST_LINE.finditer(self.log())]


def missing_extras() -> list[str]:
    return [name for name in EXTRAS if importlib.util.find_spec(name) is None]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(model_dir: Path, log_path: Path, *, start_timeout_s: float = 600.0) -> Iterator[ServedModel]:
    """Start ``transformers serve MODEL_DIR`` on a free port, wait for /health, stop it at the end."""
    missing = missing_extras()
    if missing:
        raise ServeUnavailable(
            f"transformers serve needs {', '.join(missing)}: pip install -e '.[test]' (it holds transformers[serving])"
        )
    port = _free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(log_path.parent),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        "TQDM_DISABLE": "1",
    }
    command = [
        sys.executable, "-I", "-c", "from transformers.cli.transformers import main; main()",
        "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
        "--log-level", "info", "--enable-log-requests",
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=log_path.parent,
        )
    served = ServedModel(process, port, str(model_dir), log_path)
    try:
        _wait_until_healthy(served, start_timeout_s)
        yield served
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def _wait_until_healthy(served: ServedModel, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise RuntimeError(
                f"transformers serve exited with {served.process.returncode}:\n{served.log()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{served.port}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(
        f"transformers serve did not answer /health in {timeout_s:.0f}s:\n{served.log()[-3000:]}"
    )


# ---------------------------------------------------------------- steering a small model's reply


class Tokens:
    """The served model's tokenizer (tokenizer.json, read by ``tokenizers``), for bias sequences."""

    def __init__(
        self, model_dir: Path, *, reply_header: str = "<|im_start|>assistant\n", end: str = "<|im_end|>"
    ):
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        header = self.ids(reply_header)
        # The header's last two tokens ("istant", "\n" in ChatML): a sequence starting with them
        # applies to the reply's first tokens only.
        self.reply_start = header[-2:]
        end_id = self._tokenizer.token_to_id(end)
        if end_id is None:
            raise ValueError(f"{model_dir}: no {end!r} token")
        self.end = end_id

    def ids(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)


def _chain(context: Sequence[int], tokens: Sequence[int], bias: float) -> list[list]:
    """Bias each of ``tokens`` when the ones before it (from ``context`` on) were just written."""
    whole = [*context, *tokens]
    return [[whole[: len(context) + i + 1], bias] for i in range(len(tokens))]


def _extra_body(bias: list[list]) -> dict:
    return {"generation_config": json.dumps({"sequence_bias": bias})}


def one_of(tokens: Tokens, words: Sequence[str]) -> dict:
    """``--extra-body`` for a reply that is one of ``words`` and nothing else: where the words
    differ, the model's own logits choose (a constrained choice, not a fixed answer)."""
    bias: list[list] = []
    for word in words:
        ids = tokens.ids(word)
        bias += _chain(tokens.reply_start, ids, FORCE)
        bias.append([[*tokens.reply_start, *ids, tokens.end], FORCE])
    return _extra_body(bias)


# The layout of financial-datasets' prompt examples, context first: SmolLM2 then copies a sentence
# of the text and goes on with question and answer; opened with "question" it ended the item
# before any context.
JSON_LIST_START = '[\n  {\n    "context": "'


def one_item_json_list(tokens: Tokens) -> dict:
    """``--extra-body`` for a reply that opens as :data:`JSON_LIST_START` and whose list closes
    after its first item: where the model would write the item's ``},`` (another item), ``}``,
    a new line, ``]`` and the end come instead. What the item says is the model's."""
    start = tokens.ids(JSON_LIST_START)
    close = tokens.ids('"\n  }\n]')[1:]  # new line and indent, "}", new line, "]" (the quote merges)
    comma = tokens.ids('"\n  },')[2]
    if tokens.ids('"\n  },')[:2] != tokens.ids('"\n  }')[:2] or len(close) != 4:
        raise ValueError("this tokenizer splits the JSON layout differently; adapt one_item_json_list")
    # The start outweighs the closing rule where both apply (the indent before the first "{").
    bias = _chain(tokens.reply_start, start, 2 * FORCE)
    bias.append([[close[0], comma], -FORCE])
    bias += _chain(close[:1], close[1:], FORCE)
    bias.append([[*close, tokens.end], FORCE])
    return _extra_body(bias)
