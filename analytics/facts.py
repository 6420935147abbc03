"""SQL over the source tables (messages, conversations, tickets, orders, RFM scores): the aggregates one day's
rollup rows are made of, and the inputs of knowledge mining. Reads only; PostgreSQL only.

Definitions (README, "Analytics and knowledge mining"):

- a **customer conversation** has at least one customer message that is not a platform event;
- a **bot decision** is a customer message whose trace kind is answer, clarify, form_step, handoff or fallback
  (``human``: the customer wrote while an agent had the conversation; ``ignore``: an event);
- the **topics** of a decision are the ids in its trace: ``faq:<faq_id>``, ``intent:<intent name>``,
  ``rule:<keyword rule id>``, ``product:<product_id>`` (a product question);
- a conversation has **ended** when it is resolved or has had no message for ``KEFU_CONVERSATION_IDLE_MINUTES``;
- it was **handed off** when it has a ticket or a ``handoff`` decision;
- it **came back** when the same customer, in a later conversation, sent a message within 24 hours after this
  conversation's last message whose decision has one of this conversation's topics;
- it was **solved by the bot** when it ended, was not handed off, the bot's last decision in it was an answer, and it
  did not come back;
- it **converted** when the customer's person (``routing.CustomerLink``) has a paid, shipped or completed order
  paid within 7 days after the conversation started (``paid_at`` in [start, start + 7 days)).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db import connection, transaction

DECISION_KINDS = ("answer", "clarify", "form_step", "handoff", "fallback")
ORDER_COUNTED = ("paid", "shipped", "completed")
COMEBACK_WINDOW = dt.timedelta(hours=24)
CONVERSION_WINDOW = dt.timedelta(days=7)

_KINDS_SQL = "('answer', 'clarify', 'form_step', 'handoff', 'fallback')"

# One SQL expression per topic kind of a decision trace ``{m}.trace``; NULL when the trace has none.
_TOPICS_SQL = """
    ('faq:' || ({m}.trace->>'faq_id')),
    ('intent:' || ({m}.trace->>'intent')),
    ('rule:' || ({m}.trace->>'rule_id')),
    ('product:' || ({m}.trace->>'product_id'))
"""

# Per conversation started in [start, end): the facts every conversation number is counted from. Stored as a
# temporary table for the length of the rollup's transaction.
_FACTS_SQL = f"""
CREATE TEMP TABLE analytics_conv_facts ON COMMIT DROP AS
WITH conv AS (
    SELECT c.id, c.channel_id, c.customer_id, c.created_at, c.status, c.last_message_at,
           COALESCE((SELECT t.group_id FROM routing_ticket t WHERE t.conversation_id = c.id
                     ORDER BY t.id LIMIT 1), 0) AS group_id,
           EXISTS (SELECT 1 FROM routing_ticket t WHERE t.conversation_id = c.id) AS has_ticket
    FROM bots_conversation c
    WHERE c.created_at >= %(start)s AND c.created_at < %(end)s
),
msg AS (
    SELECT m.conversation_id AS id,
           count(*) FILTER (WHERE m.direction = 'in' AND m.sender = 'customer' AND m.type <> 'event') AS n_customer,
           min(m.created_at) FILTER (WHERE m.direction = 'in' AND m.sender = 'customer' AND m.type <> 'event')
               AS first_in,
           min(m.created_at) FILTER (WHERE m.direction = 'out' AND m.sender = 'bot') AS first_bot,
           max(m.created_at) FILTER (WHERE m.direction = 'out' AND m.sender = 'bot') AS last_bot,
           max(m.created_at) AS last_at,
           bool_or(m.direction = 'in' AND m.trace->>'kind' = 'handoff') AS bot_handoff,
           (array_agg(m.trace->>'kind' ORDER BY m.created_at DESC, m.id DESC)
               FILTER (WHERE m.direction = 'in' AND m.trace->>'kind' IN {_KINDS_SQL}))[1] AS last_kind
    FROM bots_message m JOIN conv ON conv.id = m.conversation_id
    GROUP BY m.conversation_id
),
person AS (
    SELECT conv.id, l.person_id FROM conv JOIN routing_customerlink l ON l.customer_id = conv.customer_id
)
SELECT conv.id, conv.channel_id, conv.group_id, conv.customer_id, conv.created_at,
       msg.first_in, msg.first_bot, msg.last_bot, msg.last_at, msg.last_kind,
       (conv.has_ticket OR COALESCE(msg.bot_handoff, false)) AS handed_off,
       (conv.status = 'resolved' OR COALESCE(conv.last_message_at, msg.last_at) < %(idle_before)s) AS ended,
       EXISTS (
           SELECT 1 FROM routing_order o
           WHERE o.person_id = person.person_id AND o.status IN ('paid', 'shipped', 'completed')
             AND o.paid_at >= conv.created_at AND o.paid_at < conv.created_at + %(conversion)s
       ) AS converted,
       COALESCE(r.segment, '') AS segment,
       false AS came_back
