"""Benchmark ``knowledge.ml.mining.mine`` on synthetic conversations.

Run from the project root::

    .venv/bin/python bench/bench_mining.py                  # 100,000 conversations, min_support 0.005
    .venv/bin/python bench/bench_mining.py --n 200000 --repeat 3

Topics follow a Zipf law over ``--vocab`` ids; each conversation has 2-5 distinct topics, and a
few "A usually comes with B" pairs are planted so real rules exist. Only ``mine()`` is timed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from knowledge.ml.mining import describe_rule, mine  # noqa: E402

# (antecedent rank, consequent rank, probability that the consequent joins the antecedent)
PLANTED = [(3, 40, 0.7), (10, 55, 0.6), (25, 90, 0.8), (60, 120, 0.9)]


def make_transactions(n: int, vocab: int, zipf_s: float, seed: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, vocab + 1)
    weights = ranks ** (-zipf_s)
    probs = weights / weights.sum()
    sizes = rng.integers(2, 6, size=n)  # 2..5 topics per conversation
    # Draw generously with replacement, then keep the first ``size`` distinct topics.
    draws = rng.choice(vocab, size=(n, 12), p=probs)
    joins = rng.random((n, len(PLANTED)))
    transactions = []
    for i in range(n):
        topics: list[int] = []
        for t in draws[i]:
            if t not in topics:
                topics.append(int(t))
                if len(topics) == sizes[i]:
                    break
        for j, (a, b, p) in enumerate(PLANTED):
            if a in topics and joins[i, j] < p and b not in topics:
                topics.append(b)
        transactions.append([f"faq:{t}" for t in topics])
    return transactions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="number of conversations")
    parser.add_argument("--vocab", type=int, default=300, help="number of distinct topics")
    parser.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent of topic popularity")
    parser.add_argument("--min-support", type=float, default=0.005)
    parser.add_argument("--min-confidence", type=float, default=0.3)
    parser.add_argument("--max-length", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    t0 = time.perf_counter()
    transactions = make_transactions(args.n, args.vocab, args.zipf, args.seed)
    gen_s = time.perf_counter() - t0
    avg = sum(map(len, transactions)) / len(transactions)
    print(
        f"data: {len(transactions):,} conversations, avg {avg:.2f} topics, vocab {args.vocab}, "
        f"zipf s={args.zipf} (generated in {gen_s:.1f} s)"
    )

    timings = []
    result = None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        result = mine(
            transactions,
            min_support=args.min_support,
            min_confidence=args.min_confidence,
            max_length=args.max_length,
        )
        timings.append(time.perf_counter() - t0)
    assert result is not None

    by_len: dict[int, int] = {}
    for itemset in result.itemsets:
        by_len[len(itemset.items)] = by_len.get(len(itemset.items), 0) + 1
    print(
        f"mine(min_support={args.min_support}, min_confidence={args.min_confidence}, "
        f"max_length={args.max_length}): "
        f"best {min(timings):.2f} s, median {statistics.median(timings):.2f} s over {args.repeat} run(s)"
    )
    print(f"itemsets: {len(result.itemsets)} {dict(sorted(by_len.items()))}; rules: {len(result.rules)}")
    for rule in result.rules[:5]:
        print("  ", describe_rule(rule, {}), f"support {rule.support:.4f}")


if __name__ == "__main__":
    main()
