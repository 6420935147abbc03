"""What agents do with tickets. Each call is one transaction that writes one history row (``TicketEvent``)
and publishes one realtime event after commit (see ``routing.services.events`` for the groups).

State machine: ``queued`` → ``assigned`` → ``waiting_customer`` ⇄ ``assigned`` → ``resolved`` → ``closed``
(``ticket_return_to_bot`` and ``ticket_close`` end an open ticket directly in ``closed``).

Who may act: everything needs the ticket to be visible to the user (``routing.selectors.tickets_visible_to``;
otherwise 404). Claiming needs membership of the ticket's group (or supervisor); replying, resolving,
transferring and returning an assigned ticket need to be its assignee (or supervisor); notes may be added by
anyone who sees the ticket. Errors are ``ApplicationError`` with these codes: ``not_found`` (404),
``already_claimed`` (409), ``not_queued``/``not_open``/``not_assigned`` (409), ``not_your_ticket`` and
``not_in_group`` (403), ``invalid`` (400).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
import unicodedata
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from bots.models import Conversation, Message
from core import fastsql
from core.errors import ApplicationError
from routing import selectors
from routing.models import AgentGroup, AgentProfile, Ticket, TicketEvent
from routing.services import assignment, crossing, events

logger = logging.getLogger(__name__)

MSG_CSAT_QUESTION = _(
    "This conversation has been resolved. How satisfied are you with our service? Reply with a number from "
    "1 (very dissatisfied) to 5 (very satisfied)."
)
MSG_CSAT_THANKS = _("Thank you for your rating!")
MSG_BACK_TO_BOT = _("You are chatting with our assistant again. Reply 人工 at any time to reach an agent.")
RETURNED_TO_BOT = "returned_to_bot"
_CSAT_ANSWER = re.compile(r"^([1-5])\s*(?:分|星|颗星|stars?)?[\s!.。！~]*$", re.IGNORECASE)


def _lock(ticket_id: int, **filters: Any) -> Ticket | None:
    """The ticket locked after its conversation (lock order: conversation → ticket), or None."""
    conversation_id = Ticket.objects.filter(pk=ticket_id).values_list("conversation_id", flat=True).first()
    if conversation_id is None:
        return None
    crossing.conversation_lock(conversation_id)
    return (
        Ticket.objects.select_for_update(of=("self",), no_key=True)
        .select_related("group", "assignee")
        .filter(pk=ticket_id, **filters)
        .first()
    )


def _load(ticket_id: int, user_id: int) -> Ticket:
    """The ticket, locked, if the user may see it (else 404)."""
    if not selectors.tickets_visible_to(user_id).filter(pk=ticket_id).exists():
        raise selectors.not_found()
    ticket = _lock(ticket_id)
    if ticket is None:
        raise selectors.not_found()
    return ticket


def _require_handler(ticket: Ticket, user_id: int) -> None:
    if ticket.assignee_id != user_id and not selectors.is_supervisor(user_id):
        raise ApplicationError(
            "only the assigned agent or a supervisor can do this", code="not_your_ticket", status=403
        )


def _require_open(ticket: Ticket) -> None:
    if not ticket.is_open:
        raise ApplicationError("the ticket is no longer open", code="not_open", status=409)


def _change(
    ticket: Ticket,
    *,
    kind: str,
    event: str,
    actor_id: int | None,
    text: str = "",
    data: dict[str, Any] | None = None,
    extra_groups: tuple[str, ...] = (),
    extra: dict[str, Any] | None = None,
    **fields: Any,
) -> Ticket:
    """Save ``fields`` (+ version), write the history row, publish the event."""
    from_status = ticket.status
    for name, value in fields.items():
        setattr(ticket, name, value)
    ticket.version += 1
    ticket.save(update_fields=[*fields, "version", "updated_at"])
    events.event_add(ticket, kind, actor_id=actor_id, from_status=from_status, text=text, data=data)
    events.ticket_publish(ticket, event, action=kind, actor_id=actor_id, extra_groups=extra_groups, extra=extra)
    return ticket


def _after_leaving(ticket: Ticket, *, was_status: str, group_ids: list[int | None]) -> None:
    """A ticket left the queue or freed an agent's seat: refresh positions now, dispatch after commit."""
    if was_status == Ticket.Status.QUEUED:
        assignment.queue_positions_refresh(group_id=ticket.group_id)
    assignment.queue_dispatch_after_commit(group_ids)


