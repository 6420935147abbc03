"""Agent presence: online / away / offline, from the console.

* ``agent_presence_set(user_id, status)``: the agent (or the console on their behalf) picks a status.
  *online* agents get new tickets; *away* agents keep theirs but get no new ones; going *offline* puts
  their assigned-but-unanswered tickets back in the queue.
* ``agent_heartbeat(user_id)``: the console's WebSocket calls this on connect and every ~15 s. It only
  records ``last_seen``, and brings back online an agent the sweep had taken offline.
* ``presence_sweep()`` (Celery beat, every 10 s): an online or away agent with no heartbeat for
  ``KEFU_PRESENCE_TIMEOUT_SECONDS`` (default 45) is set offline and their **assigned tickets they have not
  answered yet** are re-queued (first in line, keeping their original queue time; the customer is told
  their position). Tickets the agent already answered stay with them: the customer knows that agent, and
  the SLA sweep alerts supervisors if the conversation stalls. With the defaults a vanished browser is
  offline within 60 s.

The console should not set the agent offline when its socket closes (a page reload would re-queue their
work); the sweep does that when the heartbeats stop.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.errors import ApplicationError
from routing.models import AgentProfile, Ticket
from routing.services import assignment, events, tickets

logger = logging.getLogger(__name__)


def _group_ids(profile: AgentProfile) -> list[int]:
    return list(profile.groups.values_list("id", flat=True))


def _requeue_unanswered(user_id: int, *, reason: str) -> list[int]:
    ids = list(
        Ticket.objects.filter(
            assignee_id=user_id, status=Ticket.Status.ASSIGNED, first_response_at__isnull=True
        ).values_list("id", flat=True)
    )
    return [t for t in ids if tickets.ticket_requeue(t, reason=reason) is not None]


@transaction.atomic
def agent_presence_set(user_id: int, status: str) -> AgentProfile:
    """Set an agent's presence (``agent.presence`` to their groups, themselves and the supervisors)."""
    if status not in AgentProfile.Presence.values:
        raise ApplicationError("unknown presence", code="invalid")
    profile = AgentProfile.objects.select_for_update(no_key=True).filter(user_id=user_id).first()
    if profile is None:
        raise ApplicationError("not an agent", code="not_found", status=404)
    changed = profile.presence != status
    profile.presence = status
    profile.last_seen = timezone.now()
    profile.timed_out_at = None
    profile.save(update_fields=["presence", "last_seen", "timed_out_at", "updated_at"])
    group_ids = _group_ids(profile)
    if changed:
        events.presence_publish(profile, group_ids)
    if status == AgentProfile.Presence.OFFLINE:  # after commit: the agent row is not held meanwhile
        transaction.on_commit(lambda: _requeue_unanswered(user_id, reason="agent_offline"))
    elif status == AgentProfile.Presence.ONLINE:
        assignment.queue_dispatch_after_commit(group_ids)
    return profile


@transaction.atomic
def agent_heartbeat(user_id: int) -> AgentProfile | None:
    """Record that the agent's console is alive. Revives an agent the sweep took offline. None: not an agent."""
    now = timezone.now()
    if not AgentProfile.objects.filter(user_id=user_id).update(last_seen=now):
        return None
    revived = AgentProfile.objects.filter(
        user_id=user_id, presence=AgentProfile.Presence.OFFLINE, timed_out_at__isnull=False
    ).update(presence=AgentProfile.Presence.ONLINE, timed_out_at=None, updated_at=now)
    profile = AgentProfile.objects.get(user_id=user_id)
    if revived:
        group_ids = _group_ids(profile)
        events.presence_publish(profile, group_ids)
        assignment.queue_dispatch_after_commit(group_ids)
    return profile


def presence_sweep(*, now: dt.datetime | None = None) -> list[int]:
    """Agents whose heartbeats stopped go offline; their unanswered tickets are re-queued (see module doc).
    Returns the user ids taken offline."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(seconds=settings.KEFU_PRESENCE_TIMEOUT_SECONDS)
    stale = Q(last_seen__isnull=True) | Q(last_seen__lt=cutoff)
    live = [AgentProfile.Presence.ONLINE, AgentProfile.Presence.AWAY]
    user_ids = list(AgentProfile.objects.filter(stale, presence__in=live).values_list("user_id", flat=True))
    gone = []
    for user_id in user_ids:
        with transaction.atomic():
            profile = (
                AgentProfile.objects.select_for_update(no_key=True)
                .filter(stale, user_id=user_id, presence__in=live)
                .first()
            )
            if profile is None:
                continue
            profile.presence = AgentProfile.Presence.OFFLINE
            profile.timed_out_at = now
            profile.save(update_fields=["presence", "timed_out_at", "updated_at"])
            events.presence_publish(profile, _group_ids(profile))
        requeued = _requeue_unanswered(user_id, reason="agent_timeout")  # each ticket in its own transaction
        logger.info("agent timed out", extra={"user_id": user_id, "requeued": requeued})
        gone.append(user_id)
    return gone


def queues_dispatch_all() -> list[int]:
    """Safety net run with the sweep: every group with queued tickets dispatches (e.g. business hours just
    began while its agents were already online)."""
    group_ids = set(
        Ticket.objects.filter(status=Ticket.Status.QUEUED, group__isnull=False).values_list("group_id", flat=True)
    )
    assigned: list[int] = []
    for group_id in sorted(group_ids):
        assigned += assignment.queue_dispatch(group_id=group_id)
    return assigned
