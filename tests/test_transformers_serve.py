"""``ft-hallu generate`` and ``ft-hallu judge`` against ``transformers serve`` serving SmolLM2 on
127.0.0.1 (issue 27, class 7): a real OpenAI-compatible server nobody here wrote.

One server for the module (its start-up is the dearest part); each test asks for little: one
chunk of two sentences, replies of 16 to 100 tokens at temperature 0, one claim. What the server
was asked is read from its own request log (one line per request: prompt length and generation
settings) and from the warnings it prints once for the fields it ignores (``tool_choice``,
``response_format``).

The server ignores ``tool_choice``, so every reply comes back without the tool call and
``generate`` reads it as JSON: that fallback is the natural path here. SmolLM2-135M cannot write
the JSON or the judge's one word unaided; where a test needs a readable reply it shapes the reply
through ``--extra-body`` with the server's own ``sequence_bias`` (tests/transformers_server.py:
the JSON list's opening and closing, a choice among the verdict words), and the words in between
are the model's. Unshaped, SmolLM2's replies exercise the error that says what came back and the
judge's reminder turn.

Measured alone (``pytest tests/test_transformers_serve.py``: SmolLM2 dequantised for the session,
one server) on the shared 2-core development machine under a load average of 6 to 9: 182 s wall,
of which the fixtures 111 s (dequantising and the server's start), generate's 81-token reply 23 s,
Ctrl-C 22 s, the unusable replies 11 s, the reminder turn 9 s, the rest 4 s. The whole run used 46 s
of CPU (pytest, the server and the CLI child together, /usr/bin/time); again at a load average of
20: 579 s wall, 47 s of CPU. The server generates on one thread and the steps run one after
another, so on an idle 2-core machine the file takes about its CPU time, well under 90 s. In the full suite the dequantised folder is shared with the other SmolLM2
tests.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from claims_sweep import make_scored_sweep  # noqa: E402
from transformers_server import (  # noqa: E402
    ANSWERED_LINE,
    ServeUnavailable,
    Tokens,
    one_item_json_list,
    one_of,
    serving,
)

from cli import main as cli_main  # noqa: E402
from engine import generate as gen  # noqa: E402
from engine import judge as jd  # noqa: E402
from engine.endpoint import EndpointConfig  # noqa: E402
from store import claims as store_claims  # noqa: E402

# The module's fixtures (dequantising, the server's start) are most of its time: about 50 s of CPU.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-ftHALLU-serve-test-3b9e27"
URL_PASSWORD = "pw-ftHALLU-7c41"  # in the base URL's user information: never shown or stored
TEXT = (
    "Zentrix Corporation designs low-power sensor chips for industrial robots. "
    "It was founded in 2004 and is based in Lyon."
)
MORE_TEXT = (
    " Revenue in fiscal 2023 was $412 million, up 12% from fiscal 2022. Its flagship product line is "
    "called Quill and ships in three package sizes."
)
# A short system prompt with one example in financial-datasets' layout (its own is 850 tokens:
# most of a CPU request's time); generate appends its JSON instruction once in JSON mode.
SYSTEM_PROMPT = """You write question and answer pairs about a text, each with the sentence it comes from as context.

