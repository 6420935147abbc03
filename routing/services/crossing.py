"""Routing's only writes into the bots app, kept in one module (see STYLE.md, "Which way imports run").

Two crossings, and nothing else:

* ``conversation_lock``: row locks in one order (see its docstring).
* ``conversation_status_set``: a hand-off owns the conversation's ``queued``/``human``/``resolved``/``bot``
  status while a ticket is open, so routing writes ``bots.Conversation.status`` (and ``resolved_at``) here,
  with one ``conversation.updated`` event on ``conversation.<id>``.
* ``customer_tell`` / ``agent_message_send``: every message routing sends to a customer goes through
  ``bots.services.reply_queue`` (the one entry point for outgoing messages), so the channel's outbox, rate
  limits and delivery events apply. System texts are rendered in the shop's language
  (``settings.LANGUAGE_CODE``), never in the language of the agent whose request triggered them.

``bots.services`` is imported inside the functions: ``bots.services.inbound`` calls into routing, so a
module-level import here would make the two packages import each other while half-initialised.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import timezone, translation

from bots.models import Conversation, Message
from core import realtime


def conversation_lock(conversation_id: int) -> None:
    """Lock the conversation row for the rest of the transaction.

    Lock order across the app: **conversation → ticket → agent profile**. ``bots.services.conversation_handle``
    holds the conversation while it calls routing, so every routing write that touches a ticket locks the
    ticket's conversation first; agent profiles are only locked to choose an agent, and presence changes
    re-queue tickets after their own commit."""
    list(Conversation.objects.select_for_update(no_key=True).filter(pk=conversation_id).values_list("id", flat=True))


def conversation_status_set(*, conversation_id: int, status: str) -> None:
    """Set a conversation's status (bot | queued | human | resolved) and tell ``conversation.<id>``."""
    fields: dict[str, Any] = {"status": status, "updated_at": timezone.now()}
    if status == Conversation.Status.RESOLVED:
        fields["resolved_at"] = timezone.now()
    elif status in (Conversation.Status.QUEUED, Conversation.Status.HUMAN, Conversation.Status.BOT):
        fields["resolved_at"] = None
    changed = Conversation.objects.filter(pk=conversation_id).exclude(status=status).update(**fields)
    if changed:
        realtime.publish(
            realtime.conversation_group(conversation_id),
            "conversation.updated",
            {"conversation_id": conversation_id, "status": status},
        )


def render(text: Any, params: dict[str, Any] | None = None) -> str:
    """A (lazy) gettext string rendered in the shop's language, ``%(name)s`` parameters filled in."""
    with translation.override(settings.LANGUAGE_CODE):
        rendered = str(text)
        return rendered % params if params else rendered


def customer_tell(
    *, conversation_id: int, text: Any, params: dict[str, Any] | None = None, kind: str, ticket_id: int | None = None
) -> Message:
    """Send a system message (queue position, hours, CSAT question...) to the customer of a conversation."""
    from bots.services.outbound import reply_queue

    conversation = Conversation.objects.select_related("channel").get(pk=conversation_id)
    return reply_queue(
        conversation=conversation,
        text=render(text, params),
        sender=Message.Sender.SYSTEM,
        trace={"kind": "system", "stage": "routing", "routing": kind, "ticket_id": ticket_id},
    )


def agent_message_send(*, conversation_id: int, text: str, agent_user_id: int, ticket_id: int) -> Message:
    """An agent's reply, sent through the channel's outbox like every other outgoing message."""
    from bots.services.outbound import reply_queue

    conversation = Conversation.objects.select_related("channel").get(pk=conversation_id)
    return reply_queue(
        conversation=conversation,
        text=text,
        sender=Message.Sender.AGENT,
        trace={"kind": "agent", "stage": "agent", "agent_id": agent_user_id, "ticket_id": ticket_id},
    )
