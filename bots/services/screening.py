"""Sensitive words applied to the message path: the word lists and matchers are ``core.sensitive``; this module
changes messages and outbox rows (bots owns them). Two hooks call it:

* ``inbound_screen(message)`` in ``message_receive``, right after the customer's message is stored (same
  transaction, before any event is published): ``mask`` (and ``block``) words are replaced by ＊ in the stored
  content, every hit is recorded (``core.SensitiveHit``) and summarised in ``message.meta["sensitive"]``.
  ``conversation_handle`` then asks ``inbound_verdict(message)``: ``handoff`` → the conversation goes to a person,
  ``block`` → the bot answers a neutral text instead of the content.
* ``outbound_screen(message=, outbox=)`` in ``reply_queue``, right after the Message(out) and its Outbox row are
  created: ``mask`` words are masked in the text that will be sent; a ``block`` word blocks the row (status
  ``blocked``, reason ``sensitive_word``), nothing is queued or sent, the customer never sees it, and the agents
  get ``message.created`` and ``conversation.updated`` (delivery ``blocked`` with a Chinese ``reason_label``
  naming the words) on ``conversation.<id>``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

from bots.models import Message, Outbox
from bots.services.common import message_payload
from core import realtime, sensitive
from core.textfilter import Action

logger = logging.getLogger(__name__)

META_KEY = "sensitive"
NEUTRAL_REPLY = _("Sorry, we cannot process this message. Please rephrase it.")
HANDOFF_REASON = "rule"  # routing's Ticket.Reason: the word list is a rule that asks for a person


def inbound_screen(message: Message) -> None:
    """Scan a customer's stored message; mask, record and mark it when a word list hits."""
    if message.direction != Message.Direction.IN or not message.content:
        return
    result = sensitive.text_scan(message.content, sensitive.INBOUND)
    if not result.hits:
        return
    summary = sensitive.hit_summary(result)
    message.meta = {**(message.meta or {}), META_KEY: summary}
    fields = ["meta"]
    if summary["masked"]:
        message.content = result.masked_text
        fields.append("content")
    message.save(update_fields=fields)
    sensitive.hit_record(
        direction=sensitive.INBOUND,
        result=result,
        sender=message.sender,
        conversation_id=message.conversation_id,
        message_id=message.id,
    )
    logger.info("sensitive words in a customer message", extra={"action": summary["action"]})


@dataclass(frozen=True)
class Verdict:
    handoff: bool
    reply: str
    trace: dict
    reason: str = ""  # the hand-off reason


def inbound_verdict(message: Message) -> Verdict | None:
    """What the pipeline does instead of answering, for a message ``inbound_screen`` marked ``handoff`` or
    ``block``; None: answer as usual (no hit, or only flag/mask)."""
    summary = (message.meta or {}).get(META_KEY)
    if not summary or summary.get("action") not in (Action.HANDOFF, Action.BLOCK):
        return None
    if summary["action"] == Action.HANDOFF:
        trace = {"kind": "handoff", "stage": "sensitive", "handoff": HANDOFF_REASON, META_KEY: summary}
        return Verdict(handoff=True, reply="", trace=trace, reason=HANDOFF_REASON)
    from django.conf import settings
    from django.utils import translation

    with translation.override(settings.LANGUAGE_CODE):
        reply = str(NEUTRAL_REPLY)
    return Verdict(handoff=False, reply=reply, trace={"kind": "fallback", "stage": "sensitive", META_KEY: summary})


def outbound_screen(*, message: Message, outbox: Outbox) -> bool:
    """Scan a reply just created by ``reply_queue``; True when it is blocked (then do not queue or publish it:
    this function told the agents). A row another policy blocked already is left alone."""
    if outbox.status == Outbox.Status.BLOCKED:
        return False
    result = sensitive.text_scan(message.content, sensitive.OUTBOUND)
    if not result.hits:
        return False
    summary = sensitive.hit_summary(result)
    record = {"direction": sensitive.OUTBOUND, "result": result, "sender": message.sender}
    if not result.blocked:
        message.content = result.masked_text
        message.trace = {**(message.trace or {}), META_KEY: summary}
        message.save(update_fields=["content", "trace"])
        sensitive.hit_record(**record, conversation_id=message.conversation_id, message_id=message.id)
        return False
    label = sensitive.block_label(summary)
    summary = {**summary, "reason": sensitive.REASON, "reason_label": label}
    message.status = Message.Status.BLOCKED
    message.trace = {**(message.trace or {}), META_KEY: summary}
    message.save(update_fields=["status", "trace"])
    # attempts 0: a row its INSERT claimed for an inline send (``reply_queue``) was never tried either
    Outbox.objects.filter(pk=outbox.pk).update(status=Outbox.Status.BLOCKED, reason=sensitive.REASON, attempts=0)
    outbox.status, outbox.reason, outbox.attempts = Outbox.Status.BLOCKED, sensitive.REASON, 0
    sensitive.hit_record(**record, conversation_id=message.conversation_id, message_id=message.id, outbox_id=outbox.pk)
    # agents only: the customer's group (the web channel's delivery) never gets this message
    group = realtime.conversation_group(message.conversation_id)
    realtime.publish(group, "message.created", message_payload(message))
    realtime.publish(
        group,
        "conversation.updated",
        {
            "conversation_id": message.conversation_id,
            "message_id": message.id,
            "delivery": "blocked",
            "reason": sensitive.REASON,
            "reason_label": label,
        },
    )
    logger.warning("reply blocked by a sensitive word", extra={"message_id": message.id})
    return True