Example:
```
[
  {
    "question": "What was Airbnb's revenue in 2023?",
    "answer": "$9.9 billion",
    "context": "In 2023, revenue increased by 18% to $9.9 billion."
  }
]
```
"""
CLAIM = "EGNIVIA pioneered accelerated computing to help solve challenging computational problems."


@pytest.fixture(scope="module")
def served(smollm2_dir, tmp_path_factory):
    """transformers serve with SmolLM2 for this module. A server that cannot start fails the tests
    with its reason (its serving extras are test dependencies: pip install -e '.[test]')."""
    log = tmp_path_factory.mktemp("transformers-serve") / "serve.log"
    try:
        with serving(smollm2_dir, log) as server:
            yield server
    except ServeUnavailable as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def tokens(smollm2_dir) -> Tokens:
    return Tokens(smollm2_dir)


@pytest.fixture
def generate_package():
    pytest.importorskip(
        "financial_datasets", reason="financial-datasets not installed: run scripts/install-generate.sh"
    )


@pytest.fixture
def keyed(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def secret_url(served) -> str:
    return f"http://ft:{URL_PASSWORD}@127.0.0.1:{served.port}/v1"


def new_requests(served, before: int) -> list[tuple[str, int, dict]]:
    import ast

    return [(rid, tokens, ast.literal_eval(logged)) for rid, tokens, logged in served.requests()[before:]]


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("ft-hallu: error:")]


def everything_written(folder: Path, db: Path) -> str:
    """Every file under ``folder`` and every row of the store, as text."""
    texts = [p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file() and p != db]
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        tables = [row[0] for row in conn.execute("select name from sqlite_master where type = 'table'")]
        texts += [repr(conn.execute(f"select * from [{t}]").fetchall()) for t in tables]
    return "\n".join(texts)


def test_generate_stores_the_items_of_a_reply_read_as_json(
    served, tokens, generate_package, keyed, tmp_path, capsys, caplog
):
    """The forced tool call is ignored; the reply's text is read as JSON (the fallback), its item
    stored in train.jsonl and the store; the base URL's password is nowhere."""
    (tmp_path / "t.txt").write_text(TEXT)
    (tmp_path / "system.txt").write_text(SYSTEM_PROMPT)
    before = len(served.requests())
    code = cli_main(
        ["--db", str(tmp_path / "ft.db"), "generate", "--texts", "t.txt", "--out", "out", "--name", "zentrix",
         "--model", served.model_id, "--base-url", secret_url(served), "--env-file", "",
         "--questions-per-chunk", "1", "--workers", "1", "--max-attempts", "2", "--max-tokens", "100",
         "--temperature", "0", "--top-p", "1", "--timeout", "600", "--system-prompt-file", "system.txt",
         "--extra-body", json.dumps(one_item_json_list(tokens)), "--no-progress"]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Traceback" not in err and "asking for JSON output from now on" in caplog.text
    items = [json.loads(line) for line in (tmp_path / "out" / gen.MERGED_FILE).read_text().splitlines()]
    assert len(items) == 1 and all(items[0][field].strip() for field in ("question", "answer", "context"))
    [record] = [json.loads(line) for line in (tmp_path / "out" / gen.RAW_ITEMS_FILE).read_text().splitlines()]
    assert (record["reply"], record["attempts"], record["items"]) == (
        "json",
        1,
        [{k: items[0][k] for k in ("question", "answer", "context")}],
    )
    # What the server was asked, and what it said it ignored.
    [(_rid, _prompt, settings)] = new_requests(served, before)
    assert (
        settings["max_new_tokens"],
        settings["do_sample"],
        settings["temperature"],
        settings["top_p"],
    ) == (100, False, 0.0, 1.0)
    assert settings["sequence_bias"]  # --extra-body's generation_config reached generate()
    assert "Ignoring unsupported fields in the request: {'tool_choice'}" in served.log()
    with sqlite3.connect(f"file:{tmp_path / 'ft.db'}?mode=ro", uri=True) as conn:
        assert conn.execute("select status, base_url from generation_runs").fetchall() == [
            ("completed", f"http://***@127.0.0.1:{served.port}/v1")
        ]
        assert conn.execute("select kind, name from datasets").fetchall() == [("generated", "zentrix")]
    written = everything_written(tmp_path, tmp_path / "ft.db") + out + err
    assert URL_PASSWORD not in written and KEY not in written


def test_an_unusable_reply_is_described_and_no_next_chunk_is_sent(
    served, generate_package, keyed, tmp_path, capsys
):
    """SmolLM2 unshaped, 16 tokens: neither a tool call nor JSON, twice (the second asks for JSON).
    One error line says what came back; the second chunk is never sent."""
    (tmp_path / "t.txt").write_text(TEXT + MORE_TEXT)
    (tmp_path / "system.txt").write_text(SYSTEM_PROMPT)
    before = len(served.requests())
    code = cli_main(
        ["--db", str(tmp_path / "ft.db"), "generate", "--texts", "t.txt", "--out", "out",
         "--model", served.model_id, "--base-url", served.base_url, "--env-file", "",
         "--chunk-chars", "200", "--chunk-overlap", "0", "--questions-per-chunk", "1", "--workers", "1",
         "--max-attempts", "2", "--max-tokens", "16", "--temperature", "0", "--timeout", "600",
         "--system-prompt-file", "system.txt", "--no-progress"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    [line] = error_lines(err)
    assert " failed after 2 attempts: no generate_dataset tool call and no JSON items in the reply (" in line
    assert re.search(r"\(finish_reason=\w+, \d+ characters: ['\"].+['\"]", line) and KEY not in err  # quoted
    asked = new_requests(served, before)
    assert len(asked) == 2, asked  # the first chunk's two attempts; the other chunks never went out
    assert all(s["max_new_tokens"] == 16 and s["do_sample"] is False for *_, s in asked)
    assert asked[1][1] > asked[0][1]  # the second carried the JSON instruction
    assert "Ignoring unsupported fields in the request: {'response_format'}" in served.log()
    with sqlite3.connect(f"file:{tmp_path / 'ft.db'}?mode=ro", uri=True) as conn:
        assert conn.execute("select status from generation_runs").fetchall() == [("failed",)]
    assert not (tmp_path / "out" / gen.MERGED_FILE).exists()


def test_the_server_s_own_reason_is_the_one_error_line(served, generate_package, keyed, tmp_path, capsys):
    """A FastAPI {"detail": ...} 400 (the server is pinned to one model) shows its words, for
    generate and for the judge, not 'Error code: 400'; the URL's password is not in it."""
    (tmp_path / "t.txt").write_text(TEXT)
    before = len(served.requests())
    code = cli_main(
        ["--db", str(tmp_path / "ft.db"), "generate", "--texts", "t.txt", "--out", "o", "--env-file", "",
         "--model", "other-model", "--base-url", secret_url(served), "--max-tokens", "16", "--no-progress"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert (
        code == 2
        and "Traceback" not in err
        and error_lines(err) == [line for line in err.splitlines() if line]
    )
    [line] = error_lines(err)
    assert f"HTTP 400: Server is pinned to '{served.model_id}'; requested 'other-model'." in line
    assert "Error code" not in err and KEY not in err and URL_PASSWORD not in err

    (tmp_path / "judged").mkdir()
    store, sweep_id = make_scored_sweep(tmp_path / "judged", answers={"finetuned": [CLAIM]})
    store.close()
    code = cli_main(
        ["--db", str(tmp_path / "judged" / "ft.db"), "judge", "--sweep", str(sweep_id), "--model", "other-model",
         "--base-url", secret_url(served), "--env-file", "", "--no-entropy"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and [line for line in err.splitlines() if line.strip()] == [
        f"ft-hallu: error: judge other-model: HTTP 400: Server is pinned to '{served.model_id}'; "
        "requested 'other-model'."
    ]
    assert len(served.requests()) == before  # refused before anything was generated


def test_judge_stores_a_verdict_and_a_rerun_asks_nothing(served, tokens, keyed, tmp_path, capsys):
    """The verdict is a choice among the three words (shaped); SmolLM2 picks; it is cached."""
    store, sweep_id = make_scored_sweep(tmp_path, answers={"finetuned": [CLAIM]})
    [claim] = store_claims.sweep_claims(store, sweep_id)
    store.close()
    before = len(served.requests())
    argv = ["--db", str(tmp_path / "ft.db"), "judge", "--sweep", str(sweep_id), "--model", served.model_id,
            "--base-url", served.base_url, "--env-file", "", "--no-entropy", "--timeout", "600",
            "--extra-body", json.dumps(one_of(tokens, jd.CLAIM_LABELS))]  # fmt: skip
    code = cli_main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "1 claim(s), 0 cell(s); 1 question(s) asked, 0 from the cache, 0 refused, 0 unreadable" in out
    [(_rid, _prompt, settings)] = new_requests(served, before)
    assert (settings["max_new_tokens"], settings["do_sample"], settings["temperature"]) == (16, False, 0.0)
    with sqlite3.connect(f"file:{tmp_path / 'ft.db'}?mode=ro", uri=True) as conn:
        stored = conn.execute("select label, status from claim_judgements").fetchall()
    assert len(stored) == 1 and stored[0][0] in jd.CLAIM_LABELS and stored[0][1] == "ok", stored
    assert claim["text"]
    assert cli_main(argv) == 0
    assert "0 question(s) asked, 1 from the cache" in capsys.readouterr().out
    assert len(served.requests()) == before + 1


def test_the_judge_asks_once_more_with_a_reminder_never_more(served, monkeypatch, tmp_path) -> None:
    """Unshaped, SmolLM2 answers the claim with prose: one reminder turn (the reply and the allowed
    words, so a longer prompt), then the question stays unanswered (not cached)."""
    monkeypatch.setenv("FT_JUDGE_KEY", KEY)
    store, sweep_id = make_scored_sweep(tmp_path, answers={"finetuned": [CLAIM]})
    [claim] = store_claims.sweep_claims(store, sweep_id)
    endpoint = EndpointConfig(
        model=served.model_id,
        base_url=served.base_url,
        api_key_env="FT_JUDGE_KEY",
        env_file=None,
        timeout_s=600,
    )
    judge = jd.Judge(store, jd.JudgeConfig(endpoint=endpoint, max_attempts=2, backoff_base_s=0.01))
    before = len(served.requests())
    verdict, key = judge.claim(claim["text"], [c["sentence"] for c in claim["candidates"]])
    asked = new_requests(served, before)
    assert verdict.status in ("ok", "malformed", "refused") and not verdict.cached
    # Whatever SmolLM2 says: one request when readable, two when not, never more.
    assert len(asked) == (2 if verdict.status == "malformed" else 1), (verdict, asked)
    if len(asked) == 2:
        assert asked[1][1] > asked[0][1]
    assert all(
        s["max_new_tokens"] == 16 and s["do_sample"] is False and s["temperature"] == 0.0 for *_, s in asked
    )
    assert verdict.prompt_tokens == sum(tokens for _rid, tokens, _s in asked)
    cached = store_claims.cached_judgements(store, [key])
    assert (key in cached) == (verdict.status != "malformed")  # an unread verdict is asked again next run
    store.close()


def test_ctrl_c_closes_the_request_in_flight_and_marks_the_run(served, generate_package, tmp_path) -> None:
    """A reply of 4096 tokens is asked for (generation_config min_new_tokens through --extra-body, so
    SmolLM2 cannot stop early); Ctrl-C, then a second one: the CLI ends at once with one line, the
    run reads interrupted, and the server sees the client leave and never answers."""
    (tmp_path / "t.txt").write_text(TEXT)
    db = tmp_path / "ft.db"
    nonstop = json.dumps({"generation_config": json.dumps({"min_new_tokens": 4096})})
    env = {
        **os.environ,
        "OPENAI_API_KEY": KEY,
        "PYTHONPATH": str(REPO),
        "FT_HALLU_HOME": str(tmp_path / "home"),
    }
    before = len(served.requests())
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; from cli import main; sys.exit(main(sys.argv[1:]))",
         "--db", str(db), "generate", "--texts", "t.txt", "--out", "out", "--env-file", "",
         "--model", served.model_id, "--base-url", secret_url(served), "--workers", "1", "--max-tokens", "4096",
         "--temperature", "0", "--timeout", "3600", "--extra-body", nonstop, "--no-progress"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while len(served.requests()) == before and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert child.poll() is None, child.communicate()[1]
    [(request_id, _tokens, settings)] = new_requests(served, before)
    assert settings.get("min_new_tokens") == 4096
    answered_before = served.log().count(ANSWERED_LINE)
    child.send_signal(signal.SIGINT)
    time.sleep(0.2)
    child.send_signal(signal.SIGINT)  # a second Ctrl-C while the first unwinds
    _out, err = child.communicate(timeout=120)  # the request would run for minutes; the CLI may not wait
    assert child.returncode == 130, err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.strip()] == ["ft-hallu: interrupted by SIGINT (Ctrl-C)"]
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        assert conn.execute("select status, error, base_url from generation_runs").fetchall() == [
            ("interrupted", "interrupted by SIGINT (Ctrl-C)", f"http://***@127.0.0.1:{served.port}/v1")
        ]
    # The server saw the client leave: its request stops running without an answer.
    deadline = time.monotonic() + 120
    while "requests: 0 running" not in served.log().split(request_id, 1)[1] and time.monotonic() < deadline:
        time.sleep(0.2)
    tail = served.log().split(request_id, 1)[1]
    assert "requests: 0 running" in tail and served.log().count(ANSWERED_LINE) == answered_before
    assert KEY not in err and KEY not in served.log() and URL_PASSWORD not in everything_written(tmp_path, db)
