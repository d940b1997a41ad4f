"""engine.generate against a real OpenAI-compatible HTTP server on 127.0.0.1 (tests/openai_server.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from openai_server import Behavior, running_stub, text_tag  # noqa: E402

from cli import main as cli_main  # noqa: E402
from engine import generate as gen  # noqa: E402
from engine.errors import UserError  # noqa: E402
from store import generation as gen_store  # noqa: E402
from store.core import list_datasets  # noqa: E402
from store.db import open_db  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SECRET = "sk-ftHALLU-test-secret-7d41c9"
pytest.importorskip(
    "financial_datasets", reason="financial-datasets not installed: run scripts/install-generate.sh"
)

SECTIONS = {
    "Item 1. Business": (
        "Zentrix Corporation designs low-power sensor chips for industrial robots. "
        "The company was founded in 2004 and is based in Lyon. "
        "Its chips are sold to makers of warehouse robots, farm drones and inspection crawlers. "
        "Zentrix employed 1,140 people at the end of fiscal 2023, 61% of them in engineering. "
        "The flagship product line is called Quill and ships in three package sizes."
    ),
    "Item 1A. Risk Factors": (
        "Zentrix depends on a single foundry for wafer supply... "
        "A disruption at that foundry could delay shipments by up to six months. "
        "Three customers accounted for 47% of revenue in fiscal 2023. "
        "Export controls could limit sales to some regions --- and raise compliance costs."
    ),
    "Item 7. Management's Discussion and Analysis": (
        "Revenue in fiscal 2023 was $412 million, up 12% from fiscal 2022. "
        "Gross margin rose to 58% from 54% ++ driven by a richer product mix and lower freight costs. "
        "Operating expenses grew 9% to $171 million, mostly from research and development. "
        "Cash and equivalents were $233 million at year end with no debt outstanding."
    ),
}


def write_filing(folder: Path) -> Path:
    body = "\n".join(f"<p>{title}</p>\n<p>{text}</p>" for title, text in SECTIONS.items())
    html = f"<html><body>\n<p>UNITED STATES SECURITIES AND EXCHANGE COMMISSION</p>\n<p>FORM 10-K</p>\n{body}\n</body></html>\n"
    path = folder / "zentrix-10k.html"
    path.write_text(html, encoding="utf-8")
    return path


@pytest.fixture
def filing(tmp_path: Path) -> Path:
    return write_filing(tmp_path)


@pytest.fixture
def keyed_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray apikey.env from the developer's folder
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def config_for(stub, out: Path, **overrides) -> gen.GenerateConfig:
    values = dict(
        output_dir=str(out),
        name="zentrix",
        endpoint=gen.EndpointConfig(model="llama3.1:8b-instruct", base_url=stub.base_url, timeout_s=5.0),
        questions_per_chunk=3,
        chunk_chars=200,
        chunk_overlap_chars=40,
        workers=4,
        max_attempts=3,
        backoff_base_s=0.01,
        backoff_max_s=0.05,
    )
    values.update(overrides)
    return gen.GenerateConfig(**values)


def chunks_of(filing: Path) -> list[gen.Chunk]:
    return gen.make_chunks(gen.load_filing_texts(filing), chunk_chars=200, overlap_chars=40)


def raw_chunk_ids(out: Path) -> list[str]:
    lines = (out / gen.RAW_ITEMS_FILE).read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["chunk_id"] for line in lines if line.strip()]


# ---------------------------------------------------------------- sources and chunking


def test_filing_items_are_found_and_cleaned_like_the_package(filing: Path) -> None:
    texts = gen.load_filing_texts(filing)
    assert len(texts) == 3
    assert texts[0].startswith("Item 1. Business") and "Quill" in texts[0]
    assert texts[2].startswith("Item 7.") and "$412 million" in texts[2]
    joined = " ".join(texts)
    assert "..." not in joined and "---" not in joined and "++" not in joined and "\n" not in joined


def test_chunking_is_offline_stable_and_bounded(filing: Path) -> None:
    texts = gen.load_filing_texts(filing)
    first = gen.make_chunks(texts, chunk_chars=200, overlap_chars=40)
    assert [c.id for c in first] == [c.id for c in gen.make_chunks(texts, chunk_chars=200, overlap_chars=40)]
    assert len(first) >= 6 and all(len(c.text) <= 200 for c in first)
    assert [c.index for c in first] == list(range(len(first)))
    # Every word of every text lands in some chunk, and consecutive chunks of a text overlap.
    words = {w for t in texts for w in t.split()}
    assert words == {w for c in first for w in c.text.split()}
    pieces = gen.split_text(texts[0], 200, 40)
    assert pieces[0].split()[-1] in pieces[1].split()[:8]


def test_texts_file_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "texts.jsonl"
    path.write_text('{"text": "fine"}\n{"txt": 3}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"texts.jsonl:2: expected a string"):
        gen.load_texts_file(path)


def test_edgar_needs_the_users_own_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(gen.SEC_IDENTITY_ENV, raising=False)
    with pytest.raises(UserError, match="--sec-identity"):
        gen.fetch_edgar_texts("NVDA", 2023, sec_identity=None)
    with pytest.raises(UserError, match="not financial-datasets' shared default"):
        gen.fetch_edgar_texts("NVDA", 2023, sec_identity=gen.PACKAGE_SEC_IDENTITY)
    with pytest.raises(UserError, match="expected 'Name email@domain'"):
        gen.fetch_edgar_texts("NVDA", 2023, sec_identity="just a name")


# ---------------------------------------------------------------- end to end through the CLI


def test_cli_generates_from_local_filing(filing: Path, tmp_path: Path, keyed_env, capsys) -> None:
    out, db = tmp_path / "out", tmp_path / "ft.db"
    chunks = chunks_of(filing)
    with running_stub() as stub:
        code = cli_main(
            [
                "--db", str(db), "generate", "--filing", str(filing), "--out", str(out),
                "--model", "llama3.1:8b-instruct", "--base-url", stub.base_url, "--workers", "3",
                "--questions-per-chunk", "3", "--chunk-chars", "200", "--chunk-overlap", "40",
            ]
        )  # fmt: skip
        requests = list(stub.requests)
    assert code == 0
    assert len(requests) == len(chunks)
    # The package's prompt and forced tool, the model name as configured, the key as a bearer token.
    from financial_datasets.prompts import default_prompt

    body = requests[0].body
    assert body["model"] == "llama3.1:8b-instruct"
    # Every sampling parameter and the reply's length limit, explicitly, in every request.
    assert all((r.body["max_tokens"], r.body["temperature"], r.body["top_p"]) == (800, 1.0, 1.0) for r in requests)
    assert body["messages"][0] == {"role": "system", "content": default_prompt}
    assert body["tool_choice"] == {"type": "function", "function": {"name": "generate_dataset"}}
    assert body["tools"][0]["function"]["name"] == "generate_dataset"
    assert all(r.headers["authorization"] == f"Bearer {SECRET}" for r in requests)

    rows = [json.loads(line) for line in (out / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 3 * len(chunks)
    assert [r["id"] for r in rows] == list(range(len(rows)))
    assert all(set(r) == {"question", "answer", "context", "id"} for r in rows)
    tags = {text_tag(c.text): c for c in chunks}
    for row in rows:  # every item traces back to the chunk it was generated from
        chunk = tags[row["question"][1:11]]
        assert row["answer"] in chunk.text
    assert sorted(raw_chunk_ids(out)) == sorted(c.id for c in chunks)

    store = open_db(db)
    datasets = list_datasets(store)
    assert len(datasets) == 1 and datasets[0]["kind"] == "generated" and datasets[0]["rows"] == len(rows)
    assert datasets[0]["path"] == str((out / "train.jsonl").resolve())
    run = gen_store.list_generation_runs(store)[0]
    assert (
        run["status"] == "completed"
        and run["chunks_done"] == len(chunks)
        and run["dataset_id"] == datasets[0]["id"]
    )
    store.close()
    assert f"items:    {len(rows)}" in capsys.readouterr().out


def test_missing_key_fails_before_any_request(filing: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with running_stub() as stub:
        code = cli_main(
            ["--db", str(tmp_path / "ft.db"), "generate", "--filing", str(filing), "--out", str(tmp_path / "o"),
             "--base-url", stub.base_url]
        )  # fmt: skip
        assert stub.requests == []
    assert code == 2
    err = capsys.readouterr().err
    assert "no API key" in err and "OPENAI_API_KEY" in err and "apikey.env" in err
    assert not (tmp_path / "o").exists()


def test_key_is_read_from_apikey_env(filing: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    (tmp_path / "apikey.env").write_text(f"OPENAI_API_KEY={SECRET}\n", encoding="utf-8")
    with running_stub(Behavior(expected_key=SECRET)) as stub:
        result = gen.generate(chunks_of(filing)[:2], config_for(stub, tmp_path / "out"))
        assert {r.outcome for r in stub.requests} == {"ok"}
    assert result.items == 6


# ---------------------------------------------------------------- failures: retried, or loud


def test_429_5xx_and_timeouts_are_retried(filing: Path, tmp_path: Path, keyed_env) -> None:
    chunks = chunks_of(filing)[:4]
    events: list[gen.ProgressEvent] = []
    behavior = Behavior(script=["429", "500", "503", "slow"], slow_s=2.0, retry_after="0")
    with running_stub(behavior) as stub:
        config = config_for(stub, tmp_path / "out", workers=1, max_attempts=5)
        config.endpoint.timeout_s = 0.5
        result = gen.generate(chunks, config, on_progress=events.append)
        outcomes = [r.outcome for r in stub.requests]
    assert outcomes[:4] == ["429", "500", "503", "slow"] and len(outcomes) == len(chunks) + 4
    assert result.items == 3 * len(chunks)
    retries = [e.message for e in events if e.kind == "retry"]
    assert any("HTTP 429" in m for m in retries) and any("timed out" in m for m in retries)
    assert events[-1].kind == "finished" and events[-1].chunks_done == len(chunks)


def test_malformed_tool_arguments_are_retried_and_bad_items_dropped(filing, tmp_path, keyed_env) -> None:
    chunks = chunks_of(filing)[:3]
    with running_stub(Behavior(script=["malformed", "notool", "badfields"])) as stub:
        result = gen.generate(chunks, config_for(stub, tmp_path / "out", workers=1))
        assert len(stub.requests) == len(chunks) + 2
        bodies = [r.body for r in stub.requests]
    assert result.items == 3 * len(chunks) and result.dropped_items == 1
    # A reply without the tool call switched the run to JSON output: no tools, a response_format.
    assert [("tools" in b, "response_format" in b) for b in bodies] == [(True, False)] * 2 + [(False, True)] * 3
    assert bodies[-1]["response_format"]["json_schema"]["schema"]["required"] == ["dataset_items"]


def test_a_reply_whose_every_item_is_unusable_is_asked_again(filing, tmp_path, keyed_env) -> None:
    """Recorded as done with no items, the chunk would never be sent again; an empty list is an answer."""
    chunks = chunks_of(filing)[:2]
    with running_stub(Behavior(script=["allbad", "empty"])) as stub:
        result = gen.generate(chunks, config_for(stub, tmp_path / "out", workers=1))
        assert [r.outcome for r in stub.requests] == ["allbad", "empty", "ok"]
    records = [json.loads(line) for line in (tmp_path / "out" / gen.RAW_ITEMS_FILE).read_text().splitlines()]
    assert [(len(r["items"]), r["attempts"]) for r in records] == [(0, 2), (3, 1)]
    assert result.items == 3 and result.dropped_items == 0


def test_a_server_that_ignores_tool_choice_gets_asked_for_json(filing, tmp_path, keyed_env, caplog) -> None:
    """transformers serve's way: never a tool call. The first reply is prose cut at max_tokens; from
    then on every request asks for JSON (response_format and the instruction) and is read leniently
    from a fenced block in the text."""
    chunks = chunks_of(filing)[:3]
    with running_stub(Behavior(ignore_tools=True)) as stub:
        config = config_for(stub, tmp_path / "out", workers=1, max_tokens=64, temperature=0.0, top_p=0.9)
        result = gen.generate(chunks, config)
        bodies = [r.body for r in stub.requests]
    assert result.items == 3 * len(chunks)
    assert [("tool_choice" in b, "response_format" in b) for b in bodies] == [(True, False)] + [(False, True)] * 3
    assert gen.JSON_INSTRUCTION in bodies[1]["messages"][0]["content"]
    assert all((b["max_tokens"], b["temperature"], b["top_p"]) == (64, 0.0, 0.9) for b in bodies)
    records = [json.loads(line) for line in (tmp_path / "out" / gen.RAW_ITEMS_FILE).read_text().splitlines()]
    assert [r["reply"] for r in records] == ["json"] * 3 and [r["attempts"] for r in records] == [2, 1, 1]
    assert "asking for JSON output from now on" in caplog.text


def test_json_in_a_reply_without_the_tool_call_is_read_leniently(filing, tmp_path, keyed_env) -> None:
    chunks = chunks_of(filing)[:2]
    with running_stub(Behavior(script=["fenced"])) as stub:
        result = gen.generate(chunks, config_for(stub, tmp_path / "out", workers=1))
        assert [r.outcome for r in stub.requests] == ["fenced", "ok"] and result.items == 3 * len(chunks)
    assert gen.items_in_json('no JSON at all {"broken": [}') is None
    assert gen.items_in_json('Cut off: {"dataset_items": [{"question": "a", "answer": "b"}, {"quest') is None
    assert gen.items_in_json('[{"question": "a", "answer": "b", "context": "c"}] trailing') == [
        {"question": "a", "answer": "b", "context": "c"}
    ]


def test_nothing_usable_says_what_came_back_and_no_next_chunk_is_sent(filing, tmp_path, keyed_env) -> None:
    """One worker: the first chunk fails (prose, cut at max_tokens) and no other chunk is sent; the
    error quotes the reply's end reason, length and first 80 characters, with the key hidden."""
    chunks = gen.make_chunks([f"Zentrix keeps its key {SECRET} in the filing. " + SECTIONS["Item 1. Business"]], chunk_chars=200, overlap_chars=40)
    assert len(chunks) >= 2
    db = open_db(tmp_path / "ft.db")
    with running_stub(Behavior(default_outcome="prose")) as stub:
        config = config_for(stub, tmp_path / "out", workers=1, max_attempts=2, max_tokens=30)
        with pytest.raises(gen.GenerationError) as failed:
            gen.generate(chunks, config, store=db)
        assert stub.texts_requested() == [chunks[0].text] * 2  # its two attempts, then nothing
    message = str(failed.value)
    assert f"chunk {chunks[0].id} failed after 2 attempts: no generate_dataset tool call and no JSON items" in message
    assert "finish_reason=length" in message and "it hit max_tokens=30: raise --max-tokens" in message
    shown = message.split("characters: ", 1)[1]
    assert shown.startswith("'Here are some questions about the text. Zentrix keeps its key *** in")
    assert len(shown.split("'")[1]) <= gen.client.SHOWN_CHARS
    assert SECRET not in message
    run = gen_store.list_generation_runs(db)[0]
    assert run["status"] == "failed" and SECRET not in str(run)
    db.close()


