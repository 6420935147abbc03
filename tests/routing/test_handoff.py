"""Hand-off: triggers, routing rules, business hours and leave-a-message, on the real database and Redis."""

import datetime as dt
import zoneinfo

import pytest
from django.utils import timezone

from bots.models import Conversation
from routing.models import AgentGroup, BusinessHours, Holiday, Priority, RoutingRule, Ticket, TicketEvent
from routing.services import group_is_open, group_next_open, handoff_check, handoff_start, rfm_recompute
from routing.services.rules import RoutingContext, rule_matches
from tests.routing.conftest import customer_said as _said
from tests.routing.conftest import system_texts

pytestmark = pytest.mark.django_db
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def _check(conversation, text, kind="answer", **trace):
    return handoff_check(
        conversation_id=conversation.id, text=text, decision_kind=kind, decision_trace={"kind": kind, **trace}
    )


# --- triggers ------------------------------------------------------------------------------------------------


def test_triggers(redis_clean, make_customer):
    conv = make_customer("甲").conversation
    assert _check(conv, "你好，这件衣服有M码吗") is None
    assert _check(conv, "转人工") == "customer_request"
    assert _check(conv, "我要找你们客服") == "customer_request"
    assert _check(conv, "随便", kind="handoff", reason="customer_request") == "customer_request"
    assert _check(conv, "随便", kind="handoff", intent="refund") == "intent"
    assert _check(conv, "你们这是什么垃圾服务，气死我了！！！") == "anger"
    assert _check(conv, "我想退款", intent={"name": "refund", "confidence": 0.9}) == "intent"
    assert _check(conv, "我想问问价格", intent="price") is None


def test_anger_counts_the_customers_earlier_messages(redis_clean, make_customer):
    conv = make_customer("甲").conversation
    text = "快递还没到，到底什么时候到"
    assert _check(conv, text) is None  # said once: a question
    _said(conv, "我的快递怎么还没到")
    current = _said(conv, text)  # the message being handled is stored already; it is not its own history

    def check():
        return handoff_check(
            conversation_id=conv.id, text=text, decision_kind="answer", decision_trace={}, message_id=current.id
        )

    assert check() is None  # one earlier complaint: impatient, not yet angry
    _said(conv, "快递什么时候到")
    assert check() == "anger"  # the same complaint a third time


def test_rule_that_hands_off_by_itself(redis_clean, make_customer, make_group):
    group = make_group("after")
    RoutingRule.objects.create(name="invoice", keywords="发票, 报销", group=group, triggers_handoff=True)
    RoutingRule.objects.create(name="no trigger", keywords="尺码", group=group)
    conv = make_customer("甲").conversation
    assert _check(conv, "我需要开发票") == "rule"
    assert _check(conv, "尺码怎么选") is None


def test_fallback_streak_counts_since_the_last_ticket(redis_clean, make_customer, settings):
    settings.KEFU_HANDOFF_FALLBACK_STREAK = 2
    conv = make_customer("甲").conversation
    assert _check(conv, "啊这个那个", kind="fallback") is None  # the first fallback
    _said(conv, "啊这个那个", kind="fallback")
    assert _check(conv, "嗯嗯还有那个", kind="fallback") == "fallback_streak"
    _said(conv, "衣服", kind="answer")
    assert _check(conv, "嗯嗯还有那个", kind="fallback") is None  # an answer broke the streak
    _said(conv, "嗯嗯", kind="fallback")
    # a ticket since then starts the count afresh
    Ticket.objects.create(conversation=conv, customer=conv.customer, reason="fallback_streak", status="closed")
    assert _check(conv, "嗯嗯还有那个", kind="fallback") is None


def test_low_confidence_streak(redis_clean, make_customer, settings):
    settings.KEFU_HANDOFF_LOW_CONFIDENCE_STREAK = 3
    conv = make_customer("甲").conversation
    _said(conv, "那个东西", kind="clarify")
    _said(conv, "就是那个", kind="answer", confidence=0.2)
    assert _check(conv, "你懂我意思吗", kind="answer", confidence=0.9) is None
    assert _check(conv, "你懂我意思吗", kind="answer", confidence=0.3) == "low_confidence_streak"


# --- rules ---------------------------------------------------------------------------------------------------


def test_rule_conditions_without_the_database():
    now = dt.datetime(2026, 3, 4, 23, 30, tzinfo=SHANGHAI)  # a Wednesday night
    ctx = RoutingContext(
        reason="anger",
        text="我要退货！",
        intent="refund",
        channel_kind="oa",
        channel_slug="shop-oa",
        tier="vip",
        score=92.5,
        segment="important_value",
        now=now,
    )
    assert rule_matches(RoutingRule(tiers="vip, high"), ctx)
    assert not rule_matches(RoutingRule(tiers="normal"), ctx)
    assert rule_matches(RoutingRule(segments="important_value", score_min=90, score_max=100), ctx)
    assert not rule_matches(RoutingRule(score_min=95), ctx)
    assert rule_matches(RoutingRule(reasons="anger", intents="refund，complaint"), ctx)
    assert rule_matches(RoutingRule(channel_kinds="oa", channel_slugs="shop-oa"), ctx)
    assert not rule_matches(RoutingRule(channel_kinds="kf"), ctx)
    assert rule_matches(RoutingRule(keywords="退货|换货"), ctx)
    assert not rule_matches(RoutingRule(keywords="发票"), ctx)
    assert rule_matches(RoutingRule(weekdays="3", time_from=dt.time(22), time_to=dt.time(8)), ctx)  # overnight
    assert not rule_matches(RoutingRule(time_from=dt.time(9), time_to=dt.time(18)), ctx)
    assert not rule_matches(RoutingRule(weekdays="6,7"), ctx)
    assert rule_matches(RoutingRule(), ctx)


