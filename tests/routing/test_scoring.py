"""RFM scoring (routing.scoring): pure numpy, no database."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from routing.scoring import (
    HIGH_SCORE,
    SEGMENTS,
    RfmResult,
    combined_score,
    quintile_scores,
    rfm_score,
    rfm_score_arrays,
)

# The classic definitions, written out independently of the implementation: (R high, F high, M high) -> label.
CLASSIC = {
    (True, True, True): "重要价值客户",
    (True, False, True): "重要发展客户",
    (False, True, True): "重要保持客户",
    (False, False, True): "重要挽留客户",
    (True, True, False): "一般价值客户",
    (True, False, False): "一般发展客户",
    (False, True, False): "一般保持客户",
    (False, False, False): "一般挽留客户",
}


# --- quintiles


def test_five_distinct_values_score_one_to_five():
    assert quintile_scores([10, 20, 30, 40, 50]).tolist() == [1, 2, 3, 4, 5]
    assert quintile_scores([50, 10, 40, 20, 30]).tolist() == [5, 1, 4, 2, 3]


def test_quintile_edges_twenty_distinct_values_fill_each_band_equally():
    scores = quintile_scores(np.arange(20))
    assert scores.tolist() == [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4 + [5] * 4


def test_quintile_edges_ten_distinct_values():
    assert quintile_scores(np.arange(10)).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_quintile_edge_is_exact_integer_arithmetic():
    # less=1, equal=2, n=10: p = 2/10 exactly on the 1|2 edge -> 2 (the upper band), no float drift.
    assert quintile_scores([0, 1, 1, 2, 3, 4, 5, 6, 7, 8]).tolist()[1:3] == [2, 2]


def test_ties_get_equal_scores():
    values = [5, 5, 5, 1, 9, 9, 3, 5]
    scores = quintile_scores(values)
    by_value: dict[int, set[int]] = {}
    for v, s in zip(values, scores.tolist(), strict=True):
        by_value.setdefault(v, set()).add(s)
    assert all(len(s) == 1 for s in by_value.values())
    # Higher values never score lower.
    order = np.argsort(values, kind="stable")
    assert np.all(np.diff(scores[order]) >= 0)


def test_all_equal_and_single_customer_sit_in_the_middle_band():
    assert quintile_scores([7, 7, 7, 7]).tolist() == [3, 3, 3, 3]
    assert quintile_scores([42]).tolist() == [3]


def test_small_population_of_two():
    assert quintile_scores([1, 2]).tolist() == [2, 4]


def test_lower_is_better_inverts():
    assert quintile_scores([1, 2, 3, 4, 5], higher_is_better=False).tolist() == [5, 4, 3, 2, 1]


def test_scores_do_not_depend_on_input_order():
    rng = np.random.default_rng(3)
    values = rng.integers(0, 30, size=200)
    perm = rng.permutation(200)
    assert np.array_equal(quintile_scores(values)[perm], quintile_scores(values[perm]))


def test_quintiles_empty_and_invalid():
    assert quintile_scores([]).tolist() == []
    with pytest.raises(ValueError):
        quintile_scores([1.0, float("nan")])
    with pytest.raises(ValueError):
        quintile_scores([[1, 2], [3, 4]])


# --- rfm_score


def test_empty_input():
    assert rfm_score([], [], [], []) == []
    assert len(rfm_score_arrays([], [], [], [])) == 0


def test_more_recent_scores_higher_r():
    results = rfm_score([1, 2, 3, 4, 5], [1, 7, 30, 90, 365], [2, 2, 2, 2, 2], [100, 100, 100, 100, 100])
    assert [x.r for x in results] == [5, 4, 3, 2, 1]
    assert {x.f for x in results} == {3} and {x.m for x in results} == {3}


def test_customers_without_orders_score_one_and_do_not_move_the_others():
    ids = ["a", "b", "c", "d", "e"]
    rec, freq, mon = [1, 10, 20, 30, 40], [5, 4, 3, 2, 1], [500, 400, 300, 200, 100]
    alone = rfm_score(ids, rec, freq, mon)
    mixed = rfm_score(ids + ["x", "y"], rec + [None, float("nan")], freq + [0, 0], mon + [None, 0])
    assert [(x.r, x.f, x.m) for x in mixed[:5]] == [(x.r, x.f, x.m) for x in alone]
    for nobody in mixed[5:]:
        assert (nobody.r, nobody.f, nobody.m) == (1, 1, 1)
        assert nobody.segment == "general_winback" and nobody.label == "一般挽留客户"
        assert nobody.score == 0.0 and nobody.tier == "low"


def test_population_of_only_customers_without_orders():
    results = rfm_score([1, 2], [None, None], [0, 0], [0, 0])
    assert [(x.r, x.f, x.m, x.tier) for x in results] == [(1, 1, 1, "low"), (1, 1, 1, "low")]


def test_ids_are_kept_as_given_and_results_are_plain_python():
    results = rfm_score(["wx_1", 2], [3, 5], [1, 2], [9.5, 10])
    assert [x.customer_id for x in results] == ["wx_1", 2]
    assert isinstance(results[0], RfmResult)
    assert type(results[0].r) is int and type(results[0].score) is float


def test_invalid_inputs_raise():
    with pytest.raises(ValueError):
        rfm_score([1, 2], [1], [1, 1], [1, 1])
    with pytest.raises(ValueError):
        rfm_score([1], [float("nan")], [2], [10])  # has orders but no recency
    with pytest.raises(ValueError):
        rfm_score([1], [3], [2], [float("inf")])


def _population_for(r_high: bool, f_high: bool, m_high: bool) -> list[RfmResult]:
    """Customer 0 is best (score 5) or worst (score 1) in each dimension among five customers."""
    others_rec, others_freq, others_mon = [10, 20, 30, 40], [2, 3, 4, 5], [200, 300, 400, 500]
    rec = [1 if r_high else 100] + others_rec
    freq = [9 if f_high else 1] + others_freq
    mon = [900 if m_high else 50] + others_mon
    return rfm_score(list(range(5)), rec, freq, mon)


@pytest.mark.parametrize(("bits", "label"), sorted(CLASSIC.items()))
def test_every_segment_is_reachable(bits, label):
    target = _population_for(*bits)[0]
    assert (target.r, target.f, target.m) == tuple(5 if b else 1 for b in bits)
    assert target.label == label
    assert SEGMENTS[target.segment] == label


def test_segment_codes_are_english_and_labels_are_the_eight_classics():
    assert set(SEGMENTS.values()) == set(CLASSIC.values())
    assert all(code.isascii() and code.islower() for code in SEGMENTS)
    assert {"important_value", "general_winback"} <= set(SEGMENTS)


def test_high_means_score_three_or_more():
    assert HIGH_SCORE == 3
    # Five distinct values per dimension: customer 2 scores 3 everywhere (high), customer 1 scores 2 (low).
    results = rfm_score(list(range(5)), [50, 40, 30, 20, 10], [1, 2, 3, 4, 5], [10, 20, 30, 40, 50])
    assert (results[2].r, results[2].f, results[2].m) == (3, 3, 3)
    assert results[2].segment == "important_value"
    assert (results[1].r, results[1].f, results[1].m) == (2, 2, 2)
    assert results[1].segment == "general_winback"


# --- combined score and tiers


def test_combined_score_formula_and_range():
    assert combined_score(1, 1, 1) == 0.0
    assert combined_score(5, 5, 5) == 100.0
    assert combined_score(4, 4, 4) == 75.0
    assert combined_score(5, 1, 1) == 30.0
    assert combined_score(1, 1, 5) == 40.0


def test_combined_score_is_strictly_monotone_and_m_weighs_most():
    for r, f, m in itertools.product(range(1, 6), repeat=3):
        base = combined_score(r, f, m)
        if r < 5:
            assert combined_score(r + 1, f, m) > base
        if f < 5:
            assert combined_score(r, f + 1, m) > base
        if m < 5:
            assert combined_score(r, f, m + 1) > base
    assert combined_score(1, 1, 2) > combined_score(2, 1, 1)
    assert combined_score(1, 1, 2) > combined_score(1, 2, 1)


def test_combined_score_orders_customers():
    results = rfm_score([1, 2, 3], [2, 30, 200], [10, 3, 1], [5000, 800, 30])
    assert results[0].score > results[1].score > results[2].score
    ranked = sorted(results, key=lambda x: -x.score)
    assert [x.customer_id for x in ranked] == [1, 2, 3]


def _customer_with(r: int, f: int, m: int) -> RfmResult:
    """Customer 0 of five with distinct values per dimension, placed to get exactly (r, f, m)."""

    def column(values_by_score: list[float], wanted: int) -> list[float]:
        order = [wanted] + [s for s in range(1, 6) if s != wanted]
        return [values_by_score[s - 1] for s in order]

    return rfm_score(
        list(range(5)),
        column([50, 40, 30, 20, 10], r),  # days: fewer is better
        column([1, 2, 3, 4, 5], f),
        column([10, 20, 30, 40, 50], m),
    )[0]


@pytest.mark.parametrize(
    ("rfm", "score", "tier"),
    [
        ((5, 5, 5), 100.0, "vip"),
        ((5, 5, 4), 90.0, "vip"),
        ((5, 5, 3), 80.0, "vip"),  # lowest vip
        ((3, 4, 5), 77.5, "high"),  # highest high
        ((4, 4, 4), 75.0, "high"),
        ((1, 5, 4), 60.0, "high"),  # lowest high
        ((3, 4, 3), 57.5, "normal"),  # highest normal
        ((3, 3, 3), 50.0, "normal"),
        ((1, 5, 1), 30.0, "normal"),  # lowest normal
        ((2, 1, 3), 27.5, "low"),  # highest low
        ((1, 1, 1), 0.0, "low"),
    ],
)
def test_tier_bands(rfm, score, tier):
    result = _customer_with(*rfm)
    assert (result.r, result.f, result.m) == rfm
    assert result.score == score
    assert result.tier == tier


def test_struct_of_arrays_agrees_with_results_and_zset_mapping():
    scores = rfm_score_arrays([7, 8, 9], [1, 10, 100], [3, 2, 0], [30, 20, 0])
    results = scores.results()
    assert [x.score for x in results] == scores.score.tolist()
    assert [x.segment for x in results] == scores.segment.tolist()
    assert scores.zset_mapping() == {"7": results[0].score, "8": results[1].score, "9": 0.0}


def test_hundred_thousand_customers_score_in_one_vectorised_pass():
    # Speed is a benchmark figure (rfm_recompute prints it), not a timed assertion.
    rng = np.random.default_rng(0)
    n = 100_000
    freq = rng.geometric(0.35, size=n) - 1
    rec = rng.exponential(60, size=n).round()
    mon = (freq * rng.lognormal(4.5, 0.8, size=n)).round(2)
    scores = rfm_score_arrays(np.arange(n), rec, freq, mon)
    assert len(scores) == n
    assert set(np.unique(scores.r).tolist()) <= {1, 2, 3, 4, 5}
