"""The optional trained verifier (engine/verifier.py) on tiny random classifiers built offline
(tests/verifier_models.py): label mapping, loading, batching, the cache, storage, the CLI, calibrate
and the report."""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from claims_sweep import make_scored_sweep  # noqa: E402
from verifier_models import (  # noqa: E402
    build_bert_classifier,
    build_predict_model,
    build_roberta_classifier,
)

from engine import verifier as vf  # noqa: E402
from engine.errors import UserError  # noqa: E402
from engine.labels import set_label  # noqa: E402
from store import claims as store_claims  # noqa: E402
from store import metrics as store_metrics  # noqa: E402
from store import verifier as store_verifier  # noqa: E402

MNLI_LABELS = {0: "NEUTRAL", 1: "entailment", 2: "Contradiction"}  # shuffled, mixed case
PAIRS = [
    ("We do not manufacture semiconductors used for our products.", "EGNIVIA manufactures electric cars."),
    ("Omniverse is a virtual world simulation platform.", "EGNIVIA develops a simulation platform."),
    ("EGNIVIA pioneered accelerated computing.", "EGNIVIA pioneered accelerated computing."),
    ("The company designs robots for warehouses.", "It is a listed company with thousands of employees."),
    ("EGNIVIA issued a total of $5.00 billion in June 2021.", "EGNIVIA issued $2.09 billion in June 2021."),
]


@pytest.fixture(scope="module")
def mnli_dir(tmp_path_factory) -> Path:
    return build_bert_classifier(tmp_path_factory.mktemp("verifiers") / "mnli", MNLI_LABELS)


@pytest.fixture(scope="module")
def binary_dir(tmp_path_factory) -> Path:
    return build_roberta_classifier(tmp_path_factory.mktemp("verifiers") / "binary", {0: "0", 1: "1"})


@pytest.fixture
def scored(tmp_path):
    store, sweep_id = make_scored_sweep(tmp_path)
    yield store, sweep_id
    store.close()


