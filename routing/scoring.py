"""RFM scoring of customers: pure numpy, no Django.

Input is one row of aggregates per customer (recency in days since the last order, order count,
total amount); output is, per customer, three scores 1-5, a segment, a combined score for the
``kefu:rfm`` Redis sorted set and a routing tier.

Rules (the numbers below are the whole contract; tests pin them):

* **Population.** Only customers with at least one order (``frequency > 0``) are ranked. Customers
  with no orders get ``r = f = m = 1`` (segment ``general_winback``, score 0, tier ``low``); their
  recency and monetary values are ignored and may be NaN.
* **Quintile scores** use mid-rank percentiles, so equal values always get equal scores and small
  populations behave: for a value ``v`` among ``n`` ranked customers,
  ``p = (count(< v) + count(== v) / 2) / n`` and ``score = 1 + floor(5 * p)``, computed in integers.
  Five distinct values score 1..5; one customer, or a population where everyone is equal, scores 3
  (the middle band); ten distinct values score 1,1,2,2,...,5,5. For recency fewer days is better, so
  the percentile is taken over ``-days``.
* **High / low** for the segments is a fixed rule: a score is *high* when it is ``>= 3``
  (``HIGH_SCORE``), i.e. in the middle quintile or above, where the median customer sits. A fixed
  rule (rather than "above the population mean") keeps a customer's segment independent of how many
  customers without orders exist and stable between recomputes.
* **Segments** (R, F, M high/low) -> the eight classic labels, see ``SEGMENTS``.
* **Combined score** (0-100, higher = more valuable):
  ``score = 2.5 * (3 * (r - 1) + 3 * (f - 1) + 4 * (m - 1))``, i.e. weights R 30 %, F 30 %, M 40 % of
  the distance above the floor. (1,1,1) -> 0, (5,5,5) -> 100; raising any of r, f, m strictly
  raises the score, and one step of M is worth more than one step of R or F. Values are exact
  multiples of 2.5, so they round-trip through Redis scores unchanged.
* **Tiers** are bands of the combined score (``TIER_BANDS``): ``vip`` >= 80, ``high`` >= 60,
  ``normal`` >= 30, ``low`` below (including every customer without orders). ``vip`` needs about
  two fives and a four: (5,5,4) = 90, (4,5,5) = 92.5, (4,4,4) = 75 is ``high``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = [
    "HIGH_SCORE",
    "SCORE_WEIGHTS",
    "SEGMENTS",
    "TIER_BANDS",
    "TIERS",
    "RfmResult",
    "RfmScores",
    "combined_score",
    "quintile_scores",
    "rfm_score",
    "rfm_score_arrays",
]

HIGH_SCORE = 3
"""A score at or above this is "high" for segmentation."""

SCORE_WEIGHTS = (3, 3, 4)
"""Integer weights of (r - 1, f - 1, m - 1) in the combined score; their sum times 4 maps to 100."""

SEGMENTS: dict[str, str] = {
    "important_value": "重要价值客户",  # R high, F high, M high
    "important_develop": "重要发展客户",  # R high, F low,  M high
    "important_keep": "重要保持客户",  # R low,  F high, M high
    "important_winback": "重要挽留客户",  # R low,  F low,  M high
    "general_value": "一般价值客户",  # R high, F high, M low
    "general_develop": "一般发展客户",  # R high, F low,  M low
    "general_keep": "一般保持客户",  # R low,  F high, M low
    "general_winback": "一般挽留客户",  # R low,  F low,  M low
}

# Indexed by (r_high << 2) | (f_high << 1) | m_high.
_SEGMENT_BY_BITS = np.array(
    [
        "general_winback",  # 000
        "important_winback",  # 001
        "general_keep",  # 010
        "important_keep",  # 011
        "general_develop",  # 100
        "important_develop",  # 101
        "general_value",  # 110
        "important_value",  # 111
    ],
    dtype=object,
)
_LABEL_BY_BITS = np.array([SEGMENTS[code] for code in _SEGMENT_BY_BITS], dtype=object)

TIERS = ("vip", "high", "normal", "low")
TIER_BANDS: tuple[tuple[str, float], ...] = (("vip", 80.0), ("high", 60.0), ("normal", 30.0), ("low", 0.0))
"""(tier, lowest combined score in the tier), best first."""

_TIER_EDGES = np.array([30.0, 60.0, 80.0])
_TIER_BY_INDEX = np.array(["low", "normal", "high", "vip"], dtype=object)


class RfmResult(NamedTuple):
    """One customer's scores (a named tuple: cheap to build by the hundred thousand)."""

    customer_id: Any
    r: int
    f: int
    m: int
    segment: str
    label: str
    score: float
    tier: str


