"""Ticket history rows and realtime events: one vocabulary for the console.

Groups (``core.realtime`` channel-layer groups; every event carries a per-group sequence number):

* ``agents.group.<group_id>``: everything about tickets of that agent group (queue, assignments, changes)
  and ``queue.position`` snapshots; ``agent.presence`` of the group's agents.
* ``agent.<user_id>``: everything about tickets assigned to (or just taken from) that agent.
* ``supervisors``: every ticket event, every presence change and the SLA-breach alerts.
* ``conversation.<id>``: only ``conversation.updated`` (status) from routing; the customer-side simulator
  listens there, so ticket events (which may carry internal notes) never go to it.

An agent console subscribes to its groups and its own agent group (a supervisor to ``supervisors``); the
same event can arrive on two of them, so clients de-duplicate by ``(ticket.id, ticket.version)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from core import realtime
from routing.models import AgentProfile, Ticket, TicketEvent

SUPERVISORS = "supervisors"


def group_channel(group_id: int) -> str:
    return f"agents.group.{group_id}"


def agent_channel(user_id: int) -> str:
    return f"agent.{user_id}"


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def ticket_payload(ticket: Ticket) -> dict[str, Any]:
    """A ticket as plain data (the console's list rows and every ticket event carry this)."""
    assignee_name = ""
    if ticket.assignee_id:
        profile = AgentProfile.objects.filter(user_id=ticket.assignee_id).only("display_name").first()
        assignee_name = (profile.display_name if profile else "") or ticket.assignee.get_username()
    return {
        "id": ticket.id,
        "version": ticket.version,
        "conversation_id": ticket.conversation_id,
        "customer_id": ticket.customer_id,
        "person_id": ticket.person_id,
        "status": ticket.status,
        "priority": ticket.priority_name,
        "reason": ticket.reason,
        "intent": ticket.intent,
        "group_id": ticket.group_id,
        "group_name": ticket.group.name if ticket.group_id else "",
        "assignee_id": ticket.assignee_id,
        "assignee_name": assignee_name,
        "tier": ticket.tier,
        "rfm_score": ticket.rfm_score,
        "leave_message": ticket.leave_message,
        "sla_due_at": _iso(ticket.sla_due_at),
        "sla_breached": ticket.sla_breached_at is not None,
        "created_at": _iso(ticket.created_at),
        "queued_at": _iso(ticket.queued_at),
        "assigned_at": _iso(ticket.assigned_at),
        "first_response_at": _iso(ticket.first_response_at),
        "resolved_at": _iso(ticket.resolved_at),
        "closed_at": _iso(ticket.closed_at),
        "category": ticket.category,
        "csat_state": ticket.csat_state,
        "csat_score": ticket.csat_score,
    }


def event_add(
    ticket: Ticket,
    kind: str,
    *,
    actor_id: int | None = None,
    from_status: str = "",
    text: str = "",
    data: dict[str, Any] | None = None,
) -> TicketEvent:
    """One history row. Records the ticket's status, group and assignee after the change."""
    return TicketEvent.objects.create(
        ticket=ticket,
        kind=kind,
        actor_id=actor_id,
        from_status=from_status,
        to_status=ticket.status,
        group_id=ticket.group_id,
        assignee_id=ticket.assignee_id,
        text=text,
        data=data or {},
    )


def ticket_publish(
    ticket: Ticket,
    event: str,
    *,
    action: str,
    actor_id: int | None = None,
    extra_groups: Iterable[str] = (),
    extra: dict[str, Any] | None = None,
) -> None:
    """Publish ONE event about ``ticket`` (after commit) to its group, its assignee and the supervisors."""
    groups = {SUPERVISORS, *extra_groups}
    if ticket.group_id:
        groups.add(group_channel(ticket.group_id))
    if ticket.assignee_id:
        groups.add(agent_channel(ticket.assignee_id))
    payload = {"action": action, "actor_id": actor_id, "ticket": ticket_payload(ticket), **(extra or {})}
    for group in sorted(groups):
        realtime.publish(group, event, payload)


def presence_publish(profile: AgentProfile, group_ids: Iterable[int]) -> None:
    payload = {
        "user_id": profile.user_id,
        "name": str(profile),
        "presence": profile.presence,
        "last_seen": _iso(profile.last_seen),
    }
    for group in sorted({SUPERVISORS, agent_channel(profile.user_id), *(group_channel(g) for g in group_ids)}):
        realtime.publish(group, "agent.presence", payload)