def test_with_several_workers_no_new_chunk_starts_after_a_failure(filing, tmp_path, keyed_env) -> None:
    chunks = chunks_of(filing)
    assert len(chunks) >= 6
    # The failure answers at once, its two siblings 2 s later: a sibling that ends in the same
    # instant as the failure may fairly start the next chunk (it has not seen the failure yet).
    with running_stub(Behavior(script=["detail", "slow", "slow"], slow_s=2.0)) as stub:
        with pytest.raises(gen.GenerationError, match="HTTP 400: Server is pinned to 'local-model'"):
            gen.generate(chunks, config_for(stub, tmp_path / "out", workers=3))
        sent = stub.texts_requested()
    assert sent[0] in {c.text for c in chunks[:3]} and set(sent) <= {c.text for c in chunks[:3]}
    kept = raw_chunk_ids(tmp_path / "out")  # the siblings in flight were saved, nothing after them
    assert set(kept) <= {c.id for c in chunks[:3]} and len(kept) == len(sent) - 1


def test_the_server_s_own_reason_is_shown_shortened_and_redacted(filing, tmp_path, keyed_env) -> None:
    long_reason = f"Model 'x' not found; key {SECRET} was fine; " + "details " * 100
    with running_stub(Behavior(script=["detail"], detail=long_reason)) as stub:
        with pytest.raises(gen.GenerationError) as failed:
            gen.generate(chunks_of(filing)[:1], config_for(stub, tmp_path / "out"))
        assert len(stub.requests) == 1  # a 400 is final
    message = str(failed.value)
    assert "HTTP 400: Model 'x' not found; key *** was fine; details" in message
    assert "Error code" not in message and SECRET not in message and "... (0 of 1 chunks done" in message
    reason = message.split("HTTP 400: ", 1)[1].split(" (0 of 1", 1)[0]
    assert len(reason) == 200  # the server's reason, cut (some send whole HTML pages)


