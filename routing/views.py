"""The agent console, ``/console/``: one page (``templates/routing/console.html`` + ``static/js/console.js``) and
its JSON endpoints. Interfaces only: each endpoint checks who is asking, calls one selector or service of
``routing`` and renders plain data. Reads are GETs; every change is a POST with a JSON body and Django's CSRF
token (header ``X-CSRFToken``). Live updates come over the socket (``routing.consumers``).

Who: agents (users with an ``AgentProfile``) and supervisors; others get the login page (anonymous) or 403.
What they see is ``routing.selectors.tickets_visible_to`` / ``conversation_for_agent``: anything else is a 404,
exactly like something that does not exist.

Errors are ``{"error": {"code", "message"}}`` with the service's code and HTTP status and a message in the
agent's language (e.g. ``already_claimed``, 409: another agent was faster).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

from bots.models import Conversation, Message
from bots.services.common import message_payload
from core.errors import ApplicationError
from routing import selectors
from routing import services as routing
from routing.models import PRIORITY_NAMES, AgentGroup, AgentProfile, Priority, Ticket, TicketEvent
from routing.services.tickets import RETURNED_TO_BOT

MAX_TEXT = 5000
MAX_LIST = 200
RESOLVE_CATEGORIES = [
    ("question_answered", gettext_lazy("Question answered")),
    ("order_shipping", gettext_lazy("Order or shipping")),
    ("return_refund", gettext_lazy("Return or refund")),
    ("product_issue", gettext_lazy("Product problem")),
    ("complaint", gettext_lazy("Complaint handled")),
    ("other", gettext_lazy("Other")),
]
TIER_LABELS = {
    "vip": gettext_lazy("VIP"),
    "high": gettext_lazy("High value"),
    "normal": gettext_lazy("Regular"),
    "low": gettext_lazy("Low value"),
}
ERROR_MESSAGES = {
    "already_claimed": gettext_lazy("Another agent has already claimed this conversation."),
    "not_queued": gettext_lazy("This conversation is no longer waiting in the queue."),
    "not_open": gettext_lazy("This conversation has already ended."),
    "not_assigned": gettext_lazy("Claim the conversation before replying."),
    "not_your_ticket": gettext_lazy("Only the assigned agent or a supervisor can do this."),
    "not_in_group": gettext_lazy("This conversation belongs to another group."),
    "not_found": gettext_lazy("Not found, or not visible to you."),
}


# --- plumbing ------------------------------------------------------------------------------------------------


def may_use_console(user) -> bool:
    return bool(
        user.is_authenticated
        and user.is_active
        and (AgentProfile.objects.filter(user=user).exists() or selectors.is_supervisor(user))
    )


def _error(code: str, message: Any, status: int) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": str(message)}}, status=status)


def console_api(view: Callable) -> Callable:
    """JSON endpoint of the console: 401/403 as JSON (no login redirect for a script), and the services'
    ``ApplicationError`` as a JSON error in the agent's language."""

    @wraps(view)
    @never_cache
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return _error("not_authenticated", _("Your session has ended; please sign in again."), 401)
        if not may_use_console(request.user):
            return _error("forbidden", _("Only agents and supervisors can use the console."), 403)
        try:
            return view(request, *args, **kwargs)
        except ApplicationError as exc:
            return _error(exc.code, ERROR_MESSAGES.get(exc.code, exc.message), exc.status)

    return wrapped


def _body(request) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApplicationError(_("The request body is not valid JSON."), code="bad_json") from exc
    if not isinstance(body, dict):
        raise ApplicationError(_("The request body must be a JSON object."), code="bad_json")
    return body


def _text(body: dict[str, Any], name: str, *, required: bool, empty_message: Any = "") -> str:
    value = body.get(name, "")
    if not isinstance(value, str):
        raise ApplicationError(_("Please check your input."), code="invalid")
    value = value.strip()
    if required and not value:
        raise ApplicationError(str(empty_message), code="invalid")
    if len(value) > MAX_TEXT:
        raise ApplicationError(_("The text is too long."), code="invalid")
    return value


def _int_or_none(value: Any) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise ApplicationError(_("Please check your input."), code="invalid")
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ApplicationError(_("Please check your input."), code="invalid") from exc