# --- claim and transfer --------------------------------------------------------------------------------------


@transaction.atomic
def ticket_claim(ticket_id: int, agent_user_id: int) -> Ticket:
    """An agent takes a queued ticket of one of their groups. Of two agents claiming at once exactly one wins
    (a conditional UPDATE); the other gets ``already_claimed``. Claiming one's own ticket again is a no-op."""
    ticket = selectors.tickets_visible_to(agent_user_id).filter(pk=ticket_id).first()
    if ticket is None:
        raise selectors.not_found()
    supervisor = selectors.is_supervisor(agent_user_id)
    if not supervisor and ticket.group_id not in selectors.agent_group_ids(agent_user_id):
        raise ApplicationError("this ticket belongs to another group", code="not_in_group", status=403)
    if not supervisor and not AgentProfile.objects.filter(user_id=agent_user_id).exists():
        raise ApplicationError("only agents can claim tickets", code="not_in_group", status=403)
    claimed = assignment.ticket_assign(
        ticket_id=ticket_id, user_id=agent_user_id, actor_id=agent_user_id, kind=TicketEvent.Kind.CLAIMED
    )
    if claimed is None:
        ticket.refresh_from_db()
        if ticket.assignee_id == agent_user_id and ticket.is_open:
            return ticket
        if ticket.is_open:
            raise ApplicationError("another agent already claimed this ticket", code="already_claimed", status=409)
        raise ApplicationError("the ticket is no longer queued", code="not_queued", status=409)
    assignment.queue_positions_refresh(group_id=claimed.group_id)
    return claimed


@transaction.atomic
def ticket_transfer(
    ticket_id: int,
    *,
    to_agent_id: int | None = None,
    to_group_id: int | None = None,
    note: str = "",
    by_user_id: int,
) -> Ticket:
    """Hand an open ticket to another agent (``ticket.assigned``; the group changes too when ``to_group_id``
    is given) or back to a group's queue (``ticket.queued``; the customer is told their new position, and
    the group dispatches it if it assigns automatically). The note is kept in the history (internal)."""
    if to_agent_id is None and to_group_id is None:
        raise ApplicationError("choose an agent or a group", code="invalid")
    ticket = _load(ticket_id, by_user_id)
    _require_open(ticket)
    if ticket.status != Ticket.Status.QUEUED:
        _require_handler(ticket, by_user_id)
    if to_group_id is not None and not AgentGroup.objects.filter(pk=to_group_id).exists():
        raise ApplicationError("unknown group", code="invalid")
    old_group, old_assignee, was_status = ticket.group_id, ticket.assignee_id, ticket.status
    old_channels = tuple(
        c
        for c in (
            events.group_channel(old_group) if old_group else None,
            events.agent_channel(old_assignee) if old_assignee else None,
        )
        if c
    )
    if to_agent_id is not None:
        if not AgentProfile.objects.filter(user_id=to_agent_id, user__is_active=True).exists():
            raise ApplicationError("unknown agent", code="invalid")
        moved = assignment.ticket_assign(
            ticket_id=ticket.id,
            user_id=to_agent_id,
            actor_id=by_user_id,
            kind=TicketEvent.Kind.TRANSFERRED,
            from_statuses=Ticket.OPEN,
            group_id=to_group_id,
            note=note,
            extra_groups=old_channels,
        )
        assert moved is not None  # the row is locked and open
        if was_status == Ticket.Status.QUEUED or (to_group_id and to_group_id != old_group):
            assignment.queue_positions_refresh(group_id=old_group)
        assignment.queue_dispatch_after_commit([old_group])
        return moved
    ticket = _change(
        ticket,
        kind=TicketEvent.Kind.TRANSFERRED,
        event="ticket.queued",
        actor_id=by_user_id,
        text=note,
        data={"from_group_id": old_group, "from_assignee_id": old_assignee},
        extra_groups=old_channels,
        status=Ticket.Status.QUEUED,
        group_id=to_group_id,
        assignee=None,
        position_told=None,
    )
    ticket.group = AgentGroup.objects.get(pk=to_group_id)
    crossing.conversation_status_set(conversation_id=ticket.conversation_id, status=Conversation.Status.QUEUED)
    if not ticket.leave_message:
        assignment.position_tell(ticket=ticket, position=assignment.queue_position(ticket) or 0)
    if old_group != to_group_id:
        assignment.queue_positions_refresh(group_id=old_group)
    assignment.queue_positions_refresh(group_id=to_group_id)
    assignment.queue_dispatch_after_commit([to_group_id, old_group])
    return ticket


