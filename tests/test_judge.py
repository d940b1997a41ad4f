"""The optional judge against a real OpenAI-compatible server on 127.0.0.1 (tests/openai_server.py)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from claims_sweep import make_scored_sweep  # noqa: E402
from openai_server import Behavior, running_stub  # noqa: E402

from engine import judge as jd  # noqa: E402
from engine.errors import UserError  # noqa: E402
from engine.generate import EndpointConfig  # noqa: E402
from store import claims as store_claims  # noqa: E402
from store import metrics as store_metrics  # noqa: E402

SECRET = "sk-judge-test-0123456789"


@pytest.fixture
def scored(tmp_path):
    store, sweep_id = make_scored_sweep(tmp_path)
    yield store, sweep_id
    store.close()


def _config(stub, *, attempts: int = 3) -> jd.JudgeConfig:
    endpoint = EndpointConfig(
        model="judge-1", base_url=stub.base_url, api_key_env="FT_JUDGE_KEY", env_file=None
    )
    return jd.JudgeConfig(endpoint=endpoint, max_attempts=attempts, backoff_base_s=0.01, backoff_max_s=0.02)


def test_parsers_read_one_verdict_only() -> None:
    assert jd.parse_claim_reply("Supported.") == "supported"
    assert jd.parse_claim_reply("not in the sources") == "not_in_sources"
    assert jd.parse_claim_reply('"contradicted"') == "contradicted"
    assert jd.parse_claim_reply("supported or contradicted") is None
    assert jd.parse_claim_reply("Hmm, hard to say.") is None
    assert jd.parse_yes_no("Yes.") == "yes" and jd.parse_yes_no("no") == "no"
    assert jd.parse_yes_no("yes and no") is None


def test_judge_labels_claims_and_clusters_by_entailment(scored, monkeypatch, caplog) -> None:
    store, sweep_id = scored
    monkeypatch.setenv("FT_JUDGE_KEY", SECRET)
    offline_before = store_metrics.sample_table(store, sweep_id)
    with running_stub(Behavior(expected_key=SECRET)) as stub, caplog.at_level(logging.DEBUG):
        run = jd.judge_sweep(store, sweep_id, _config(stub))
        claims = store_claims.sweep_claims(store, sweep_id)
        assert run.claims_judged == len(claims) and run.asked > 0 and run.cached == 0
        assert run.prompt_tokens > 0 and run.completion_tokens == 2 * run.asked
        verdicts = jd.judge_claim_rows(store, sweep_id, "judge-1")
        by_text = {c["text"]: verdicts[(c["generation_id"], c["claim_index"])]["label"] for c in claims}
        # Atomic claims, each judged on its own; the stub's denial test is word overlap, so only the
        # one sharing "products" with "We do not manufacture semiconductors used for our products".
        assert by_text["EGNIVIA manufactures renewable energy products"] == "contradicted"
        assert by_text["EGNIVIA manufactures electric cars"] == "not_in_sources"
        assert by_text["it also sells bicycles to farmers in remote regions"] == "not_in_sources"
        cells = {(c["variant"], c["temperature"]): c for c in store_claims.judge_cells(store, sweep_id)}
        assert cells[("base", 0.5)]["semantic_entropy"] == 0.0  # two refusals: one meaning
        assert cells[("finetuned", 0.5)]["n_clusters"] == 2
        first_requests = len(stub.requests)
        # Every request was a one-word question with explicit sampling settings.
        body = stub.requests[0].body
        assert body["model"] == "judge-1" and body["temperature"] == 0.0 and body["top_p"] == 1.0
        assert body["max_tokens"] == 16
        # A rerun is answered from the cache: no request, same verdicts.
        again = jd.judge_sweep(store, sweep_id, _config(stub))
        assert len(stub.requests) == first_requests and again.asked == 0 and again.cached == run.asked
    totals = store_claims.judge_token_totals(store, "judge-1")
    assert totals["questions"] == run.asked and totals["prompt_tokens"] == run.prompt_tokens
    # The key reached neither the log nor the store; the offline scores did not move.
    assert SECRET not in caplog.text
    dump = "\n".join(store.db.iterdump())
    assert SECRET not in dump
    assert store_metrics.sample_table(store, sweep_id) == offline_before


def test_retries_malformed_and_refused_answers(scored, monkeypatch) -> None:
    store, sweep_id = scored
    monkeypatch.setenv("FT_JUDGE_KEY", SECRET)
    claim = store_claims.sweep_claims(store, sweep_id)[0]
    evidence = [c["sentence"] for c in claim["candidates"]]
    with running_stub(Behavior(script=["429", "500", "malformed"])) as stub:
        judge = jd.Judge(store, _config(stub, attempts=4))
        verdict, _ = judge.claim(claim["text"], evidence)
        assert (verdict.label, verdict.status) == ("supported", "ok")
        assert [r.outcome for r in stub.requests] == ["429", "500", "malformed", "ok"]
    with running_stub(Behavior(script=["malformed", "malformed"])) as stub:
        judge = jd.Judge(store, _config(stub, attempts=2))
        verdict, _ = judge.claim("EGNIVIA sells boats.", evidence)
        assert (verdict.label, verdict.status) == (None, "malformed")
        # Not cached: the next run asks again and gets an answer.
        verdict, _ = judge.claim("EGNIVIA sells boats.", evidence)
        assert verdict.status == "ok" and not verdict.cached and len(stub.requests) == 3
    with running_stub(Behavior(script=["refused", "sorry"])) as stub:
        judge = jd.Judge(store, _config(stub))
        refused, _ = judge.claim("EGNIVIA sells ships.", evidence)
        sorry, _ = judge.claim("EGNIVIA sells trains.", evidence)
        assert (refused.status, sorry.status) == ("refused", "refused") and refused.label is None
        again, _ = judge.claim("EGNIVIA sells ships.", evidence)
        assert again.cached and again.status == "refused" and len(stub.requests) == 2


def test_rejected_key_is_one_clear_error_without_the_key(scored, monkeypatch) -> None:
    store, sweep_id = scored
    monkeypatch.setenv("FT_JUDGE_KEY", SECRET)
    with running_stub(Behavior(expected_key="another-key")) as stub:
        with pytest.raises(UserError, match="rejected the API key") as caught:
            jd.judge_sweep(store, sweep_id, _config(stub), entropy=False)
    assert SECRET not in str(caught.value)
    monkeypatch.delenv("FT_JUDGE_KEY")
    with pytest.raises(UserError, match=r"no API key: set FT_JUDGE_KEY"):
        jd.judge_sweep(store, sweep_id, _config(stub))


def test_judge_and_calibrate_commands_name_the_judge(scored, tmp_path, monkeypatch, capsys) -> None:
    from cli import main
    from engine.report import write_report

    store, sweep_id = scored
    db = str(tmp_path / "ft.db")
    monkeypatch.setenv("FT_JUDGE_KEY", SECRET)
    with running_stub() as stub:
        args = [
            "--db",
            db,
            "judge",
            "--sweep",
            str(sweep_id),
            "--model",
            "judge-1",
            "--base-url",
            stub.base_url,
        ]
        assert main([*args, "--api-key-env", "FT_JUDGE_KEY", "--env-file", ""]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("judge: judge-1: 7 claim(s), 3 cell(s);") and SECRET not in printed
    assert main(["--db", db, "calibrate", "--sweep", str(sweep_id), "--judge-model", "judge-1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    judged = [line for line in lines if line.startswith("judge_claim_grounding (judge: judge-1)")]
    assert judged and "not enough labels" in judged[0]
    paths = write_report(store, sweep_id, tmp_path / "report", method="lexical")
    markdown = paths.markdown.read_text()
    assert "| judge: judge-1 |" in markdown and "contradicted (negation)" in markdown
    assert r"\[\[bicycles\]\]" in markdown  # brackets escaped: Markdown shows [[bicycles]]
    assert "## judge: judge-1 — semantic entropy by bidirectional entailment" in markdown