def ticket_row(ticket: Ticket, *, position: int | None = None) -> dict[str, Any]:
    """A ticket as the console lists it: the realtime payload plus the customer's name and queue position."""
    row = routing.ticket_payload(ticket)
    row["customer_name"] = ticket.customer.nickname or ticket.customer.external_id
    row["channel"] = ticket.conversation.channel.slug if ticket.conversation_id else ""
    row["position"] = position
    return row


def _labels() -> dict[str, dict[str, str]]:
    def choices(cls) -> dict[str, str]:
        return {str(value): str(label) for value, label in cls.choices}

    return {
        "status": choices(Ticket.Status),
        "reason": choices(Ticket.Reason),
        "priority": {PRIORITY_NAMES[p]: str(p.label) for p in Priority},
        "event": choices(TicketEvent.Kind),
        "presence": choices(AgentProfile.Presence),
        "conversation": choices(Conversation.Status),
        "sender": choices(Message.Sender),
        "message_status": choices(Message.Status),
        "tier": {key: str(label) for key, label in TIER_LABELS.items()},
        "category": {key: str(label) for key, label in RESOLVE_CATEGORIES}
        | {RETURNED_TO_BOT: _("Returned to the bot")},
    }


# --- the page ------------------------------------------------------------------------------------------------


@login_required
@ensure_csrf_cookie
@require_GET
def console_page(request):
    if not may_use_console(request.user):
        raise PermissionDenied
    return render(request, "routing/console.html", {"categories": RESOLVE_CATEGORIES})


# --- reads ---------------------------------------------------------------------------------------------------


@console_api
@require_GET
def console_state(request):
    """Everything the console shows before the first event: who I am, the queue, my conversations, (for
    supervisors) every open ticket, transfer targets, labels."""
    user = request.user
    profile = selectors.agent_profile(user)
    supervisor = selectors.is_supervisor(user)
    queue = [ticket_row(t, position=t.position) for t in selectors.queue_for(user)[:MAX_LIST]]
    mine = [ticket_row(t) for t in selectors.tickets_assigned_to(user)]
    open_tickets = []
    if supervisor:
        rows = (
            selectors.tickets_visible_to(user)
            .filter(status__in=Ticket.WITH_AGENT)
            .select_related("conversation__channel")
            .order_by("-priority", "assigned_at")[:MAX_LIST]
        )
        open_tickets = [ticket_row(t) for t in rows]
    groups = AgentGroup.objects.order_by("id").values("id", "name", "slug")
    return JsonResponse(
        {
            "me": {
                "id": user.pk,
                "username": user.get_username(),
                "name": str(profile) if profile else user.get_username(),
                "agent": profile is not None,
                "presence": profile.presence if profile else None,
                "supervisor": supervisor,
                "group_ids": selectors.agent_group_ids(user),
            },
            "queue": queue,
            "mine": mine,
            "open": open_tickets,
            "groups": list(groups),
            "agents": selectors.agents_list(),
            "categories": [{"code": code, "label": str(label)} for code, label in RESOLVE_CATEGORIES],
            "labels": _labels(),
        }
    )


@console_api
@require_GET
def ticket_detail(request, ticket_id: int):
    ticket = selectors.ticket_for_agent(request.user, ticket_id)
    position = routing.queue_position(ticket) if ticket.status == Ticket.Status.QUEUED else None
    return JsonResponse({"ticket": ticket_row(ticket, position=position)})


def _timeline(user, conversation_id: int) -> tuple[list[dict[str, Any]], list[Ticket]]:
    tickets = list(selectors.tickets_visible_to(user).filter(conversation_id=conversation_id).order_by("id"))
    timeline = []
    for ticket in tickets:
        for item in selectors.ticket_history(ticket.id):
            item["ticket_id"] = ticket.id
            timeline.append(item)
    timeline.sort(key=lambda e: (e["created_at"], e["id"]))
    return timeline, tickets


