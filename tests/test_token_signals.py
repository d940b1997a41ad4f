"""Token log-probs and entropies recorded while sampling (engine.sampling, engine/metrics/tokens.py):
they are the model's own numbers (recomputed with a plain forward pass), the stop token and padding
are left out, recording changes no token, and a sweep stores, aggregates and calibrates them.

All on the offline tiny Phi-3 and the trained tiny LoRA adapter (fixtures in conftest.py).
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from engine import calibrate as cal
from engine.labels import set_label
from engine.metrics import catalog
from engine.metrics.tokens import TOKEN_METRICS, stats_from_extra, token_stats
from engine.models import LoadedModel, load_model
from engine.sampling import RowSpec, generate_rows, row_seed, stream_rows
from engine.sweep import Grid, SweepConfig, chat_prompt, run_sweep
from engine.workspace import Workspace
from store import core, open_db
from store import metrics as store_metrics


@pytest.fixture(scope="module")
def loaded(tiny_model_dir, tiny_adapter_dir) -> LoadedModel:
    torch.manual_seed(0)
    return load_model("tiny", adapter_dir=str(tiny_adapter_dir))


@pytest.fixture(scope="module")
def prompt(loaded) -> str:
    return chat_prompt(loaded.tokenizer, "You are a helpful assistant.", "Tell me about EGNIVIA Corporation.")


def _forward_log_softmax(
    loaded: LoadedModel, prompt: str, token_ids: list[int], variant: str
) -> torch.Tensor:
    """log_softmax of the raw logits (T=1) before each of ``token_ids``: one plain forward pass."""
    prompt_ids = loaded.tokenizer([prompt], add_special_tokens=False)["input_ids"][0]
    ids = torch.tensor([prompt_ids + token_ids])
    with torch.inference_mode():
        if variant == "base":
            with loaded.model.disable_adapter():
                logits = loaded.model(input_ids=ids).logits[0].float()
        else:
            logits = loaded.model(input_ids=ids).logits[0].float()
    start = len(prompt_ids) - 1
    return torch.log_softmax(logits[start : start + len(token_ids)], dim=-1)


def _entropy(log_probs: torch.Tensor) -> torch.Tensor:
    return -(log_probs.exp() * log_probs).sum(dim=-1)


def test_token_stats_summary() -> None:
    stats = token_stats([-0.5, -2.0, -0.1], [1.0, 3.0, 2.0])
    assert stats is not None
    assert stats.mean_token_logprob == pytest.approx(-2.6 / 3)
    assert (stats.min_token_logprob, stats.max_token_entropy, stats.scored_tokens) == (-2.0, 3.0, 3)
    assert stats.mean_token_entropy == pytest.approx(2.0)
    assert token_stats([], []) is None
    with pytest.raises(ValueError, match="one entropy per token"):
        token_stats([-1.0], [])
    assert stats_from_extra({"token_stats": stats.to_dict()})["min_token_logprob"] == -2.0
    assert stats_from_extra({"batch_rows": 4}) == dict.fromkeys(TOKEN_METRICS)


def test_processor_values_over_several_row_chunks_and_masked_logits() -> None:
    """More rows than one CPU chunk, large logits and a -inf logit (as a processor before ours
    would leave): entropies and chosen log-probs equal log_softmax's, in double precision."""
    from engine.sampling import PerRowSampler

    generator = torch.Generator().manual_seed(3)
    scores = torch.randn(41, 700, generator=generator) * 12.0
    scores[5, 17] = float("-inf")
    rows = [RowSpec("p", "base", 1.0, 1.0, 0, row_seed("chunks", i)) for i in range(41)]
    sampler = PerRowSampler(rows, 4, "cpu", record_logprobs=True)
    returned = sampler(torch.zeros(41, 1, dtype=torch.long), scores.clone())
    chosen = returned.argmax(dim=-1)
    reference = torch.log_softmax(scores.double(), dim=-1)
    entropy = -(reference.exp() * reference.nan_to_num(neginf=0.0)).sum(dim=-1)
    assert sampler.token_entropies is not None and sampler.token_logprobs is not None
    assert torch.allclose(sampler.token_entropies[:, 0].double(), entropy, atol=1e-4)
    expected = reference.gather(1, chosen[:, None]).squeeze(1)
    assert torch.allclose(sampler.token_logprobs[:, 0].double(), expected, atol=1e-4)
    assert torch.isfinite(sampler.token_entropies[:, 0]).all()