def test_extra_body_is_sent_with_every_request_and_checked(filing, tmp_path, keyed_env) -> None:
    extra = {"generation_config": json.dumps({"do_sample": True}), "seed": 7}
    with running_stub() as stub:
        config = config_for(stub, tmp_path / "out")
        config.endpoint.extra_body = extra
        gen.generate(chunks_of(filing)[:2], config)
        assert all(r.body["generation_config"] == '{"do_sample": true}' and r.body["seed"] == 7 for r in stub.requests)
    for bad, why in (({"temperature": 0.2}, "'temperature' is set by ft-hallu"),
                     ({"auth_token": "x"}, "'auth_token' looks like a credential"),
                     ({"note": f"key {SECRET}"}, "'note' looks like a credential")):  # fmt: skip
        config.endpoint.extra_body = bad
        with pytest.raises(UserError, match=why):
            config.validate()


def test_exhausted_retries_name_the_chunk_and_resume_later(filing, tmp_path, keyed_env) -> None:
    chunks = chunks_of(filing)
    bad = chunks[2]
    marker = next(w for w in bad.text.split() if sum(w in c.text for c in chunks) == 1)
    db = open_db(tmp_path / "ft.db")
    with running_stub(Behavior(fail_marker=marker)) as stub:
        config = config_for(stub, tmp_path / "out", workers=2)
        with pytest.raises(gen.GenerationError, match=rf"chunk {bad.id} failed after 3 attempts: HTTP 500"):
            gen.generate(chunks, config, store=db)
        assert sum(marker in t for t in stub.texts_requested()) == 3
        kept = raw_chunk_ids(tmp_path / "out")
        assert bad.id not in kept and len(kept) >= 1
        run = gen_store.list_generation_runs(db)[0]
        assert run["status"] == "failed" and bad.id in run["error"]
        assert not (tmp_path / "out" / "train.jsonl").exists()

        stub.behavior.fail_marker = None  # the endpoint recovers: re-running sends only what is missing
        before = len(stub.requests)
        result = gen.generate(chunks, config, store=db)
        resent = stub.texts_requested()[before:]
    assert sorted(resent) == sorted(c.text for c in chunks if c.id not in kept)
    assert sorted(raw_chunk_ids(tmp_path / "out")) == sorted(c.id for c in chunks)
    assert result.items == 3 * len(chunks)
    assert gen_store.list_generation_runs(db)[0]["status"] == "completed"
    db.close()


