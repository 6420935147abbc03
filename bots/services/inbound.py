"""Inbound half of the message path: receive (store once, queue), handle (decide, reply), sweep."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from bots.channels.base import InboundMessage
from bots.models import Channel, Conversation, Customer, Message
from bots.services.common import publish_message
from bots.services.outbound import reply_queue
from core import logging as klog
from core.errors import ApplicationError
from knowledge import services as knowledge
from knowledge.decision import DecisionContext

logger = logging.getLogger(__name__)

MAX_SEND_ATTEMPTS = 8


def _conversation_for(customer: Customer, now: dt.datetime) -> Conversation:
    """The customer's open conversation, or a new one after the inactivity window."""
    latest = Conversation.objects.select_for_update().filter(customer=customer).order_by("-id").first()
    idle = dt.timedelta(minutes=settings.KEFU_CONVERSATION_IDLE_MINUTES)
    if latest is not None:
        active = latest.last_message_at is None or now - latest.last_message_at < idle
        if latest.status in (Conversation.Status.QUEUED, Conversation.Status.HUMAN) or active:
            if latest.status == Conversation.Status.RESOLVED:
                latest.status = Conversation.Status.BOT
                latest.resolved_at = None
            return latest
    return Conversation.objects.create(customer=customer, channel=customer.channel, status=Conversation.Status.BOT)


@transaction.atomic
def message_receive(*, channel: Channel, inbound: InboundMessage) -> tuple[Message, bool]:
    """Store one inbound message exactly once and queue its processing after commit.

    Returns ``(message, created)``; a message already seen (same channel and external id) is returned as is
    with ``created=False`` and queues nothing.
    """
    if not inbound.external_id:
        raise ApplicationError("inbound message without an external id", code="missing_external_id")
    existing = Message.objects.filter(channel=channel, external_id=inbound.external_id).first()
    if existing is not None:
        return existing, False
    customer, _ = Customer.objects.get_or_create(
        channel=channel, external_id=inbound.sender_id, defaults={"nickname": inbound.nickname}
    )
    customer = Customer.objects.select_for_update().get(pk=customer.pk)  # one writer per customer at a time
    if inbound.nickname and inbound.nickname != customer.nickname:
        customer.nickname = inbound.nickname
        customer.save(update_fields=["nickname", "updated_at"])
    now = timezone.now()
    conversation = _conversation_for(customer, now)
    try:
        with transaction.atomic():
            message = Message.objects.create(
                conversation=conversation,
                channel=channel,
                direction=Message.Direction.IN,
                sender=Message.Sender.CUSTOMER,
                type=inbound.type if inbound.type in Message.Type.values else Message.Type.UNSUPPORTED,
                content=inbound.text,
                meta=inbound.meta,
                external_id=inbound.external_id,
                status=Message.Status.RECEIVED,
            )
    except IntegrityError:  # a concurrent delivery of the same message won the race
        return Message.objects.get(channel=channel, external_id=inbound.external_id), False
    conversation.last_message_at = now
    conversation.save(update_fields=["last_message_at", "status", "resolved_at", "updated_at"])
    publish_message(message, customer.id)
    logger.info("message received", extra={"message_id": message.id, "conversation_id": conversation.id})
    transaction.on_commit(lambda: _queue_processing(message.id))
    return message, True


def _queue_processing(message_id: int) -> None:
    from bots.tasks import process_message

    try:
        process_message.delay(message_id)
    except Exception:  # broker down: the message is stored; the sweeper queues it again later
        logger.exception("could not queue message", extra={"message_id": message_id})


@transaction.atomic
def conversation_handle(*, message_id: int) -> Message | None:
    """Decide and queue the reply to one inbound message; a second call for the same message does nothing.

    Returns the reply message, or None when nothing was sent (already processed, with a human, ignored).
    """
    message = (
        Message.objects.select_for_update(of=("self",))
        .select_related("conversation__customer", "channel")
        .filter(pk=message_id, direction=Message.Direction.IN)
        .first()
    )
    if message is None or message.status != Message.Status.RECEIVED:
        return None
    conversation = Conversation.objects.select_for_update().get(pk=message.conversation_id)
    customer = message.conversation.customer
    with klog.bound(message_id=message.id, conversation_id=conversation.id):
        message.status = Message.Status.PROCESSED
        message.processed_at = timezone.now()
        reply = None
        if conversation.status in (Conversation.Status.QUEUED, Conversation.Status.HUMAN):
            message.trace = {"kind": "human", "stage": "with_agent"}
        else:
            decision = knowledge.decide(
                text=message.content,
                context=DecisionContext(
                    conversation_id=conversation.id,
                    channel_slug=message.channel.slug,
                    nickname=customer.nickname,
                    message_type=message.type,
                ),
            )
            message.trace = decision.trace
            if decision.reply:
                reply = reply_queue(
                    conversation=conversation, text=decision.reply, trace=decision.trace, reply_to=message
                )
            logger.info("message decided", extra={"kind": decision.kind, "elapsed_ms": decision.trace["elapsed_ms"]})
        message.save(update_fields=["status", "processed_at", "trace"])
        return reply


def sweep_unprocessed(*, older_than_seconds: int | None = None, limit: int = 500) -> list[int]:
    """Inbound messages stored but never processed (queue lost, worker crash): queue them again."""
    age = older_than_seconds if older_than_seconds is not None else settings.KEFU_SWEEP_AFTER_SECONDS
    cutoff = timezone.now() - dt.timedelta(seconds=age)
    ids = list(
        Message.objects.filter(
            direction=Message.Direction.IN, status=Message.Status.RECEIVED, created_at__lte=cutoff
        ).values_list("id", flat=True)[:limit]
    )
    for message_id in ids:
        _queue_processing(message_id)
    return ids


@transaction.atomic
def web_customer_create(*, channel: Channel, nickname: str) -> Customer:
    if channel.kind != Channel.Kind.WEB:
        raise ApplicationError("customers can only be created on a web channel", code="wrong_channel")
    return Customer.objects.create(channel=channel, external_id=f"web-{uuid.uuid4().hex[:16]}", nickname=nickname)
