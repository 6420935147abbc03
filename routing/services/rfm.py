"""RFM: recompute every person's scores from their orders, and look a person up at routing time.

Recompute (``rfm_recompute``; nightly by Celery beat on the ``ml`` queue, on demand with
``manage.py rfm_recompute``):

1. one SQL query aggregates the counted orders (paid, shipped, completed) per person: last ``paid_at``,
   count, sum (``GROUP BY person``, every person, people without orders included);
2. ``routing.scoring.rfm_score_arrays`` scores them (quintiles, segment, combined score, tier);
3. the ``RfmScore`` rows are bulk-upserted (PostgreSQL: ``COPY`` into a temporary table, then one
   ``INSERT ... ON CONFLICT DO UPDATE``);
4. the Redis sorted set ``kefu:rfm`` (member = person id, score = combined score) is rebuilt under a
   temporary key with pipelined ``ZADD`` and swapped in with ``RENAME``, so readers never see half a set.

Lookup (``rfm_lookup``): ``ZSCORE`` + ``ZREVRANK`` in one round trip; the tier follows from the score. The
database stays the source of truth: when Redis was flushed (the key is gone) or is down, the ``RfmScore``
row answers and a recompute is requested (at most one every few minutes).
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Iterable

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from core import redis as kredis
from routing import scoring
from routing.models import Order, Person, RfmScore
from routing.services.people import person_id_for_customer

logger = logging.getLogger(__name__)

ZSET_KEY = kredis.key("rfm")
REQUEST_KEY = kredis.key("rfm", "requested")
REQUEST_DEBOUNCE_SECONDS = 300
_CHUNK = 10_000

Progress = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class RfmRun:
    people: int
    with_orders: int
    seconds: float
    timings: dict[str, float]
    redis_written: bool


@dataclasses.dataclass(frozen=True)
class RfmLookup:
    person_id: int | None
    score: float
    tier: str
    rank: int | None  # 0 = the most valuable person; None when not in the sorted set
    segment: str | None  # only when asked for (a database read) or when the database answered
    source: str  # "redis" | "db" | "none"


def tier_for_score(score: float) -> str:
    for tier, floor in scoring.TIER_BANDS:
        if score >= floor:
            return tier
    return scoring.TIERS[-1]


# --- recompute -----------------------------------------------------------------------------------------------


def _aggregate() -> tuple[list[int], list[float | None], list[int], list]:
    """(person ids, last paid_at as epoch seconds or None, counted orders, amount sums), ordered by person id:
    one ``GROUP BY`` over the orders, joined to every person (people without orders included)."""
    if connection.vendor == "postgresql":
        return _aggregate_postgres()
    counted = Q(orders__status__in=Order.COUNTED, orders__paid_at__isnull=False)
    rows = (
        Person.objects.order_by("id")
        .annotate(
            last_paid=Max("orders__paid_at", filter=counted),
            n_orders=Count("orders", filter=counted),
            total=Sum("orders__amount", filter=counted),
        )
        .values_list("id", "last_paid", "n_orders", "total")
    )
    ids, lasts, counts, totals = [], [], [], []
    for pid, last, n, total in rows.iterator(chunk_size=_CHUNK):
        ids.append(pid)
        lasts.append(last.timestamp() if last is not None else None)
        counts.append(n)
        totals.append(total)
    return ids, lasts, counts, totals


def _aggregate_postgres() -> tuple[list[int], list[float | None], list[int], list]:
    # Aggregate the orders first (a hash aggregate over one sequential scan), then join the people: much
    # faster than a nested loop per person. Amount sums come back as text, so they stay exact.
    sql = (
        "SELECT p.id, a.last_paid, COALESCE(a.n, 0), a.total "
        f"FROM {Person._meta.db_table} p LEFT JOIN ("
        "  SELECT person_id, EXTRACT(EPOCH FROM MAX(paid_at))::float8 AS last_paid, COUNT(*) AS n,"
        "         SUM(amount)::text AS total"
        f"  FROM {Order._meta.db_table} WHERE paid_at IS NOT NULL AND status = ANY(%s) GROUP BY person_id"
        ") a ON a.person_id = p.id ORDER BY p.id"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute(sql, [list(Order.COUNTED)])
        rows = cursor.fetchall()
    if not rows:
        return [], [], [], []
    ids, lasts, counts, totals = (list(column) for column in zip(*rows, strict=True))
    return ids, lasts, counts, totals


def _upsert_postgres(rows: list[tuple], computed_at) -> None:
    columns = "person_id, recency_days, frequency, monetary, r, f, m, segment, tier, score"
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in [*columns.split(", ")[1:], "computed_at"])
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS rfm_in")  # a run earlier in the same (outer) transaction
        cursor.execute(
            "CREATE TEMP TABLE rfm_in (person_id bigint, recency_days double precision, frequency integer, "
            "monetary numeric(14, 2), r smallint, f smallint, m smallint, segment varchar(32), tier varchar(16), "
            "score double precision) ON COMMIT DROP"
        )
        with cursor.cursor.copy(f"COPY rfm_in ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO {RfmScore._meta.db_table} ({columns}, computed_at) "
            f"SELECT {columns}, %s FROM rfm_in ORDER BY person_id "
            f"ON CONFLICT (person_id) DO UPDATE SET {updates}",
            [computed_at],
        )
        cursor.execute("DROP TABLE rfm_in")


def _upsert_orm(rows: list[tuple], computed_at) -> None:
    fields = ["recency_days", "frequency", "monetary", "r", "f", "m", "segment", "tier", "score", "computed_at"]
    objs = [
        RfmScore(
            person_id=pid,
            recency_days=rec,
            frequency=n,
            monetary=mon,
            r=r,
            f=f,
            m=m,
            segment=seg,
            tier=tier,
            score=score,
            computed_at=computed_at,
        )
        for pid, rec, n, mon, r, f, m, seg, tier, score in rows
    ]
    RfmScore.objects.bulk_create(
        objs, batch_size=2000, update_conflicts=True, unique_fields=["person"], update_fields=fields
    )


def _zset_replace(mapping: dict[str, float]) -> None:
    r = kredis.client()
    if not mapping:
        r.delete(ZSET_KEY)
        return
    tmp = kredis.key("rfm", "tmp", uuid.uuid4().hex)
    items = list(mapping.items())
    try:
        pipe = r.pipeline(transaction=False)
        for start in range(0, len(items), _CHUNK):
            pipe.zadd(tmp, dict(items[start : start + _CHUNK]))
        pipe.expire(tmp, 3600)  # a crash before the rename leaves no garbage behind
        pipe.execute()
        pipe = r.pipeline(transaction=True)
        pipe.rename(tmp, ZSET_KEY)
        pipe.persist(ZSET_KEY)
        pipe.set(kredis.key("rfm", "computed_at"), timezone.now().isoformat())
        pipe.execute()
    except Exception:
        r.delete(tmp)
        raise


def rfm_recompute(*, progress: Progress | None = None, now=None) -> RfmRun:
    """Recompute every person's RFM scores; write the database rows, then the sorted set. See the module doc."""
    say = progress or (lambda line: None)
    now = now or timezone.now()
    started = time.perf_counter()
    timings: dict[str, float] = {}

    say("rfm: aggregating orders per person (one GROUP BY query)…")
    t = time.perf_counter()
    ids, lasts, counts, totals = _aggregate()
    timings["aggregate"] = time.perf_counter() - t
    n = len(ids)
    freq = np.asarray(counts, dtype=np.float64)
    with_orders = int((freq > 0).sum())
    say(f"rfm: {n} people, {with_orders} with orders, aggregated in {timings['aggregate']:.2f} s")

    t = time.perf_counter()
    now_ts = now.timestamp()
    recency = np.array([(now_ts - d) / 86400.0 if d is not None else np.nan for d in lasts], dtype=np.float64)
    recency = np.floor(np.clip(recency, 0.0, None))
    monetary = np.array([float(v) if v is not None else 0.0 for v in totals])
    scores = scoring.rfm_score_arrays(np.asarray(ids, dtype=np.int64), recency, freq, monetary)
    rec_list = [None if np.isnan(v) else float(v) for v in recency.tolist()]
    rows = list(
        zip(
            ids,
            rec_list,
            counts,
            [v if v is not None else "0" for v in totals],
            scores.r.tolist(),
            scores.f.tolist(),
            scores.m.tolist(),
            scores.segment.tolist(),
            scores.tier.tolist(),
            scores.score.tolist(),
            strict=True,
        )
    )
    timings["score"] = time.perf_counter() - t
    say(f"rfm: scored {n} people in {timings['score']:.2f} s")

    t = time.perf_counter()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            _upsert_postgres(rows, now)
        else:
            _upsert_orm(rows, now)
    timings["save"] = time.perf_counter() - t
    say(f"rfm: saved {n} RfmScore rows in {timings['save']:.2f} s")

    redis_written = False
    if not settings.KEFU_EMBEDDED:
        t = time.perf_counter()
        try:
            _zset_replace(scores.zset_mapping())
            redis_written = True
        except Exception:
            logger.exception("rfm: could not write the sorted set; the database rows stand")
        timings["redis"] = time.perf_counter() - t
        if redis_written:
            say(f"rfm: sorted set {ZSET_KEY} replaced ({n} members) in {timings['redis']:.2f} s")
    seconds = time.perf_counter() - started
    say(f"rfm: done in {seconds:.2f} s")
    logger.info("rfm recomputed", extra={"people": n, "seconds": round(seconds, 3), **timings})
    return RfmRun(people=n, with_orders=with_orders, seconds=seconds, timings=timings, redis_written=redis_written)