FROM conv
JOIN msg ON msg.id = conv.id AND msg.n_customer > 0
LEFT JOIN person ON person.id = conv.id
LEFT JOIN routing_rfmscore r ON r.person_id = person.person_id
"""

_TOPICS_TABLE_SQL = f"""
CREATE TEMP TABLE analytics_conv_topics ON COMMIT DROP AS
SELECT DISTINCT f.id, t.topic
FROM analytics_conv_facts f
JOIN bots_message m ON m.conversation_id = f.id
CROSS JOIN LATERAL (VALUES {_TOPICS_SQL.format(m="m")}) AS t(topic)
WHERE m.direction = 'in' AND m.trace->>'kind' IN {_KINDS_SQL} AND t.topic IS NOT NULL
"""

_CAME_BACK_SQL = f"""
UPDATE analytics_conv_facts f SET came_back = true
WHERE EXISTS (
    SELECT 1
    FROM bots_conversation c2
    JOIN bots_message m2 ON m2.conversation_id = c2.id
    CROSS JOIN LATERAL (VALUES {_TOPICS_SQL.format(m="m2")}) AS t2(topic)
    WHERE c2.customer_id = f.customer_id AND c2.id <> f.id AND c2.created_at >= f.created_at
      AND c2.created_at <= f.last_at + %(comeback)s
      AND m2.direction = 'in' AND m2.created_at > f.last_at AND m2.created_at <= f.last_at + %(comeback)s
      AND t2.topic IN (SELECT topic FROM analytics_conv_topics ct WHERE ct.id = f.id)
)
"""

_SOLVED = "(f.ended AND NOT f.handed_off AND f.last_kind = 'answer' AND NOT f.came_back)"

_CONVERSATIONS_SQL = f"""
SELECT f.channel_id, f.group_id,
       count(*) AS conversations,
       count(*) FILTER (WHERE f.ended) AS ended,
       count(*) FILTER (WHERE {_SOLVED}) AS bot_solved,
       count(*) FILTER (WHERE f.handed_off) AS handed_off,
       count(*) FILTER (WHERE f.converted) AS converted,
       COALESCE(array_agg(EXTRACT(EPOCH FROM f.first_bot - f.first_in)::float8)
                FILTER (WHERE f.first_bot >= f.first_in), '{{}}') AS bot_first_response_s,
       COALESCE(array_agg(EXTRACT(EPOCH FROM f.last_bot - f.first_in)::float8)
                FILTER (WHERE {_SOLVED} AND f.last_bot >= f.first_in), '{{}}') AS bot_resolution_s
FROM analytics_conv_facts f
GROUP BY f.channel_id, f.group_id
"""

_CONVERSATION_TOPICS_SQL = """
SELECT f.channel_id, f.group_id, 'intent' AS kind, substr(ct.topic, 8) AS key,
       count(*) AS conversations, count(*) FILTER (WHERE f.converted) AS converted
