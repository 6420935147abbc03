"""Time RFM scoring of synthetic customers: python bench/bench_rfm_scoring.py [--customers 100000] [--repeat 5]."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path


def synthetic_customers(n: int, seed: int = 0):
    """Shop-like aggregates: ~35 % without orders, geometric order counts, long-tailed amounts."""
    import numpy as np

    rng = np.random.default_rng(seed)
    frequency = rng.geometric(0.4, size=n) - 1  # 0 = never ordered
    recency = np.where(frequency > 0, rng.exponential(75, size=n).round(), np.nan)
    monetary = np.where(frequency > 0, (frequency * rng.lognormal(4.6, 0.9, size=n)).round(2), 0.0)
    return np.arange(1, n + 1), recency, frequency, monetary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from routing.scoring import TIERS, rfm_score_arrays

    ids, recency, frequency, monetary = synthetic_customers(args.customers)
    arrays, lists = [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        scores = rfm_score_arrays(ids, recency, frequency, monetary)
        arrays.append(time.perf_counter() - start)
        start = time.perf_counter()
        results = scores.results()
        lists.append(time.perf_counter() - start)
    assert len(results) == args.customers

    print(f"customers: {args.customers:,} ({int((frequency > 0).sum()):,} with orders), runs: {args.repeat}")
    print(
        f"rfm_score_arrays (numpy):      median {statistics.median(arrays) * 1000:7.1f} ms, best {min(arrays) * 1000:.1f} ms"
    )
    print(f"  + .results() list[RfmResult]: median {statistics.median(lists) * 1000:7.1f} ms")
    counts = {tier: int((scores.tier == tier).sum()) for tier in TIERS}
    print("tiers: " + ", ".join(f"{tier} {count / args.customers:.1%}" for tier, count in counts.items()))
    segments = {s: int((scores.segment == s).sum()) for s in sorted(set(scores.segment.tolist()))}
    print("segments: " + ", ".join(f"{s} {c / args.customers:.1%}" for s, c in segments.items()))


if __name__ == "__main__":
    main()