def rfm_recompute_request() -> bool:
    """Queue a recompute on the ``ml`` queue after commit, at most once per debounce window. True if queued."""
    if settings.KEFU_EMBEDDED:
        return False
    try:
        if not kredis.client().set(REQUEST_KEY, "1", nx=True, ex=REQUEST_DEBOUNCE_SECONDS):
            return False
    except Exception:
        logger.warning("rfm: could not reach Redis to request a recompute")
        return False

    def queue() -> None:
        from routing.tasks import rfm_recompute as task

        try:
            task.delay()
        except Exception:
            logger.exception("rfm: could not queue the recompute")
            kredis.client().delete(REQUEST_KEY)

    transaction.on_commit(queue)
    return True


def zset_remove(person_ids: Iterable[int]) -> None:
    ids = [str(p) for p in person_ids]
    if not ids or settings.KEFU_EMBEDDED:
        return
    try:
        kredis.client().zrem(ZSET_KEY, *ids)
    except Exception:
        logger.warning("rfm: could not remove merged people from the sorted set")


# --- lookups -------------------------------------------------------------------------------------------------


def _from_db(person_id: int) -> RfmLookup:
    row = RfmScore.objects.filter(person_id=person_id).values_list("score", "tier", "segment").first()
    if row is None:
        return RfmLookup(person_id, 0.0, scoring.TIERS[-1], None, None, "none")
    return RfmLookup(person_id, row[0], row[1], None, row[2], "db")