def test_recorded_values_are_the_models_own_log_probs_and_entropies(loaded, prompt) -> None:
    """Greedy, tempered and truncated rows side by side in one batch: each recorded value equals the
    raw distribution's (temperature 1, no top-k/p) from a separate forward pass."""
    rows = [
        RowSpec(prompt, "base", 1.0, 1.0, 1, row_seed("lp", 0)),  # greedy
        RowSpec(prompt, "finetuned", 1.5, 0.6, 10, row_seed("lp", 1)),
        RowSpec(prompt, "base", 0.5, 1.0, 0, row_seed("lp", 2)),  # sharp temperature
        RowSpec(prompt, "finetuned", 2.0, 1.0, 50, row_seed("lp", 3)),
    ]
    # min_new_tokens: every row writes an answer (the trained adapter often stops at once otherwise).
    results = generate_rows(loaded, rows, max_new_tokens=10, min_new_tokens=4)
    for row, result in zip(rows, results, strict=True):
        assert len(result.token_logprobs) >= 4 and len(result.token_logprobs) == len(result.token_entropies)
        scored = len(result.token_logprobs)
        log_probs = _forward_log_softmax(loaded, prompt, result.token_ids[:scored], row.variant)
        chosen = log_probs.gather(1, torch.tensor(result.token_ids[:scored])[:, None]).squeeze(1)
        assert torch.allclose(torch.tensor(result.token_logprobs), chosen, atol=1e-4), row
        assert torch.allclose(torch.tensor(result.token_entropies), _entropy(log_probs), atol=1e-4), row
        stats = result.token_stats
        assert stats is not None and stats.scored_tokens == scored
        assert stats.min_token_logprob == pytest.approx(chosen.min().item(), abs=1e-4)
        if row.top_k == 1:  # the greedy token is the distribution's most likely one
            assert torch.allclose(chosen, log_probs.max(dim=-1).values, atol=1e-6)
    # Not the tempered distribution the T=0.5 row sampled from: its log-probs would be far sharper.
    sharp = results[2]
    tempered = torch.log_softmax(
        _forward_log_softmax(loaded, prompt, sharp.token_ids, "base") / 0.5, dim=-1
    ).gather(1, torch.tensor(sharp.token_ids)[:, None])
    assert not torch.allclose(
        torch.tensor(sharp.token_logprobs), tempered.squeeze(1)[: len(sharp.token_logprobs)]
    )


def test_recording_changes_no_token_and_streaming_returns_the_same_values(loaded, prompt) -> None:
    rows = [
        RowSpec(prompt, variant, temperature, top_p, top_k, row_seed("same", index))
        for index, (temperature, top_p, top_k) in enumerate(Grid().cells()[::6])
        for variant in ("base", "finetuned")
    ]
    recorded = generate_rows(loaded, rows, max_new_tokens=12)
    plain = generate_rows(loaded, rows, max_new_tokens=12, record_logprobs=False)
    assert [r.token_ids for r in recorded] == [r.token_ids for r in plain]
    assert all(r.token_logprobs == [] and r.token_stats is None for r in plain)
    finished: list = []
    texts = list(stream_rows(loaded, rows, max_new_tokens=12, results=finished))[-1]
    assert texts == [r.text for r in recorded]
    assert len(finished) == len(recorded)
    for streamed, direct in zip(finished, recorded, strict=True):
        assert streamed.token_logprobs == pytest.approx(direct.token_logprobs)
        assert streamed.token_entropies == pytest.approx(direct.token_entropies)


def test_stop_token_and_padding_after_it_are_left_out(loaded, prompt) -> None:
    """A token declared a stop token ends the greedy row early while its neighbour runs on (so the
    greedy row is padded): only the answer's tokens before the stop are scored."""
    greedy = RowSpec(prompt, "base", 1.0, 1.0, 1, 1)
    other = RowSpec(prompt, "base", 1.0, 1.0, 0, 2)
    free = generate_rows(loaded, [greedy], max_new_tokens=12, record_logprobs=False)[0].token_ids
    position = next(i for i in range(2, len(free)) if free[i] not in free[:i])
    stopping = dataclasses.replace(loaded, stop_ids=[free[position]])
    first, neighbour = generate_rows(stopping, [greedy, other], max_new_tokens=12)
    assert first.token_ids == free[: position + 1] and first.new_tokens == position + 1
    assert len(first.token_logprobs) == len(first.token_entropies) == position
    full = _forward_log_softmax(loaded, prompt, free[:position], "base")
    expected = full.gather(1, torch.tensor(free[:position])[:, None]).squeeze(1)
    assert torch.allclose(torch.tensor(first.token_logprobs), expected, atol=1e-4)
    if free[position] not in neighbour.token_ids:  # it ran to the end: every token scored
        assert len(neighbour.token_logprobs) == neighbour.new_tokens == 12


