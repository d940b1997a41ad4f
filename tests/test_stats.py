"""The study's statistics against known cases: planted differences, nulls, the libraries' own answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from engine import stats


def binary_pairs(rng, n: int, p_a: float, p_b: float, shared: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Paired 0/1 samples: with probability ``shared`` both sides use one uniform (common random numbers)."""
    u = rng.random(n)
    v = np.where(rng.random(n) < shared, u, rng.random(n))
    return (u < p_a).astype(float), (v < p_b).astype(float)


def test_a_planted_difference_is_found_with_an_interval_around_it():
    rng = np.random.default_rng(7)
    a, b = binary_pairs(rng, 40, 0.8, 0.2)
    found = stats.paired_difference(a, b, seed=1)
    assert found.n == 40
    assert found.difference == pytest.approx(a.mean() - b.mean())
    assert found.low < found.difference < found.high
    assert found.low > 0.3  # the planted difference is 0.6
    assert found.p_value < 0.001


def test_no_difference_is_found_when_there_is_none_and_false_positives_stay_near_alpha():
    """200 seeded null cells (both sides the same distribution): the share with p <= 0.05 is about 0.05."""
    rng = np.random.default_rng(11)
    p_values = []
    for seed in range(200):
        a, b = binary_pairs(rng, 12, 0.5, 0.5, shared=0.3)
        p_values.append(stats.sign_flip_p(a, b, permutations=999, seed=seed))
    rate = np.mean(np.array(p_values) <= 0.05)
    # binomial(200, 0.05): 3 sd is 0.046; a discrete test is at or below its nominal level
    assert rate <= 0.05 + 0.046
    # and BH over the 200 null cells finds nothing at all
    assert not any(q <= 0.05 for q in stats.bh_adjust(p_values))


def test_continuous_nulls_reject_at_about_alpha_and_a_shift_is_found():
    rng = np.random.default_rng(3)
    rejections = 0
    for seed in range(150):
        base = rng.normal(size=10)
        other = base + rng.normal(scale=0.5, size=10)  # no shift
        rejections += stats.sign_flip_p(base, other, permutations=999, seed=seed) <= 0.05
    assert abs(rejections / 150 - 0.05) <= 3 * math.sqrt(0.05 * 0.95 / 150)
    shifted = rng.normal(size=15)
    assert stats.sign_flip_p(shifted + 1.0, shifted + rng.normal(scale=0.3, size=15)) < 0.01


def test_bh_adjusted_values_equal_statsmodels_and_keep_missing_ones():
    rng = np.random.default_rng(5)
    p_values = list(rng.uniform(0, 0.2, 30)) + [0.001, 0.0002, 0.9]
    ours = stats.bh_adjust(p_values)
    theirs = multipletests(p_values, alpha=0.05, method="fdr_bh")[1]
    assert ours == pytest.approx(list(theirs))
    with_gaps = stats.bh_adjust([0.01, None, 0.04])
    assert with_gaps[1] is None
    assert with_gaps[0] == pytest.approx(multipletests([0.01, 0.04], method="fdr_bh")[1][0])