@console_api
@require_GET
def conversation_detail(request, conversation_id: int):
    """The whole story of one conversation: every message (bot decision traces included), the tickets'
    history (internal notes included), the current ticket and the customer card."""
    conversation = selectors.conversation_for_agent(request.user, conversation_id)
    timeline, tickets = _timeline(request.user, conversation.id)
    current = next((t for t in reversed(tickets) if t.is_open), tickets[-1] if tickets else None)
    position = routing.queue_position(current) if current and current.status == Ticket.Status.QUEUED else None
    card = selectors.customer_card(conversation.customer_id)
    from bots.services.privacy import customer_pii_view_record  # PIPL: an agent's view of PII is audited

    shown = [k for k, v in card["pii"].items() if v] + (["nickname"] if card.get("nickname") else [])
    customer_pii_view_record(
        customer_id=conversation.customer_id, actor=request.user, fields=shown, via="console", request=request
    )
    return JsonResponse(
        {
            "conversation": {
                "id": conversation.id,
                "status": conversation.status,
                "channel": conversation.channel.slug,
                "channel_kind": conversation.channel.kind,
                "customer_id": conversation.customer_id,
                "customer_name": conversation.customer.nickname or conversation.customer.external_id,
                "created_at": conversation.created_at.isoformat(),
            },
            "messages": selectors.conversation_transcript(conversation.id),
            "timeline": timeline,
            "ticket": ticket_row(current, position=position) if current else None,
            "card": card,
        }
    )


@console_api
@require_GET
def conversation_timeline(request, conversation_id: int):
    conversation = selectors.conversation_for_agent(request.user, conversation_id)
    timeline, _tickets = _timeline(request.user, conversation.id)
    return JsonResponse({"timeline": timeline})


@console_api
@require_GET
def canned_replies(request):
    query = request.GET.get("q", "")[:40]
    rows = selectors.canned_replies_for(request.user, query=query, limit=10)
    return JsonResponse({"replies": [{"shortcut": c.shortcut, "title": c.title, "text": c.text} for c in rows]})


# --- actions: one service each --------------------------------------------------------------------------------


@console_api
@require_POST
def ticket_claim(request, ticket_id: int):
    ticket = routing.ticket_claim(ticket_id, request.user.pk)
    return JsonResponse({"ticket": ticket_row(ticket)})


@console_api
@require_POST
def ticket_reply(request, ticket_id: int):
    text = _text(_body(request), "text", required=True, empty_message=_("Type a reply first."))
    message = routing.ticket_reply(ticket_id, request.user.pk, text)
    return JsonResponse({"message": message_payload(message)}, status=201)


@console_api
@require_POST
def ticket_note(request, ticket_id: int):
    text = _text(_body(request), "text", required=True, empty_message=_("Type a note first."))
    event = routing.ticket_note_add(ticket_id, request.user.pk, text)
    return JsonResponse({"note": {"id": event.id, "ticket_id": ticket_id, "text": event.text}}, status=201)


@console_api
@require_POST
def ticket_transfer(request, ticket_id: int):
    body = _body(request)
    to_agent = _int_or_none(body.get("agent_id"))
    to_group = _int_or_none(body.get("group_id"))
    if to_agent is None and to_group is None:
        raise ApplicationError(_("Choose an agent or a group."), code="invalid")
    if to_agent is not None and to_agent == request.user.pk:
        raise ApplicationError(_("Choose another agent."), code="invalid")
    note = _text(body, "note", required=False)
    ticket = routing.ticket_transfer(
        ticket_id, to_agent_id=to_agent, to_group_id=to_group, note=note, by_user_id=request.user.pk
    )
    return JsonResponse({"ticket": ticket_row(ticket)})


@console_api
@require_POST
def ticket_return(request, ticket_id: int):
    note = _text(_body(request), "note", required=False)
    ticket = routing.ticket_return_to_bot(ticket_id, request.user.pk, note=note)
    return JsonResponse({"ticket": ticket_row(ticket)})


@console_api
@require_POST
def ticket_resolve(request, ticket_id: int):
    category = _body(request).get("category")
    if category not in dict(RESOLVE_CATEGORIES):
        raise ApplicationError(_("Choose a category."), code="invalid")
    ticket = routing.ticket_resolve(ticket_id, category, request.user.pk)
    return JsonResponse({"ticket": ticket_row(ticket)})


@console_api
@require_POST
def presence_set(request):
    status = _body(request).get("status")
    if status not in (AgentProfile.Presence.ONLINE, AgentProfile.Presence.AWAY):
        raise ApplicationError(_("Choose online or away."), code="invalid")
    profile = routing.agent_presence_set(request.user.pk, status)
    return JsonResponse({"presence": profile.presence})
