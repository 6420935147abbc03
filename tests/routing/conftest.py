"""Factories for the routing tests (real PostgreSQL and Redis; nothing mocked)."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

_seq = itertools.count(1)


def customer_said(conversation, text, kind="answer", **trace):
    """A customer message the bot already handled (its decision trace stored)."""
    from bots.models import Message

    return Message.objects.create(
        conversation=conversation,
        channel=conversation.channel,
        direction=Message.Direction.IN,
        sender=Message.Sender.CUSTOMER,
        content=text,
        status=Message.Status.PROCESSED,
        trace={"kind": kind, **trace},
    )


@pytest.fixture
def make_customer(web_channel):
    from bots.models import Conversation, Customer

    def make(nickname: str = "", *, channel=None, conversation: bool = True):
        n = next(_seq)
        customer = Customer.objects.create(
            channel=channel or web_channel, external_id=f"cust-{n}", nickname=nickname or f"客户{n}"
        )
        if conversation:
            customer.conversation = Conversation.objects.create(
                customer=customer, channel=customer.channel, last_message_at=timezone.now()
            )
        return customer

    return make


@pytest.fixture
def make_group(db):
    from routing.models import AgentGroup

    def make(slug: str, *, auto_assign: bool = True, is_default: bool = False, sla_minutes=None):
        return AgentGroup.objects.create(
            slug=slug, name=slug.upper(), auto_assign=auto_assign, is_default=is_default, sla_minutes=sla_minutes
        )

    return make


@pytest.fixture
def make_agent(db):
    from routing.models import AgentProfile

    def make(username: str, groups=(), *, presence="online", capacity: int = 5, last_assigned_minutes=None):
        user = User.objects.create_user(username, password="pw-long-enough-1", is_staff=True)
        Group.objects.get_or_create(name="agent")[0].user_set.add(user)
        profile = AgentProfile.objects.create(
            user=user,
            capacity=capacity,
            presence=presence,
            last_seen=timezone.now(),
            last_assigned_at=(
                timezone.now() - dt.timedelta(minutes=last_assigned_minutes) if last_assigned_minutes else None
            ),
        )
        profile.groups.set(groups)
        return user

    return make


@pytest.fixture
def supervisor(db):
    user = User.objects.create_user("boss", password="pw-long-enough-1", is_staff=True)
    Group.objects.get_or_create(name="supervisor")[0].user_set.add(user)
    return user


@pytest.fixture
def add_orders():
    from routing.models import Order
    from routing.services import person_for_customer

    def add(customer, orders):
        """``orders``: (days ago, amount) pairs, all paid."""
        person = person_for_customer(customer_id=customer.id)
        now = timezone.now()
        for days_ago, amount in orders:
            Order.objects.create(
                number=f"O-{next(_seq)}",
                customer=customer,
                person=person,
                amount=Decimal(amount),
                paid_at=now - dt.timedelta(days=days_ago),
                status=Order.Status.PAID,
            )
        return person

    return add


def system_texts(conversation_id: int) -> list[str]:
    from bots.models import Message

    return list(
        Message.objects.filter(conversation_id=conversation_id, sender=Message.Sender.SYSTEM)
        .order_by("id")
        .values_list("content", flat=True)
    )
