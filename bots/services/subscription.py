"""退订: a customer who writes "退订" (or "TD", "取消订阅") gets one confirmation and no proactive messages
afterwards; "订阅" / "恢复" turns them back on.

Two hooks call in here: ``conversation_handle`` (inbound) recognises the command, ``reply_queue`` (the one
entry point for outgoing messages) asks ``proactive_refusal`` and stores a refused message with its outbox row
``blocked`` (reason ``unsubscribed``), so nothing is dropped silently and operators see why.

What is proactive: a message that does not answer the customer. Direct replies (``reply_to`` set: the bot's
answer, this confirmation) and agent messages always go. A system message (CSAT survey, queue position,
"agent connected", "back to the bot", follow-ups) is proactive unless it is sent while the customer's latest
message is still being handled (then it answers that message, e.g. the queue position right after "转人工");
the CSAT survey and back-to-bot notices are always proactive, as is anything whose trace says
``"proactive": true``."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from bots import pii
from bots.models import Conversation, Customer, Message

logger = logging.getLogger(__name__)

REASON_UNSUBSCRIBED = "unsubscribed"
ALWAYS_PROACTIVE = frozenset({"csat_question", "back_to_bot", "follow_up", "broadcast", "marketing"})

MSG_UNSUBSCRIBED = _(
    'You have unsubscribed: we will no longer send you notifications or surveys. Reply "subscribe" to turn them '
    "back on."
)
MSG_SUBSCRIBED = _("You are subscribed again and will receive our notifications.")


def command_of(text: str) -> str:
    """``pii.UNSUBSCRIBE`` / ``pii.SUBSCRIBE`` when the message is such a command, else ""."""
    return pii.subscription_command(text)


@transaction.atomic
def customer_subscription_set(*, customer_id: int, command: str) -> str:
    """Apply a subscription command to the customer and return the confirmation text (in the shop's language)."""
    now = timezone.now()
    if command == pii.UNSUBSCRIBE:
        Customer.objects.filter(pk=customer_id, unsubscribed_at__isnull=True).update(
            unsubscribed_at=now, updated_at=now
        )
        text = MSG_UNSUBSCRIBED
    else:
        Customer.objects.filter(pk=customer_id, unsubscribed_at__isnull=False).update(
            unsubscribed_at=None, updated_at=now
        )
        text = MSG_SUBSCRIBED
    logger.info("subscription changed", extra={"customer_id": customer_id, "command": command})
    with translation.override(settings.LANGUAGE_CODE):
        return str(text)


def is_proactive(*, conversation: Conversation, sender: str, trace: dict | None, reply_to: Message | None) -> bool:
    if reply_to is not None or sender in (Message.Sender.AGENT, Message.Sender.CUSTOMER):
        return False
    trace = trace or {}
    if trace.get("proactive") is True or trace.get("routing") in ALWAYS_PROACTIVE:
        return True
    answering = Message.objects.filter(
        conversation_id=conversation.pk, direction=Message.Direction.IN, status=Message.Status.RECEIVED
    ).exists()
    return not answering


def proactive_refusal(*, conversation: Conversation, sender: str, trace: dict | None, reply_to: Message | None) -> str:
    """The reason an outgoing message may not go ("" = it may): ``unsubscribed`` for a proactive message to a
    customer who wrote 退订 (or whose data was erased)."""
    if sender in (Message.Sender.AGENT, Message.Sender.CUSTOMER) or reply_to is not None:
        return ""  # cheap exit for the hot path: replies never touch the customer row
    flags = Customer.objects.filter(pk=conversation.customer_id).values_list("unsubscribed_at", "erased_at").first()
    if not flags or (flags[0] is None and flags[1] is None):
        return ""
    if is_proactive(conversation=conversation, sender=sender, trace=trace, reply_to=reply_to):
        logger.info("proactive message refused", extra={"conversation_id": conversation.pk})
        return REASON_UNSUBSCRIBED
    return ""
