"""Routing's part of a customer's PIPL export and erasure: the person behind the channel customer, tickets with
their history (internal notes) and CSAT answers, orders. Called by ``bots.services.privacy`` (which owns the
whole operation, its audit entries and the bots rows); reads and writes routing rows only.

Erasure keeps what aggregates need (ticket statuses, times, CSAT scores, order amounts, statuses and SKUs)
and removes what identifies or quotes the customer (the person's name and note, note texts, free-form order
item fields)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from routing.models import CustomerLink, Order, Ticket, TicketEvent

# order item keys kept by an erasure (what product statistics need); anything else (notes, addresses) goes
ORDER_ITEM_KEYS = frozenset({"sku", "qty", "quantity", "price", "amount", "product_id", "name"})


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def customer_routing_export(*, customer_id: int) -> dict[str, Any]:
    """Plain data (decrypted) for the export ZIP: ``person``, ``tickets`` (with ``events`` and CSAT), ``orders``."""
    link = CustomerLink.objects.select_related("person").filter(customer_id=customer_id).first()
    person = link.person if link else None
    person_data = None
    if person is not None:
        rfm = getattr(person, "rfm", None)
        person_data = {
            "id": person.pk,
            "name": person.name,
            "note": person.note,
            "tags": sorted(person.tags.values_list("name", flat=True)),
            "linked_customer_ids": sorted(person.links.values_list("customer_id", flat=True)),
            "rfm": {"segment": rfm.segment, "tier": rfm.tier, "score": rfm.score} if rfm else None,
            "created_at": _iso(person.created_at),
        }
    tickets = []
    for ticket in (
        Ticket.objects.filter(customer_id=customer_id).select_related("group", "assignee").order_by("id").iterator()
    ):
        tickets.append(
            {
                "id": ticket.pk,
                "conversation_id": ticket.conversation_id,
                "status": ticket.status,
                "reason": ticket.reason,
                "intent": ticket.intent,
                "priority": ticket.priority,
                "group": ticket.group.name if ticket.group else None,
                "assignee": ticket.assignee.get_username() if ticket.assignee else None,
                "category": ticket.category,
                "created_at": _iso(ticket.created_at),
                "assigned_at": _iso(ticket.assigned_at),
                "resolved_at": _iso(ticket.resolved_at),
                "closed_at": _iso(ticket.closed_at),
                "csat": {
                    "state": ticket.csat_state,
                    "score": ticket.csat_score,
                    "asked_at": _iso(ticket.csat_asked_at),
                    "answered_at": _iso(ticket.csat_answered_at),
                },
                "events": [
                    {
                        "kind": event.kind,
                        "from_status": event.from_status,
                        "to_status": event.to_status,
                        "text": event.text,
                        "data": event.data,
                        "created_at": _iso(event.created_at),
                    }
                    for event in ticket.events.order_by("created_at", "id")
                ],
            }
        )
    orders = [
        {
            "number": order.number,
            "amount": str(order.amount),
            "status": order.status,
            "paid_at": _iso(order.paid_at),
            "items": order.items,
            "created_at": _iso(order.created_at),
        }
        for order in Order.objects.filter(customer_id=customer_id).order_by("id")
    ]
    return {"person": person_data, "tickets": tickets, "orders": orders}


def _scrub_items(items: Any) -> Any:
    if not isinstance(items, list):
        return []
    return [{k: v for k, v in item.items() if k in ORDER_ITEM_KEYS} if isinstance(item, dict) else {} for item in items]


@transaction.atomic
def customer_routing_erase(*, customer_id: int, placeholder: str) -> dict[str, int]:
    """Remove the customer's personal data from routing rows; returns what was touched (counts only)."""
    counts = {"people": 0, "ticket_notes": 0, "orders": 0}
    link = CustomerLink.objects.select_related("person").filter(customer_id=customer_id).first()
    if link is not None:
        person = link.person
        if person.name or person.note:
            person.name, person.note = "", ""
            person.save(update_fields=["name", "note", "updated_at"])
            counts["people"] = 1
    notes = TicketEvent.objects.filter(ticket__customer_id=customer_id).exclude(text="")
    ids = list(notes.values_list("id", flat=True))
    if ids:
        # one encrypted placeholder for the batch (the field encrypts on the way in)
        counts["ticket_notes"] = TicketEvent.objects.filter(pk__in=ids).update(text=placeholder)
    now = timezone.now()
    for order in Order.objects.select_for_update().filter(customer_id=customer_id):
        scrubbed = _scrub_items(order.items)
        if scrubbed != order.items:
            Order.objects.filter(pk=order.pk).update(items=scrubbed, updated_at=now)
            counts["orders"] += 1
    return counts


def customer_routing_counts(*, customer_id: int) -> dict[str, int]:
    return {
        "tickets": Ticket.objects.filter(customer_id=customer_id).count(),
        "ticket_events": TicketEvent.objects.filter(ticket__customer_id=customer_id).count(),
        "csat_answers": Ticket.objects.filter(customer_id=customer_id, csat_score__isnull=False).count(),
        "orders": Order.objects.filter(customer_id=customer_id).count(),
    }
