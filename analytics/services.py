"""Writes of the analytics app: the daily rollups (``analytics.models``), rebuilt from the source tables.

``rollup_day`` replaces one day's rows in one transaction (an advisory lock per day keeps two rebuilds of the
same day from interleaving); it is idempotent, so beat can run it as often as it likes: today and yesterday every
5 minutes (``rollup_recent``), the last ``REFRESH_DAYS`` (9) nightly, because a conversation's
numbers still change after its day: a comeback within 24 h, an order within 7 days, a late CSAT answer.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from analytics import facts
from analytics.models import DailyAgent, DailyStats, DailyTopic

logger = logging.getLogger(__name__)

REFRESH_DAYS = 9
_LOCK_BASE = 0x6B656675  # "kefu": advisory lock key = base + day ordinal


@dataclass(frozen=True)
class RollupResult:
    day: dt.date
    stats_rows: int
    topic_rows: int
    agent_rows: int


@transaction.atomic
def rollup_day(*, day: dt.date, now: dt.datetime | None = None) -> RollupResult:
    """Rebuild the rollup rows of one local day."""
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_BASE + day.toordinal()])
    data = facts.day_aggregates(day, now=now)

    stats: dict[tuple[int, int], dict[str, Any]] = {}
    for source in ("conversations", "messages", "tickets"):
        for row in data[source]:
            key = (row.pop("channel_id"), row.pop("group_id"))
            stats.setdefault(key, {}).update(row)
    topics: dict[tuple[int, int, str, str], dict[str, Any]] = {}
    for source in ("conversation_topics", "message_topics", "ticket_topics"):
        for row in data[source]:
            key = (row.pop("channel_id"), row.pop("group_id"), row.pop("kind"), str(row.pop("key"))[:100])
            entry = topics.setdefault(key, {})
            for name, value in row.items():
                entry[name] = entry.get(name, 0) + value
    agents: dict[tuple[int, int, int], dict[str, Any]] = {}
    for source in ("agents", "agent_replies"):
        for row in data[source]:
            key = (row.pop("channel_id"), row.pop("group_id"), row.pop("agent_id"))
            agents.setdefault(key, {}).update(row)

    DailyStats.objects.filter(day=day).delete()
    DailyTopic.objects.filter(day=day).delete()
    DailyAgent.objects.filter(day=day).delete()
    DailyStats.objects.bulk_create(
        [
            DailyStats(day=day, channel_id=channel, group_id=group, computed_at=now, **values)
            for (channel, group), values in stats.items()
        ]
    )
    DailyTopic.objects.bulk_create(
        [
            DailyTopic(day=day, channel_id=channel, group_id=group, kind=kind, key=key, **values)
            for (channel, group, kind, key), values in topics.items()
        ],
        batch_size=1000,
    )
    DailyAgent.objects.bulk_create(
        [
            DailyAgent(day=day, channel_id=channel, group_id=group, agent_id=agent, **values)
            for (channel, group, agent), values in agents.items()
        ]
    )
    return RollupResult(day, len(stats), len(topics), len(agents))


def rollup_days(
    *, first: dt.date, last: dt.date, progress: Callable[[dt.date, RollupResult], None] | None = None
) -> list[RollupResult]:
    """Rebuild every day from ``first`` to ``last`` (inclusive), one transaction per day."""
    results = []
    now = timezone.now()
    day = first
    while day <= last:
        result = rollup_day(day=day, now=now)
        results.append(result)
        if progress is not None:
            progress(day, result)
        day += dt.timedelta(days=1)
    return results


def rollup_recent(*, days: int = 2) -> list[RollupResult]:
    """Beat: today and the ``days - 1`` days before it."""
    today = timezone.localdate()
    return rollup_days(first=today - dt.timedelta(days=max(days, 1) - 1), last=today)


def rollup_all(*, progress: Callable[[dt.date, RollupResult], None] | None = None) -> list[RollupResult]:
    """Every day with data (a backfill after installing analytics, or after importing history)."""
    span = facts.source_days()
    if span is None:
        return []
    return rollup_days(first=span[0], last=span[1], progress=progress)


def refresh_days() -> int:
    """Days rebuilt nightly: a conversation's figures still move for 7 days (an order), plus a margin."""
    return REFRESH_DAYS
