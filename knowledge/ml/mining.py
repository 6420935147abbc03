"""Association mining over conversations ("customers who ask about X also ask about Y").

Each conversation is one transaction: the set of topic ids it touched (``"faq:12"``,
``"intent:refund"``, ``"product:iphone"``). Frequent itemsets and rules come from
`efficient-apriori <https://pypi.org/project/efficient-apriori/>`_; this module only cleans the
input, fixes the definitions and returns plain, sorted data. No Django imports.

Definitions, over the ``N`` non-empty transactions (conversations with no topic carry no
co-occurrence information and are ignored, so they cannot inflate lift):

- ``support(X) = count(X) / N``
- ``confidence(X -> Y) = count(X ∪ Y) / count(X)``
- ``lift(X -> Y) = confidence(X -> Y) / support(Y)``
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from efficient_apriori import generate_rules_apriori, itemsets_from_transactions


class Itemset(NamedTuple):
    """A frequent set of topics; unpacks as ``(items, support, count)``."""

    items: tuple[str, ...]
    support: float
    count: int


class Rule(NamedTuple):
    """``lhs -> rhs``; ``support`` and ``count`` are those of ``lhs ∪ rhs``."""

    lhs: tuple[str, ...]
    rhs: tuple[str, ...]
    support: float
    confidence: float
    lift: float
    count: int


@dataclass(frozen=True, slots=True)
class MiningResult:
    itemsets: list[Itemset] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    n_transactions: int = 0


def _clean(transactions: Iterable[Iterable[str]]) -> list[tuple[str, ...]]:
    """Sorted, de-duplicated tuples of non-blank topic ids; empty transactions dropped."""
    cleaned = []
    for transaction in transactions:
        if isinstance(transaction, str | bytes):
            raise TypeError("each transaction must be an iterable of topic ids, not a single string")
        items = {str(item).strip() for item in transaction if item is not None}
        items.discard("")
        if items:
            cleaned.append(tuple(sorted(items)))
    return cleaned


def mine(
    transactions: Iterable[Iterable[str]],
    *,
    min_support: float,
    min_confidence: float,
    max_length: int = 3,
) -> MiningResult:
    """Frequent itemsets (support >= ``min_support``) and rules (confidence >= ``min_confidence``).

    Itemsets and rules have at most ``max_length`` topics in total. Itemsets are sorted by
    support (desc), rules by lift, then confidence, then support (all desc); ties by topic ids so
    the output is deterministic.
    """
    if not 0 < min_support <= 1:
        raise ValueError("min_support must be in (0, 1]")
    if not 0 <= min_confidence <= 1:
        raise ValueError("min_confidence must be in [0, 1]")
    if max_length < 1:
        raise ValueError("max_length must be >= 1")

    cleaned = _clean(transactions)
    n = len(cleaned)
    if n == 0:
        return MiningResult()

    # The library's high-level ``apriori()`` also materialises the transaction ids of every
    # itemset; the two lower-level calls skip that work.
    counts, _ = itemsets_from_transactions(cleaned, min_support, max_length)
    if not counts:
        return MiningResult(n_transactions=n)

    itemsets = [Itemset(items, count / n, count) for level in counts.values() for items, count in level.items()]
    itemsets.sort(key=lambda s: (-s.count, len(s.items), s.items))

    rules = []
    for raw in generate_rules_apriori(counts, min_confidence, n):
        confidence = raw.count_full / raw.count_lhs
        rules.append(
            Rule(
                lhs=tuple(raw.lhs),
                rhs=tuple(raw.rhs),
                support=raw.count_full / n,
                confidence=confidence,
                lift=confidence * n / raw.count_rhs,
                count=raw.count_full,
            )
        )
    rules.sort(key=lambda r: (-r.lift, -r.confidence, -r.support, r.lhs, r.rhs))
    return MiningResult(itemsets=itemsets, rules=rules, n_transactions=n)


def _names(items: tuple[str, ...], labels: Mapping[str, str]) -> str:
    return "、".join(labels.get(item) or item for item in items)


def describe_rule(rule: Rule, labels: Mapping[str, str]) -> str:
    """Chinese sentence for staff, e.g. ``问发票的客户也常问税率（置信度 0.72，提升度 3.1）``.

    Topics missing from ``labels`` are shown by their id.
    """
    return (
        f"问{_names(rule.lhs, labels)}的客户也常问{_names(rule.rhs, labels)}"
        f"（置信度 {rule.confidence:.2f}，提升度 {rule.lift:.1f}）"
    )