@transaction.atomic
def ticket_requeue(ticket_id: int, *, reason: str, by_user_id: int | None = None) -> Ticket | None:
    """Put an assigned ticket the agent has not answered yet back in its group's queue (``ticket.queued``),
    keeping its original queue time so it is served first; the customer is told their position. Used when
    the agent goes offline. None when the ticket is no longer assigned-and-unanswered."""
    ticket = _lock(ticket_id, status=Ticket.Status.ASSIGNED, first_response_at__isnull=True)
    if ticket is None:
        return None
    old_assignee = ticket.assignee_id
    ticket = _change(
        ticket,
        kind=TicketEvent.Kind.REQUEUED,
        event="ticket.queued",
        actor_id=by_user_id,
        data={"reason": reason, "from_assignee_id": old_assignee},
        extra_groups=(events.agent_channel(old_assignee),) if old_assignee else (),
        status=Ticket.Status.QUEUED,
        assignee=None,
        assigned_at=None,
        position_told=None,
    )
    crossing.conversation_status_set(conversation_id=ticket.conversation_id, status=Conversation.Status.QUEUED)
    if not ticket.leave_message:
        assignment.position_tell(ticket=ticket, position=assignment.queue_position(ticket) or 0)
    assignment.queue_positions_refresh(group_id=ticket.group_id)
    assignment.queue_dispatch_after_commit([ticket.group_id])
    return ticket


# --- talking to the customer ---------------------------------------------------------------------------------


@transaction.atomic
def ticket_reply(ticket_id: int, agent_user_id: int, text: str) -> Message:
    """Send the assigned agent's reply to the customer through ``bots.services.reply_queue`` (sender agent:
    the channel's outbox and rate limits apply). The ticket then waits for the customer."""
    text = (text or "").strip()
    if not text:
        raise ApplicationError("the reply is empty", code="invalid")
    ticket = _load(ticket_id, agent_user_id)
    _require_open(ticket)
    if ticket.status == Ticket.Status.QUEUED:
        raise ApplicationError("claim the ticket before replying", code="not_assigned", status=409)
    _require_handler(ticket, agent_user_id)
    message = crossing.agent_message_send(
        conversation_id=ticket.conversation_id, text=text, agent_user_id=agent_user_id, ticket_id=ticket.id
    )
    details: dict[str, Any] = {"message_id": message.id}
    if message.status == Message.Status.BLOCKED:
        # a reply that may not go out (a blocked sensitive word) is no answer: the ticket keeps its state and its
        # first-response time; the history still shows the attempt
        details["blocked"] = True
        answered: dict[str, Any] = {}
    else:
        answered = {
            "status": Ticket.Status.WAITING_CUSTOMER,
            "first_response_at": ticket.first_response_at or timezone.now(),
        }
    _change(
        ticket,
        kind=TicketEvent.Kind.REPLIED,
        event="ticket.updated",
        actor_id=agent_user_id,
        data=dict(details),
        extra=dict(details),
        **answered,
    )
    return message