def test_zero_items_overall_is_a_failure(filing, tmp_path, keyed_env) -> None:
    db = open_db(tmp_path / "ft.db")
    with running_stub(Behavior(default_outcome="empty")) as stub:
        with pytest.raises(gen.GenerationError, match="zero usable items"):
            gen.generate(chunks_of(filing)[:3], config_for(stub, tmp_path / "out"), store=db)
    assert list_datasets(db) == []
    assert gen_store.list_generation_runs(db)[0]["status"] == "failed"
    db.close()


def test_rejected_key_is_not_retried(filing, tmp_path, keyed_env) -> None:
    with running_stub(Behavior(expected_key="another-key")) as stub:
        with pytest.raises(gen.GenerationError, match="rejected the API key"):
            gen.generate(chunks_of(filing)[:1], config_for(stub, tmp_path / "out"))
        assert len(stub.requests) == 1


def test_other_source_in_same_folder_is_refused(filing, tmp_path, keyed_env) -> None:
    with running_stub() as stub:
        config = config_for(stub, tmp_path / "out")
        gen.generate(chunks_of(filing)[:2], config)
        with pytest.raises(UserError, match="different source or chunking"):
            gen.generate(gen.make_chunks(["Another company entirely. It makes boats."]), config)


def test_torn_last_line_is_cut_off(tmp_path: Path) -> None:
    path = tmp_path / gen.RAW_ITEMS_FILE
    path.write_text('{"chunk_id": "00000-a", "items": []}\n{"chunk_id": "00001-b", "ite', encoding="utf-8")
    assert list(gen.read_raw_records(path)) == ["00000-a"]
    assert path.read_text(encoding="utf-8") == '{"chunk_id": "00000-a", "items": []}\n'