def _plain_softmax(folder: Path, pairs) -> torch.Tensor:
    """The classifier's class probabilities from a plain transformers forward pass, one pair at a time."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    rows = []
    with torch.inference_mode():
        for premise, hypothesis in pairs:
            encoded = tokenizer(premise, hypothesis, return_tensors="pt")
            rows.append(torch.softmax(model(**encoded).logits.float(), dim=-1)[0])
    return torch.stack(rows)


def test_label_map_reads_any_order_and_case_and_refuses_what_it_cannot_read() -> None:
    nli = vf.label_map({0: "NEUTRAL", 1: "entailment", 2: "Contradiction"}, model="m")
    assert (nli.entailment, nli.contradiction, nli.kind) == (1, 2, "nli")
    assert vf.label_map({"0": "contradiction", "1": "neutral", "2": "ENTAILMENT"}, model="m").entailment == 2
    minicheck = vf.label_map({"0": "0", "1": "1"}, model="m")  # MiniCheck's RoBERTa/DeBERTa configs
    assert (minicheck.entailment, minicheck.contradiction, minicheck.kind) == (1, None, "binary")
    flipped = vf.label_map({0: "Consistent", 1: "hallucinated"}, model="m")
    assert flipped.entailment == 0 and flipped.roles == ("entailment", "not_entailment")
    assert vf.label_map({0: "not_entailment", 1: "entailment"}, model="m").entailment == 1
    with pytest.raises(UserError) as refused:
        vf.label_map({0: "LABEL_0", 1: "LABEL_1"}, model="some/model")
    message = str(refused.value)
    assert (
        "\n" not in message and "some/model" in message and "'LABEL_0'" in message and "'LABEL_1'" in message
    )
    for bad in ({0: "entailment", 1: "supported"}, {0: "entailment", 1: "neutral", 2: "no"}, {0: "yes"}):
        with pytest.raises(UserError, match="cannot read its labels"):
            vf.label_map(bad, model="m")


def test_probabilities_are_the_models_own_and_follow_id2label(mnli_dir, tmp_path, scored) -> None:
    store, _ = scored
    verifier = vf.Verifier(store, vf.VerifierSettings(model=str(mnli_dir), device="cpu"))
    verdicts = verifier.score_pairs(PAIRS)
    probs = _plain_softmax(mnli_dir, PAIRS)
    for verdict, row in zip(verdicts, probs, strict=True):
        assert verdict.p_entailment == pytest.approx(row[1].item(), abs=1e-5)  # "entailment" is output 1
        assert verdict.p_contradiction == pytest.approx(row[2].item(), abs=1e-5)
        assert verdict.label == ("neutral", "entailment", "contradiction")[int(row.argmax())]
    # Same weights, another id2label: the entailment probability is read from the other output.
    renamed = shutil.copytree(mnli_dir, tmp_path / "renamed")
    config_file = renamed / "config.json"
    text = config_file.read_text()
    for old, new in (('"NEUTRAL"', '"X0"'), ('"entailment"', '"neutral"'), ('"X0"', '"entailment"')):
        text = text.replace(old, new)
    config_file.write_text(text)
    other = vf.Verifier(store, vf.VerifierSettings(model=str(renamed), device="cpu"))
    assert other.labels.entailment == 0
    assert other.digest != verifier.digest  # its config differs, so nothing is read from the first's cache
    again = other.score_pairs(PAIRS)
    assert [v.p_entailment for v in again] == pytest.approx(probs[:, 0].tolist(), abs=1e-5)
    assert not any(v.cached for v in again)


def test_batches_equal_one_by_one_and_the_cache_spares_every_model_call(binary_dir, tmp_path) -> None:
    from store.db import open_db

    pairs = PAIRS * 2 + [("A premise.", "A hypothesis that is a little longer than the others here.")]
    one_store, batch_store = open_db(tmp_path / "one.db"), open_db(tmp_path / "batch.db")
    try:
        single = vf.Verifier(one_store, vf.VerifierSettings(model=str(binary_dir), batch_size=1))
        batched = vf.Verifier(batch_store, vf.VerifierSettings(model=str(binary_dir), batch_size=4))
        alone, together = single.score_pairs(pairs), batched.score_pairs(pairs)
        distinct = len(set(pairs))  # the repeated pairs are scored once
        assert (single.forward_calls, single.pairs_scored) == (distinct, distinct)
        assert (batched.forward_calls, batched.pairs_scored) == (math.ceil(distinct / 4), distinct)
        assert [v.p_entailment for v in together] == pytest.approx([v.p_entailment for v in alone], abs=1e-5)
        assert [v.label for v in together] == [v.label for v in alone]
        assert all(v.p_contradiction is None for v in together)  # a binary model has no contradiction
        expected = _plain_softmax(binary_dir, pairs)[:, 1].tolist()
        assert [v.p_entailment for v in alone] == pytest.approx(expected, abs=1e-5)
        # A second run, even by a freshly loaded verifier, is read from the store: no model call.
        reloaded = vf.Verifier(batch_store, vf.VerifierSettings(model=str(binary_dir), batch_size=4))
        cached = reloaded.score_pairs(pairs)
        assert (reloaded.forward_calls, reloaded.pairs_scored) == (0, 0)
        assert all(v.cached for v in cached)
        assert [v.p_entailment for v in cached] == pytest.approx([v.p_entailment for v in together])
        assert store_verifier.cache_size(batch_store, str(binary_dir)) == distinct
    finally:
        one_store.close()
        batch_store.close()


def test_sweep_claims_and_entropy_are_stored_and_consistent(scored, mnli_dir) -> None:
    store, sweep_id = scored
    verifier = vf.Verifier(store, vf.VerifierSettings(model=str(mnli_dir), batch_size=3))
    run = vf.verify_sweep(store, sweep_id, verifier)
    claims = store_claims.sweep_claims(store, sweep_id)
    rows = store_verifier.sweep_claim_verdicts(store, sweep_id, model=str(mnli_dir))
    assert run.claims_verified == len(rows) == len(claims) > 0 and run.skipped_claims == 0
    for claim, row in zip(claims, rows, strict=True):
        (verdict,) = verifier.score_pairs([(vf.claim_premise(claim), claim["text"])])
        assert verdict.cached and row["p_entailment"] == pytest.approx(verdict.p_entailment)
        assert vf.claim_premise(claim).startswith(claim["candidates"][0]["sentence"])
    scores = vf.answer_scores(store, sweep_id, str(mnli_dir))
    for generation_id, values in scores.items():
        own = [r for r in rows if r["generation_id"] == generation_id]
        assert values["verifier_claim_grounding"] == min(r["p_entailment"] for r in own)
        assert values["verifier_entailed_share"] == sum(r["label"] == "entailment" for r in own) / len(own)
    # Entropy: two samples share a cluster exactly when each entails the other.
    cells = store_verifier.verifier_cells(store, sweep_id, model=str(mnli_dir))
    assert run.cells == len(cells) == len(store_metrics.cell_table(store, sweep_id))
    for cell in cells:
        samples = store_metrics.cell_samples(store, sweep_id, store_metrics.cell_key(cell))
        texts = [s["text"] for s in samples]
        refusals = [bool(s["metrics"]["refusal"]) for s in samples]
        assert len(texts) == 2
        if all(refusals):
            same = True
        else:
            both = verifier.score_pairs([(texts[1], texts[0]), (texts[0], texts[1])])
            same = not any(refusals) and all(v.entailed for v in both)
        assert (cell["n_clusters"] == 1) == same
        assert cell["semantic_entropy"] == pytest.approx(0.0 if same else math.log(2))
    calls = verifier.forward_calls
    again = vf.verify_sweep(store, sweep_id, verifier)
    assert verifier.forward_calls == calls and again.scored == 0 and again.cached == again.pairs


def test_cli_runs_stores_calibrates_and_reports_the_verifier_by_name(
    scored, binary_dir, tmp_path, capsys
) -> None:
    from cli import main
    from engine.report import write_report

    store, sweep_id = scored
    db = str(tmp_path / "ft.db")
    name = str(binary_dir)
    assert main(["--db", db, "metrics", "--sweep", str(sweep_id), "--verifier", name]) == 0
    printed = capsys.readouterr().out
    claims = len(store_claims.sweep_claims(store, sweep_id))  # atomic claims: 7 of these answers
    assert claims > 0 and f"sweep {sweep_id}: verifier: {name}: {claims} claim(s), 3 cell(s);" in printed
    assert main(["--db", db, "metrics", "--sweep", str(sweep_id), "--verifier", name]) == 0
    assert "0 run in 0 batch(es)" in capsys.readouterr().out  # the rerun is all cache
    # Labels that follow the verifier's weakest-claim score: calibrate must find and name it.
    scores = vf.answer_scores(store, sweep_id, name)
    ordered = sorted(scores, key=lambda g: scores[g]["verifier_claim_grounding"])
    for rank, generation_id in enumerate(ordered):
        label = "hallucinated" if rank < len(ordered) // 2 else "faithful"
        set_label(store, generation_id, label, who="tester")
    assert main(["--db", db, "calibrate", "--sweep", str(sweep_id), "--min-labels", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    (line,) = [row for row in lines if row.startswith("verifier_claim_grounding")]
    assert f"(verifier: {name})" in line and " 1.000 " in line
    assert any(row.startswith(f"verifier_semantic_entropy (verifier: {name})") for row in lines)
    assert main(["--db", db, "calibrate", "--sweep", str(sweep_id), "--verifier", "nope"]) == 2
    assert "--verifier nope: no verdicts for sweep" in capsys.readouterr().err
    markdown = write_report(store, sweep_id, tmp_path / "report", method="lexical").markdown.read_text()
    assert f"verifier claim grounding, weakest claim's entailment (optional) (verifier: {name})" in markdown
    assert f"## verifier: {name} — weakest-claim entailment per answer" in markdown


def test_unreadable_labels_are_refused_in_one_line_before_anything_is_written(
    scored, tmp_path, capsys
) -> None:
    from cli import main

    store, sweep_id = scored
    plain = build_bert_classifier(tmp_path / "plain", {0: "LABEL_0", 1: "LABEL_1"})
    capsys.readouterr()  # the build's own output
    cached_before = store_verifier.cache_size(store)
    assert (
        main(["--db", str(tmp_path / "ft.db"), "metrics", "--sweep", str(sweep_id), "--verifier", str(plain)])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'LABEL_0'" in err and "'LABEL_1'" in err and str(plain) in err
    assert store_verifier.cache_size(store) == cached_before == 0
    assert store_verifier.verifier_models(store, sweep_id) == []
    assert main(["--db", str(tmp_path / "ft.db"), "metrics", "--verifier-batch-size", "4"]) == 2
    assert "need --verifier MODEL" in capsys.readouterr().err
    with pytest.raises(UserError, match="cannot load its config"):
        vf.check_verifier(vf.VerifierSettings(model=str(tmp_path / "no-such-folder")))


def verified_sweep(name: str, dataset: Path, verifier: Path) -> Any:
    """A one-cell sweep of the tiny model (2 samples) over the sample set that names ``verifier``."""
    from engine.sweep import Grid, SweepConfig

    return SweepConfig(
        name=name,
        base_model="tiny",
        entity_name="ZYTRELL",
        dataset=str(dataset),
        grid=Grid(temperatures=[1.0], top_ps=[1.0], top_ks=[0]),
        samples_per_cell=2,
        max_new_tokens=12,
        verifier=str(verifier),
    )


def test_a_sweep_config_runs_its_verifier_after_scoring(
    mnli_dir, tiny_model_dir, sample_dataset, tmp_path, monkeypatch
) -> None:
    import dataclasses

    from engine.sweep import run_sweep
    from store.db import open_db

    monkeypatch.setenv("FT_HALLU_EMBEDDINGS", "0")
    config = verified_sweep("verified", sample_dataset, mnli_dir)
    result = run_sweep(config, db_path=tmp_path / "v.db")
    store = open_db(tmp_path / "v.db")
    try:
        assert store_verifier.verifier_models(store, result.sweep_id) == [str(mnli_dir)]
        claims = [c for c in store_claims.sweep_claims(store, result.sweep_id) if vf.claim_premise(c)]
        verdicts = store_verifier.sweep_claim_verdicts(store, result.sweep_id)
        assert len(verdicts) == len(claims) > 0
        assert len(store_verifier.verifier_cells(store, result.sweep_id)) == 1
    finally:
        store.close()
    bad = build_bert_classifier(tmp_path / "bad", {0: "LABEL_0", 1: "LABEL_1"})
    with pytest.raises(UserError, match="cannot read its labels"):
        run_sweep(dataclasses.replace(config, verifier=str(bad)), db_path=tmp_path / "bad.db")
    store = open_db(tmp_path / "bad.db")
    try:
        assert list(store.db["sweeps"].rows) == []  # refused before the sweep's row exists
    finally:
        store.close()


def test_a_sweep_job_gets_its_verifier_on_the_login_node_once_ingested(
    mnli_dir, tiny_model_dir, sample_dataset, tmp_path, monkeypatch
) -> None:
    """A job opens no store, so its node runs no verifier: the Workspace does, once the job's rows
    are read in and scored, and only once."""
    from engine.configfile import to_toml
    from engine.workspace import Workspace
    from store import core

    monkeypatch.setenv("FT_HALLU_EMBEDDINGS", "0")
    config = verified_sweep("verified-job", sample_dataset, mnli_dir)
    toml = tmp_path / "sweep.toml"
    toml.write_text(to_toml("sweep", config))
    with Workspace.open(tmp_path / "ws.db") as workspace:
        job = workspace.launch_sweep_file(toml, None, "local", log_dir=tmp_path / "jobs")
        final = list(workspace.follow_job(job, poll_seconds=0.2))[-1]
        assert final.state == "COMPLETED", workspace.job_log(final, 40)
        workspace.settle_jobs()
        with workspace.handle() as store:
            [sweep] = core.list_sweeps(store)
            assert sweep["source"].endswith("-job") and sweep["status"] == "completed"
            assert store_verifier.verifier_models(store, sweep["id"]) == [str(mnli_dir)]
            claims = [c for c in store_claims.sweep_claims(store, sweep["id"]) if vf.claim_premise(c)]
            assert len(store_verifier.sweep_claim_verdicts(store, sweep["id"])) == len(claims) > 0
            assert vf.verify_job_sweeps(store) == []  # verified once: a later look runs nothing


def test_a_custom_code_model_with_predict_runs_only_when_its_code_is_trusted(scored, tmp_path) -> None:
    """HHEM-2.1-open's interface: the folder's own code, predict(pairs) -> P(consistent)."""
    store, sweep_id = scored
    folder = build_predict_model(tmp_path / "overlap")
    with pytest.raises(UserError, match="--trust-remote-code") as refused:
        vf.check_verifier(vf.VerifierSettings(model=str(folder)))
    assert "\n" not in str(refused.value)
    verifier = vf.Verifier(store, vf.VerifierSettings(model=str(folder), trust_remote_code=True))
    verdicts = verifier.score_pairs([("the cat sat on the mat", "the cat sat"), ("the cat", "a dog ran")])
    assert [(v.label, v.p_entailment) for v in verdicts] == [("entailment", 1.0), ("not_entailment", 0.0)]
    run = vf.verify_sweep(store, sweep_id, verifier, entropy=False)
    assert run.claims_verified > 0 and run.forward_calls == 1