@transaction.atomic
def ticket_note_add(ticket_id: int, agent_user_id: int, text: str) -> TicketEvent:
    """An internal note on the ticket: kept in its history, shown to agents, never sent to the customer."""
    text = (text or "").strip()
    if not text:
        raise ApplicationError("the note is empty", code="invalid")
    ticket = _load(ticket_id, agent_user_id)
    _change(
        ticket,
        kind=TicketEvent.Kind.NOTE,
        event="ticket.updated",
        actor_id=agent_user_id,
        text=text,
        extra={"note": {"author_id": agent_user_id, "text": text}},
    )
    return TicketEvent.objects.filter(ticket=ticket, kind=TicketEvent.Kind.NOTE).latest("id")


@transaction.atomic
def ticket_customer_message(*, conversation_id: int, message_id: int | None = None) -> Ticket | None:
    """The customer wrote while their conversation is queued or with an agent: a ticket waiting for the
    customer goes back to ``assigned`` (a history row), and the agents are told (``ticket.updated``, action
    ``customer_message``; no history row when the status stays). None when no ticket is open."""
    crossing.conversation_lock(conversation_id)
    ticket = (
        Ticket.objects.select_for_update(of=("self",), no_key=True)
        .select_related("group", "assignee")
        .filter(conversation_id=conversation_id, status__in=Ticket.OPEN)
        .first()
    )
    if ticket is None:
        return None
    if ticket.status == Ticket.Status.WAITING_CUSTOMER:
        return _change(
            ticket,
            kind=TicketEvent.Kind.CUSTOMER_REPLIED,
            event="ticket.updated",
            actor_id=None,
            data={"message_id": message_id},
            extra={"message_id": message_id},
            status=Ticket.Status.ASSIGNED,
        )
    events.ticket_publish(ticket, "ticket.updated", action="customer_message", extra={"message_id": message_id})
    return ticket


# --- ending ----------------------------------------------------------------------------------------------------


@transaction.atomic
def ticket_return_to_bot(ticket_id: int, by_user_id: int, *, note: str = "") -> Ticket:
    """Give the conversation back to the bot: the ticket is closed (category ``returned_to_bot``), the
    conversation's status is ``bot`` again, and the customer is told."""
    ticket = _load(ticket_id, by_user_id)
    _require_open(ticket)
    if ticket.status != Ticket.Status.QUEUED:
        _require_handler(ticket, by_user_id)
    was_status, now = ticket.status, timezone.now()
    ticket = _change(
        ticket,
        kind=TicketEvent.Kind.RETURNED_TO_BOT,
        event="ticket.updated",
        actor_id=by_user_id,
        text=note,
        status=Ticket.Status.CLOSED,
        category=RETURNED_TO_BOT,
        closed_at=now,
    )
    crossing.conversation_status_set(conversation_id=ticket.conversation_id, status=Conversation.Status.BOT)
    crossing.customer_tell(
        conversation_id=ticket.conversation_id, text=MSG_BACK_TO_BOT, kind="back_to_bot", ticket_id=ticket.id
    )
    _after_leaving(ticket, was_status=was_status, group_ids=[ticket.group_id])
    return ticket