FROM analytics_conv_facts f JOIN analytics_conv_topics ct ON ct.id = f.id AND ct.topic LIKE 'intent:%%'
GROUP BY 1, 2, 3, 4
UNION ALL
SELECT f.channel_id, f.group_id, 'segment', f.segment, count(*), count(*) FILTER (WHERE f.converted)
FROM analytics_conv_facts f
GROUP BY 1, 2, 3, 4
"""

# The group of a message or ticket row: the conversation's first ticket's group (0: never handed off).
_GROUP_OF = """
LEFT JOIN LATERAL (
    SELECT t.group_id FROM routing_ticket t WHERE t.conversation_id = {m}.conversation_id ORDER BY t.id LIMIT 1
) g ON true
"""

_MESSAGES_SQL = f"""
SELECT m.channel_id, COALESCE(g.group_id, 0) AS group_id,
       count(*) FILTER (WHERE m.direction = 'in' AND m.type <> 'event') AS messages_in,
       count(*) FILTER (WHERE m.direction = 'out') AS messages_out,
       count(*) FILTER (WHERE m.direction = 'out' AND m.sender = 'bot') AS bot_replies,
       count(*) FILTER (WHERE m.direction = 'out' AND m.sender = 'agent') AS agent_replies,
       count(*) FILTER (WHERE d.kind IS NOT NULL) AS decisions,
       count(*) FILTER (WHERE d.kind = 'fallback') AS fallbacks,
       count(*) FILTER (WHERE d.kind IN ('fallback', 'handoff')) AS unanswered,
       COALESCE(array_agg((m.trace->>'elapsed_ms')::float8)
                FILTER (WHERE d.kind IS NOT NULL AND jsonb_typeof(m.trace->'elapsed_ms') = 'number'), '{{}}')
           AS latency_ms
FROM bots_message m
CROSS JOIN LATERAL (
    SELECT CASE WHEN m.direction = 'in' AND m.trace->>'kind' IN {_KINDS_SQL} THEN m.trace->>'kind' END AS kind
) d
{_GROUP_OF.format(m="m")}
WHERE m.created_at >= %(start)s AND m.created_at < %(end)s
GROUP BY 1, 2
"""

_MESSAGE_TOPICS_SQL = f"""
SELECT m.channel_id, COALESCE(g.group_id, 0) AS group_id, t.kind, t.key, count(*) AS count
FROM bots_message m
CROSS JOIN LATERAL (VALUES ('intent', m.trace->>'intent'), ('faq', m.trace->>'faq_id')) AS t(kind, key)
{_GROUP_OF.format(m="m")}
WHERE m.created_at >= %(start)s AND m.created_at < %(end)s
  AND m.direction = 'in' AND m.trace->>'kind' IN {_KINDS_SQL} AND t.key IS NOT NULL
GROUP BY 1, 2, 3, 4
"""

_TICKETS_SQL = """
SELECT c.channel_id, COALESCE(t.group_id, 0) AS group_id,
       count(*) AS tickets,
       COALESCE(array_agg(EXTRACT(EPOCH FROM t.first_response_at - t.created_at)::float8)
                FILTER (WHERE t.first_response_at >= t.created_at), '{}') AS human_first_response_s,
       COALESCE(array_agg(EXTRACT(EPOCH FROM t.resolved_at - t.created_at)::float8)
                FILTER (WHERE t.resolved_at >= t.created_at), '{}') AS human_resolution_s,
       count(t.csat_score) AS csat_answers,
       COALESCE(sum(t.csat_score), 0) AS csat_sum
