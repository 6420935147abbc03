"""The rollups and the dashboard's SQL on a hand-checked day (tests/analytics/conftest.py): every definition
(solved, came back, handed off, converted, ended) and every figure, checked against hand-worked values and against
SQL run directly on the messages."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection

from analytics import facts, selectors, services
from analytics.models import DailyAgent, DailyStats, DailyTopic
from tests.analytics.conftest import DAY, EXPECTED, LATENCIES, Turn, at

pytestmark = pytest.mark.django_db

F = selectors.Filters(first=DAY, last=DAY)


def by_letter(history, rows):
    ids = {c.id: letter for letter, c in history.conversations.items()}
    return {ids[r["id"]]: r for r in rows}


def test_conversation_facts_follow_the_definitions(history):
    rows = by_letter(history, facts.conversation_facts(DAY, now=at(48)))
    assert {k: r["solved"] for k, r in rows.items()} == {"A": True, "B": False, "B2": True, "C": False, "D": False}
    assert rows["B"]["came_back"] and not rows["B2"]["came_back"]
    assert rows["C"]["handed_off"] and rows["C"]["group_id"] == history.conversations["C"].tickets.get().group_id
    assert rows["D"]["last_kind"] == "fallback"
    assert {k for k, r in rows.items() if r["converted"]} == {"A"}


def test_summary_figures(rolled_up):
    summary = selectors.summary(F)
    for key, value in EXPECTED.items():
        assert summary[key] == pytest.approx(value), key
    assert summary["computed_at"]


def test_latency_percentiles_equal_sql_on_the_messages(rolled_up):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP "
            "(ORDER BY (trace->>'elapsed_ms')::float8) FROM bots_message "
            "WHERE direction = 'in' AND created_at >= %s AND created_at < %s",
            facts.day_bounds(DAY),
        )
        n, direct = cursor.fetchone()
    latency = selectors.latency(F)
    assert latency["n"] == n == len(LATENCIES)
    assert [latency["p50"], latency["p95"], latency["p99"]] == pytest.approx(direct)
    assert latency["p50"] == pytest.approx(12.0)


def test_response_and_resolution_times(rolled_up):
    times = {r["metric"]: r for r in selectors.response_times(F)}
    assert times["bot_first_response"]["n"] == 5
    assert times["bot_first_response"]["p50"] == pytest.approx(1.0)
    assert times["bot_first_response"]["p90"] == pytest.approx(1.6)  # 1,1,1,1,2
    assert times["bot_resolution"]["n"] == 2  # A (64 s) and B2 (1 s), the solved ones
    assert times["bot_resolution"]["p50"] == pytest.approx(32.5)
    assert times["human_first_response"]["p50"] == pytest.approx(60.0)
    assert times["human_resolution"]["p90"] == pytest.approx(600.0)


def test_topic_tables(rolled_up):
    assert [(r["faq_id"], r["hits"]) for r in selectors.top_faqs(F)] == [(1, 3), (3, 1)]
    assert [(r["intent"], r["decisions"]) for r in selectors.top_intents(F)] == [("price", 1)]
    conversion = selectors.conversion_by_intent(F)
    assert [(r["intent"], r["conversations"], r["converted"], r["rate"]) for r in conversion] == [("price", 1, 1, 1.0)]
    reasons = selectors.handoff_reasons(F)
    assert [(r["reason"], r["tickets"], r["share"]) for r in reasons] == [("fallback_streak", 1, 1.0)]
    assert reasons[0]["label"]
    assert [(r["score"], r["answers"]) for r in selectors.csat(F)] == [(1, 0), (2, 0), (3, 0), (4, 1), (5, 0)]


def test_agent_table(rolled_up, agent_user):
    rows = selectors.agents(F)
    assert len(rows) == 1
    row = rows[0]
    assert row["agent_id"] == agent_user.id and row["agent"] == "小王"
    assert (row["tickets"], row["resolved"], row["replies"], row["open_now"]) == (1, 1, 1, 0)
    assert row["first_response_p50"] == pytest.approx(60.0)
    assert row["handle_p50"] == pytest.approx(570.0)  # resolved 600 s after the hand-off, assigned after 30 s
    assert row["csat_average"] == pytest.approx(4.0)


def test_segments_count_conversations_and_people(rolled_up):
    from routing.models import RfmScore

    person = rolled_up.conversations["A"].customer.routing_link.person
    RfmScore.objects.create(
        person=person, r=5, f=5, m=5, segment="important_value", tier="vip", score=100, computed_at=at(0)
    )
    services.rollup_day(day=DAY, now=at(48))
    rows = {r["segment"]: r for r in selectors.segments(F)}
    assert rows["important_value"]["conversations"] == 1 and rows["important_value"]["persons"] == 1
    assert rows["important_value"]["converted"] == 1 and rows["important_value"]["label"] == "重要价值客户"
    assert rows[""]["conversations"] == 4 and rows[""]["persons"] == 0


def test_daily_series_fills_missing_days_with_zeros(rolled_up):
    rows = selectors.daily(selectors.Filters(first=DAY - dt.timedelta(days=1), last=DAY + dt.timedelta(days=1)))
    assert [r["day"] for r in rows] == [DAY - dt.timedelta(days=1), DAY, DAY + dt.timedelta(days=1)]
    assert [r["conversations"] for r in rows] == [0, 5, 0]
    assert rows[1]["bot_solve_rate"] == pytest.approx(0.4) and rows[0]["bot_solve_rate"] is None


def test_channel_and_group_filters(rolled_up, agent_group):
    web = selectors.summary(selectors.Filters(first=DAY, last=DAY, channel_id=rolled_up.web.id))
    oa = selectors.summary(selectors.Filters(first=DAY, last=DAY, channel_id=rolled_up.oa.id))
    assert (web["conversations"], oa["conversations"]) == (4, 1)
    assert web["bot_solved"] == 2 and oa["bot_solved"] == 0
    group = selectors.summary(selectors.Filters(first=DAY, last=DAY, group_id=agent_group.id))
    assert (group["conversations"], group["handed_off"], group["tickets"], group["messages_in"]) == (1, 1, 1, 2)


def test_rollup_is_idempotent_and_replaces_the_day(rolled_up):
    counts = (DailyStats.objects.count(), DailyTopic.objects.count(), DailyAgent.objects.count())
    services.rollup_day(day=DAY, now=at(48))
    assert (DailyStats.objects.count(), DailyTopic.objects.count(), DailyAgent.objects.count()) == counts
    assert selectors.summary(F)["conversations"] == 5


def test_an_active_conversation_has_not_ended_yet(builder):
    builder.conversation(builder.customer(), at(9), [Turn(0, topics={"faq_id": 1})], status="bot")
    services.rollup_day(day=DAY, now=at(9) + dt.timedelta(minutes=10))
    assert (selectors.summary(F)["ended"], selectors.summary(F)["bot_solved"]) == (0, 0)
    services.rollup_day(day=DAY, now=at(9) + dt.timedelta(minutes=40))  # idle past the 30 min window
    assert (selectors.summary(F)["ended"], selectors.summary(F)["bot_solved"]) == (1, 1)


def test_coming_back_on_another_topic_or_after_24_hours_still_counts_as_solved(builder):
    customer = builder.customer()
    first = builder.conversation(customer, at(9), [Turn(0, topics={"faq_id": 1})])
    builder.conversation(customer, at(10), [Turn(0, topics={"faq_id": 2})])  # another topic
    builder.conversation(customer, at(9) + dt.timedelta(hours=25), [Turn(0, topics={"faq_id": 1})])  # too late
    rows = {r["id"]: r for r in facts.conversation_facts(DAY, now=at(72))}
    assert rows[first.id]["solved"] and not rows[first.id]["came_back"]


def test_a_handoff_decision_without_ticket_counts_as_handed_off(builder):
    builder.conversation(builder.customer(), at(9), [Turn(0), Turn(10, kind="handoff")])
    (row,) = facts.conversation_facts(DAY, now=at(48))
    assert row["handed_off"] and not row["solved"]


def test_conversion_window_is_seven_days_and_needs_a_paid_order(builder):
    early, late, refunded = builder.customer(), builder.customer(), builder.customer()
    for customer, paid_at, status in (
        (early, at(9) + dt.timedelta(days=6, hours=23), "paid"),
        (late, at(9) + dt.timedelta(days=7, hours=1), "paid"),
        (refunded, at(9) + dt.timedelta(days=1), "refunded"),
    ):
        builder.conversation(customer, at(9), [Turn(0)])
        builder.order(customer, paid_at, status=status)
    rows = {r["customer_id"]: r["converted"] for r in facts.conversation_facts(DAY, now=at(48))}
    assert rows == {early.id: True, late.id: False, refunded.id: False}


def test_events_only_conversations_are_not_counted(builder):
    from bots.models import Conversation, Message

    customer = builder.customer()
    conversation = Conversation.objects.create(customer=customer, channel=customer.channel)
    Message.objects.create(
        conversation=conversation,
        channel=customer.channel,
        direction="in",
        sender="customer",
        type="event",
        trace={"kind": "ignore"},
        status="processed",
    )
    Conversation.objects.filter(pk=conversation.pk).update(created_at=at(9))
    assert facts.conversation_facts(DAY, now=at(48)) == []


def test_rollup_recent_and_all(history):
    results = services.rollup_all()
    assert results and results[0].day == DAY
    assert selectors.summary(F)["conversations"] == 5
    assert len(services.rollup_recent(days=2)) == 2


def test_mining_sources_read_topics_and_decrypted_unanswered_text(history):
    topics = sorted(sorted(t) for t in facts.conversation_topics(at(0)))
    assert ["faq:1", "intent:price"] in topics and ["faq:3"] in topics
    texts = facts.unanswered_questions(at(0), 10)
    assert sorted(texts) == sorted(["能开增值税专票吗", "专票税率多少", "你们老板是谁"])


def test_a_human_request_is_not_an_unanswered_question(builder):
    builder.conversation(
        builder.customer(), at(9), [Turn(0, kind="handoff", topics={"handoff_reason": "human_request"}, text="转人工")]
    )
    builder.conversation(
        builder.customer(), at(9), [Turn(0, kind="handoff", topics={"handoff_reason": "anger"}, text="太差了")]
    )
    assert facts.unanswered_questions(at(0), 10) == ["太差了"]