# ---------------------------------------------------------------- kill -9 and resume, secrets


def _cli_command(db: Path, filing: Path, out: Path, base_url: str) -> list[str]:
    return [
        sys.executable, "-c", "import sys; from cli import main; sys.exit(main(sys.argv[1:]))",
        "--db", str(db), "generate", "--filing", str(filing), "--out", str(out), "--model", "local-model",
        "--base-url", base_url, "--workers", "2", "--questions-per-chunk", "3",
        "--chunk-chars", "200", "--chunk-overlap", "40", "--no-progress",
    ]  # fmt: skip


def _scan_for_secret(paths: list[Path]) -> list[str]:
    return [str(p) for p in paths if p.is_file() and SECRET.encode() in p.read_bytes()]


@pytest.mark.slow  # two fresh CLI processes (imports dominate): ~15-30 s on 2 shared cores
def test_kill_mid_run_then_resume_sends_every_chunk_once(filing: Path, tmp_path: Path) -> None:
    out, db = tmp_path / "out", tmp_path / "ft.db"
    chunks = chunks_of(filing)
    env = {**os.environ, "OPENAI_API_KEY": SECRET, "PYTHONPATH": str(REPO)}
    env.pop("OPENAI_BASE_URL", None)
    with running_stub(Behavior(latency_s=0.4)) as stub:
        command = _cli_command(db, filing, out, stub.base_url)
        first = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        raw = out / gen.RAW_ITEMS_FILE
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and first.poll() is None:
            if raw.exists() and len(raw.read_bytes().splitlines()) >= 2:
                break
            time.sleep(0.05)
        assert first.poll() is None, "the run finished before it could be killed"
        first.send_signal(signal.SIGKILL)
        first_out, first_err = first.communicate(timeout=30)
        assert first.returncode == -signal.SIGKILL
        done_before = set(raw_chunk_ids(out))
        assert 2 <= len(done_before) < len(chunks)
        sent_before = len(stub.requests)

        second = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, timeout=120)
        assert second.returncode == 0, second.stderr.decode()
        resent = stub.texts_requested()[sent_before:]
    ids = raw_chunk_ids(out)
    assert sorted(ids) == sorted(c.id for c in chunks)  # every chunk exactly once
    assert sorted(resent) == sorted(c.text for c in chunks if c.id not in done_before)
    rows = (out / "train.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 3 * len(chunks)
    # The key never reaches an output file, the store (every SQLite file) or the process output.
    files = [*out.rglob("*"), *tmp_path.glob("ft.db*")]
    assert _scan_for_secret(files) == []
    for stream in (first_out, first_err, second.stdout, second.stderr):
        assert SECRET.encode() not in stream


def test_key_never_logged_or_stored_even_on_failure(filing, tmp_path, keyed_env, caplog) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    db = open_db(tmp_path / "ft.db")
    chunks = chunks_of(filing)[:2]
    marker = next(w for w in chunks[0].text.split() if w not in chunks[1].text)
    with running_stub(Behavior(fail_marker=marker, script=["429"])) as stub:
        with pytest.raises(gen.GenerationError) as excinfo:
            gen.generate(chunks, config_for(stub, tmp_path / "out"), store=db)
    db.close()
    assert SECRET not in str(excinfo.value)
    assert SECRET not in caplog.text and "retrying" in caplog.text
    assert _scan_for_secret([*(tmp_path / "out").rglob("*"), *tmp_path.glob("ft.db*")]) == []


# ---------------------------------------------------------------- the dependency resolution


@pytest.mark.slow  # imports gradio in a fresh interpreter and runs pip check: ~25 s on 2 shared cores
def test_financial_datasets_works_beside_gradio_and_pytest(tmp_path: Path) -> None:
    """The package's own loop runs on our openai/pydantic in the same venv as gradio and pytest 9."""
    script = r"""
import importlib.metadata as md, sys
import gradio, fastapi, pytest, pydantic, packaging, openai
from packaging.version import Version
assert Version(md.version("pydantic")) >= Version("2.9"), md.version("pydantic")
assert Version(md.version("packaging")) >= Version("24"), md.version("packaging")
assert Version(md.version("openai")) >= Version("3"), md.version("openai")
from financial_datasets.generator import DatasetGenerator
from financial_datasets.parser import FilingParser
import financial_datasets.generator as generator_module
import types
generator_module.time = types.SimpleNamespace(sleep=lambda seconds: None)  # skip its fixed 1 s pause
dataset = DatasetGenerator(model="gpt-4o-mini", api_key="x").generate_from_texts(
    texts=["Zentrix sells sensor chips. It is based in Lyon."], max_questions=2)
assert [i.answer for i in dataset.items] == ["Zentrix sells sensor chips.", "It is based in Lyon."], dataset
print("OK", gradio.__version__, pytest.__version__, pydantic.__version__)
"""
    with running_stub() as stub:
        env = {
            **os.environ,
            "OPENAI_API_KEY": SECRET,
            "OPENAI_BASE_URL": stub.base_url,
            "PYTHONPATH": str(REPO),
        }
        proc = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[-1].startswith("OK 6"), proc.stdout[-500:]
    check = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120
    )
    ours = {"gradio", "fastapi", "pytest", "pydantic", "openai", "edgartools", "langchain-text-splitters",
            "langchain-core", "langsmith", "pypdf2"}  # fmt: skip
    broken = [line for line in check.stdout.splitlines() if line.split(" ")[0].lower() in ours]
    assert broken == [], broken