@transaction.atomic
def ticket_resolve(ticket_id: int, category: str, by_user_id: int) -> Ticket:
    """Resolve an open ticket with a category; the conversation is resolved and the customer gets the CSAT
    question (1-5), whose answer ``csat_capture`` stores."""
    ticket = _load(ticket_id, by_user_id)
    _require_open(ticket)
    _require_handler(ticket, by_user_id)
    was_status, now = ticket.status, timezone.now()
    ticket = _change(
        ticket,
        kind=TicketEvent.Kind.RESOLVED,
        event="ticket.updated",
        actor_id=by_user_id,
        data={"category": category},
        status=Ticket.Status.RESOLVED,
        category=(category or "")[:60],
        resolved_at=now,
        csat_state=Ticket.CsatState.ASKED,
        csat_asked_at=now,
    )
    crossing.conversation_status_set(conversation_id=ticket.conversation_id, status=Conversation.Status.RESOLVED)
    crossing.customer_tell(
        conversation_id=ticket.conversation_id, text=MSG_CSAT_QUESTION, kind="csat_question", ticket_id=ticket.id
    )
    _after_leaving(ticket, was_status=was_status, group_ids=[ticket.group_id])
    return ticket


@transaction.atomic
def ticket_close(ticket_id: int, by_user_id: int | None) -> Ticket:
    """Close a ticket: a resolved one (done), or an open one (e.g. spam; the conversation is resolved, no
    CSAT). ``by_user_id=None`` is the system (auto-close of resolved tickets)."""
    if by_user_id is None:
        ticket = _lock(ticket_id)
        if ticket is None:
            raise selectors.not_found()
    else:
        ticket = _load(ticket_id, by_user_id)
        if ticket.is_open:
            _require_handler(ticket, by_user_id)
    if ticket.status == Ticket.Status.CLOSED:
        return ticket
    was_status = ticket.status
    fields: dict[str, Any] = {"status": Ticket.Status.CLOSED, "closed_at": timezone.now()}
    if ticket.csat_state == Ticket.CsatState.ASKED and by_user_id is None:
        fields["csat_state"] = Ticket.CsatState.LAPSED
    ticket = _change(ticket, kind=TicketEvent.Kind.CLOSED, event="ticket.updated", actor_id=by_user_id, **fields)
    if was_status in Ticket.OPEN:
        crossing.conversation_status_set(conversation_id=ticket.conversation_id, status=Conversation.Status.RESOLVED)
        _after_leaving(ticket, was_status=was_status, group_ids=[ticket.group_id])
    return ticket


def _csat_value(text: str) -> int | None:
    match = _CSAT_ANSWER.match(unicodedata.normalize("NFKC", text or "").strip())
    return int(match.group(1)) if match else None


def csat_capture(conversation_id: int, text: str, *, customer_id: int | None = None) -> bool:
    """Call first for every customer message the bot would handle. When the customer's last resolved ticket
    asked the CSAT question (within ``KEFU_CSAT_WINDOW_MINUTES``), this message answers it: "1".."5" (also
    full-width, "5分", "5星") is stored, the customer is thanked and True is returned (the bot stays
    silent); anything else lapses the question and returns False (the bot handles the message).

    ``customer_id`` (the conversation's, when the caller has it) saves a lookup. Almost every message has no
    survey pending: one unlocked ``EXISTS`` answers that, and only a pending survey takes the locks (as before,
    a survey asked by a transaction that has not committed yet is not seen: the message goes to the bot)."""
    if customer_id is None:
        customer_id = Conversation.objects.filter(pk=conversation_id).values_list("customer_id", flat=True).first()
        if customer_id is None:
            return False
    if not _csat_pending(customer_id):
        return False
    return _csat_answer(conversation_id=conversation_id, customer_id=customer_id, text=text)


@functools.cache
def _csat_pending_sql() -> str:
    return (
        f"SELECT 1 FROM {fastsql.table(Ticket)} WHERE {fastsql.column(Ticket, 'customer')} = %s "
        f"AND {fastsql.column(Ticket, 'csat_state')} = %s LIMIT 1"
    )


