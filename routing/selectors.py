"""Reads of the routing app: visibility, queues, the customer card, transcripts, canned replies.

Visibility (used by every console read and every ticket service):

* a **supervisor** (superuser, or a member of the Django group ``KEFU_SUPERVISOR_GROUP``, default
  "supervisor") sees every ticket and conversation;
* an **agent** (a user with an ``AgentProfile``) sees the tickets of their groups and the tickets assigned
  to them, and the conversations of those tickets (including past tickets of the conversation);
* anyone else sees nothing. Asking for something not visible is answered like asking for something that
  does not exist: ``ApplicationError(code="not_found", status=404)``, so ids cannot be probed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, F, Q, QuerySet, Sum

from bots.models import Conversation, Customer, Message
from core.errors import ApplicationError
from routing import scoring
from routing.models import (
    AgentGroup,
    AgentProfile,
    CannedReply,
    CustomerLink,
    Order,
    Ticket,
    TicketEvent,
)


def not_found() -> ApplicationError:
    return ApplicationError("not found", code="not_found", status=404)


def _user(user_or_id):
    if isinstance(user_or_id, int):
        return get_user_model().objects.filter(pk=user_or_id).first()
    return user_or_id


def is_supervisor(user_or_id) -> bool:
    user = _user(user_or_id)
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return user.is_superuser or user.groups.filter(name=settings.KEFU_SUPERVISOR_GROUP).exists()


def agent_profile(user_or_id) -> AgentProfile | None:
    user = _user(user_or_id)
    if user is None or not user.is_authenticated:
        return None
    return AgentProfile.objects.filter(user=user).first()


def agent_group_ids(user_or_id) -> list[int]:
    user = _user(user_or_id)
    if user is None or not user.is_authenticated:
        return []
    return list(AgentGroup.objects.filter(agents__user=user).values_list("id", flat=True))


def tickets_visible_to(user_or_id) -> QuerySet[Ticket]:
    """Tickets the user may see: all for supervisors, their groups' and their own for agents, none else."""
    user = _user(user_or_id)
    qs = Ticket.objects.select_related("group", "assignee", "conversation", "customer")
    if user is None or not user.is_authenticated or not user.is_active:
        return qs.none()
    if is_supervisor(user):
        return qs
    return qs.filter(Q(group_id__in=agent_group_ids(user)) | Q(assignee=user))


def conversations_visible_to(user_or_id) -> QuerySet[Conversation]:
    user = _user(user_or_id)
    qs = Conversation.objects.select_related("customer", "channel")
    if is_supervisor(user):
        return qs
    return qs.filter(pk__in=tickets_visible_to(user).values("conversation_id"))


def ticket_for_agent(user_or_id, ticket_id: int) -> Ticket:
    ticket = tickets_visible_to(user_or_id).filter(pk=ticket_id).first()
    if ticket is None:
        raise not_found()
    return ticket


def conversation_for_agent(user_or_id, conversation_id: int) -> Conversation:
    """The conversation if the user may see it; otherwise a 404 ``ApplicationError`` (no IDOR)."""
    conversation = conversations_visible_to(user_or_id).filter(pk=conversation_id).first()
    if conversation is None:
        raise not_found()
    return conversation


# --- queues and lists ----------------------------------------------------------------------------------------


def queue_for(user_or_id, *, group_id: int | None = None) -> list[Ticket]:
    """Queued tickets the user may see, in queue order, each with ``.position`` in its group's queue."""
    from routing.services.assignment import QUEUE_ORDER

    qs = tickets_visible_to(user_or_id).filter(status=Ticket.Status.QUEUED)
    if group_id is not None:
        qs = qs.filter(group_id=group_id)
    tickets = list(qs.order_by("group_id", *QUEUE_ORDER))
    positions: dict[Any, int] = {}
    for ticket in tickets:
        ticket.position = positions.get(ticket.group_id, 0)
        positions[ticket.group_id] = ticket.position + 1
    return sorted(tickets, key=lambda t: (-t.priority, t.queued_at, t.id))


def tickets_assigned_to(user_or_id) -> list[Ticket]:
    user = _user(user_or_id)
    return list(
        Ticket.objects.select_related("group", "conversation", "customer")
        .filter(assignee=user, status__in=Ticket.WITH_AGENT)
        .order_by("-priority", "assigned_at")
    )


def ticket_history(ticket_id: int) -> list[dict[str, Any]]:
    """The ticket's history (notes included: agents only, never the customer)."""
    return [
        {
            "id": e.id,
            "kind": e.kind,
            "actor_id": e.actor_id,
            "actor": e.actor.get_username() if e.actor_id else "",
            "from_status": e.from_status,
            "to_status": e.to_status,
            "group_id": e.group_id,
            "assignee_id": e.assignee_id,
            "text": e.text,
            "data": e.data,
            "created_at": e.created_at.isoformat(),
        }
        for e in TicketEvent.objects.filter(ticket_id=ticket_id).select_related("actor").order_by("created_at", "id")
    ]


def conversation_transcript(conversation_id: int, *, limit: int = 500) -> list[dict[str, Any]]:
    """Every message of the conversation, oldest first, with the bot's decision traces."""
    from bots.services.common import message_payload

    rows = Message.objects.filter(conversation_id=conversation_id).order_by("-created_at", "-id")[:limit]
    return [message_payload(m) for m in reversed(rows)]