FROM routing_ticket t JOIN bots_conversation c ON c.id = t.conversation_id
WHERE t.created_at >= %(start)s AND t.created_at < %(end)s
GROUP BY 1, 2
"""

_TICKET_TOPICS_SQL = """
SELECT c.channel_id, COALESCE(t.group_id, 0) AS group_id, 'reason' AS kind, t.reason AS key, count(*) AS count
FROM routing_ticket t JOIN bots_conversation c ON c.id = t.conversation_id
WHERE t.created_at >= %(start)s AND t.created_at < %(end)s
GROUP BY 1, 2, 3, 4
UNION ALL
SELECT c.channel_id, COALESCE(t.group_id, 0), 'csat', t.csat_score::text, count(*)
FROM routing_ticket t JOIN bots_conversation c ON c.id = t.conversation_id
WHERE t.created_at >= %(start)s AND t.created_at < %(end)s AND t.csat_score IS NOT NULL
GROUP BY 1, 2, 3, 4
"""

_AGENTS_SQL = """
SELECT c.channel_id, COALESCE(t.group_id, 0) AS group_id, t.assignee_id AS agent_id,
       count(*) AS tickets,
       count(*) FILTER (WHERE t.resolved_at IS NOT NULL) AS resolved,
       COALESCE(array_agg(EXTRACT(EPOCH FROM t.first_response_at - t.created_at)::float8)
                FILTER (WHERE t.first_response_at >= t.created_at), '{}') AS first_response_s,
       COALESCE(array_agg(EXTRACT(EPOCH FROM t.resolved_at - COALESCE(t.assigned_at, t.created_at))::float8)
                FILTER (WHERE t.resolved_at >= COALESCE(t.assigned_at, t.created_at)), '{}') AS handle_s,
       count(t.csat_score) AS csat_answers,
       COALESCE(sum(t.csat_score), 0) AS csat_sum
FROM routing_ticket t JOIN bots_conversation c ON c.id = t.conversation_id
WHERE t.created_at >= %(start)s AND t.created_at < %(end)s AND t.assignee_id IS NOT NULL
GROUP BY 1, 2, 3
"""

_AGENT_REPLIES_SQL = """
SELECT c.channel_id, COALESCE(t.group_id, 0) AS group_id, e.actor_id AS agent_id, count(*) AS replies
FROM routing_ticketevent e
JOIN routing_ticket t ON t.id = e.ticket_id
JOIN bots_conversation c ON c.id = t.conversation_id
WHERE e.kind = 'replied' AND e.actor_id IS NOT NULL AND e.created_at >= %(start)s AND e.created_at < %(end)s
  AND NOT COALESCE((e.data ->> 'blocked')::boolean, false)  -- a reply blocked by a sensitive word never went out
