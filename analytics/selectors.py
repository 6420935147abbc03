"""Dashboard reads: SQL aggregates over the daily rollups (``analytics.models``), filtered by a range of local days,
a channel and an agent group. Every number the dashboard shows or exports comes from one of these queries;
Python only names the columns. PostgreSQL only (``percentile_cont`` over ``unnest`` of the rollups' value lists).

The tables (``TABLES``) are what the page shows and what ``/dashboard/export/<table>.csv|xlsx`` writes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from analytics.models import DailyAgent, DailyStats, DailyTopic

MAX_DAYS = 366
TOP = 10

STATS = DailyStats._meta.db_table
TOPICS = DailyTopic._meta.db_table
AGENTS = DailyAgent._meta.db_table


@dataclass(frozen=True)
class Filters:
    first: dt.date
    last: dt.date
    channel_id: int | None = None
    group_id: int | None = None

    @classmethod
    def default(cls, days: int = 30) -> Filters:
        today = timezone.localdate()
        return cls(first=today - dt.timedelta(days=days - 1), last=today)

    def where(self, alias: str = "r", *, day: str = "") -> tuple[str, dict[str, Any]]:
        """SQL condition on a rollup table and its parameters; ``day``: a column the row's day must equal instead of
        the range (a LEFT JOIN onto a series of days)."""
        parts = [f"{alias}.day = {day}" if day else f"{alias}.day BETWEEN %(first)s AND %(last)s"]
        params: dict[str, Any] = {"first": self.first, "last": self.last}
        if self.channel_id is not None:
            parts.append(f"{alias}.channel_id = %(channel)s")
            params["channel"] = self.channel_id
        if self.group_id is not None:
            parts.append(f"{alias}.group_id = %(group)s")
            params["group"] = self.group_id
        return " AND ".join(parts), params

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "channel": self.channel_id,
            "group": self.group_id,
        }


def _fetch(sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [c.name for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _one(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    rows = _fetch(sql, params)
    return rows[0] if rows else {}


# -- the numbers ----------------------------------------------------------------------------------------------


def summary(f: Filters) -> dict[str, Any]:
    where, params = f.where()
    row = _one(
        f"""
        SELECT COALESCE(sum(conversations), 0) AS conversations,
               COALESCE(sum(ended), 0) AS ended,
               COALESCE(sum(bot_solved), 0) AS bot_solved,
               COALESCE(sum(handed_off), 0) AS handed_off,
               COALESCE(sum(converted), 0) AS converted,
               COALESCE(sum(messages_in), 0) AS messages_in,
               COALESCE(sum(messages_out), 0) AS messages_out,
               COALESCE(sum(decisions), 0) AS decisions,
               COALESCE(sum(unanswered), 0) AS unanswered,
               COALESCE(sum(tickets), 0) AS tickets,
               COALESCE(sum(csat_answers), 0) AS csat_answers,
               sum(bot_solved)::float8 / NULLIF(sum(ended), 0) AS bot_solve_rate,
               sum(handed_off)::float8 / NULLIF(sum(conversations), 0) AS handoff_rate,
               sum(converted)::float8 / NULLIF(sum(conversations), 0) AS conversion_rate,
               sum(csat_sum)::float8 / NULLIF(sum(csat_answers), 0) AS csat_average,
               max(computed_at) AS computed_at
        FROM {STATS} r WHERE {where}
        """,
        params,
    )
    computed = row.get("computed_at")
    row["computed_at"] = computed.isoformat() if computed else None
    return row


def daily(f: Filters) -> list[dict[str, Any]]:
    condition, params = f.where(day="d.day")
    return _fetch(
        f"""
        SELECT d.day,
               COALESCE(sum(r.conversations), 0) AS conversations,
               COALESCE(sum(r.messages_in), 0) AS messages_in,
               COALESCE(sum(r.messages_out), 0) AS messages_out,
               COALESCE(sum(r.ended), 0) AS ended,
               COALESCE(sum(r.bot_solved), 0) AS bot_solved,
               sum(r.bot_solved)::float8 / NULLIF(sum(r.ended), 0) AS bot_solve_rate,
               COALESCE(sum(r.handed_off), 0) AS handed_off,
               COALESCE(sum(r.converted), 0) AS converted,
               COALESCE(sum(r.unanswered), 0) AS unanswered
        FROM (SELECT g::date AS day FROM generate_series(%(first)s::date, %(last)s::date, interval '1 day') g) d
        LEFT JOIN {STATS} r ON {condition}
        GROUP BY d.day ORDER BY d.day
        """,
        params,
    )


RESPONSE_METRICS = [
    ("bot_first_response", "bot_first_response_s", _("Bot first response")),
    ("bot_resolution", "bot_resolution_s", _("Bot resolution")),
    ("human_first_response", "human_first_response_s", _("Agent first response")),
    ("human_resolution", "human_resolution_s", _("Agent resolution")),
]


def response_times(f: Filters) -> list[dict[str, Any]]:
    """P50/P90 in seconds of the first response and the resolution time, bot and human."""
    where, params = f.where()
    parts = [
        f"""SELECT %(m{i})s AS metric, count(v) AS n,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS p50,
                   percentile_cont(0.9) WITHIN GROUP (ORDER BY v) AS p90
            FROM {STATS} r, unnest(r.{column}) v WHERE {where}"""
        for i, (_name, column, _label) in enumerate(RESPONSE_METRICS)
    ]
    for i, (name, _column, _label) in enumerate(RESPONSE_METRICS):
        params[f"m{i}"] = name
    rows = {row["metric"]: row for row in _fetch(" UNION ALL ".join(parts), params)}
    return [{"metric": name, "label": str(label), **rows[name]} for name, _column, label in RESPONSE_METRICS]


def latency(f: Filters) -> dict[str, Any]:
    """Bot decision latency P50/P95/P99 in milliseconds (the traces' ``elapsed_ms``)."""
    where, params = f.where()
    row = _one(
        f"""
        SELECT count(v) AS n, percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY v) AS p
        FROM {STATS} r, unnest(r.latency_ms) v WHERE {where}
        """,
        params,
    )
    p = row.get("p") or [None, None, None]
    return {"n": row.get("n", 0), "p50": p[0], "p95": p[1], "p99": p[2]}


def _topic(f: Filters, kind: str, *, order: str, extra: str = "", limit: int | None = TOP) -> list[dict[str, Any]]:
    where, params = f.where()
    params["kind"] = kind
    return _fetch(
        f"""
        SELECT r.key, sum(r.count) AS count, sum(r.conversations) AS conversations, sum(r.converted) AS converted,
               sum(r.converted)::float8 / NULLIF(sum(r.conversations), 0) AS conversion_rate
        FROM {TOPICS} r WHERE r.kind = %(kind)s AND {where}
        GROUP BY r.key {extra}
        ORDER BY {order}, r.key
        {"LIMIT %(limit)s" if limit else ""}
        """,
        {**params, "limit": limit},
    )


def top_intents(f: Filters) -> list[dict[str, Any]]:
    from knowledge.models import Intent

    rows = _topic(f, "intent", order="sum(r.count) DESC", extra="HAVING sum(r.count) > 0")
    labels = dict(Intent.objects.filter(name__in=[r["key"] for r in rows]).values_list("name", "description"))
    return [{"intent": r["key"], "label": labels.get(r["key"]) or r["key"], "decisions": r["count"]} for r in rows]


def top_faqs(f: Filters) -> list[dict[str, Any]]:
    from knowledge.models import Faq

    rows = _topic(f, "faq", order="sum(r.count) DESC", extra="HAVING sum(r.count) > 0")
    ids = [int(r["key"]) for r in rows if r["key"].isdigit()]
    questions = dict(Faq.objects.filter(pk__in=ids).values_list("pk", "question"))
    return [
        {
            "faq_id": int(r["key"]) if r["key"].isdigit() else r["key"],
            "question": questions.get(int(r["key"])) if r["key"].isdigit() else None,
            "hits": r["count"],
        }
        for r in rows
    ]


def conversion_by_intent(f: Filters) -> list[dict[str, Any]]:
    from knowledge.models import Intent

    rows = _topic(f, "intent", order="sum(r.conversations) DESC", extra="HAVING sum(r.conversations) > 0", limit=20)
    labels = dict(Intent.objects.filter(name__in=[r["key"] for r in rows]).values_list("name", "description"))
    return [
        {
            "intent": r["key"],
            "label": labels.get(r["key"]) or r["key"],
            "conversations": r["conversations"],
            "converted": r["converted"],
            "rate": r["conversion_rate"],
        }
        for r in rows
    ]


def handoff_reasons(f: Filters) -> list[dict[str, Any]]:
    from routing.models import Ticket

    rows = _topic(f, "reason", order="sum(r.count) DESC", limit=None)
    total = sum(r["count"] for r in rows) or 0
    labels = dict(Ticket.Reason.choices)
    return [
        {
            "reason": r["key"],
            "label": str(labels.get(r["key"], r["key"])),
            "tickets": r["count"],
            "share": r["count"] / total if total else None,
        }
        for r in rows
    ]


def csat(f: Filters) -> list[dict[str, Any]]:
    where, params = f.where()
    return _fetch(
        f"""
        SELECT s.score, COALESCE(sum(r.count), 0) AS answers
        FROM generate_series(1, 5) s(score)
        LEFT JOIN {TOPICS} r ON r.kind = 'csat' AND r.key = s.score::text AND {where}
        GROUP BY s.score ORDER BY s.score
        """,
        params,
    )


def agents(f: Filters) -> list[dict[str, Any]]:
    """Per agent: tickets handed off in the range (assigned to them), resolved, replies, first response and
    handling time P50 (s), CSAT; and their open tickets now (live, from the tickets table)."""
    where, params = f.where("a")
    open_where = ["t.status IN ('assigned', 'waiting_customer')", "t.assignee_id IS NOT NULL"]
    if f.channel_id is not None:
        open_where.append("c.channel_id = %(channel)s")
    if f.group_id is not None:
        open_where.append("t.group_id = %(group)s")
    return _fetch(
        f"""
        WITH s AS (
            SELECT a.agent_id, sum(a.tickets) AS tickets, sum(a.resolved) AS resolved, sum(a.replies) AS replies,
                   sum(a.csat_answers) AS csat_answers,
                   sum(a.csat_sum)::float8 / NULLIF(sum(a.csat_answers), 0) AS csat_average
            FROM {AGENTS} a WHERE {where} GROUP BY a.agent_id
        ),
        frt AS (
            SELECT a.agent_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS first_response_p50
            FROM {AGENTS} a, unnest(a.first_response_s) v WHERE {where} GROUP BY a.agent_id
        ),
        handle AS (
            SELECT a.agent_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS handle_p50
            FROM {AGENTS} a, unnest(a.handle_s) v WHERE {where} GROUP BY a.agent_id
        ),
        open AS (
            SELECT t.assignee_id AS agent_id, count(*) AS open_now
            FROM routing_ticket t JOIN bots_conversation c ON c.id = t.conversation_id
            WHERE {" AND ".join(open_where)}
            GROUP BY t.assignee_id
        ),
        ids AS (SELECT agent_id FROM s UNION SELECT agent_id FROM open)
        SELECT ids.agent_id,
               COALESCE(NULLIF(p.display_name, ''), u.username, ids.agent_id::text) AS agent,
               COALESCE(s.tickets, 0) AS tickets, COALESCE(s.resolved, 0) AS resolved,
               COALESCE(s.replies, 0) AS replies, COALESCE(open.open_now, 0) AS open_now,
               frt.first_response_p50, handle.handle_p50,
               COALESCE(s.csat_answers, 0) AS csat_answers, s.csat_average
        FROM ids
        LEFT JOIN s ON s.agent_id = ids.agent_id
        LEFT JOIN frt ON frt.agent_id = ids.agent_id
        LEFT JOIN handle ON handle.agent_id = ids.agent_id
        LEFT JOIN open ON open.agent_id = ids.agent_id
        LEFT JOIN auth_user u ON u.id = ids.agent_id
        LEFT JOIN routing_agentprofile p ON p.user_id = ids.agent_id
        ORDER BY COALESCE(s.tickets, 0) DESC, agent
        """,
        params,
    )


def segments(f: Filters) -> list[dict[str, Any]]:
    """Conversations in the range by the customer's RFM segment (and how many converted), with the number of
    people in each segment now (the whole customer base, not filtered)."""
    from routing.scoring import SEGMENTS

    where, params = f.where()
    rows = _fetch(
        f"""
        WITH c AS (
            SELECT r.key AS segment, sum(r.conversations) AS conversations, sum(r.converted) AS converted
            FROM {TOPICS} r WHERE r.kind = 'segment' AND {where} GROUP BY r.key
        ),
        p AS (SELECT segment, count(*) AS persons FROM routing_rfmscore GROUP BY segment)
        SELECT COALESCE(c.segment, p.segment) AS segment, COALESCE(c.conversations, 0) AS conversations,
               COALESCE(c.converted, 0) AS converted, COALESCE(p.persons, 0) AS persons
        FROM c FULL OUTER JOIN p ON p.segment = c.segment
        ORDER BY COALESCE(c.conversations, 0) DESC, COALESCE(p.persons, 0) DESC, 1
        """,
        params,
    )
    for row in rows:
        row["label"] = SEGMENTS.get(row["segment"]) or str(_("Not scored"))
    return rows


def unanswered(f: Filters) -> list[dict[str, Any]]:
    """The groups of the last unanswered-question clustering run (its own window, all channels; see README)."""
    from django.urls import reverse

    from knowledge.services.mining import unanswered_clusters_latest

    out = []
    for cluster in unanswered_clusters_latest(limit=TOP):
        out.append(
            {
                "cluster_id": cluster.pk,
                "label": cluster.label,
                "size": cluster.size,
                "examples": list(cluster.examples or [])[:5],
                "keywords": list(cluster.keywords or []),
                "status": cluster.status,
                "draft_faq_url": reverse("admin:knowledge_faq_change", args=[cluster.draft_faq_id])
                if cluster.draft_faq_id
                else None,
                "computed_at": cluster.created_at.isoformat(),
            }
        )
    return out


# -- the tables (page and exports) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    name: str
    title: Any
    columns: list[tuple[str, Any]] = field(default_factory=list)
    rows: Callable[[Filters], list[dict[str, Any]]] | None = None


TABLES: dict[str, Table] = {
    t.name: t
    for t in [
        Table(
            "daily",
            _("Conversations and messages per day"),
            [
                ("day", _("day")),
                ("conversations", _("conversations")),
                ("messages_in", _("customer messages")),
                ("messages_out", _("replies")),
                ("ended", _("ended")),
                ("bot_solved", _("solved by the bot")),
                ("bot_solve_rate", _("bot solve rate")),
                ("handed_off", _("handed off")),
                ("converted", _("followed by an order")),
                ("unanswered", _("unanswered")),
            ],
            daily,
        ),
        Table(
            "response_times",
            _("Response and resolution times (seconds)"),
            [("label", _("metric")), ("n", _("count")), ("p50", "P50"), ("p90", "P90")],
            response_times,
        ),
        Table(
            "latency",
            _("Bot decision latency (ms)"),
            [("n", _("decisions")), ("p50", "P50"), ("p95", "P95"), ("p99", "P99")],
            lambda f: [latency(f)],
        ),
        Table(
            "handoff_reasons",
            _("Hand-off reasons"),
            [("label", _("reason")), ("reason", _("code")), ("tickets", _("tickets")), ("share", _("share"))],
            handoff_reasons,
        ),
        Table(
            "conversion",
            _("Consultation conversion by intent"),
            [
                ("label", _("intent")),
                ("intent", _("code")),
                ("conversations", _("conversations")),
                ("converted", _("followed by an order")),
                ("rate", _("conversion rate")),
            ],
            conversion_by_intent,
        ),
        Table(
            "intents",
            _("Top intents"),
            [("label", _("intent")), ("intent", _("code")), ("decisions", _("decisions"))],
            top_intents,
        ),
        Table(
            "faqs",
            _("Top FAQ hits"),
            [("question", _("FAQ")), ("faq_id", _("id")), ("hits", _("answers"))],
            top_faqs,
        ),
        Table(
            "unanswered",
            _("Top unanswered questions"),
            [
                ("label", _("typical question")),
                ("size", _("questions")),
                ("examples", _("examples")),
                ("keywords", _("keywords")),
                ("status", _("status")),
            ],
            unanswered,
        ),
        Table("csat", _("Customer satisfaction (CSAT)"), [("score", _("score")), ("answers", _("answers"))], csat),
        Table(
            "agents",
            _("Agent workload and performance"),
            [
                ("agent", _("agent")),
                ("tickets", _("tickets")),
                ("resolved", _("resolved")),
                ("replies", _("replies")),
                ("open_now", _("open tickets now")),
                ("first_response_p50", _("first response P50 (s)")),
                ("handle_p50", _("handling time P50 (s)")),
                ("csat_answers", _("CSAT answers")),
                ("csat_average", _("CSAT average")),
            ],
            agents,
        ),
        Table(
            "segments",
            _("RFM segment mix"),
            [
                ("label", _("segment")),
                ("conversations", _("conversations")),
                ("converted", _("followed by an order")),
                ("persons", _("customers now")),
            ],
            segments,
        ),
    ]
}


def table_rows(name: str, f: Filters) -> list[dict[str, Any]]:
    table = TABLES[name]
    assert table.rows is not None
    return table.rows(f)


def dashboard(f: Filters) -> dict[str, Any]:
    """Everything the dashboard page shows, in one response."""
    return {
        "filters": f.as_dict(),
        "summary": summary(f),
        "latency": latency(f),
        **{name: table_rows(name, f) for name in TABLES if name != "latency"},
    }
