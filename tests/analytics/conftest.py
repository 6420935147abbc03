"""A small, hand-checkable shop history for the analytics tests (real PostgreSQL; nothing mocked).

``history`` builds one local day (DAY, Asia/Shanghai) whose expected figures are worked out in ``EXPECTED``:

    A  web  faq:1 answered, intent price answered, resolved; an order 3 days later      -> solved, converted
    B  web  faq:1 answered ... the same customer comes back 5 h later (B2) on faq:1     -> came back: not solved
    B2 web  faq:1 answered again                                                          -> solved
    C  web  fallback, then hand-off: ticket (fallback_streak, group G1, agent1), CSAT 4 -> handed off
    D  oa   faq:3 answered, then a fallback                                               -> last decision not an answer
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User

from analytics.facts import day_bounds

DAY = dt.date(2026, 3, 10)
_seq = itertools.count(1)


def at(hours: float, day: dt.date = DAY) -> dt.datetime:
    return day_bounds(day)[0] + dt.timedelta(hours=hours)


@dataclass
class Turn:
    """One customer message and the bot's decision (and reply ``reply_s`` later)."""

    offset_s: float
    kind: str = "answer"
    topics: dict = field(default_factory=dict)  # e.g. {"faq_id": 1} or {"intent": "price", "intent_id": 3}
    elapsed_ms: float = 10.0
    reply_s: float = 1.0
    text: str = "你好"


class History:
    def __init__(self, web, oa):
        from bots.models import Channel

        self.web = web
        self.oa = oa or Channel.objects.create(kind=Channel.Kind.OA, slug="oa-shop", name="OA")
        self.conversations = {}

    def customer(self, channel=None):
        from bots.models import Customer

        return Customer.objects.create(channel=channel or self.web, external_id=f"c-{next(_seq)}", nickname="客户")

    def conversation(self, customer, start: dt.datetime, turns: list[Turn], *, status="resolved"):
        from bots.models import Conversation, Message

        conversation = Conversation.objects.create(customer=customer, channel=customer.channel, status=status)
        last = start
        for turn in turns:
            when = start + dt.timedelta(seconds=turn.offset_s)
            trace = {
                "kind": turn.kind,
                "stage": "faq" if "faq_id" in turn.topics else "x",
                "elapsed_ms": turn.elapsed_ms,
            }
            trace.update(turn.topics)
            inbound = Message.objects.create(
                conversation=conversation,
                channel=customer.channel,
                direction="in",
                sender="customer",
                content=turn.text,
                trace=trace,
                status="processed",
            )
            reply = Message.objects.create(
                conversation=conversation,
                channel=customer.channel,
                direction="out",
                sender="bot",
                content="答复",
                trace=trace,
                status="sent",
                reply_to=inbound,
            )
            Message.objects.filter(pk=inbound.pk).update(created_at=when)
            last = when + dt.timedelta(seconds=turn.reply_s)
            Message.objects.filter(pk=reply.pk).update(created_at=last)
        Conversation.objects.filter(pk=conversation.pk).update(
            created_at=start, last_message_at=last, resolved_at=last if status == "resolved" else None
        )
        conversation.refresh_from_db()
        return conversation

    def ticket(self, conversation, *, reason, group, agent, created, frt_s=None, resolve_s=None, csat=None):
        from bots.models import Message
        from routing.models import Ticket, TicketEvent

        ticket = Ticket.objects.create(
            conversation=conversation,
            customer=conversation.customer,
            reason=reason,
            group=group,
            assignee=agent,
            status="resolved" if resolve_s else "assigned",
            csat_score=csat,
            csat_state="answered" if csat else "",
        )
        first = created + dt.timedelta(seconds=frt_s) if frt_s is not None else None
        Ticket.objects.filter(pk=ticket.pk).update(
            created_at=created,
            queued_at=created,
            assigned_at=created + dt.timedelta(seconds=30),
            first_response_at=first,
            resolved_at=created + dt.timedelta(seconds=resolve_s) if resolve_s else None,
        )
        if first is not None:
            reply = Message.objects.create(
                conversation=conversation,
                channel=conversation.channel,
                direction="out",
                sender="agent",
                content="人工答复",
                status="sent",
            )
            Message.objects.filter(pk=reply.pk).update(created_at=first)
            event = TicketEvent.objects.create(ticket=ticket, kind="replied", actor=agent)
            # an attempt blocked by a sensitive word is in the history but is not a reply
            attempt = TicketEvent.objects.create(ticket=ticket, kind="replied", actor=agent, data={"blocked": True})
            TicketEvent.objects.filter(pk__in=[event.pk, attempt.pk]).update(created_at=first)
        ticket.refresh_from_db()
        return ticket

    def order(self, customer, paid_at, *, status="paid"):
        from routing.models import Order
        from routing.services import person_for_customer

        person = person_for_customer(customer_id=customer.id)
        return Order.objects.create(
            number=f"O-{next(_seq)}",
            customer=customer,
            person=person,
            amount=Decimal("99.00"),
            paid_at=paid_at,
            status=status,
        )