GROUP BY 1, 2, 3
"""


def _rows(cursor) -> list[dict[str, Any]]:
    names = [c.name for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a local day (``TIME_ZONE``) as aware datetimes."""
    from django.utils import timezone

    tz = timezone.get_default_timezone()
    start = dt.datetime.combine(day, dt.time.min, tzinfo=tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    return start, end


def day_aggregates(day: dt.date, *, now: dt.datetime) -> dict[str, list[dict[str, Any]]]:
    """Every aggregate one day's rollup rows are made of, grouped by channel and group (and topic or agent).

    Must run inside a transaction (the per-conversation facts are a temporary table dropped at commit)."""
    start, end = day_bounds(day)
    params = {
        "start": start,
        "end": end,
        "idle_before": now - dt.timedelta(minutes=settings.KEFU_CONVERSATION_IDLE_MINUTES),
        "conversion": CONVERSION_WINDOW,
        "comeback": COMEBACK_WINDOW,
    }
    out: dict[str, list[dict[str, Any]]] = {}
    with transaction.atomic(), connection.cursor() as cursor:
        # these plans look expensive to PostgreSQL but touch one day: compiling them (JIT) costs ~1 s, running 0.1 s
        cursor.execute("SET LOCAL jit = off")
        cursor.execute("DROP TABLE IF EXISTS analytics_conv_facts, analytics_conv_topics")
        cursor.execute(_FACTS_SQL, params)
        cursor.execute("CREATE INDEX ON analytics_conv_facts (id)")
        cursor.execute(_TOPICS_TABLE_SQL)
        cursor.execute("CREATE INDEX ON analytics_conv_topics (id)")
        cursor.execute("ANALYZE analytics_conv_facts")
        cursor.execute("ANALYZE analytics_conv_topics")
        cursor.execute(_CAME_BACK_SQL, params)
        for name, sql in (
            ("conversations", _CONVERSATIONS_SQL),
            ("conversation_topics", _CONVERSATION_TOPICS_SQL),
            ("messages", _MESSAGES_SQL),
            ("message_topics", _MESSAGE_TOPICS_SQL),
            ("tickets", _TICKETS_SQL),
            ("ticket_topics", _TICKET_TOPICS_SQL),
            ("agents", _AGENTS_SQL),
            ("agent_replies", _AGENT_REPLIES_SQL),
        ):
            cursor.execute(sql, params)
            out[name] = _rows(cursor)
        cursor.execute("DROP TABLE IF EXISTS analytics_conv_facts, analytics_conv_topics")
    return out


def conversation_facts(day: dt.date, *, now: dt.datetime) -> list[dict[str, Any]]:
    """The per-conversation facts of one day (for tests and for checking a number by hand)."""
    start, end = day_bounds(day)
    params = {
        "start": start,
        "end": end,
        "idle_before": now - dt.timedelta(minutes=settings.KEFU_CONVERSATION_IDLE_MINUTES),
        "conversion": CONVERSION_WINDOW,
        "comeback": COMEBACK_WINDOW,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        cursor.execute("DROP TABLE IF EXISTS analytics_conv_facts, analytics_conv_topics")
        cursor.execute(_FACTS_SQL, params)
        cursor.execute(_TOPICS_TABLE_SQL)
        cursor.execute(_CAME_BACK_SQL, params)
        cursor.execute(f"SELECT f.*, {_SOLVED} AS solved FROM analytics_conv_facts f ORDER BY f.id")
        rows = _rows(cursor)
        cursor.execute("DROP TABLE IF EXISTS analytics_conv_facts, analytics_conv_topics")
    return rows


def source_days() -> tuple[dt.date, dt.date] | None:
    """The first and last local day with a conversation or message (for a full backfill)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT min(created_at) FROM bots_conversation), (SELECT max(created_at) FROM bots_message)"
        )
        first, last = cursor.fetchone()
    if first is None:
        return None
    from django.utils import timezone

    tz = timezone.get_default_timezone()
    last = last or first
    return first.astimezone(tz).date(), last.astimezone(tz).date()


# -- knowledge mining sources (registered by analytics.apps) --------------------------------------------------

_MINING_TOPICS_SQL = f"""
SELECT array_agg(DISTINCT t.topic)
FROM bots_message m
CROSS JOIN LATERAL (
    VALUES ('faq:' || (m.trace->>'faq_id')), ('intent:' || (m.trace->>'intent')),
           ('product:' || (m.trace->>'product_id'))
    UNION ALL
    SELECT 'product:' || p FROM jsonb_array_elements_text(
        CASE WHEN jsonb_typeof(m.trace->'entities'->'products') = 'array' THEN m.trace->'entities'->'products'
             ELSE '[]'::jsonb END) AS p
) AS t(topic)
WHERE m.created_at >= %(since)s AND m.direction = 'in' AND m.trace->>'kind' IN {_KINDS_SQL} AND t.topic IS NOT NULL
GROUP BY m.conversation_id
"""


def conversation_topics(since: dt.datetime) -> Iterator[list[str]]:
    """One transaction per conversation with a customer message since ``since``: its topics (FAQ entries
    answered, intents recognised, products asked about or named)."""
    with connection.cursor() as cursor:
        cursor.execute(_MINING_TOPICS_SQL, {"since": since})
        while True:
            batch = cursor.fetchmany(10000)
            if not batch:
                break
            for (topics,) in batch:
                yield topics


def unanswered_questions(since: dt.datetime, limit: int) -> list[str]:
    """The decrypted text of the latest ``limit`` customer messages since ``since`` the bot could not answer (a
    fallback, or a hand-off other than a plain "转人工" request). Never stored in plain text."""
    from django.db.models import Q

    from bots.models import Message

    rows = (
        Message.objects.filter(
            created_at__gte=since,
            direction=Message.Direction.IN,
            type=Message.Type.TEXT,
            trace__kind__in=["fallback", "handoff"],
        )
        .filter(Q(trace__handoff_reason__isnull=True) | ~Q(trace__handoff_reason="human_request"))
        .order_by("-created_at", "-id")
        .values_list("content", flat=True)[:limit]
    )
    return [text for text in rows if text]
