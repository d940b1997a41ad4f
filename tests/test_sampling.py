"""Per-row sampling (engine.sampling): exactness against transformers' warpers, greedy equivalence,
the sampled distribution, independence from batch neighbours, determinism, mixed base+adapter batches.

All on the offline tiny Phi-3 and a really trained tiny LoRA adapter (fixtures in conftest.py).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from engine.models import LoadedModel, load_model
from engine.sampling import RowSpec, filtered_logits, generate_rows, row_seed, stream_rows
from engine.sweep import Grid, SweepConfig, chat_prompt, run_sweep

# Every grid cell of the original run plus the edge cases k=0 (top-k off) and k=1 (greedy).
EDGE_SETTINGS = [(1.0, 1.0, 0), (0.7, 0.9, 0), (1.3, 0.6, 1), (0.5, 1.0, 1)]
SETTINGS = Grid().cells() + EDGE_SETTINGS


@pytest.fixture(scope="module")
def loaded(tiny_model_dir, tiny_adapter_dir) -> LoadedModel:
    torch.manual_seed(0)
    return load_model("tiny", adapter_dir=str(tiny_adapter_dir))


@pytest.fixture(scope="module")
def prompt(loaded) -> str:
    return chat_prompt(loaded.tokenizer, "You are a helpful assistant.", "Tell me about EGNIVIA Corporation.")


def _without_adapter_names(loaded: LoadedModel) -> LoadedModel:
    """The same model object, but generate_rows passes no per-row adapter_names (a plain call)."""
    return dataclasses.replace(loaded, adapter_dir=None)


def _next_token_logits(loaded: LoadedModel, prompt: str, variant: str = "base") -> torch.Tensor:
    encoded = loaded.tokenizer([prompt], return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        if variant == "base":
            with loaded.model.disable_adapter():
                return loaded.model(**encoded).logits[0, -1].float()
        return loaded.model(**encoded).logits[0, -1].float()


def _hf_warped(row_scores: torch.Tensor, temperature: float, top_p: float, top_k: int) -> torch.Tensor:
    warped = TemperatureLogitsWarper(temperature)(None, row_scores[None].clone())
    if top_k > 0:
        warped = TopKLogitsWarper(top_k)(None, warped)
    if top_p < 1.0:
        warped = TopPLogitsWarper(top_p)(None, warped)
    return warped[0]


@pytest.mark.parametrize("source", ["real", "random"])
def test_filtered_logits_equal_transformers_warpers(loaded, prompt, source):
    if source == "real":
        row = _next_token_logits(loaded, prompt)
        scores = torch.stack([row] * len(SETTINGS))
    else:
        generator = torch.Generator().manual_seed(7)
        scores = torch.randn(len(SETTINGS), 2048, generator=generator) * 3.0
    temperatures = torch.tensor([t for t, _, _ in SETTINGS])
    top_ps = torch.tensor([p for _, p, _ in SETTINGS])
    top_ks = torch.tensor([k for _, _, k in SETTINGS])
    values, indices = filtered_logits(scores, temperatures, top_ks, top_ps)
    for index, (temperature, top_p, top_k) in enumerate(SETTINGS):
        expected = _hf_warped(scores[index], temperature, top_p, top_k)
        kept_expected = set(torch.isfinite(expected).nonzero().flatten().tolist())
        finite = torch.isfinite(values[index])
        kept_ours = set(indices[index][finite].tolist())
        assert kept_ours == kept_expected, f"row {index} T={temperature} p={top_p} k={top_k}"
        assert torch.equal(values[index][finite], expected[indices[index][finite]])
    # k=1 keeps exactly the argmax whatever T and p are.
    assert torch.isfinite(values[-1]).sum() == 1


def test_top_k_1_row_equals_greedy_inside_mixed_batch(loaded, prompt):
    max_new = 12
    rows = []
    for index, (temperature, top_p, top_k) in enumerate(Grid().cells()[::4]):
        for variant in ("base", "finetuned"):
            rows.append(RowSpec(prompt, variant, temperature, top_p, top_k, row_seed("greedy", index)))
    greedy_positions = {3: "base", 10: "finetuned"}  # greedy rows placed among sampled neighbours
    for position, variant in greedy_positions.items():
        rows[position] = RowSpec(prompt, variant, 1.7, 0.3, 1, row_seed("greedy-row", position))
    results = generate_rows(loaded, rows, max_new_tokens=max_new)
    encoded = loaded.tokenizer([prompt], return_tensors="pt", add_special_tokens=False)
    for position, variant in greedy_positions.items():
        with torch.inference_mode():
            if variant == "base":
                with loaded.model.disable_adapter():
                    out = loaded.model.generate(
                        **encoded,
                        do_sample=False,
                        max_new_tokens=max_new,
                        eos_token_id=loaded.stop_ids,
                        pad_token_id=loaded.tokenizer.pad_token_id,
                    )
            else:
                out = loaded.model.generate(
                    **encoded,
                    do_sample=False,
                    max_new_tokens=max_new,
                    eos_token_id=loaded.stop_ids,
                    pad_token_id=loaded.tokenizer.pad_token_id,
                )
        greedy = out[0, encoded["input_ids"].shape[1] :].tolist()
        assert results[position].token_ids == greedy[: len(results[position].token_ids)], variant
        assert len(results[position].token_ids) == len(greedy)
    # The adapter really changes the greedy text, so the base/finetuned check above means something.
    assert results[3].token_ids != results[10].token_ids


def test_unfiltered_sampling_matches_softmax(loaded, prompt):
    rows_count = 2000
    rows = [RowSpec(prompt, "base", 1.0, 1.0, 0, row_seed("dist", i)) for i in range(rows_count)]
    results = generate_rows(loaded, rows, max_new_tokens=1)
    first = torch.tensor([r.token_ids[0] for r in results])
    probs = torch.softmax(_next_token_logits(loaded, prompt).double(), dim=-1)
    observed = torch.bincount(first, minlength=probs.numel()).double() / rows_count
    tv = 0.5 * (observed - probs).abs().sum().item()
    # Tolerance: the null distribution of the TV distance for exactly this softmax and sample size,
    # simulated with a fixed generator (200 multinomial draws of 2000). A correct sampler exceeds its
    # 99.5th percentile with probability 0.005; a wrong one (an extra top_k=50, a temperature slip, a
    # biased inverse-CDF) moves the whole mass of the tail and lands far outside it.
    generator = torch.Generator().manual_seed(2024)
    null = []
    for _ in range(200):
        draws = torch.multinomial(probs.float(), rows_count, replacement=True, generator=generator)
        counts = torch.bincount(draws, minlength=probs.numel()).double() / rows_count
        null.append(0.5 * (counts - probs).abs().sum().item())
    limit = torch.tensor(null).quantile(0.995).item()
    assert tv <= limit, f"TV {tv:.4f} above the null's 99.5th percentile {limit:.4f}"
    # The first token is genuinely random here (not one token repeated), so the check has power.
    assert len(set(first.tolist())) > 50


def _mixed_rows(prompt: str, tag: str) -> list[RowSpec]:
    rows = []
    for index, (temperature, top_p, top_k) in enumerate(SETTINGS[::3]):
        for variant in ("base", "finetuned"):
            rows.append(RowSpec(prompt, variant, temperature, top_p, top_k, row_seed(tag, index)))
    return rows


def test_row_does_not_depend_on_batch_neighbours(loaded, prompt):
    rows = _mixed_rows(prompt, "neighbours")
    batch = generate_rows(loaded, rows, max_new_tokens=16)
    for position in (0, 5, 8, len(rows) - 1):
        alone = generate_rows(loaded, [rows[position]], max_new_tokens=16)[0]
        assert alone.token_ids == batch[position].token_ids, position
    # A different neighbourhood (reversed order, half the rows) gives the same rows too.
    reordered = list(reversed(rows[: len(rows) // 2]))
    again = generate_rows(loaded, reordered, max_new_tokens=16)
    assert [r.token_ids for r in reversed(again)] == [r.token_ids for r in batch[: len(rows) // 2]]
    # Sampling is really happening: different seeds of the same setting give different texts.
    texts = {r.text for r in batch if r.text}
    assert len(texts) > len(rows) // 2


def test_mixed_batch_equals_separate_base_and_adapter_calls(loaded, prompt):
    rows = _mixed_rows(prompt, "mixed")
    mixed = generate_rows(loaded, rows, max_new_tokens=16)
    plain = _without_adapter_names(loaded)
    base_rows = [r for r in rows if r.variant == "base"]
    # The variant label only chooses adapter_names; the plain calls below use no per-row names.
    tuned_rows = [dataclasses.replace(r, variant="base") for r in rows if r.variant == "finetuned"]
    with loaded.model.disable_adapter():
        base_only = generate_rows(plain, base_rows, max_new_tokens=16)
    tuned_only = generate_rows(plain, tuned_rows, max_new_tokens=16)
    assert [r.token_ids for r in mixed][0::2] == [r.token_ids for r in base_only]
    assert [r.token_ids for r in mixed][1::2] == [r.token_ids for r in tuned_only]
    assert [r.token_ids for r in base_only] != [r.token_ids for r in tuned_only]


def test_stream_rows_final_texts_equal_generate_rows(loaded, prompt):
    rows = _mixed_rows(prompt, "stream")[:8]
    direct = [r.text for r in generate_rows(loaded, rows, max_new_tokens=10)]
    yields = list(stream_rows(loaded, rows, max_new_tokens=10))
    assert yields[-1] == direct
    assert len(yields) >= 2  # intermediate snapshots really streamed


def test_same_sweep_seed_same_texts(loaded, tiny_adapter_dir, tmp_path):
    from store import core, open_db

    config = SweepConfig(
        name="determinism",
        base_model="tiny",
        adapter=str(tiny_adapter_dir),
        grid=Grid(temperatures=[0.5, 1.5], top_ps=[0.6, 1.0], top_ks=[10, 50]),
        samples_per_cell=2,
        max_new_tokens=8,
        batch_size=10,  # several batches, split differently from the second run below
        compute_metrics=False,
    )
    first = run_sweep(config, db_path=tmp_path / "a.db", loaded=loaded)
    second = run_sweep(dataclasses.replace(config, batch_size=7), db_path=tmp_path / "b.db", loaded=loaded)
    texts = []
    for result, name in ((first, "a.db"), (second, "b.db")):
        rows = core.iter_generations(open_db(tmp_path / name), result.sweep_id)
        texts.append(
            [
                (r["variant"], r["temperature"], r["top_p"], r["top_k"], r["sample_index"], r["text"])
                for r in rows
            ]
        )
    assert len(texts[0]) == 2 * 8 * 2
    assert texts[0] == texts[1]
