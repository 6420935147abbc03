"""Fast single-message transform for fitted scikit-learn ``TfidfVectorizer`` objects.

``TfidfVectorizer.transform`` validates its input and output on every call (array checks, dataframe
detection), which costs ~1-2 ms for one short message: more than the actual work. :func:`transform` gives
the same matrix (same analyzer, vocabulary, sublinear tf, idf, L2 norm) from plain Python and one sparse
constructor. Anything it does not reproduce (binary tf, other norms, no idf) goes to the vectorizer itself.

Pure module: no Django.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import sparse

_prepared: weakref.WeakKeyDictionary[Any, tuple[Callable[[str], list[str]], dict[str, int], np.ndarray] | None]
_prepared = weakref.WeakKeyDictionary()


def _prepare(vectorizer: Any) -> tuple[Callable[[str], list[str]], dict[str, int], np.ndarray] | None:
    try:
        return _prepared[vectorizer]
    except KeyError:
        pass
    plan = None
    supported = (
        getattr(vectorizer, "norm", None) == "l2"
        and getattr(vectorizer, "use_idf", False)
        and not getattr(vectorizer, "binary", True)
        and hasattr(vectorizer, "vocabulary_")
        and hasattr(vectorizer, "idf_")
    )
    if supported:
        plan = (vectorizer.build_analyzer(), vectorizer.vocabulary_, np.asarray(vectorizer.idf_, dtype=np.float64))
    _prepared[vectorizer] = plan
    return plan


def transform(vectorizer: Any, docs: Sequence[str]) -> sparse.csr_matrix:
    """Same result as ``vectorizer.transform(docs)`` (CSR, the vectorizer's dtype), without the overhead."""
    plan = _prepare(vectorizer)
    if plan is None:
        return vectorizer.transform(docs)
    analyze, vocabulary, idf = plan
    sublinear = bool(getattr(vectorizer, "sublinear_tf", False))
    dtype = getattr(vectorizer, "dtype", np.float64)
    indptr = [0]
    indices: list[int] = []
    values: list[float] = []
    for doc in docs:
        counts: dict[int, int] = {}
        for token in analyze(doc):
            j = vocabulary.get(token)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        if counts:
            cols = np.fromiter(sorted(counts), dtype=np.int64, count=len(counts))
            tf = np.fromiter((counts[c] for c in cols), dtype=np.float64, count=len(cols))
            if sublinear:
                tf = np.log(tf) + 1.0
            weights = tf * idf[cols]
            norm = np.sqrt(np.dot(weights, weights))
            if norm > 0:
                weights /= norm
            indices.extend(cols.tolist())
            values.extend(weights.tolist())
        indptr.append(len(indices))
    return sparse.csr_matrix(
        (np.asarray(values, dtype=dtype), np.asarray(indices, dtype=np.int32), np.asarray(indptr, dtype=np.int32)),
        shape=(len(docs), len(idf)),
    )
