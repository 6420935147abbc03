"""Who gets a ticket, and the queue of a group.

* **Assignment**: among the group's agents who are *online* (not away, not offline), active users and
  under capacity (open tickets assigned to them, ``assigned`` or ``waiting_customer``, fewer than
  ``capacity``), the least loaded one; ties go to the agent idle longest (oldest ``last_assigned_at``;
  never assigned counts as longest), then the lowest id. Candidate profiles are locked
  (``SELECT ... FOR UPDATE``) while choosing, so two hand-offs at once cannot both fill an agent's last seat.
* **Queue order** of a group: priority (urgent first), then time queued, then id. A ticket's *position* is
  the number of queued tickets ahead of it (0 = next).
* **Telling the customer**: a queued customer is told "正在为您转接人工客服，您前面还有 N 位" when queued, and
  again when the number ahead has dropped by at least ``KEFU_QUEUE_NOTIFY_STEP`` since last told, or
  reached 0 ("you are next"). Increases (an urgent ticket jumping ahead) are not announced; leave-a-message
  tickets (outside business hours) are not told positions.
* **Dispatch** (``queue_dispatch``): when seats free up (a ticket resolved, transferred or returned to the
  bot, an agent online), a group with automatic assignment hands its queue head to free agents.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from bots.models import Conversation
from core import realtime
from routing.models import AgentGroup, AgentProfile, Ticket, TicketEvent
from routing.services import crossing, events
from routing.services.hours import group_is_open

logger = logging.getLogger(__name__)

QUEUE_ORDER = ("-priority", "queued_at", "id")
MSG_POSITION = _("Connecting you to an agent. There are %(n)s customers ahead of you.")
MSG_NEXT = _("Connecting you to an agent. You are next in line.")
MSG_CONNECTED = _("Agent %(name)s is now serving you.")

_NEVER = dt.datetime.min.replace(tzinfo=dt.UTC)


def agent_loads(user_ids: list[int]) -> dict[int, int]:
    """Open tickets (assigned or waiting for the customer) per agent."""
    rows = (
        Ticket.objects.filter(assignee_id__in=user_ids, status__in=Ticket.WITH_AGENT)
        .values("assignee_id")
        .annotate(n=Count("id"))
    )
    loads = dict.fromkeys(user_ids, 0)
    loads.update({row["assignee_id"]: row["n"] for row in rows})
    return loads


def _candidates(group_id: int) -> list[AgentProfile]:
    return list(
        AgentProfile.objects.select_for_update(of=("self",), no_key=True)
        .filter(groups=group_id, presence=AgentProfile.Presence.ONLINE, user__is_active=True)
        .order_by("id")
    )


def _best(profiles: list[AgentProfile], loads: dict[int, int]) -> AgentProfile | None:
    free = [p for p in profiles if loads.get(p.user_id, 0) < p.capacity]
    if not free:
        return None
    return min(free, key=lambda p: (loads.get(p.user_id, 0), p.last_assigned_at or _NEVER, p.id))


def agent_pick(*, group_id: int | None) -> AgentProfile | None:
    """The agent a new ticket of the group goes to, or None (call inside a transaction: rows are locked)."""
    if group_id is None:
        return None
    profiles = _candidates(group_id)
    return _best(profiles, agent_loads([p.user_id for p in profiles]))


def agent_name(user_id: int) -> str:
    profile = AgentProfile.objects.select_related("user").filter(user_id=user_id).first()
    if profile is None:
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.filter(pk=user_id).first()
        return user.get_username() if user else ""
    return str(profile)


def ticket_assign(
    *,
    ticket_id: int,
    user_id: int,
    actor_id: int | None,
    kind: str,
    from_statuses: tuple[str, ...] = (Ticket.Status.QUEUED,),
    group_id: int | None = None,
    note: str = "",
    extra_groups: tuple[str, ...] = (),
) -> Ticket | None:
    """Give a ticket to an agent if it is still in one of ``from_statuses`` (a conditional UPDATE: of two
    concurrent calls exactly one succeeds). Writes the history row, marks the conversation as with a human,
    tells the customer who is serving them, publishes ``ticket.assigned``. None when the ticket had moved on."""
    now = timezone.now()
    row = Ticket.objects.filter(pk=ticket_id).values_list("conversation_id", flat=True).first()
    if row is None:
        return None
    crossing.conversation_lock(row)
    current = Ticket.objects.filter(pk=ticket_id).values_list("status", "assignee_id").first()
    fields = {
        "status": Ticket.Status.ASSIGNED,
        "assignee_id": user_id,
        "assigned_at": now,
        "version": F("version") + 1,
        "updated_at": now,
    }
    if group_id is not None:
        fields["group_id"] = group_id
    if not Ticket.objects.filter(pk=ticket_id, status__in=from_statuses).update(**fields):
        return None
    ticket = Ticket.objects.select_related("group", "assignee").get(pk=ticket_id)
    # after commit, in its own statement: an agent row is never locked after a conversation (see crossing)
    transaction.on_commit(lambda: AgentProfile.objects.filter(user_id=user_id).update(last_assigned_at=now))
    events.event_add(ticket, kind, actor_id=actor_id, from_status=current[0], text=note)
    crossing.conversation_status_set(conversation_id=ticket.conversation_id, status=Conversation.Status.HUMAN)
    if current[1] != user_id:
        crossing.customer_tell(
            conversation_id=ticket.conversation_id,
            text=MSG_CONNECTED,
            params={"name": agent_name(user_id)},
            kind="connected",
            ticket_id=ticket.id,
        )
    previous = (events.agent_channel(current[1]),) if current[1] and current[1] != user_id else ()
    events.ticket_publish(
        ticket, "ticket.assigned", action=kind, actor_id=actor_id, extra_groups=(*previous, *extra_groups)
    )
    return ticket


def queue_position(ticket: Ticket) -> int | None:
    """Queued tickets ahead of this one in its group (0 = next), or None when it is not queued."""
    if ticket.status != Ticket.Status.QUEUED:
        return None
    ids = list(_queue(ticket.group_id).values_list("id", flat=True))
    return ids.index(ticket.id) if ticket.id in ids else None


def _queue(group_id: int | None):
    qs = Ticket.objects.filter(status=Ticket.Status.QUEUED)
    qs = qs.filter(group_id=group_id) if group_id is not None else qs.filter(group__isnull=True)
    return qs.order_by(*QUEUE_ORDER)


def queue_snapshot(*, group_id: int | None) -> list[dict]:
    return [
        {"ticket_id": tid, "position": pos, "priority": prio}
        for pos, (tid, prio) in enumerate(_queue(group_id).values_list("id", "priority"))
    ]


def position_tell(*, ticket: Ticket, position: int) -> None:
    """Tell the customer their place in the queue and remember what they were told."""
    crossing.customer_tell(
        conversation_id=ticket.conversation_id,
        text=MSG_NEXT if position == 0 else MSG_POSITION,
        params=None if position == 0 else {"n": position},
        kind="queue_position",
        ticket_id=ticket.id,
    )
    Ticket.objects.filter(pk=ticket.pk).update(position_told=position)
    ticket.position_told = position
    TicketEvent.objects.create(
        ticket=ticket,
        kind=TicketEvent.Kind.POSITION,
        to_status=ticket.status,
        group_id=ticket.group_id,
        data={"position": position},
    )


def queue_positions_refresh(*, group_id: int | None) -> None:
    """After commit: recompute the group's queue, tell customers whose position improved meaningfully, and
    publish one ``queue.position`` snapshot to the group (and the supervisors). Each customer told is its own
    small transaction (conversation, then ticket), so a busy queue never holds many locks."""
    transaction.on_commit(lambda: _positions_refresh_now(group_id))


def _positions_refresh_now(group_id: int | None) -> list[dict]:
    step = max(1, settings.KEFU_QUEUE_NOTIFY_STEP)
    rows = list(_queue(group_id).values_list("id", "conversation_id", "position_told", "leave_message", "priority"))
    snapshot = []
    for position, (ticket_id, conversation_id, told, leave, priority) in enumerate(rows):
        snapshot.append({"ticket_id": ticket_id, "position": position, "priority": priority})
        if leave or told is None or position >= told:
            continue
        if told - position < step and position != 0:
            continue
        try:
            with transaction.atomic():
                crossing.conversation_lock(conversation_id)
                # conditional: two refreshes at once tell the customer once
                if not Ticket.objects.filter(pk=ticket_id, status=Ticket.Status.QUEUED, position_told=told).update(
                    position_told=position
                ):
                    continue
                crossing.customer_tell(
                    conversation_id=conversation_id,
                    text=MSG_NEXT if position == 0 else MSG_POSITION,
                    params=None if position == 0 else {"n": position},
                    kind="queue_position",
                    ticket_id=ticket_id,
                )
                TicketEvent.objects.create(
                    ticket_id=ticket_id,
                    kind=TicketEvent.Kind.POSITION,
                    to_status=Ticket.Status.QUEUED,
                    group_id=group_id,
                    data={"position": position},
                )
        except Exception:
            logger.exception("queue position message failed", extra={"ticket_id": ticket_id})
    payload = {"group_id": group_id, "queue": snapshot}
    targets = {events.SUPERVISORS}
    if group_id is not None:
        targets.add(events.group_channel(group_id))
    for target in sorted(targets):
        realtime.publish(target, "queue.position", payload)
    return snapshot


@transaction.atomic
def queue_dispatch(*, group_id: int | None) -> list[int]:
    """Hand queued tickets of a group with automatic assignment to its free online agents (business hours
    permitting). Returns the ids of the tickets assigned."""
    if group_id is None:
        return []
    group = AgentGroup.objects.filter(pk=group_id).first()
    if group is None or not group.auto_assign or not _queue(group_id).exists() or not group_is_open(group):
        return []
    profiles = _candidates(group_id)
    loads = agent_loads([p.user_id for p in profiles])
    free = sum(max(0, p.capacity - loads[p.user_id]) for p in profiles)
    assigned: list[int] = []
    if free:
        for ticket_id in list(_queue(group_id).values_list("id", flat=True)[:free]):
            profile = _best(profiles, loads)
            if profile is None:
                break
            ticket = ticket_assign(
                ticket_id=ticket_id, user_id=profile.user_id, actor_id=None, kind=TicketEvent.Kind.ASSIGNED
            )
            if ticket is not None:
                loads[profile.user_id] += 1
                profile.last_assigned_at = ticket.assigned_at
                assigned.append(ticket_id)
    if assigned:
        queue_positions_refresh(group_id=group_id)
    return assigned


def queue_dispatch_after_commit(group_ids) -> None:
    """Dispatch in a fresh transaction once the current one commits (keeps lock order simple)."""
    ids = sorted({g for g in group_ids if g is not None})

    def run() -> None:
        for group_id in ids:
            try:
                queue_dispatch(group_id=group_id)
            except Exception:
                logger.exception("queue dispatch failed", extra={"group_id": group_id})

    if ids:
        transaction.on_commit(run)