def agents_list(*, group_id: int | None = None) -> list[dict[str, Any]]:
    """Agents (optionally of one group) with presence, capacity and current load: transfer targets."""
    from routing.services.assignment import agent_loads

    qs = AgentProfile.objects.select_related("user").prefetch_related("groups").order_by("user__username")
    if group_id is not None:
        qs = qs.filter(groups=group_id)
    profiles = list(qs)
    loads = agent_loads([p.user_id for p in profiles])
    return [
        {
            "user_id": p.user_id,
            "name": str(p),
            "presence": p.presence,
            "capacity": p.capacity,
            "load": loads.get(p.user_id, 0),
            "group_ids": [g.id for g in p.groups.all()],
            "last_seen": p.last_seen.isoformat() if p.last_seen else None,
        }
        for p in profiles
    ]


def canned_replies_for(user_or_id, *, query: str = "", limit: int = 20) -> list[CannedReply]:
    """Enabled canned replies for the user's groups (and the shared ones), matching ``query`` (typed after
    "/") in the shortcut, title or text; shortcut matches first."""
    qs = CannedReply.objects.filter(enabled=True)
    if not is_supervisor(user_or_id):
        qs = qs.filter(Q(group__isnull=True) | Q(group_id__in=agent_group_ids(user_or_id)))
    query = (query or "").strip().lstrip("/")
    if query:
        qs = qs.filter(Q(shortcut__icontains=query) | Q(title__icontains=query) | Q(text__icontains=query))
    rows = list(qs.order_by("shortcut")[: limit * 3])
    rows.sort(key=lambda c: (not c.shortcut.lower().startswith(query.lower()), c.shortcut))
    return rows[:limit]


# --- customer card -------------------------------------------------------------------------------------------


def customer_card(customer_id: int, *, orders: int = 5, conversations: int = 10) -> dict[str, Any]:
    """Everything an agent wants to know about a customer, as plain data: the person behind the channel
    customer, their other channel accounts, RFM tier/segment/score, orders and lifetime value, previous
    conversations (with their tickets) and tags. Customers without a person yet get an empty card."""
    from routing.services.rfm import rfm_lookup

    customer = Customer.objects.select_related("channel").filter(pk=customer_id).first()
    if customer is None:
        raise not_found()
    link = CustomerLink.objects.select_related("person").filter(customer_id=customer_id).first()
    person = link.person if link else None
    customer_ids = (
        list(CustomerLink.objects.filter(person=person).values_list("customer_id", flat=True))
        if person
        else [customer_id]
    )
    accounts = [
        {"customer_id": c.id, "channel": c.channel.slug, "channel_kind": c.channel.kind, "nickname": c.nickname}
        for c in Customer.objects.select_related("channel").filter(pk__in=customer_ids).order_by("id")
    ]
    lookup = rfm_lookup(person_id=person.pk if person else None, with_segment=True)
    rfm_row = getattr(person, "rfm", None) if person else None
    order_qs = Order.objects.filter(person=person) if person else Order.objects.none()
    counted = order_qs.filter(status__in=Order.COUNTED)
    totals = counted.aggregate(n=Count("id"), total=Sum("amount"))
    recent_orders = [
        {
            "number": o.number,
            "amount": str(o.amount),
            "status": o.status,
            "status_label": str(o.get_status_display()),
            "paid_at": o.paid_at.isoformat() if o.paid_at else None,
            "items": o.items,
        }
        for o in order_qs.order_by(F("paid_at").desc(nulls_last=True), "-id")[:orders]
    ]
    convs = (
        Conversation.objects.filter(customer_id__in=customer_ids)
        .annotate(n_tickets=Count("tickets", distinct=True), n_messages=Count("messages", distinct=True))
        .select_related("channel")
        .order_by("-created_at")[:conversations]
    )
    segment = lookup.segment or (rfm_row.segment if rfm_row else None)
    return {
        "customer_id": customer.id,
        "nickname": customer.nickname,
        "channel": customer.channel.slug,
        # personal data (encrypted at rest); the console view records that the agent saw it (audit "pii_view")
        "pii": {"phone": customer.phone, "real_name": customer.real_name, "address": customer.address},
        "unsubscribed": customer.unsubscribed_at is not None,
        "person_id": person.pk if person else None,
        "name": (person.name if person else "") or customer.nickname,
        "note": person.note if person else "",
        "accounts": accounts,
        "tier": lookup.tier,
        "segment": segment,
        "segment_label": scoring.SEGMENTS.get(segment or "", ""),
        "rfm_score": lookup.score,
        "rfm_rank": lookup.rank,
        "rfm": {"r": rfm_row.r, "f": rfm_row.f, "m": rfm_row.m, "computed_at": rfm_row.computed_at.isoformat()}
        if rfm_row
        else None,
        "orders_count": totals["n"] or 0,
        "lifetime_value": str(totals["total"] or Decimal("0.00")),
        "last_order_at": recent_orders[0]["paid_at"] if recent_orders else None,
        "recent_orders": recent_orders,
        "conversations": [
            {
                "id": c.id,
                "channel": c.channel.slug,
                "status": c.status,
                "created_at": c.created_at.isoformat(),
                "last_message_at": c.last_message_at.isoformat() if c.last_message_at else None,
                "messages": c.n_messages,
                "tickets": c.n_tickets,
            }
            for c in convs
        ],
        "tags": list(person.tags.values_list("name", flat=True)) if person else [],
    }
