"""Evaluation helpers: JSONL loading, ranking metrics and latency percentiles."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class DataFileError(ValueError):
    """A data file is missing, unreadable, not JSONL, or lacks required keys."""


def load_jsonl(path: str | Path, required: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Read a JSONL file of objects. Blank lines are skipped.

    Raises :class:`DataFileError` naming the file and line for anything malformed: missing
    file, invalid JSON, a non-object line, or a missing/blank required key.
    """
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataFileError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFileError(f"{path}: cannot read file ({exc})") from None
    rows: list[dict[str, Any]] = []
    for lineno, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFileError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise DataFileError(f"{path}:{lineno}: expected a JSON object")
        for key in required:
            value = obj.get(key)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise DataFileError(f"{path}:{lineno}: missing or empty key {key!r}")
        rows.append(obj)
    return rows


def reciprocal_rank(ranked: Sequence[Hashable], gold: Hashable) -> float:
    """1/rank of ``gold`` in ``ranked`` (1-based), 0.0 when absent."""
    for i, item in enumerate(ranked, 1):
        if item == gold:
            return 1.0 / i
    return 0.0


def hit_at_k(ranked_lists: Sequence[Sequence[Hashable]], golds: Sequence[Hashable], k: int) -> float:
    """Share of queries whose gold item is among the first ``k`` ranked items."""
    _check_lengths(ranked_lists, golds)
    if not golds:
        return 0.0
    return sum(g in list(r)[:k] for r, g in zip(ranked_lists, golds, strict=True)) / len(golds)


def mean_reciprocal_rank(ranked_lists: Sequence[Sequence[Hashable]], golds: Sequence[Hashable]) -> float:
    """Mean of :func:`reciprocal_rank` over queries (0 for a gold item not returned)."""
    _check_lengths(ranked_lists, golds)
    if not golds:
        return 0.0
    return sum(reciprocal_rank(r, g) for r, g in zip(ranked_lists, golds, strict=True)) / len(golds)


def percentile(samples: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in 0..100) of ``samples``; 0.0 when empty."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def latency_summary(samples_ms: Sequence[float], percentiles: Iterable[int] = (50, 90, 99)) -> dict[str, float]:
    """``{"p50_ms": .., "p90_ms": .., "p99_ms": ..}`` rounded to 0.001 ms."""
    return {f"p{q}_ms": round(percentile(samples_ms, q), 3) for q in percentiles}


def timed_map(fn: Callable[[T], R], items: Iterable[T]) -> tuple[list[R], list[float]]:
    """Apply ``fn`` to each item one at a time; return results and per-call latency in ms."""
    results: list[R] = []
    latencies: list[float] = []
    for item in items:
        start = time.perf_counter()
        results.append(fn(item))
        latencies.append((time.perf_counter() - start) * 1000.0)
    return results, latencies


def _check_lengths(a: Sequence[Any], b: Sequence[Any]) -> None:
    if len(a) != len(b):
        raise ValueError(f"length mismatch: {len(a)} ranked lists for {len(b)} gold items")