@pytest.fixture
def builder(web_channel):
    return History(web_channel, None)


@pytest.fixture
def agent_group(db):
    from routing.models import AgentGroup

    return AgentGroup.objects.create(slug="g1", name="售后")


@pytest.fixture
def agent_user(db):
    from routing.models import AgentProfile

    user = User.objects.create_user("agent1", password="pw-long-enough-1")
    Group.objects.get_or_create(name="agent")[0].user_set.add(user)
    AgentProfile.objects.create(user=user, display_name="小王")
    return user


# latency of the 8 decisions of the day, in ms (P50 = 12.0: the mean of 11 and 13)
LATENCIES = [5.0, 7.0, 9.0, 11.0, 13.0, 20.0, 40.0, 100.0]

EXPECTED = {
    "conversations": 5,
    "ended": 5,
    "bot_solved": 2,
    "handed_off": 1,
    "converted": 1,
    "messages_in": 8,
    "messages_out": 9,
    "decisions": 8,
    "unanswered": 3,
    "tickets": 1,
    "csat_answers": 1,
    "bot_solve_rate": 0.4,
    "handoff_rate": 0.2,
    "conversion_rate": 0.2,
    "csat_average": 4.0,
}


@pytest.fixture
def history(builder, agent_group, agent_user):
    """The day described in the module docstring; returns the builder (with ``conversations`` by letter)."""
    h = builder
    lat = iter(LATENCIES)
    a, b, c = h.customer(), h.customer(), h.customer()
    d = h.customer(h.oa)
    h.conversations["A"] = h.conversation(
        a,
        at(9),
        [
            Turn(0, topics={"faq_id": 1}, elapsed_ms=next(lat), reply_s=2),
            Turn(60, topics={"intent": "price", "intent_id": 7}, elapsed_ms=next(lat), reply_s=4),
        ],
    )
    h.order(a, at(9) + dt.timedelta(days=3))
    h.conversations["B"] = h.conversation(b, at(10), [Turn(0, topics={"faq_id": 1}, elapsed_ms=next(lat), reply_s=1)])
    h.conversations["B2"] = h.conversation(
        b, at(15), [Turn(0, topics={"faq_id": 1}, elapsed_ms=next(lat), reply_s=1, text="发票怎么开")]
    )
    h.conversations["C"] = h.conversation(
        c,
        at(11),
        [
            Turn(0, kind="fallback", elapsed_ms=next(lat), reply_s=1, text="能开增值税专票吗"),
            Turn(30, kind="handoff", elapsed_ms=next(lat), reply_s=1, text="专票税率多少"),
        ],
    )
    h.ticket(
        h.conversations["C"],
        reason="fallback_streak",
        group=agent_group,
        agent=agent_user,
        created=at(11) + dt.timedelta(seconds=31),
        frt_s=60,
        resolve_s=600,
        csat=4,
    )
    h.conversations["D"] = h.conversation(
        d,
        at(12),
        [
            Turn(0, topics={"faq_id": 3}, elapsed_ms=next(lat), reply_s=1),
            Turn(20, kind="fallback", elapsed_ms=next(lat), reply_s=1, text="你们老板是谁"),
        ],
    )
    return h


@pytest.fixture
def rolled_up(history):
    from analytics import services

    services.rollup_day(day=DAY, now=at(48))
    return history
