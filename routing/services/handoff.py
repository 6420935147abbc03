"""Hand-off from the bot to people: when (``handoff_check``) and how (``handoff_start``).

Triggers, checked in this order on every message the bot handles; the first that fires is the reason:

1. ``customer_request``: the customer asks for a person (``routing.detect.human_request``: 转人工, 人工客服,
   找客服, 真人, "talk to a human"...), or the decision itself is ``handoff`` (the knowledge pipeline's
   explicit request; its ``trace["reason"]`` is kept when it is one of the reasons below);
2. ``anger``: ``routing.detect.anger_score`` of the text, with the customer's earlier messages of the
   conversation as history, reaches its threshold;
3. ``intent``: the decision's intent is one handled by people (``KEFU_HANDOFF_INTENTS``, default refund and
   complaint);
4. ``rule``: an enabled routing rule marked "hands off by itself" matches the message;
5. ``fallback_streak``: this and the previous bot decisions were fallbacks, ``KEFU_HANDOFF_FALLBACK_STREAK``
   (default 2) in a row;
6. ``low_confidence_streak``: ``KEFU_HANDOFF_LOW_CONFIDENCE_STREAK`` (default 3) decisions in a row were
   unsure: kind ``clarify``, or a ``confidence`` in the trace below ``KEFU_HANDOFF_LOW_CONFIDENCE``.

Streaks count the conversation's processed customer messages since its last ticket, so a conversation
given back to the bot starts afresh.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import formats, timezone
from django.utils.translation import gettext_lazy as _

from bots.models import Conversation, Message
from core import fastsql
from routing import detect
from routing.models import AgentGroup, Priority, RoutingRule, Ticket, TicketEvent
from routing.services import assignment, crossing, events, rfm
from routing.services.hours import group_is_open, group_next_open
from routing.services.people import person_for_customer
from routing.services.rules import (
    RoutingContext,
    rule_first_match,
    rules_enabled,
    rules_need_rfm,
    rules_need_segment,
)

logger = logging.getLogger(__name__)

REASONS = tuple(Ticket.Reason.values)
MSG_CLOSED = _(
    "Our agents are off duty right now and will be back %(when)s. Please leave your message here; "
    "we will reply as soon as we are back."
)
MSG_CLOSED_UNKNOWN = _(
    "Our agents are off duty right now. Please leave your message here; we will reply as soon as we can."
)
WHEN_TODAY = _("today at %(time)s")
WHEN_TOMORROW = _("tomorrow at %(time)s")
WHEN_DATE = _("on %(date)s at %(time)s")
_STREAK_LOOKBACK = 20


def intent_from_trace(trace: dict[str, Any] | None) -> str:
    """The intent name of a decision trace (``trace["intent"]`` as a name or ``{"name": ...}``), or ""."""
    if not trace:
        return ""
    intent = trace.get("intent")
    if isinstance(intent, dict):
        intent = intent.get("name") or intent.get("intent")
    return str(intent) if intent else ""


def _confidence(trace: dict[str, Any] | None) -> float | None:
    if not trace:
        return None
    for value in (
        trace.get("confidence"),
        (trace.get("intent") or {}).get("confidence") if isinstance(trace.get("intent"), dict) else None,
    ):
        if isinstance(value, int | float):
            return float(value)
    return None


def _is_low_confidence(kind: str, trace: dict[str, Any] | None) -> bool:
    if kind == "clarify":
        return True
    confidence = _confidence(trace)
    return (
        confidence is not None
        and kind in ("answer", "clarify", "form_step")
        and (confidence < settings.KEFU_HANDOFF_LOW_CONFIDENCE)
    )


@functools.cache
def _earlier_sql() -> str:
    """The history statement, built once from the models' table and column names. It runs on every message
    the bot handles; as a raw statement it costs ≈ 0.9 ms of CPU against ≈ 2.6 ms for the two ORM queries
    it replaces (compiling them was most of the cost). ``fastsql.rows`` loads it as the ORM would (``content``
    decrypted, ``trace`` decoded, the other fields deferred)."""
    m, t = Message, Ticket
    col = fastsql.column
    created = col(m, "created_at")
    return (
        f"SELECT {col(m, 'id')}, {col(m, 'content')}, {col(m, 'trace')}, {created} "
        f"FROM {fastsql.table(m)} "
        f"WHERE {col(m, 'conversation')} = %s AND {col(m, 'direction')} = %s AND {col(m, 'status')} = %s "
        f"AND {col(m, 'id')} <> %s AND {created} > COALESCE(("
        f"SELECT {col(t, 'created_at')} FROM {fastsql.table(t)} "
        f"WHERE {col(t, 'conversation')} = %s ORDER BY {col(t, 'created_at')} DESC LIMIT 1), '-infinity') "
        f"ORDER BY {created} DESC, {col(m, 'id')} DESC LIMIT %s"
    )


def _earlier_customer_messages(conversation_id: int, limit: int, exclude_id: int | None) -> list[Message]:
    """The conversation's processed customer messages since its last ticket started (no ticket: all), newest
    first, in one statement (the last ticket's start is a subquery)."""
    params = [
        conversation_id,
        Message.Direction.IN.value,
        Message.Status.PROCESSED.value,
        exclude_id if exclude_id is not None else 0,
        conversation_id,
        limit,
    ]
    return fastsql.rows(Message, _earlier_sql(), params, ("id", "content", "trace", "created_at"))


def _streak(previous: list[Message], test) -> int:
    """How many of the newest previous decisions in a row pass ``test(kind, trace)`` (events skipped)."""
    n = 0
    for message in previous:
        trace = message.trace or {}
        kind = trace.get("kind", "")
        if kind == "ignore":
            continue
        if not test(kind, trace):
            break
        n += 1
    return n


def handoff_check(
    *,
    conversation_id: int,
    text: str,
    decision_kind: str,
    decision_trace: dict[str, Any] | None = None,
    message_id: int | None = None,
    conversation: Conversation | None = None,
) -> str | None:
    """The hand-off reason for this customer message and the bot's decision about it, or None (the bot goes
    on). Call it after ``knowledge.decide``; ``message_id`` (the message being handled) is left out of the
    history; ``conversation`` (with its channel loaded), when the caller has it, saves a lookup. See the
    module doc."""
    trace = decision_trace or {}
    if detect.human_request(text):
        return Ticket.Reason.CUSTOMER_REQUEST
    if decision_kind == "handoff":
        reason = str(trace.get("reason") or "")
        if reason in REASONS:
            return reason
        return Ticket.Reason.INTENT if intent_from_trace(trace) else Ticket.Reason.CUSTOMER_REQUEST
    previous = _earlier_customer_messages(conversation_id, _STREAK_LOOKBACK, message_id)
    history = [m.content for m in reversed(previous[: detect.HISTORY_WINDOW]) if m.content]
    if detect.anger_score(text, history).is_angry:
        return Ticket.Reason.ANGER
    intent = intent_from_trace(trace)
    if intent and intent in settings.KEFU_HANDOFF_INTENTS:
        return Ticket.Reason.INTENT
    trigger_rules = rules_enabled(handoff_triggers_only=True)
    if trigger_rules:
        if conversation is None or conversation.pk != conversation_id:
            conversation = Conversation.objects.select_related("channel").get(pk=conversation_id)
        if _matching_rule(trigger_rules, conversation, reason="", intent=intent, text=text) is not None:
            return Ticket.Reason.RULE
    if decision_kind == "fallback":
        streak = 1 + _streak(previous, lambda kind, _trace: kind == "fallback")
        if streak >= settings.KEFU_HANDOFF_FALLBACK_STREAK:
            return Ticket.Reason.FALLBACK_STREAK
    if _is_low_confidence(decision_kind, trace):
        streak = 1 + _streak(previous, _is_low_confidence)
        if streak >= settings.KEFU_HANDOFF_LOW_CONFIDENCE_STREAK:
            return Ticket.Reason.LOW_CONFIDENCE_STREAK
    return None


def _context(
    conversation: Conversation, *, reason: str, intent: str, text: str, rules: list[RoutingRule], need_rfm: bool = True
) -> tuple[RoutingContext, rfm.RfmLookup]:
    if need_rfm:
        lookup = rfm.customer_rfm(customer_id=conversation.customer_id, with_segment=rules_need_segment(rules))
    else:
        lookup = rfm.rfm_lookup(person_id=None)
    ctx = RoutingContext(
        reason=reason,
        text=text,
        intent=intent,
        channel_kind=conversation.channel.kind,
        channel_slug=conversation.channel.slug,
        tier=lookup.tier,
        score=lookup.score,
        segment=lookup.segment,
        now=timezone.now(),
    )
    return ctx, lookup


def _matching_rule(rules, conversation, *, reason, intent, text) -> RoutingRule | None:
    ctx, _lookup = _context(
        conversation, reason=reason, intent=intent, text=text, rules=rules, need_rfm=rules_need_rfm(rules)
    )
    return rule_first_match(rules, ctx)


def _when(moment: dt.datetime, now: dt.datetime) -> str:
    local, today = timezone.localtime(moment), timezone.localtime(now).date()
    time = local.strftime("%H:%M")
    if local.date() == today:
        return crossing.render(WHEN_TODAY, {"time": time})
    if local.date() == today + dt.timedelta(days=1):
        return crossing.render(WHEN_TOMORROW, {"time": time})
    return crossing.render(WHEN_DATE, {"date": formats.date_format(local, "SHORT_DATE_FORMAT"), "time": time})


def _default_group() -> AgentGroup | None:
    return AgentGroup.objects.filter(is_default=True).first() or AgentGroup.objects.order_by("id").first()


@transaction.atomic
def handoff_start(
    conversation_id: int,
    reason: str,
    *,
    intent: str | None = None,
    text: str = "",
    message_id: int | None = None,
) -> Ticket:
    """Hand a conversation to people: one ticket per hand-off (an open ticket is returned as is).

    Evaluates the routing rules (group, priority, SLA), records the customer's tier and RFM score, then
    either assigns the least-loaded online agent of the group (``ticket.assigned``), or queues the ticket and
    tells the customer their position (``ticket.queued``). Outside the group's business hours the ticket is
    a leave-a-message ticket, queued, its SLA counted from the next opening, and the customer is told when
    agents are back. Sets the conversation to ``human`` or ``queued``.
    """
    if reason not in REASONS:
        raise ValueError(f"unknown hand-off reason {reason!r}")
    conversation = (
        Conversation.objects.select_for_update(of=("self",), no_key=True)
        .select_related("channel")
        .get(pk=conversation_id)
    )
    existing = Ticket.objects.filter(conversation=conversation, status__in=Ticket.OPEN).first()
    if existing is not None:
        return existing
    person = person_for_customer(customer_id=conversation.customer_id)
    rules = rules_enabled()
    ctx, lookup = _context(conversation, reason=reason, intent=intent or "", text=text, rules=rules)
    rule = rule_first_match(rules, ctx)
    group = (rule.group if rule and rule.group_id else None) or _default_group()
    priority = rule.priority if rule else Priority.NORMAL
    sla_minutes = (
        (rule.sla_minutes if rule else None) or (group.sla_minutes if group else None) or settings.KEFU_SLA_MINUTES
    )
    now = timezone.now()
    is_open = group_is_open(group, now)
    next_open = now if is_open else group_next_open(group, now)
    try:
        with transaction.atomic():
            ticket = Ticket.objects.create(
                conversation=conversation,
                customer_id=conversation.customer_id,
                person=person,
                trigger_message_id=message_id,
                status=Ticket.Status.QUEUED,
                priority=priority,
                reason=reason,
                intent=(intent or "")[:60],
                rule=rule,
                group=group,
                tier=lookup.tier,
                rfm_score=lookup.score,
                leave_message=not is_open,
                sla_due_at=(next_open or now) + dt.timedelta(minutes=sla_minutes),
                queued_at=now,
            )
    except IntegrityError:  # a concurrent hand-off of the same conversation won
        return Ticket.objects.get(conversation=conversation, status__in=Ticket.OPEN)
    events.event_add(
        ticket,
        TicketEvent.Kind.CREATED,
        data={
            "reason": reason,
            "rule_id": rule.id if rule else None,
            "tier": lookup.tier,
            "score": lookup.score,
            "rfm_source": lookup.source,
            "business_hours": is_open,
        },
    )
    logger.info(
        "hand-off",
        extra={
            "conversation_id": conversation_id,
            "ticket_id": ticket.id,
            "reason": reason,
            "group_id": group.id if group else None,
            "priority": ticket.priority,
        },
    )
    profile = assignment.agent_pick(group_id=group.id) if (group and group.auto_assign and is_open) else None
    if profile is not None:
        assigned = assignment.ticket_assign(
            ticket_id=ticket.id, user_id=profile.user_id, actor_id=None, kind=TicketEvent.Kind.ASSIGNED
        )
        if assigned is not None:
            return assigned
    crossing.conversation_status_set(conversation_id=conversation_id, status=Conversation.Status.QUEUED)
    if not is_open:
        if next_open is not None:
            crossing.customer_tell(
                conversation_id=conversation_id,
                text=MSG_CLOSED,
                params={"when": _when(next_open, now)},
                kind="closed",
                ticket_id=ticket.id,
            )
        else:
            crossing.customer_tell(
                conversation_id=conversation_id, text=MSG_CLOSED_UNKNOWN, kind="closed", ticket_id=ticket.id
            )
    else:
        assignment.position_tell(ticket=ticket, position=assignment.queue_position(ticket) or 0)
    events.ticket_publish(
        ticket, "ticket.queued", action="created", extra={"position": assignment.queue_position(ticket)}
    )
    return ticket