def test_small_and_degenerate_cells():
    one = stats.paired_difference([1], [0])
    assert (one.n, one.difference, one.low, one.p_value) == (1, 1.0, None, 1.0)
    same = stats.paired_difference([1, 0, 1], [1, 0, 1])
    assert (same.difference, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    # every pair differs the same way: an exact sign-flip p of 2 / 2^n
    constant = stats.paired_difference([1] * 6, [0] * 6)
    assert constant.p_value == pytest.approx(2 / 2**6) and constant.low == constant.high == 1.0
    # missing values drop their pair
    gaps = stats.paired_difference([1, None, 0, 1], [0, 1, None, 0])
    assert gaps.n == 2
    with pytest.raises(ValueError, match="differ in length"):
        stats.paired_difference([1, 0], [1])
    assert stats.paired_difference([], []).n == 0


def test_clustered_pairs_use_one_unit_per_question():
    # question q1 asked 4 times, q2 once: the question means are compared, each question once
    found = stats.paired_cluster_difference([1, 1, 1, 1, 0], [0, 0, 0, 0, 0], ["q1"] * 4 + ["q2"])
    assert found.n == 2 and found.difference == pytest.approx(0.5)
    estimate = stats.mean_interval([1, 1, 1, 1, 0], clusters=["q1"] * 4 + ["q2"])
    assert (estimate.mean, estimate.units, estimate.n) == (0.5, 2, 5)


def test_factor_effects_find_a_planted_temperature_effect_and_nothing_else():
    rng = np.random.default_rng(2)
    rows = [
        {"temperature": t, "top_p": p, "top_k": k, "value": float(rng.random() < 0.1 + 0.4 * (t - 0.5))}
        for t in (0.5, 1.0, 1.5, 2.0)
        for p in (0.2, 0.6, 1.0)
        for k in (10, 30, 50)
        for _ in range(8)
    ]
    effects = {e.factor: e for e in stats.factor_effects(rows)}
    temperature = effects["temperature"]
    assert temperature.low < 0.6 < temperature.high and temperature.p_value < 1e-6  # planted: 0.4 x 1.5
    assert effects["top_p"].low < 0 < effects["top_p"].high
    assert effects["top_k"].low < 0 < effects["top_k"].high and effects["top_k"].coding == "linear"
    # top_k = 0 is "no cut-off": levels of their own, 0 last
    for row in rows:
        row["top_k"] = 0 if row["top_k"] == 50 else row["top_k"]
    coded = {e.factor: e for e in stats.factor_effects(rows)}["top_k"]
    assert coded.coding == "levels" and coded.levels == [10, 30, 0]
    constant = stats.factor_effects([{**r, "value": 1.0} for r in rows])
    assert all(e.effect == 0.0 and "constant" in e.note for e in constant)
    single = stats.factor_effects([{**r, "top_p": 1.0} for r in rows])
    assert [e.note for e in single if e.factor == "top_p"] == ["one level in the grid"]


def test_operating_point_rule():
    cells = [
        stats.CellRates(0.5, 1.0, 50, 5, hallucination=0.2, refusal=0.8),  # refuses too often
        stats.CellRates(1.0, 1.0, 50, 5, hallucination=0.4, refusal=0.2),
        stats.CellRates(1.5, 1.0, 50, 5, hallucination=0.4, refusal=0.0),  # tie on rate: lower refusal
        stats.CellRates(2.0, 1.0, 50, 5, hallucination=None, refusal=0.0),
    ]
    point = stats.operating_point(cells, max_refusal=0.5)
    assert (
        point.cell is cells[2] and point.candidates == 2
    )  # the cell without a rate is not one and "refusal rate <= 0.5" in point.rule
    assert stats.operating_point(cells, max_refusal=1.0).cell is cells[0]
    assert stats.operating_point(cells[:1], max_refusal=0.5).cell is None


def test_power_numbers_come_from_statsmodels_and_warn_below_them():
    from statsmodels.stats.power import TTestPower

    expected = math.ceil(TTestPower().solve_power(effect_size=0.2 / 0.5, alpha=0.05, power=0.8))
    assert stats.samples_needed(0.2, 0.5, alpha=0.05, power=0.8) == expected
    assert stats.fewest_pairs_for(0.05) == 6  # 2 / 2^5 = 0.0625 > 0.05 >= 2 / 2^6
    few = stats.power_note(0.2, differences_by_cell=[[1, 0, -1, 0, 1]], alpha=0.05, power=0.8, have=5)
    assert few.sd_source == "this sweep" and "cannot reach p <= 0.05" in few.warning
    many = stats.power_note(0.5, differences_by_cell=[[0, 0], [0, 0]], alpha=0.05, power=0.8, have=200)
    assert many.sd_source == "assumed" and many.sd == 0.5 and many.warning == ""
    assert many.needed_all_cells > many.needed
