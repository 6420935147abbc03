"""Apriori mining: exact values on a hand-worked example, a planted rule, thresholds, edge cases."""

from __future__ import annotations

import itertools
import random

import pytest

from knowledge.ml.mining import Itemset, MiningResult, Rule, describe_rule, mine

# Hand-worked example. The empty transaction is ignored and the duplicate "a" counts once, so
# N = 6 and count(a) = 5, count(b) = 5, count(c) = 2, count(d) = 1, count(ab) = 4, count(ac) = 2,
# count(bc) = 1, count(abc) = 1.
TINY = [["a", "b", "c"], ["a", "b"], ["a", "c"], ["b"], ["a", "b", "d"], ["a", "a", "b"], []]


def test_tiny_example_matches_hand_computed_values():
    result = mine(TINY, min_support=0.3, min_confidence=0.5)

    assert result.n_transactions == 6
    assert result.itemsets == [
        Itemset(("a",), 5 / 6, 5),
        Itemset(("b",), 5 / 6, 5),
        Itemset(("a", "b"), 4 / 6, 4),
        Itemset(("c",), 2 / 6, 2),
        Itemset(("a", "c"), 2 / 6, 2),
    ]
    # a->c has confidence 2/5 = 0.4 < 0.5 and must not appear; bc (1/6) is below min_support.
    # c->a: conf 2/2 = 1, lift 1 / (5/6) = 1.2; a->b and b->a: conf 4/5, lift 0.8 / (5/6) = 0.96.
    expected = [
        Rule(("c",), ("a",), 2 / 6, 1.0, 1.2, 2),
        Rule(("a",), ("b",), 4 / 6, 0.8, 0.96, 4),
        Rule(("b",), ("a",), 4 / 6, 0.8, 0.96, 4),
    ]
    assert len(result.rules) == len(expected)
    for got, want in zip(result.rules, expected, strict=True):
        assert (got.lhs, got.rhs, got.count) == (want.lhs, want.rhs, want.count)
        assert got.support == pytest.approx(want.support)
        assert got.confidence == pytest.approx(want.confidence)
        assert got.lift == pytest.approx(want.lift)


def test_thresholds_are_inclusive_and_respected():
    # min_confidence exactly 0.4 now admits a->c; min_support 1/6 admits b,c and a,b,c.
    result = mine(TINY, min_support=0.16, min_confidence=0.4)
    pairs = {(r.lhs, r.rhs) for r in result.rules}
    assert (("a",), ("c",)) in pairs
    assert all(r.confidence >= 0.4 for r in result.rules)
    assert all(s.support >= 0.16 for s in result.itemsets)
    assert Itemset(("a", "b", "c"), 1 / 6, 1) in result.itemsets


def _planted_conversations(n: int = 3000, seed: int = 1) -> list[list[str]]:
    """Background topics with Zipf-like popularity; 发票 in ~20% of chats, 税率 follows it 70% of the time."""
    rng = random.Random(seed)
    vocab = [f"faq:{i}" for i in range(40)]
    weights = [1 / (rank + 1) for rank in range(len(vocab))]
    conversations = []
    for _ in range(n):
        topics = set(rng.choices(vocab, weights=weights, k=rng.randint(1, 4)))
        if rng.random() < 0.2:
            topics.add("faq:invoice")
            if rng.random() < 0.7:
                topics.add("faq:tax_rate")
        if rng.random() < 0.05:
            topics.add("faq:tax_rate")
        conversations.append(sorted(topics))
    return conversations


def _brute_force_pair_rules(conversations, min_support, min_confidence):
    sets = [set(c) for c in conversations if c]
    n = len(sets)
    items = sorted(set().union(*sets))
    count = {i: sum(i in s for s in sets) for i in items}
    rules = {}
    for x, y in itertools.permutations(items, 2):
        both = sum(x in s and y in s for s in sets)
        if both / n >= min_support and both / count[x] >= min_confidence:
            rules[((x,), (y,))] = (both / n, both / count[x], (both / count[x]) / (count[y] / n))
    return rules