def test_vip_angry_customer_lands_in_the_vip_group_with_high_priority(redis_clean, make_customer, add_orders):
    from routing.demo import seed_routing

    seed_routing()  # groups, default rules (vip → VIP high, anger → after-sales high)
    vip = make_customer("大客户")
    add_orders(vip, [(1, 9999), (5, 8888), (9, 7777), (12, 9999)])
    regular = make_customer("新客户")
    add_orders(regular, [(300, 10)])
    rfm_recompute()
    angry = "你们到底怎么回事？！发货慢得要死，气死我了！！"
    assert _check(vip.conversation, angry) == "anger"

    ticket = handoff_start(vip.conversation.id, "anger", text=angry)
    assert (ticket.group.slug, ticket.priority, ticket.tier) == ("vip", Priority.HIGH, "vip")
    assert ticket.rule.tiers == "vip"

    other = handoff_start(regular.conversation.id, "anger", text=angry)
    assert (other.group.slug, other.priority) == ("after_sales", Priority.HIGH)
    assert other.tier == "low"

    calm = make_customer("咨询").conversation
    default = handoff_start(calm.id, "customer_request", text="转人工")
    assert default.group == AgentGroup.objects.get(is_default=True)
    assert default.priority == Priority.NORMAL


def test_handoff_start_is_idempotent_and_sets_the_conversation_status(redis_clean, make_customer, make_group):
    make_group("pre", auto_assign=False, is_default=True)
    conv = make_customer("甲").conversation
    ticket = handoff_start(conv.id, "customer_request", text="转人工")
    assert handoff_start(conv.id, "anger", text="!!!") == ticket
    assert Ticket.objects.count() == 1
    conv.refresh_from_db()
    assert conv.status == Conversation.Status.QUEUED
    assert (ticket.status, ticket.reason, ticket.leave_message) == ("queued", "customer_request", False)
    assert ticket.sla_due_at > timezone.now()
    assert list(ticket.events.values_list("kind", flat=True)) == ["created", "position"]
    assert system_texts(conv.id) == ["正在为您转接人工客服，您是下一位，请稍候。"]


# --- business hours ------------------------------------------------------------------------------------------


def test_business_hours_and_holidays(make_group):
    group = make_group("pre")
    wednesday_noon = dt.datetime(2026, 3, 4, 12, 0, tzinfo=SHANGHAI)
    assert group_is_open(group, wednesday_noon)  # no schedule: around the clock
    for day in range(5):  # Monday-Friday 09:00-18:00, Friday night 20:00-02:00
        BusinessHours.objects.create(group=group, weekday=day, opens=dt.time(9), closes=dt.time(18))
    BusinessHours.objects.create(group=group, weekday=4, opens=dt.time(20), closes=dt.time(2))
    assert group_is_open(group, wednesday_noon)
    assert not group_is_open(group, wednesday_noon.replace(hour=19))
    assert group_next_open(group, wednesday_noon.replace(hour=19)) == wednesday_noon.replace(day=5, hour=9)
    saturday_1am = dt.datetime(2026, 3, 7, 1, 0, tzinfo=SHANGHAI)
    assert group_is_open(group, saturday_1am)  # Friday's late shift runs past midnight
    assert group_next_open(group, saturday_1am.replace(hour=3)) == dt.datetime(2026, 3, 9, 9, tzinfo=SHANGHAI)
    Holiday.objects.create(date=dt.date(2026, 3, 5), name="店庆")  # every group
    assert group_next_open(group, wednesday_noon.replace(hour=19)) == wednesday_noon.replace(day=6, hour=9)
    Holiday.objects.create(date=dt.date(2026, 3, 6), name="团建", group=group)
    assert not group_is_open(group, dt.datetime(2026, 3, 6, 10, tzinfo=SHANGHAI))
    assert group_next_open(group, wednesday_noon.replace(hour=19)) == dt.datetime(2026, 3, 9, 9, tzinfo=SHANGHAI)


def test_outside_business_hours_opens_a_leave_a_message_ticket(redis_clean, make_customer, make_group, make_agent):
    group = make_group("pre", is_default=True, sla_minutes=30)
    make_agent("a1", [group])  # online, but the group is closed today
    today = timezone.localdate()
    Holiday.objects.create(date=today, name="休息日", group=group)
    conv = make_customer("甲").conversation
    ticket = handoff_start(conv.id, "customer_request", text="转人工")
    assert ticket.leave_message and ticket.status == Ticket.Status.QUEUED and ticket.assignee is None
    tomorrow = timezone.make_aware(dt.datetime.combine(today + dt.timedelta(days=1), dt.time(0)))
    assert ticket.sla_due_at == tomorrow + dt.timedelta(minutes=30)
    assert system_texts(conv.id) == ["客服人员暂时不在线，将于明天 00:00上线。请在此留言，我们上线后会第一时间回复您。"]
    assert not ticket.events.filter(kind=TicketEvent.Kind.POSITION).exists()
    conv.refresh_from_db()
    assert conv.status == Conversation.Status.QUEUED