def rfm_lookup(*, person_id: int | None, with_segment: bool = False) -> RfmLookup:
    """A person's combined score, tier and rank. Constant time from Redis; the database answers when the
    sorted set is gone (and a recompute is requested) or Redis is unreachable. People never scored (and a
    ``None`` person) are tier ``low`` with score 0, like customers without orders."""
    if person_id is None:
        return RfmLookup(None, 0.0, scoring.TIERS[-1], None, None, "none")
    if settings.KEFU_EMBEDDED:
        return _from_db(person_id)
    try:
        pipe = kredis.client().pipeline(transaction=False)
        pipe.zscore(ZSET_KEY, person_id)
        pipe.zrevrank(ZSET_KEY, person_id)
        pipe.exists(ZSET_KEY)
        score, rank, exists = pipe.execute()
    except Exception:
        logger.warning("rfm: Redis unreachable, reading the database")
        return _from_db(person_id)
    if score is None:
        if not exists:
            logger.info("rfm: sorted set missing; reading the database and requesting a recompute")
            rfm_recompute_request()
        return _from_db(person_id)
    segment = None
    if with_segment:
        segment = RfmScore.objects.filter(person_id=person_id).values_list("segment", flat=True).first()
    return RfmLookup(person_id, float(score), tier_for_score(float(score)), int(rank), segment, "redis")


def customer_rfm(*, customer_id: int, with_segment: bool = False) -> RfmLookup:
    return rfm_lookup(person_id=person_id_for_customer(customer_id), with_segment=with_segment)