def test_finds_planted_rule_with_planted_confidence():
    conversations = _planted_conversations()
    result = mine(conversations, min_support=0.02, min_confidence=0.5, max_length=2)

    planted = [r for r in result.rules if r.lhs == ("faq:invoice",) and r.rhs == ("faq:tax_rate",)]
    assert len(planted) == 1
    rule = planted[0]
    # P(税率 | 发票) = 0.7 + 0.3 * 0.05 = 0.715 by construction.
    assert rule.confidence == pytest.approx(0.715, abs=0.04)
    assert rule.lift > 3
    assert result.rules[0] == rule or result.rules[0].lift >= rule.lift


def test_rules_match_brute_force_exactly():
    conversations = _planted_conversations(n=800, seed=3)
    result = mine(conversations, min_support=0.03, min_confidence=0.3, max_length=2)
    expected = _brute_force_pair_rules(conversations, 0.03, 0.3)

    got = {(r.lhs, r.rhs): (r.support, r.confidence, r.lift) for r in result.rules}
    assert got.keys() == expected.keys()
    for key, values in expected.items():
        assert got[key] == pytest.approx(values)


def test_rules_sorted_by_lift_then_confidence():
    result = mine(_planted_conversations(n=1000), min_support=0.01, min_confidence=0.1)
    keys = [(r.lift, r.confidence) for r in result.rules]
    assert len(keys) > 5
    assert keys == sorted(keys, reverse=True)


def test_max_length_limits_itemsets_and_rules():
    conversations = _planted_conversations(n=1000)
    assert max(len(s.items) for s in mine(conversations, min_support=0.01, min_confidence=0.1).itemsets) == 3
    two = mine(conversations, min_support=0.01, min_confidence=0.1, max_length=2)
    assert max(len(s.items) for s in two.itemsets) == 2
    assert all(len(r.lhs) + len(r.rhs) <= 2 for r in two.rules)
    one = mine(conversations, min_support=0.01, min_confidence=0.1, max_length=1)
    assert one.rules == [] and all(len(s.items) == 1 for s in one.itemsets)


@pytest.mark.parametrize("transactions", [[], [[]], [[], [""], [None]], iter([])])
def test_empty_input(transactions):
    assert mine(transactions, min_support=0.1, min_confidence=0.5) == MiningResult()


def test_single_item_transactions_give_itemsets_but_no_rules():
    result = mine([["faq:1"], ["faq:2"], ["faq:1"]], min_support=0.1, min_confidence=0.0)
    assert result.rules == []
    assert result.itemsets == [Itemset(("faq:1",), 2 / 3, 2), Itemset(("faq:2",), 1 / 3, 1)]


def test_nothing_frequent():
    result = mine([["a"], ["b"], ["c"]], min_support=0.5, min_confidence=0.5)
    assert result == MiningResult(n_transactions=3)


def test_accepts_generators_and_sets():
    gen = (set(t) for t in TINY)
    assert mine(gen, min_support=0.3, min_confidence=0.5) == mine(TINY, min_support=0.3, min_confidence=0.5)


def test_rejects_bad_arguments():
    with pytest.raises(TypeError):
        mine(["faq:1", "faq:2"], min_support=0.1, min_confidence=0.5)
    with pytest.raises(ValueError):
        mine(TINY, min_support=0, min_confidence=0.5)
    with pytest.raises(ValueError):
        mine(TINY, min_support=0.1, min_confidence=1.5)
    with pytest.raises(ValueError):
        mine(TINY, min_support=0.1, min_confidence=0.5, max_length=0)


def test_describe_rule_in_chinese():
    rule = Rule(("faq:invoice",), ("faq:tax_rate",), 0.1, 0.7234, 3.14, 10)
    labels = {"faq:invoice": "发票", "faq:tax_rate": "税率"}
    assert describe_rule(rule, labels) == "问发票的客户也常问税率（置信度 0.72，提升度 3.1）"

    multi = Rule(("faq:invoice", "intent:refund"), ("product:iphone",), 0.1, 0.5, 2.0, 10)
    assert describe_rule(multi, labels) == "问发票、intent:refund的客户也常问product:iphone（置信度 0.50，提升度 2.0）"