def test_min_new_tokens_holds_the_stop_back_but_the_recorded_distribution_keeps_it(loaded, prompt) -> None:
    greedy = RowSpec(prompt, "base", 1.0, 1.0, 1, 1)
    free = generate_rows(loaded, [greedy], max_new_tokens=6, record_logprobs=False)[0].token_ids
    stopping = dataclasses.replace(loaded, stop_ids=[free[0]])  # the greedy first token, now a stop
    (held,) = generate_rows(stopping, [greedy], max_new_tokens=6, min_new_tokens=3)
    encoded = loaded.tokenizer([prompt], return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode(), loaded.model.disable_adapter():
        out = loaded.model.generate(
            **encoded,
            do_sample=False,
            max_new_tokens=6,
            min_new_tokens=3,
            eos_token_id=[free[0]],
            pad_token_id=loaded.tokenizer.pad_token_id,
        )
    reference = out[0, encoded["input_ids"].shape[1] :].tolist()
    assert held.token_ids == reference[: len(held.token_ids)] and free[0] not in held.token_ids[:3]
    # The first token is the runner-up; its log-prob is read from the distribution with the stop in it.
    log_probs = _forward_log_softmax(loaded, prompt, held.token_ids[:1], "base")[0]
    assert held.token_logprobs[0] == pytest.approx(log_probs[held.token_ids[0]].item(), abs=1e-4)
    assert held.token_logprobs[0] < log_probs.max().item()
    assert held.token_entropies[0] == pytest.approx(_entropy(log_probs).item(), abs=1e-4)


def test_sweep_stores_aggregates_shows_and_calibrates_token_signals(
    loaded, tiny_adapter_dir, tmp_path
) -> None:
    db = tmp_path / "tokens.db"
    config = SweepConfig(
        name="tokens",
        base_model="tiny",
        adapter=str(tiny_adapter_dir),
        grid=Grid(temperatures=[0.5, 1.5], top_ps=[1.0], top_ks=[0, 10]),
        samples_per_cell=3,
        max_new_tokens=8,
    )
    result = run_sweep(config, db_path=db, loaded=loaded)
    store = open_db(db)
    try:
        generations = {r["id"]: r for r in core.iter_generations(store, result.sweep_id)}
        samples = store_metrics.sample_table(store, result.sweep_id)
        assert len(samples) == len(generations) == 24
        for sample in samples:
            stored = generations[sample["generation_id"]]["extra"]["token_stats"]
            for name in TOKEN_METRICS:
                assert sample[name] == pytest.approx(stored[name])  # the typed column
            assert sample["min_token_logprob"] <= sample["mean_token_logprob"] < 0
            assert 0 < sample["mean_token_entropy"] <= sample["max_token_entropy"]
        for cell in store_metrics.cell_table(store, result.sweep_id):
            members = [s for s in samples if store_metrics.cell_key(s) == store_metrics.cell_key(cell)]
            mean = sum(s["mean_token_logprob"] for s in members) / len(members)
            assert cell["mean_token_logprob"] == pytest.approx(mean)
            assert cell["metrics"]["intervals"]["min_token_logprob"] is not None
        # Human labels that follow the log-prob: the calibration must find and orient the score.
        ordered = sorted(samples, key=lambda s: s["mean_token_logprob"])
        for rank, sample in enumerate(ordered):
            set_label(store, sample["generation_id"], "hallucinated" if rank < 12 else "faithful", who="t")
        calibration = cal.calibrate_sweep(store, result.sweep_id, resamples=50)
    finally:
        store.close()
    by_score = {r.score: r for r in calibration.results}
    assert by_score["mean_token_logprob"].auroc == 1.0
    assert by_score["mean_token_logprob"].threshold_rule.startswith("mean_token_logprob <= ")
    assert set(TOKEN_METRICS) <= set(by_score)
    with Workspace.open(db) as workspace:
        grid = workspace.metric_grid(result.sweep_id, "mean_token_logprob")
        low, high = grid.colour_range(catalog.cell_metric("mean_token_logprob"))
        assert math.isfinite(low) and low < high == 0.0
        assert low == pytest.approx(float(grid.finite_values().min()))
    assert "mean_token_logprob" in catalog.cell_metrics_shown(catalog.Show.HEATMAP)


def test_sweep_without_recording_leaves_them_empty_and_out_of_calibration(tiny_model_dir, tmp_path) -> None:
    config = SweepConfig(
        name="plain",
        base_model="tiny",
        grid=Grid(temperatures=[1.0], top_ps=[1.0], top_ks=[0]),
        samples_per_cell=2,
        max_new_tokens=4,
        token_logprobs=False,
    )
    result = run_sweep(config, db_path=tmp_path / "plain.db", loaded=load_model("tiny"))
    store = open_db(tmp_path / "plain.db")
    try:
        samples = store_metrics.sample_table(store, result.sweep_id)
        assert samples and all(s["mean_token_logprob"] is None for s in samples)
        rows = [{**row, "label": "faithful"} for row in cal.sweep_score_rows(store, result.sweep_id)]
    finally:
        store.close()
    assert not {r.score for r in cal.calibrate_rows(rows, resamples=10)} & set(TOKEN_METRICS)