def _csat_pending(customer_id: int) -> bool:
    """Whether a survey waits for this customer's answer. A raw statement: it runs for every message the bot
    handles, and the ORM's ``exists()`` spent ≈ 1 ms of CPU compiling it."""
    with connection.cursor() as cursor:
        cursor.execute(_csat_pending_sql(), [customer_id, Ticket.CsatState.ASKED.value])
        return cursor.fetchone() is not None


@transaction.atomic
def _csat_answer(*, conversation_id: int, customer_id: int, text: str) -> bool:
    crossing.conversation_lock(conversation_id)
    ticket = (
        Ticket.objects.select_for_update(of=("self",), no_key=True)
        .select_related("group", "assignee")
        .filter(customer_id=customer_id, csat_state=Ticket.CsatState.ASKED)
        .order_by("-csat_asked_at")
        .first()
    )
    if ticket is None:
        return False
    window = dt.timedelta(minutes=settings.KEFU_CSAT_WINDOW_MINUTES)
    score = _csat_value(text)
    if score is None or ticket.csat_asked_at is None or timezone.now() - ticket.csat_asked_at > window:
        _change(
            ticket,
            kind=TicketEvent.Kind.CSAT,
            event="ticket.updated",
            actor_id=None,
            data={"answered": False},
            csat_state=Ticket.CsatState.LAPSED,
        )
        return False
    _change(
        ticket,
        kind=TicketEvent.Kind.CSAT,
        event="ticket.updated",
        actor_id=None,
        data={"score": score},
        csat_state=Ticket.CsatState.ANSWERED,
        csat_score=score,
        csat_answered_at=timezone.now(),
    )
    crossing.customer_tell(
        conversation_id=conversation_id, text=MSG_CSAT_THANKS, kind="csat_thanks", ticket_id=ticket.id
    )
    return True


# --- periodic --------------------------------------------------------------------------------------------------


def sla_sweep(*, now: dt.datetime | None = None, limit: int = 500) -> list[int]:
    """Open tickets past their SLA due time without an agent reply: flag each once (history row) and alert
    the supervisors (``ticket.updated`` with ``alert: "sla_breached"`` on ``supervisors`` and the group)."""
    now = now or timezone.now()
    due = list(
        Ticket.objects.filter(
            status__in=Ticket.OPEN, first_response_at__isnull=True, sla_breached_at__isnull=True, sla_due_at__lte=now
        ).values_list("id", flat=True)[:limit]
    )
    flagged = []
    for ticket_id in due:
        with transaction.atomic():
            ticket = (
                Ticket.objects.select_for_update(of=("self",), no_key=True)
                .select_related("group", "assignee")
                .filter(pk=ticket_id, sla_breached_at__isnull=True, status__in=Ticket.OPEN)
                .first()
            )
            if ticket is None:
                continue
            overdue = int((now - ticket.sla_due_at).total_seconds() // 60) if ticket.sla_due_at else 0
            _change(
                ticket,
                kind=TicketEvent.Kind.SLA_BREACHED,
                event="ticket.updated",
                actor_id=None,
                data={"overdue_minutes": overdue},
                extra={"alert": "sla_breached", "overdue_minutes": overdue},
                sla_breached_at=now,
            )
            flagged.append(ticket_id)
    if flagged:
        logger.warning("SLA breached", extra={"tickets": flagged})
    return flagged


def tickets_autoclose(*, now: dt.datetime | None = None, limit: int = 500) -> list[int]:
    """Resolved tickets older than ``KEFU_TICKET_AUTOCLOSE_HOURS`` are closed (an unanswered CSAT lapses)."""
    cutoff = (now or timezone.now()) - dt.timedelta(hours=settings.KEFU_TICKET_AUTOCLOSE_HOURS)
    ids = list(
        Ticket.objects.filter(status=Ticket.Status.RESOLVED, resolved_at__lte=cutoff).values_list("id", flat=True)[
            :limit
        ]
    )
    for ticket_id in ids:
        ticket_close(ticket_id, None)
    return ids