@dataclass(frozen=True, slots=True)
class RfmScores:
    """Struct-of-arrays result, aligned with the input order."""

    customer_id: npt.NDArray[Any]
    r: npt.NDArray[np.int8]
    f: npt.NDArray[np.int8]
    m: npt.NDArray[np.int8]
    segment: npt.NDArray[np.object_]
    label: npt.NDArray[np.object_]
    score: npt.NDArray[np.float64]
    tier: npt.NDArray[np.object_]

    def __len__(self) -> int:
        return int(self.r.shape[0])

    def results(self) -> list[RfmResult]:
        columns = (self.customer_id, self.r, self.f, self.m, self.segment, self.label, self.score, self.tier)
        return list(map(RfmResult._make, zip(*(c.tolist() for c in columns), strict=True)))

    def zset_mapping(self) -> dict[str, float]:
        """``{str(customer_id): score}``, ready for ``ZADD kefu:rfm``."""
        return dict(zip(map(str, self.customer_id.tolist()), self.score.tolist(), strict=True))


def quintile_scores(values: Sequence[float] | npt.ArrayLike, *, higher_is_better: bool = True) -> npt.NDArray[np.int8]:
    """Scores 1-5 by mid-rank percentile (see the module docstring). Equal values get equal scores.

    ``values`` must be finite; an empty input gives an empty array.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError("values must be one-dimensional")
    n = v.shape[0]
    if n == 0:
        return np.empty(0, dtype=np.int8)
    if not np.all(np.isfinite(v)):
        raise ValueError("values must be finite")
    if not higher_is_better:
        v = -v
    uniq, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
    less = np.concatenate(([0], np.cumsum(counts)[:-1]))
    # 1 + floor(5 * (less + equal / 2) / n) in exact integer arithmetic.
    per_value = 1 + (5 * (2 * less + counts)) // (2 * n)
    return np.clip(per_value, 1, 5).astype(np.int8)[inverse.reshape(-1)]


def combined_score(r: npt.ArrayLike, f: npt.ArrayLike, m: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``2.5 * (3 * (r - 1) + 3 * (f - 1) + 4 * (m - 1))``: 0 for (1,1,1), 100 for (5,5,5)."""
    wr, wf, wm = SCORE_WEIGHTS
    raw = (
        wr * (np.asarray(r, dtype=np.int64) - 1)
        + wf * (np.asarray(f, dtype=np.int64) - 1)
        + wm * (np.asarray(m, dtype=np.int64) - 1)
    )
    return raw.astype(np.float64) * (100.0 / (4 * sum(SCORE_WEIGHTS)))


def rfm_score_arrays(
    customer_ids: Sequence[Any] | npt.ArrayLike,
    recency_days: Sequence[float] | npt.ArrayLike,
    frequency: Sequence[float] | npt.ArrayLike,
    monetary: Sequence[float] | npt.ArrayLike,
) -> RfmScores:
    """Score every customer; vectorised. Rows with ``frequency <= 0`` (or NaN) are customers without orders.

    Raises ``ValueError`` when the inputs differ in length or are not one-dimensional, or when a
    customer with orders has a non-finite recency or monetary value.
    """
    ids = customer_ids if isinstance(customer_ids, np.ndarray) else np.asarray(customer_ids, dtype=object)
    rec = np.asarray(recency_days, dtype=np.float64)
    freq = np.asarray(frequency, dtype=np.float64)
    mon = np.asarray(monetary, dtype=np.float64)
    n = ids.shape[0] if ids.ndim else -1
    for name, arr in (("customer_ids", ids), ("recency_days", rec), ("frequency", freq), ("monetary", mon)):
        if arr.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional")
        if arr.shape[0] != n:
            raise ValueError(f"{name} has {arr.shape[0]} rows, customer_ids has {n}")

    active = freq > 0  # NaN compares False: no orders
    if not (np.all(np.isfinite(rec[active])) and np.all(np.isfinite(mon[active]))):
        raise ValueError("customers with orders need finite recency_days and monetary values")

    r = np.ones(n, dtype=np.int8)
    f = np.ones(n, dtype=np.int8)
    m = np.ones(n, dtype=np.int8)
    if active.any():
        r[active] = quintile_scores(rec[active], higher_is_better=False)
        f[active] = quintile_scores(freq[active])
        m[active] = quintile_scores(mon[active])

    bits = ((r >= HIGH_SCORE).astype(np.int8) << 2) | ((f >= HIGH_SCORE).astype(np.int8) << 1) | (m >= HIGH_SCORE)
    score = combined_score(r, f, m)
    tier = _TIER_BY_INDEX[np.searchsorted(_TIER_EDGES, score, side="right")]
    return RfmScores(
        customer_id=ids,
        r=r,
        f=f,
        m=m,
        segment=_SEGMENT_BY_BITS[bits],
        label=_LABEL_BY_BITS[bits],
        score=score,
        tier=tier,
    )


def rfm_score(
    customer_ids: Sequence[Any] | npt.ArrayLike,
    recency_days: Sequence[float] | npt.ArrayLike,
    frequency: Sequence[float] | npt.ArrayLike,
    monetary: Sequence[float] | npt.ArrayLike,
) -> list[RfmResult]:
    """One ``RfmResult`` per customer, in input order. See ``rfm_score_arrays`` for the vectorised form."""
    return rfm_score_arrays(customer_ids, recency_days, frequency, monetary).results()
